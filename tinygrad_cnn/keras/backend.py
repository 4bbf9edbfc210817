"""keras.backend's (and keras.config's) settings, as Keras 3 reads them: epsilon(), the fuzz factor your
own metrics add to a denominator (tp / (tp + fp + epsilon())) and the cross-entropies clip probabilities
with; floatx(), the float type (float32 here); image_data_format(), channels_last."""
import numbers

from .offered import not_offered

_settings = {"epsilon": 1e-7}  # NOTE: Keras' default fuzz factor


def epsilon():
    """The fuzz factor, 1e-7 unless set_epsilon changed it (the cross-entropies here read it at each call)."""
    return _settings["epsilon"]


def set_epsilon(value):
    """Set the fuzz factor epsilon() returns (and the cross-entropies' clip [epsilon, 1 - epsilon])."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 0.5:
        raise ValueError(f"set_epsilon: epsilon must be a number in [0, 0.5), got {value!r}")
    _settings["epsilon"] = float(value)


def floatx():
    """The float type of weights and computations: 'float32' (the only one keras models use here)."""
    return "float32"


def set_floatx(value):
    """Keras' set_floatx: 'float32' is accepted (it is already the type); another type is refused by name."""
    if value != "float32":
        raise ValueError(f"set_floatx({value!r}): keras models here compute in float32 only; for float64, build "
                         f"the model with tinygrad_cnn.nn and dtype='float64'")


def image_data_format():
    """'channels_last', Keras' default layout of images (N, H, W, C); a layer's data_format= changes it."""
    from .layers import DEFAULT_DATA_FORMAT
    return DEFAULT_DATA_FORMAT


def clear_session(free_memory=True):
    """Keras' fresh start of the global names: metrics made after it are named from the start again
    (precision, not precision_3). NOTE: layers here are named per model, so their names need no reset."""
    from .metrics import forget_names
    forget_names()


__all__ = ["epsilon", "set_epsilon", "floatx", "set_floatx", "image_data_format", "clear_session"]
__getattr__ = not_offered("keras.backend", __all__)
