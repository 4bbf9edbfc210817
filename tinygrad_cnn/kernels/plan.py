"""Which layer sequences of a Sequential run as one op: the plan that replaces nn.layers.run_layers."""
from ..nn.layers import Activated, Conv2D, Dense, Flatten, MaxPool2D
from ..tensor import Tensor
from .dense import channels_last, flatten_linear


def run_layers(layers, x, pre_activation=False):
    """Apply layers in order, fusing a ReLU-activated (or linear) Conv2D or Dense with the MaxPool2D
    that follows it, and a Flatten of channels-last memory with the Dense that follows it
    (kernels.dense.FlattenLinear: the flatten's copy saved). With pre_activation=True the last
    layer gives its pre-activation (Sequential.logits), fused as in a forward.

    NOTE: max-pooling commutes with ReLU, exactly, gradients included: max(relu(a), relu(b)) =
    relu(max(a, b)), and both send a window's gradient to its first maximum, or nowhere when it
    is <= 0. So such a layer followed directly by a MaxPool2D pools first and applies ReLU to the
    pooled output, a quarter of the size for 2x2 windows; and for a Conv2D whose output the pooling
    windows tile, pooling and ReLU run inside the convolution op, chunk by chunk while the output is
    in cache (kernels.conv.conv_pool_relu)."""
    i = 0
    while i < len(layers):
        layer = layers[i]
        following = layers[i + 1] if i + 1 < len(layers) else None
        if _pools_after(layer, following):
            x = layer.prepare(x)
            relu = layer.activation_name == "relu"
            conv_shape = layer.compute_output_shape(x.shape[1:]) if isinstance(layer, Conv2D) else None
            if conv_shape is not None and _windows_tile(following, layer.chw(conv_shape)):
                following.build(conv_shape)  # validates the shape, as calling the layer would
                x = layer.convolve(x, max_pool=following.pool_size, relu=relu)
            else:
                x = following(layer.pre_activation(x))
                x = x.relu() if relu else x
            i += 2
        elif _flattens_into(layer, following, x):
            x = _flatten_dense(layer, following, x, pre_activation and i + 2 == len(layers))
            i += 2
        elif pre_activation and i + 1 == len(layers):
            x = layer.pre_activation(layer.prepare(x))
            i += 1
        else:
            x = layer(x)
            i += 1
    return x


# NOTE: False runs Flatten and Dense apart on the CPU too (benchmarks/bench_dense.py compares)
FOLDS_FLATTEN = True
# the fold runs for batches of more than this many rows per unit of the Dense (see _flattens_into)
FOLD_ROWS_PER_UNIT = 2


def _flattens_into(layer, following, x):
    """Whether `layer` is a Flatten that would copy x (an (N, C, H, W) tensor held channels-last)
    into (C, H, W) order for the Dense `following` (neither with its own forward), on NumPy, with
    a batch of more than twice the Dense's units.

    NOTE: the fold copies the weight instead of the batch, twice in training (the weight and its
    gradient, each permuted) and once in inference, and which of the two runs must not depend on
    whether the forward is recorded (the same bits either way): so it runs where it copies fewer
    bytes in both, N > 2 * units. Flatten + Dense(3136 -> 128) alone, folded minus unfolded
    (benchmarks/results/dense_fold.json, one / two threads, loaded machine): training batch 128
    +0.33 / +0.43 ms (not folded), batch 512 -3.6 / -0.9 ms, inference batch 1000 -2.9 / -5.5 ms
    (the whole inference 0.95x of main's). Not on a GPU: there the flatten's copy is one launch,
    and the fold costs one more in training."""
    return (FOLDS_FLATTEN and type(layer).forward is Flatten.forward and isinstance(layer, Flatten)
            and layer.data_format != "channels_first" and isinstance(following, Dense)
            and type(following).forward is Dense.forward and type(following).pre_activation is Dense.pre_activation
            and isinstance(x, Tensor) and not getattr(x, "_symbolic", False) and x.xp.__name__ == "numpy"
            and x.ndim == 4 and x.shape[0] > FOLD_ROWS_PER_UNIT * following.units and channels_last(x.data))


def _flatten_dense(flatten, dense, x, pre_activation):
    """dense(flatten(x)), or its pre-activation, as one op that reads x's memory as it lies."""
    x = flatten.prepare(x)
    if not dense.built and dense.device is None:  # as Layer.prepare: built on the input's device
        dense.device = x.device
    dense.build(flatten.compute_output_shape(x.shape[1:]))  # validates the shape, as calling the layers would
    x = dense._cast(x)
    bias = () if dense.bias is None else (dense.bias,)
    relu = dense.activation_name == "relu" and not pre_activation
    z = flatten_linear(x, dense.weight, *bias, relu=relu)
    return z if relu or pre_activation or dense.activation is None else dense.activation(z)


def _pools_after(layer, following):
    """Whether `layer` (ReLU or no activation) is followed by a MaxPool2D of its data format."""
    return (isinstance(layer, Activated) and layer.activation_name in ("relu", None)
            and isinstance(following, MaxPool2D)
            and getattr(layer, "data_format", following.data_format) == following.data_format)


def _windows_tile(pool, input_shape):
    """Whether a MaxPool2D's windows tile inputs of input_shape (C, H, W): no padding, no overlap."""
    return pool.strides == pool.pool_size and pool.pads(*input_shape[1:]) == ((0, 0), (0, 0))
