"""PyTorch interop without a torch dependency: a Sequential's weights under the names and layouts of the
equivalent `torch.nn.Sequential`, and back.

Layouts already agree (Conv2d weight (out, in, KH, KW), Linear weight (out, in)); what differs is naming and,
after a Flatten, the order of features. Our layers fold their activation in (`Conv2D(..., activation="relu")`),
where torch has a module of its own, so the tutorial model's `layers.0/2/5/6` are torch's `0/3/7/9`. The torch
model always takes (N, C, H, W) images and flattens them in (C, H, W) order; a model whose Flatten gives
(H, W, C) order (channels-last layers, as tinygrad_cnn.keras builds, or Flatten('channels_first')) gets the
columns of the Dense layer after it permuted, so the two models compute the same function."""
import numpy

from .nn.layers import (AvgPool2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential, Sigmoid,
                        Softmax, Tanh, Activated, Elementwise, Spatial)
from .nn.normalization import BatchNormalization
from .nn.reshaping import GlobalAveragePooling2D, GlobalMaxPooling2D
from .tensor import Tensor

# Our BatchNormalization's tensors under torch's names. NOTE: torch's momentum is 1 - Keras', its eps
# default 1e-5 (Keras' epsilon 1e-3), and torch updates running_var with the unbiased batch variance.
_TORCH_TENSORS = {BatchNormalization: {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                                       "moving_variance": "running_var", "num_batches_tracked": "num_batches_tracked"}}
_IGNORED = ("num_batches_tracked",)  # torch's BatchNorm counter: dropped unless the layer keeps one (torch_nn's)

_TORCH_ACTIVATIONS = {"relu": "torch.nn.ReLU()", "sigmoid": "torch.nn.Sigmoid()", "tanh": "torch.nn.Tanh()"}


def _check(model):
    if not isinstance(model, Sequential) or getattr(model, "is_graph", False):
        raise TypeError(f"PyTorch interop handles a Sequential model (a chain of layers), got {type(model).__name__}"
                        f"{' with branches' if getattr(model, 'is_graph', False) else ''}")
    if not model.built:
        raise ValueError("PyTorch interop needs a built model (Sequential(..., input_shape=...) or "
                         "model.build(input_shape)): the Flatten order depends on the image shape")


def _plan(model):
    """[(layer, first torch index, permutation)] where permutation is None or the (C, H, W) shape whose
    (H, W, C)-ordered features feed this Dense layer."""
    _check(model)
    plan, index, shape, spatial_format, pending = [], 0, model.built_input_shape, None, None
    for position, layer in enumerate(model.layers):
        if getattr(layer, "passes_input_through", False):  # keras' InputLayer: nothing to convert
            continue
        if isinstance(layer, Spatial):
            spatial_format = layer.data_format
        if isinstance(layer, Flatten):
            if len(shape) == 3:
                channels_last = spatial_format == "channels_last"
                if channels_last and layer.data_format == "channels_first":
                    raise ValueError(f"layer {position} ({layer.label()}): Flatten('channels_first') after "
                                     f"channels-last layers has no torch equivalent")
                if channels_last or layer.data_format == "channels_first":
                    h, w, c = shape if channels_last else (shape[1], shape[2], shape[0])
                    pending = (c, h, w)
        elif isinstance(layer, Dense):
            plan.append((layer, index, pending))
            pending = None
        elif isinstance(layer, Conv2D):
            plan.append((layer, index, None))
        elif isinstance(layer, BatchNormalization):
            if pending is not None:
                raise ValueError(f"layer {position} ({layer.label()}): BatchNormalization between a Flatten of "
                                 f"(H, W, C) features and a Dense layer has no torch equivalent here")
            axis = layer._channel_axis(len(shape) + 1)
            if len(shape) == 3 and axis != (3 if spatial_format == "channels_last" else 1) or len(shape) not in (1, 3):
                raise ValueError(f"layer {position} ({layer.label()}): torch's BatchNorm normalises the channels "
                                 f"of images or the features of vectors, not axis {layer.axis} of {shape}")
            if (layer.gamma is None) != (layer.beta is None):
                raise ValueError(f"layer {position} ({layer.label()}): torch's BatchNorm has both a scale and a "
                                 f"shift or neither (affine=), this layer has one")
            plan.append((layer, index, None))
        elif isinstance(layer, (GlobalAveragePooling2D, GlobalMaxPooling2D)):
            pass
        elif not isinstance(layer, (MaxPool2D, AvgPool2D, Dropout, Elementwise, Softmax, Activated)):
            raise ValueError(f"layer {position} ({layer.label()}): {type(layer).__name__} has no known torch "
                             f"equivalent")
        elif layer.parameters():
            raise ValueError(f"layer {position} ({layer.label()}) has weights but no known torch equivalent")
        index += 1 + (1 if isinstance(layer, (Conv2D, Dense)) and layer.activation_name else 0) + (
            1 if isinstance(layer, (GlobalAveragePooling2D, GlobalMaxPooling2D)) and not layer.keepdims else 0)
        shape = layer.compute_output_shape(shape)
    return plan


def _hwc_to_chw(weight, chw):
    c, h, w = chw
    return weight.reshape(weight.shape[0], h, w, c).transpose(0, 3, 1, 2).reshape(weight.shape[0], -1)


def _chw_to_hwc(weight, chw):
    c, h, w = chw
    return weight.reshape(weight.shape[0], c, h, w).transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)


def torch_names(model):
    """{our state_dict name: torch's name}, e.g. {'layers.2.weight': '3.weight'} for the tutorial model."""
    _check(model)
    names = {}
    own = {id(t): name for name, t in model._named_tensors()}
    for layer, index, _ in _plan(model):
        mapping = next((m for kind, m in _TORCH_TENSORS.items() if isinstance(layer, kind)),
                       {"weight": "weight", "bias": "bias"})
        for attr, theirs in mapping.items():
            t = getattr(layer, attr, None)
            if t is not None:
                names[own[id(t)]] = f"{index}.{theirs}"
    return names


def to_torch_state_dict(model):
    """The weights as the equivalent torch.nn.Sequential names them, as NumPy arrays (copies):
    `torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch_state_dict(model).items()})`."""
    names, state = torch_names(model), model.state_dict()
    out = {names[name]: value for name, value in state.items()}
    for layer, index, chw in _plan(model):
        if chw is not None:
            out[f"{index}.weight"] = numpy.ascontiguousarray(_hwc_to_chw(out[f"{index}.weight"], chw))
    return out


def from_torch_state_dict(model, state):
    """Load a torch.nn.Sequential's state_dict (torch tensors, NumPy arrays, anything numpy.asarray takes)
    into `model`, renaming and permuting as to_torch_state_dict does in reverse. A missing or unexpected name
    or a wrong shape raises ValueError and leaves the model unchanged. Returns the model."""
    if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
        raise TypeError(f"from_torch_state_dict: state must be a mapping of name -> tensor (a torch "
                        f"state_dict), got {type(state).__name__}")
    names = {theirs: ours for ours, theirs in torch_names(model).items()}
    state = {key: value for key, value in state.items() if key in names or key.rsplit(".", 1)[-1] not in _IGNORED}
    unexpected = sorted(set(state) - set(names))
    missing = sorted(key for key in set(names) - set(state) if key.rsplit(".", 1)[-1] not in _IGNORED)
    if unexpected or missing:
        raise ValueError(f"from_torch_state_dict: the torch state does not fit this model: missing "
                         f"{missing or 'none'}, unexpected {unexpected or 'none'} (this model's torch names: "
                         f"{sorted(names)})")
    arrays = {}
    for key, value in state.items():
        value = value.numpy() if isinstance(value, Tensor) else value
        if hasattr(value, "detach"):  # a torch tensor: numpy() needs it detached and on the CPU
            value = value.detach().cpu().numpy()
        arrays[key] = numpy.asarray(value)
    own = dict(model._named_tensors())
    wrong = [f"{key!r} (our {names[key]!r}) has shape {tuple(arrays[key].shape)}, this model's is "
             f"{own[names[key]].shape}" for key in arrays if tuple(arrays[key].shape) != own[names[key]].shape]
    if wrong:
        raise ValueError("from_torch_state_dict: the torch state does not fit this model: " + "; ".join(wrong))
    for layer, index, chw in _plan(model):
        if chw is not None:
            arrays[f"{index}.weight"] = _chw_to_hwc(arrays[f"{index}.weight"], chw)
    model.load_state_dict({names[key]: value for key, value in arrays.items()})
    return model


def torch_code(model):
    """Python source of the equivalent torch.nn.Sequential (for the docs and the tests), or ValueError
    naming a layer torch cannot express exactly (e.g. 'same' padding that is not symmetric)."""
    _plan(model)  # the same checks as the weights
    lines, shape, spatial_format = [], model.built_input_shape, None
    for position, layer in enumerate(model.layers):
        if getattr(layer, "passes_input_through", False):  # keras' InputLayer: nothing to convert
            continue
        if isinstance(layer, Spatial):
            spatial_format = layer.data_format
        chw = (shape[2], shape[0], shape[1]) if getattr(layer, "data_format", None) == "channels_last" \
            and len(shape) == 3 else shape
        if isinstance(layer, Conv2D):
            (top, bottom), (left, right) = layer.pads(chw[1], chw[2])
            if top != bottom or left != right:
                raise ValueError(f"layer {position} ({layer.label()}): padding {layer.padding!r} pads "
                                 f"({top}, {bottom}) x ({left}, {right}), which torch.nn.Conv2d cannot express")
            lines.append(f"torch.nn.Conv2d({chw[0]}, {layer.filters}, kernel_size={layer.kernel_size}, "
                         f"stride={layer.strides}, padding={(top, left)}, dilation={layer.dilation_rate}, "
                         f"bias={layer.use_bias})")
        elif isinstance(layer, Dense):
            lines.append(f"torch.nn.Linear({layer.weight.shape[1]}, {layer.units}, bias={layer.use_bias})")
        elif isinstance(layer, (MaxPool2D, AvgPool2D)):
            torch_pads = isinstance(layer.padding, tuple)  # torch_nn's MaxPool2d and AvgPool2d
            if layer.padding != "valid" and not torch_pads:
                raise ValueError(f"layer {position} ({layer.label()}): padding {layer.padding!r} (windows that "
                                 f"overhang the edge see only real pixels) has no torch pooling equivalent")
            kind = "MaxPool2d" if isinstance(layer, MaxPool2D) else "AvgPool2d"
            extra = f", padding={layer.padding}" if torch_pads else ""
            if torch_pads and kind == "AvgPool2d":
                extra += f", count_include_pad={layer.count_include_pad}"
            lines.append(f"torch.nn.{kind}({layer.pool_size}, stride={layer.strides}{extra})")
        elif isinstance(layer, Flatten):
            lines.append("torch.nn.Flatten()")
        elif isinstance(layer, BatchNormalization):
            kind = "BatchNorm2d" if len(shape) == 3 else "BatchNorm1d"
            lines.append(f"torch.nn.{kind}({layer.moving_mean.shape[0]}, eps={layer.epsilon}, "
                         f"momentum={round(1 - layer.decay, 12)}, affine={layer.gamma is not None})")
        elif isinstance(layer, (GlobalAveragePooling2D, GlobalMaxPooling2D)):
            kind = "AdaptiveAvgPool2d" if isinstance(layer, GlobalAveragePooling2D) else "AdaptiveMaxPool2d"
            lines.append(f"torch.nn.{kind}(1)")
            if not layer.keepdims:
                lines.append("torch.nn.Flatten()")
        elif isinstance(layer, Dropout):
            lines.append(f"torch.nn.Dropout({layer.rate})")
        elif isinstance(layer, Softmax):
            axis = layer.axis % (len(shape) + 1)
            if len(shape) == 3 and spatial_format == "channels_last":
                axis = {1: 2, 2: 3, 3: 1}[axis]  # (N, H, W, C) axes in torch's (N, C, H, W)
            lines.append(f"torch.nn.Softmax(dim={axis})")
        elif isinstance(layer, (ReLU, Sigmoid, Tanh)):
            lines.append(f"torch.nn.{type(layer).__name__}()")
        name = layer.activation_name if isinstance(layer, Activated) else None
        if name == "softmax":
            lines.append(f"torch.nn.Softmax(dim={1 if isinstance(layer, Conv2D) or len(shape) == 1 else -1})")
        elif name in _TORCH_ACTIVATIONS:
            lines.append(_TORCH_ACTIVATIONS[name])
        elif name is not None:
            raise ValueError(f"layer {position} ({layer.label()}): activation {name!r} has no torch module here")
        shape = layer.compute_output_shape(shape)
    return "torch.nn.Sequential(\n    " + ",\n    ".join(lines) + ",\n)"
