"""`tf.random.set_seed(0)` after `import tinygrad_cnn as tf`: TensorFlow's name for manual_seed."""
from .tensor import manual_seed


def set_seed(seed):
    """Seed tinygrad_cnn's global generator (weights, dropout, fit's shuffling): manual_seed(seed)."""
    manual_seed(seed)


__all__ = ["set_seed"]
