"""Which layer sequences of a Sequential run as one op: the plan that replaces nn.layers.run_layers."""
from ..nn.layers import Activated, Conv2D, MaxPool2D


def run_layers(layers, x):
    """Apply layers in order, fusing a ReLU-activated (or linear) Conv2D or Dense with the MaxPool2D
    that follows it.

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
        else:
            x = layer(x)
            i += 1
    return x


def _pools_after(layer, following):
    """Whether `layer` (ReLU or no activation) is followed by a MaxPool2D of its data format."""
    return (isinstance(layer, Activated) and layer.activation_name in ("relu", None)
            and isinstance(following, MaxPool2D)
            and getattr(layer, "data_format", following.data_format) == following.data_format)


def _windows_tile(pool, input_shape):
    """Whether a MaxPool2D's windows tile inputs of input_shape (C, H, W): no padding, no overlap."""
    return pool.strides == pool.pool_size and pool.pads(*input_shape[1:]) == ((0, 0), (0, 0))
