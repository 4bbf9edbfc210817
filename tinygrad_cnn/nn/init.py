"""Weight initialisers: NumPy arrays drawn from the global generator, so manual_seed reproduces a model,
or from a generator of your own (`generator=`, or get(name, generator=g) for a layer's initializer).

Shapes follow this project's layouts: dense weights are (units, in_features) and conv weights
(filters, in_channels, KH, KW). Fans are counted as Keras counts them, so the scales match Keras."""
import functools
import math

import numpy

from ..tensor import generator_or_global


def compute_fans(shape):
    """(fan_in, fan_out) of a weight: for a conv, channels times the receptive field KH*KW."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _uniform(shape, limit, dtype, generator, where):
    return generator_or_global(generator, where).uniform(-limit, limit, size=tuple(shape)).astype(dtype)


def glorot_uniform(shape, dtype=numpy.float32, generator=None):
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)): Keras' default, keeps activation variance steady.
    Drawn from `generator` (a numpy.random.Generator) when given, else from the global one."""
    fan_in, fan_out = compute_fans(shape)
    return _uniform(shape, math.sqrt(6.0 / max(fan_in + fan_out, 1)), dtype, generator, "glorot_uniform")


def he_uniform(shape, dtype=numpy.float32, generator=None):
    """U(-a, a) with a = sqrt(6 / fan_in): the variance 2 / fan_in that ReLU layers need.
    Drawn from `generator` when given, else from the global one."""
    fan_in, _ = compute_fans(shape)
    return _uniform(shape, math.sqrt(6.0 / max(fan_in, 1)), dtype, generator, "he_uniform")


def he_normal(shape, dtype=numpy.float32, generator=None):
    """Normal truncated at 2 standard deviations, scaled so the variance is 2 / fan_in (as in Keras).
    Drawn from `generator` when given, else from the global one."""
    fan_in, _ = compute_fans(shape)
    # NOTE: 0.8796... is the std of a unit normal truncated to [-2, 2]; dividing restores variance 2/fan_in.
    std = math.sqrt(2.0 / max(fan_in, 1)) / 0.87962566103423978
    rng = generator_or_global(generator, "he_normal")
    values = rng.standard_normal(tuple(shape))
    outside = numpy.abs(values) > 2.0
    while outside.any():  # redraw the tails: each pass keeps about 95% of what it draws
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = numpy.abs(values) > 2.0
    return (values * std).astype(dtype)


def zeros(shape, dtype=numpy.float32):
    """All zeros: the default bias initialiser."""
    return numpy.zeros(tuple(shape), dtype=dtype)


def ones(shape, dtype=numpy.float32):
    """All ones."""
    return numpy.ones(tuple(shape), dtype=dtype)


INITIALIZERS = {"glorot_uniform": glorot_uniform, "he_uniform": he_uniform, "he_normal": he_normal,
                "zeros": zeros, "ones": ones}


_RANDOM = (glorot_uniform, he_uniform, he_normal)


def get(initializer, generator=None):
    """Resolve a name from INITIALIZERS, or pass a callable `fn(shape, dtype) -> array` through.

    With `generator` (a numpy.random.Generator), a random initializer of this module draws from
    it instead of the global generator: Dense(10, kernel_initializer=init.get("he_uniform", g))."""
    if isinstance(initializer, str) and initializer in INITIALIZERS:
        fn = INITIALIZERS[initializer]
    elif callable(initializer):
        fn = initializer
    else:
        raise ValueError(f"unknown initializer {initializer!r}: use one of {', '.join(sorted(INITIALIZERS))} "
                         f"or a callable fn(shape, dtype)")
    if generator is None:
        return fn
    generator_or_global(generator, "init.get")  # a clear error for anything but a Generator
    if fn in (zeros, ones):
        return fn
    if fn not in _RANDOM:
        raise ValueError(f"init.get: a generator applies to {', '.join(f.__name__ for f in _RANDOM)} "
                         f"(by name or function), got {initializer!r}; give your own callable its generator")
    return functools.partial(fn, generator=generator)


# ---------------------------------------------------------------- torch.nn.init's in-place spellings

def calculate_gain(nonlinearity, param=None):
    """torch.nn.init.calculate_gain: the gain that keeps the variance through `nonlinearity`."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                        "conv_transpose3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")


def _fill(tensor, values, where):
    """Write `values` into the tensor in place (outside the graph), as torch.nn.init's functions do; also into
    a weight's array, `m.weight.data` (the DCGAN tutorial's nn.init.normal_(m.weight.data, 0.0, 0.02))."""
    from ..autograd import no_grad
    from ..device import device_of, to_device
    from ..tensor import Tensor
    if not isinstance(tensor, Tensor):
        if not hasattr(tensor, "dtype") or not hasattr(tensor, "shape") or not hasattr(tensor, "__setitem__"):
            raise TypeError(f"{where}: expected a Tensor (a layer's weight) or its .data, got {type(tensor).__name__}")
        tensor[...] = to_device(numpy.asarray(values, dtype=tensor.dtype), device_of(tensor))
        return tensor
    with no_grad():
        tensor.copy_(Tensor(numpy.asarray(values, dtype=tensor.dtype), device=tensor.device))
    return tensor


def _fan(tensor, mode, where):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{where}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    if len(tensor.shape) < 2:
        raise ValueError(f"{where}: fans need a weight of at least 2 dimensions, got shape {tensor.shape}")
    return compute_fans(tensor.shape)[0 if mode == "fan_in" else 1]


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """torch.nn.init.uniform_: fill with U(a, b) in place; returns the tensor."""
    return _fill(tensor, generator_or_global(generator, "uniform_").uniform(a, b, tuple(tensor.shape)), "uniform_")


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """torch.nn.init.normal_: fill with N(mean, std**2) in place; returns the tensor."""
    return _fill(tensor, generator_or_global(generator, "normal_").normal(mean, std, tuple(tensor.shape)), "normal_")


def constant_(tensor, val):
    """torch.nn.init.constant_: fill with `val` in place; returns the tensor."""
    return _fill(tensor, numpy.full(tuple(tensor.shape), val), "constant_")


def zeros_(tensor):
    """torch.nn.init.zeros_: fill with 0 in place."""
    return constant_(tensor, 0.0)


def ones_(tensor):
    """torch.nn.init.ones_: fill with 1 in place."""
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """torch.nn.init.xavier_uniform_: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)), in place."""
    fan_in, fan_out = _fan(tensor, "fan_in", "xavier_uniform_"), _fan(tensor, "fan_out", "xavier_uniform_")
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """torch.nn.init.xavier_normal_: N(0, std**2), std = gain * sqrt(2 / (fan_in + fan_out)), in place."""
    fan_in, fan_out = _fan(tensor, "fan_in", "xavier_normal_"), _fan(tensor, "fan_out", "xavier_normal_")
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """torch.nn.init.kaiming_uniform_: U(-b, b), b = gain * sqrt(3 / fan), in place (torch's defaults)."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(tensor, mode, "kaiming_uniform_"))
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """torch.nn.init.kaiming_normal_: N(0, std**2), std = gain / sqrt(fan), in place (torch's defaults)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode, "kaiming_normal_"))
    return normal_(tensor, 0.0, std, generator)


TORCH_FILLS = ["calculate_gain", "uniform_", "normal_", "constant_", "zeros_", "ones_", "xavier_uniform_",
               "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"]


__all__ = ["compute_fans", "glorot_uniform", "he_uniform", "he_normal", "zeros", "ones", "get", "INITIALIZERS",
           *TORCH_FILLS]
