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


__all__ = ["compute_fans", "glorot_uniform", "he_uniform", "he_normal", "zeros", "ones", "get", "INITIALIZERS"]
