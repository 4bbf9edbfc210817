"""ONNX export of a Sequential model, for running it outside Python code of this project (onnxruntime,
or any ONNX runtime). Needs the `onnx` extra (the onnx package) to build and check the file.

The graph keeps the model's own axis order: its input is (N, C, H, W) or, for channels-last layers (as
tinygrad_cnn.keras builds), (N, H, W, C), and the batch axis is free ('N'). ONNX convolutions and pools take
(N, C, H, W), so a channels-last layer is wrapped in two Transposes, as our own ops do inside. Dropout is the
identity at inference and is left out."""
import numpy

from .checkpoint import path_argument, atomic_write
from .nn.layers import (AvgPool2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential, Sigmoid,
                        Softmax, Tanh, Activated, shape_tuple)
from .nn.normalization import BatchNormalization
from .nn.reshaping import GlobalAveragePooling2D, GlobalMaxPooling2D, Rescaling, Reshape

_OPSET = 17
_ELEMENTWISE = {ReLU: "Relu", Sigmoid: "Sigmoid", Tanh: "Tanh"}
_ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax"}


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'tinygrad_cnn[onnx]'") from None
    return onnx


class _Graph:
    """Nodes and initializers under fresh names."""

    def __init__(self, onnx):
        self.helper, self.numpy_helper = onnx.helper, onnx.numpy_helper
        self.nodes, self.initializers, self.count = [], [], 0

    def name(self, base):
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, base, array):
        name = self.name(base)
        self.initializers.append(self.numpy_helper.from_array(numpy.ascontiguousarray(array, numpy.float32), name))
        return name

    def op(self, op_type, inputs, **attrs):
        out = self.name(op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _activation(graph, x, name, axis):
    if name is None:
        return x
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation {name!r} has no ONNX export here")
    return graph.op("Softmax", [x], axis=axis) if name == "softmax" else graph.op(_ACTIVATIONS[name], [x])


def _spatial(graph, layer, x, shape):
    """A conv or pool in (N, C, H, W), between Transposes for a channels-last layer."""
    channels_last = layer.data_format == "channels_last"
    _, h, w = layer.chw(shape)
    (top, bottom), (left, right) = layer.pads(h, w)
    pads = [top, left, bottom, right]
    if channels_last:
        x = graph.op("Transpose", [x], perm=[0, 3, 1, 2])
    if isinstance(layer, Conv2D):
        inputs = [x, graph.const("weight", layer.weight.numpy())]
        if layer.bias is not None:
            inputs.append(graph.const("bias", layer.bias.numpy()))
        x = graph.op("Conv", inputs, kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
                     dilations=list(layer.dilation_rate), pads=pads)
    elif isinstance(layer, MaxPool2D):
        x = graph.op("MaxPool", [x], kernel_shape=list(layer.pool_size), strides=list(layer.strides), pads=pads)
    else:  # NOTE: count_include_pad=0 averages over real pixels only, as AvgPool2D's 'same' padding does
        x = graph.op("AveragePool", [x], kernel_shape=list(layer.pool_size), strides=list(layer.strides),
                     pads=pads, count_include_pad=int(getattr(layer, "count_include_pad", False)))  # torch_nn's
    if channels_last:
        x = graph.op("Transpose", [x], perm=[0, 2, 3, 1])
    if isinstance(layer, Conv2D):
        x = _activation(graph, x, layer.activation_name, -1 if channels_last else 1)
    return x


def _batch_norm(graph, layer, x, shape):
    """Inference-mode batch normalisation as x * scale + shift, per channel (any axis, any rank).

    NOTE: folded here in float64, then stored as float32: one rounding instead of ONNX's four ops."""
    axis = layer._channel_axis(len(shape) + 1)
    moving_mean = layer.moving_mean.numpy().astype(numpy.float64)
    scale = 1.0 / numpy.sqrt(layer.moving_variance.numpy().astype(numpy.float64) + layer.epsilon)
    if layer.gamma is not None:
        scale = scale * layer.gamma.numpy()
    shift = -moving_mean * scale + (layer.beta.numpy() if layer.beta is not None else 0.0)
    broadcast = (-1,) + (1,) * (len(shape) - axis)
    x = graph.op("Mul", [x, graph.const("bn_scale", scale.reshape(broadcast))])
    return graph.op("Add", [x, graph.const("bn_shift", shift.reshape(broadcast))])


def _int64(graph, base, values):
    name = graph.name(base)
    graph.initializers.append(graph.numpy_helper.from_array(numpy.asarray(values, numpy.int64), name))
    return name


def export(model, path, input_shape=None):
    """Write `model` (a Sequential of Conv2D, MaxPool2D, AvgPool2D, ReLU, Sigmoid, Tanh, Softmax, Flatten,
    Dense, Dropout, BatchNormalization (its inference form), GlobalAveragePooling2D, GlobalMaxPooling2D,
    Reshape, Rescaling; activations folded into layers too) to `path` as ONNX (opset 17), float32, for inputs of
    `input_shape` without the batch axis (default: the shape the model was built for). The model is checked
    with onnx.checker before the file is written. A layer with no export raises ValueError naming it.
    Returns the onnx.ModelProto."""
    path = path_argument(path, "onnx.export")
    onnx = _onnx()
    if not isinstance(model, Sequential) or getattr(model, "is_graph", False):
        raise TypeError(f"onnx.export takes a Sequential model (a chain of layers), got {type(model).__name__}"
                        f"{' with branches' if getattr(model, 'is_graph', False) else ''}")
    if input_shape is not None and not (isinstance(input_shape, (tuple, list)) and
                                        all(isinstance(s, (int, numpy.integer)) and not isinstance(s, bool)
                                            for s in input_shape)):
        raise TypeError(f"onnx.export: input_shape must be a tuple of ints without the batch axis, e.g. "
                        f"(1, 28, 28), got {input_shape!r}")
    if input_shape is None:
        if not model.built:
            raise ValueError("onnx.export needs input_shape (without the batch axis) for a model not built yet")
        input_shape = model.built_input_shape
    shape = shape_tuple(input_shape)
    if not model.built:
        model.build(shape)
    model._validate((1,) + shape)
    graph = _Graph(onnx)
    x = "input"
    for position, layer in enumerate(model.layers):
        if getattr(layer, "passes_input_through", False):  # keras' InputLayer: nothing to convert
            continue
        try:
            if isinstance(layer, (Conv2D, MaxPool2D, AvgPool2D)):
                x = _spatial(graph, layer, x, shape)
            elif isinstance(layer, Dense):
                x = graph.op("MatMul", [x, graph.const("weight_t", layer.weight.numpy().T)])
                if layer.bias is not None:
                    x = graph.op("Add", [x, graph.const("bias", layer.bias.numpy())])
                x = _activation(graph, x, layer.activation_name, -1)
            elif isinstance(layer, Flatten):
                if layer.data_format == "channels_first" and len(shape) > 1:
                    x = graph.op("Transpose", [x], perm=[0, *range(2, len(shape) + 1), 1])
                x = graph.op("Flatten", [x], axis=1)
            elif type(layer) in _ELEMENTWISE:
                x = graph.op(_ELEMENTWISE[type(layer)], [x])
            elif isinstance(layer, Softmax):
                x = graph.op("Softmax", [x], axis=layer.axis)
            elif isinstance(layer, Dropout):
                pass  # the identity at inference
            elif isinstance(layer, BatchNormalization):
                x = _batch_norm(graph, layer, x, shape)
            elif isinstance(layer, (GlobalAveragePooling2D, GlobalMaxPooling2D)):
                kind = "ReduceMean" if isinstance(layer, GlobalAveragePooling2D) else "ReduceMax"
                x = graph.op(kind, [x], axes=list(layer._spatial_axes()), keepdims=int(layer.keepdims))
            elif isinstance(layer, Reshape):
                x = graph.op("Reshape", [x, _int64(graph, "shape", (-1,) + layer._resolved(shape))])
            elif isinstance(layer, Rescaling):
                x = graph.op("Mul", [x, graph.const("scale", numpy.float32(layer.scale))])
                if layer.offset:
                    x = graph.op("Add", [x, graph.const("offset", numpy.float32(layer.offset))])
            elif isinstance(layer, Activated) and not layer.parameters():  # tinygrad_cnn.keras' Activation
                x = _activation(graph, x, layer.activation_name, -1)
            else:
                raise ValueError(f"{type(layer).__name__} has no ONNX export")
        except ValueError as e:
            raise ValueError(f"onnx.export: layer {position} ({layer.label()}): {e}") from None
        shape = layer.compute_output_shape(shape)
    h = onnx.helper
    inputs = [h.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", *shape_tuple(input_shape)])]
    outputs = [h.make_tensor_value_info(x, onnx.TensorProto.FLOAT, ["N", *shape])]
    proto = h.make_model(h.make_graph(graph.nodes, model.name or "sequential", inputs, outputs, graph.initializers),
                         opset_imports=[h.make_opsetid("", _OPSET)], producer_name="tinygrad_cnn")
    proto.ir_version = min(proto.ir_version, 8)  # NOTE: readable by older onnxruntime releases too
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    atomic_write(path, lambda f: f.write(data), who="onnx.export")
    return proto
