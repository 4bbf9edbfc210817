"""keras.config: Keras 3's other spelling of keras.backend's settings (epsilon, floatx, image_data_format)."""
from .backend import epsilon, floatx, image_data_format, set_epsilon, set_floatx
from .offered import not_offered

__all__ = ["epsilon", "set_epsilon", "floatx", "set_floatx", "image_data_format"]
__getattr__ = not_offered("keras.config", __all__)
