"""torch.nn's spelling, for code written for PyTorch: where it has `import torch.nn as nn`, write
`import tinygrad_cnn.torch_nn as nn`. Conv2d(in_channels, out_channels, kernel_size, stride, padding) and
Linear(in_features, out_features) take PyTorch's argument order and create their weights at once (the input
size is given), with PyTorch's default initialisation; they are tinygrad_cnn.nn's Conv2D and Dense underneath
(NCHW images, weight layouts as torch's). The rest of tinygrad_cnn.nn is here under the same names (Module,
Sequential, ReLU, Dropout, Flatten, MaxPool2D, BatchNormalization, functional, init, ...).

NOTE: a namespace of its own, so that none holds two names that differ only by a letter's case: tinygrad_cnn.nn
has Keras' Conv2D(filters, kernel_size, strides, padding) and Dense(units), this one PyTorch's Conv2d and Linear
and not Keras' two (a typo of one case would otherwise silently take the other argument order)."""
import math
import sys
import types
from collections.abc import Mapping

import numpy

from . import nn as _nn
from .nn import *  # noqa: F401,F403  (all of nn's names; Conv2D and Dense are removed below)
from .nn import F, functional, init  # noqa: F401
from .nn.layers import flag, positive_int
from .autograd import no_grad
from .tensor import Tensor, generator_or_global


class _TorchUniform:
    """PyTorch's default for Conv2d and Linear weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    NOTE: kaiming_uniform with a = sqrt(5), torch's weight default, has exactly this bound. A class, not a
    closure, so that a model holding it pickles (pickle.dumps(model))."""

    def __init__(self, fan_in):
        self.bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

    def __call__(self, shape, dtype=numpy.float32):
        return generator_or_global(None, "initializer").uniform(-self.bound, self.bound, shape).astype(dtype)


class Conv2d(_nn.Conv2D):
    """torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True):
    Conv2D in PyTorch's argument order, weights made at once. padding: an int, a pair, 'valid' or 'same'."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True,
                 name=None, dtype=None, device=None):
        in_channels = positive_int(in_channels, "Conv2d in_channels")
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        init = _TorchUniform(in_channels * kh * kw)
        super().__init__(out_channels, kernel_size, stride, padding=padding, use_bias=flag(bias, "Conv2d bias"), dilation_rate=dilation,
                         kernel_initializer=init, bias_initializer=init, name=name, dtype=dtype, device=device,
                         in_channels=in_channels)

    @property
    def in_channels(self):
        """torch's in_channels, read from the weight (out_channels, in_channels, kh, kw)."""
        return self.weight.shape[1]

    @property
    def out_channels(self):
        """torch's out_channels (Keras' filters)."""
        return self.filters

    @property
    def stride(self):
        """torch's stride, a pair (Keras' strides)."""
        return self.strides

    @property
    def dilation(self):
        """torch's dilation, a pair (Keras' dilation_rate)."""
        return self.dilation_rate

    def __repr__(self):
        """torch's: Conv2d(1, 4, kernel_size=(3, 3), stride=(1, 1)), padding, dilation and bias when not the defaults."""
        text = f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={tuple(self.kernel_size)}, stride={tuple(self.strides)}"
        if self.padding not in ("valid", (0, 0)):
            text += f", padding={self.padding if isinstance(self.padding, str) else tuple(self.padding)}"
        if tuple(self.dilation_rate) != (1, 1):
            text += f", dilation={tuple(self.dilation_rate)}"
        return text + (")" if self.use_bias else ", bias=False)")


class Linear(_nn.Dense):
    """torch.nn.Linear(in_features, out_features, bias=True): Dense in PyTorch's argument order, weights
    (out_features, in_features) made at once."""

    def __init__(self, in_features, out_features, bias=True, name=None, dtype=None, device=None):
        in_features = positive_int(in_features, "Linear in_features")
        init = _TorchUniform(in_features)
        super().__init__(out_features, use_bias=flag(bias, "Linear bias"), kernel_initializer=init, bias_initializer=init, name=name,
                         dtype=dtype, device=device, in_features=in_features)

    @property
    def in_features(self):
        """torch's in_features (model.fc = nn.Linear(model.fc.in_features, 10), the fine-tuning habit)."""
        return self.weight.shape[1]

    @property
    def out_features(self):
        """torch's out_features (Keras' units)."""
        return self.units

    def __repr__(self):
        """torch's: Linear(in_features=784, out_features=512, bias=True)."""
        return f"Linear(in_features={self.in_features}, out_features={self.out_features}, bias={self.use_bias})"


class Parameter(Tensor):
    """torch.nn.Parameter(data, requires_grad=True): a leaf over the same memory as `data` that a Module
    assigned it lists in parameters(), frozen (requires_grad=False) or not, as torch's."""

    listed_when_frozen = True  # NOTE: Module.__setattr__ lists a plain Tensor only if it requires grad when assigned

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = numpy.zeros(0, numpy.float32)
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Sequential(_nn.Sequential):
    """torch.nn.Sequential(*modules): nn.Sequential whose weights are named by position, as torch's: `0.weight`,
    `2.1.bias` inside a nested one, `features.0.weight` in a module holding it as self.features; so a torch
    state_dict loads by name. A slice keeps its layers' positions as names, as torch's (s[2:4]: `2.weight`).

    Sequential(OrderedDict([("conv1", ...), ...])) names them by the keys instead (`conv1.weight`; model.conv1).

    NOTE: nn.Sequential (Keras' and tinygrad_cnn.keras') keeps `layers.0.weight`. Files saved from this class
    before it took torch's names still load: load_state_dict renames their `layers.<i>.` keys."""

    def __init__(self, *layers, **kwargs):
        if len(layers) == 1 and isinstance(layers[0], Mapping):
            named = layers[0]
            if not all(isinstance(key, str) and key and "." not in key for key in named):
                raise ValueError(f"Sequential: the names of an OrderedDict of modules must be non-empty strings "
                                 f"without '.', got {list(named)}")
            super().__init__(list(named.values()), **kwargs)
            self._positions = list(named)
        elif layers and all(isinstance(m, Module) for m in layers):  # torch's Sequential(a, b, c), any Modules
            super().__init__(list(layers), **kwargs)
        else:
            super().__init__(*layers, **kwargs)

    def __getattr__(self, name):
        """A layer by its OrderedDict name (model.conv1), as torch's; only asked when nothing else has `name`."""
        names = self.__dict__.get("_positions", ())
        if name in names and not name.isdigit():
            return self.__dict__["layers"][names.index(name)]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def named_children(self):
        """(position, layer) for each layer ("0", "1", ...), torch's names."""
        names = self.__dict__.get("_positions", [])
        for i, layer in enumerate(self.layers):
            yield (names[i] if i < len(names) else str(i)), layer

    def add(self, layer):
        """Append a layer, or any Module (a custom one, the "What is torch.nn really?" tutorial's
        Lambda(func)), as torch's Sequential takes. NOTE: a plain Module has no shape inference, so the
        layers after it build on their first call (torch's Linear and Conv2d here have their weights already)."""
        if isinstance(layer, Module) and not isinstance(layer, _nn.Layer):
            self.layers.append(layer)
            return self
        return super().add(layer)

    def append(self, module):
        """torch's Sequential.append(module): add it at the end; returns self."""
        return self.add(module)

    def add_module(self, name, module):
        """torch's Sequential.add_module(name, module): append it, named `name` in state_dict() and as
        model.<name> (a Sequential built empty and filled this way, as torch code does)."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"add_module: the name must be a non-empty string without '.', got {name!r}")
        names = [n for n, _ in self.named_children()]
        if name in names:
            raise KeyError(f"add_module: {name!r} is already a module of this Sequential (torch would replace it: "
                           f"build a new Sequential instead)")
        self.add(module)
        self._positions = names + [name]

    def __repr__(self):
        """torch's print(model): each step as (name): repr, without Keras' layer names."""
        return Module.__repr__(self)

    def _plain(self):
        """The index of the first layer that is a plain Module (no shape inference), or None."""
        return next((i for i, m in enumerate(self.layers) if not isinstance(m, _nn.Layer)
                     or (isinstance(m, Sequential) and m._plain() is not None)), None)

    def _validate(self, shape):
        end = self._plain()
        if end is None:
            return super()._validate(shape)
        if end > 0:  # NOTE: the input is checked by the first layer; past a plain Module nothing is known
            self.layers[0]._validate(shape)

    def _build(self, input_shape):
        end = self._plain()
        if end is None:
            return super()._build(input_shape)
        shape = input_shape
        for layer in self.layers[:end]:
            if layer.device is None:
                layer.device = self.device
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def _output_shape(self, input_shape):
        if self._plain() is not None:
            raise ValueError(f"{self.label()}: its output shape is not known before a call (it holds a Module "
                             f"that is not a layer); call it on a batch first")
        return super()._output_shape(input_shape)

    def __getitem__(self, index):
        part = super().__getitem__(index)
        if isinstance(index, slice):  # NOTE: the same layer objects, named by their positions here, as torch's
            part.__class__ = Sequential
            names = [name for name, _ in self.named_children()]
            part._positions = [names[i] for i in range(len(self.layers))[index]]
        return part


class _Loss(Module):
    """A loss as a module, as torch.nn's: loss_fn = nn.CrossEntropyLoss(); loss = loss_fn(output, target)."""

    def __init__(self, reduction="mean"):
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def __repr__(self):
        return f"{type(self).__name__}(reduction={self.reduction!r})"


def _not_offered(loss, name, value, default):
    if value is not default and (default is None or value != default):
        raise NotImplementedError(f"{loss}: {name}= is not supported here (got {value!r}); leave it at {default!r}")


def _class_loss_options(loss, weight, size_average, ignore_index, reduce):
    """Refuse the options of torch's class-index losses that are not offered here, by name."""
    for name, value, default in (("weight", weight, None), ("size_average", size_average, None),
                                 ("ignore_index", ignore_index, -100), ("reduce", reduce, None)):
        _not_offered(loss, name, value, default)


class CrossEntropyLoss(_Loss):
    """torch.nn.CrossEntropyLoss(reduction='mean', label_smoothing=0.0): F.cross_entropy of raw scores
    (N, classes) against integer class targets (N,). weight= and ignore_index= are not offered: they raise."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                 label_smoothing=0.0):
        _class_loss_options("CrossEntropyLoss", weight, size_average, ignore_index, reduce)
        super().__init__(reduction)
        self.label_smoothing = label_smoothing

    def forward(self, input, target):  # noqa: A002 (torch's argument name)
        """The loss of raw scores `input` (N, classes) against class indices `target` (N,)."""
        return F.cross_entropy(input, target, reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_Loss):
    """torch.nn.NLLLoss(reduction='mean'): F.nll_loss of log-probabilities (N, classes), e.g. log_softmax's."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
        _class_loss_options("NLLLoss", weight, size_average, ignore_index, reduce)
        super().__init__(reduction)

    def forward(self, input, target):  # noqa: A002
        """The loss of log-probabilities `input` (N, classes) against class indices `target` (N,)."""
        return F.nll_loss(input, target, reduction=self.reduction)


class MSELoss(_Loss):
    """torch.nn.MSELoss(reduction='mean'): F.mse_loss, the mean of the squared differences."""

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        for name, value in (("size_average", size_average), ("reduce", reduce)):
            _not_offered("MSELoss", name, value, None)
        super().__init__(reduction)

    def forward(self, input, target):  # noqa: A002
        """The loss of `input` against `target` of the same shape."""
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """torch.nn.L1Loss(reduction='mean'): F.l1_loss, the mean of |input - target|."""

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        _class_loss_options("L1Loss", None, size_average, -100, reduce)
        super().__init__(reduction)

    def forward(self, input, target):  # noqa: A002
        """The loss of `input` against `target` (one shape)."""
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """torch.nn.SmoothL1Loss(reduction='mean', beta=1.0): F.smooth_l1_loss."""

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        _class_loss_options("SmoothL1Loss", None, size_average, -100, reduce)
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input, target):  # noqa: A002
        """The loss of `input` against `target` (one shape)."""
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """torch.nn.HuberLoss(reduction='mean', delta=1.0): F.huber_loss."""

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input, target):  # noqa: A002
        """The loss of `input` against `target` (one shape)."""
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class BCELoss(_Loss):
    """torch.nn.BCELoss(weight=None, reduction='mean'): F.binary_cross_entropy of probabilities in [0, 1]
    (a sigmoid's output; BCEWithLogitsLoss on the raw scores is the stable one), each element's loss
    scaled by `weight` when given."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        _class_loss_options("BCELoss", None, size_average, -100, reduce)
        super().__init__(reduction)
        self.weight = weight

    def forward(self, input, target):  # noqa: A002
        """The loss of probabilities `input` against 0/1 (or soft) `target` of its shape."""
        if self.weight is None:
            return F.binary_cross_entropy(input, target, reduction=self.reduction)
        loss = F.binary_cross_entropy(input, target, reduction="none") * input._operand(self.weight, "BCELoss weight")
        return loss if self.reduction == "none" else loss.sum() if self.reduction == "sum" else loss.mean()


class BCEWithLogitsLoss(_Loss):
    """torch.nn.BCEWithLogitsLoss(weight=None, reduction='mean', pos_weight=None):
    F.binary_cross_entropy_with_logits of raw scores, with torch's weight= and pos_weight= (both broadcast)."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None):
        _class_loss_options("BCEWithLogitsLoss", None, size_average, -100, reduce)
        super().__init__(reduction)
        self.weight, self.pos_weight = weight, pos_weight

    def forward(self, input, target):  # noqa: A002
        """The loss of raw scores `input` against 0/1 (or soft) `target` of its shape."""
        return F.binary_cross_entropy_with_logits(input, target, reduction=self.reduction, weight=self.weight,
                                                  pos_weight=self.pos_weight)


class Dropout(_nn.Dropout):
    """torch.nn.Dropout(p=0.5): Keras' Dropout(rate) under torch's argument name and default."""

    def __init__(self, p=0.5, inplace=False, name=None, generator=None):
        _not_offered("Dropout", "inplace", inplace, False)
        super().__init__(p, name=name, generator=generator)

    @property
    def p(self):
        """torch's name for rate (m.p = 0.1 sets it)."""
        return self.rate

    @p.setter
    def p(self, value):
        self.rate = float(value)

    def __repr__(self):
        return f"Dropout(p={self.p}, inplace=False)"


class Dropout2d(Module):
    """torch.nn.Dropout2d(p=0.5): in training, each channel of each (N, C, H, W) image zeroed with probability
    p (the whole feature map at once) and the rest scaled by 1 / (1 - p); in eval, the input unchanged (the
    pytorch/examples mnist model of its first years). generator=, a NumPy one, draws its own masks."""

    def __init__(self, p=0.5, inplace=False, generator=None):
        _not_offered("Dropout2d", "inplace", inplace, False)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"Dropout2d: p must be a probability in [0, 1], got {p!r}")
        self.p, self.generator = float(p), generator

    def forward(self, x):
        """x with whole channels dropped (training), or x (eval)."""
        if not isinstance(x, Tensor) or x.ndim != 4:
            raise ValueError(f"Dropout2d: expects (N, C, H, W) images, got "
                             f"{'shape ' + str(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
        if not self.training or self.p == 0:
            return x
        if self.p == 1:
            return x * 0
        keep = generator_or_global(self.generator, "Dropout2d").random((x.shape[0], x.shape[1], 1, 1)) >= self.p
        mask = Tensor((keep / (1.0 - self.p)).astype(x.dtype), device=x.device)
        return x * mask

    def __repr__(self):
        return f"Dropout2d(p={self.p}, inplace=False)"


def _only(layer, **given):
    """Refuse torch options not offered here, each given as name=(value, default, what to do instead)."""
    for name, (value, default, instead) in given.items():
        if value != default:
            raise NotImplementedError(f"{layer}: {name}={value!r} is not offered here (only {default!r}); {instead}")


class _TorchPoolPadding:
    """torch's pooling padding: an int or a pair, that many pixels on each side (at most half the kernel), held
    in the Keras layer's `padding` (NOTE: a pair where Keras' holds 'valid' or 'same'); pads() gives it to the
    layer's shape checks, its pooling, the fused-kernel plan, ONNX and interop."""

    def _torch_padding(self, padding):
        pad = (padding, padding) if isinstance(padding, int) and not isinstance(padding, bool) else padding
        if not isinstance(pad, (tuple, list)) or len(pad) != 2 or \
                not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= 2 * p <= k
                        for p, k in zip(pad, self.pool_size)):
            raise ValueError(f"{type(self).__name__}: padding must be an int or a pair of ints >= 0 and at most "
                             f"half the kernel {self.pool_size}, got {padding!r}")
        if any(pad):
            self.padding = tuple(pad)

    def _torch_repr(self, *extra):
        """torch's print: kernel_size, stride and padding (an int where both sides agree), then `extra`."""
        def one(pair):
            pair = (0, 0) if pair == "valid" else tuple(pair)
            return pair[0] if pair[0] == pair[1] else pair
        parts = [f"kernel_size={one(self.pool_size)}", f"stride={one(self.strides)}", f"padding={one(self.padding)}"]
        return f"{type(self).__name__}({', '.join(parts + list(extra))})"

    def pads(self, h, w):
        """((top, bottom), (left, right)): torch's padding, the same on both sides."""
        if self.padding == "valid":
            return (0, 0), (0, 0)
        return (self.padding[0],) * 2, (self.padding[1],) * 2


class MaxPool2d(_TorchPoolPadding, _nn.MaxPool2D):
    """torch.nn.MaxPool2d(kernel_size, stride=None, padding=0): the max over each window; stride defaults to
    kernel_size, as torch's; padding (an int or a pair, at most half the kernel) pads each side with -inf, as
    torch's (ResNet's MaxPool2d(3, 2, 1)). Keras' MaxPool2D underneath (its fused conv + pool kernels included)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False,
                 name=None):
        _only("MaxPool2d", dilation=(dilation, 1, "use a larger kernel"),
              return_indices=(return_indices, False, "drop it"),
              ceil_mode=(ceil_mode, False, "pad the input first (x.pad(..., value=-inf))"))
        super().__init__(kernel_size, stride, name=name)
        self._torch_padding(padding)

    def __repr__(self):
        return self._torch_repr("dilation=1", "ceil_mode=False")


class AvgPool2d(_TorchPoolPadding, _nn.AvgPool2D):
    """torch.nn.AvgPool2d(kernel_size, stride=None, padding=0, count_include_pad=True): the mean over each
    window; stride defaults to kernel_size, as torch's; padding adds zeros on each side, which count in the
    mean with count_include_pad=True (torch's default) and not with False."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None, name=None):
        _only("AvgPool2d", ceil_mode=(ceil_mode, False, "pad the input first (x.pad)"),
              divisor_override=(divisor_override, None, "multiply the output instead"))
        super().__init__(kernel_size, stride, name=name)
        self._torch_padding(padding)
        self.count_include_pad = flag(count_include_pad, "AvgPool2d count_include_pad")

    def __repr__(self):
        return self._torch_repr()  # NOTE: torch's print leaves count_include_pad out too

    def _pool(self, x):
        """The mean over each window; the padded zeros counted when count_include_pad (else real pixels only,
        as Keras' 'same' padding averages)."""
        if self.count_include_pad and self.padding != "valid":
            return F.avg_pool2d(x, self.pool_size, self.strides, self.padding)
        return super()._pool(x)


class AdaptiveAvgPool2d(_nn.GlobalAveragePooling2D):
    """torch.nn.AdaptiveAvgPool2d(1) or ((1, 1)): the mean of each channel, (N, C, H, W) -> (N, C, 1, 1), as
    ResNet-style heads use it before torch.flatten(x, 1). Other output sizes are not offered."""

    def __init__(self, output_size, name=None):
        if output_size not in (1, (1, 1), [1, 1]):
            raise NotImplementedError(f"AdaptiveAvgPool2d: output_size={output_size!r} is not offered here (only 1 "
                                      f"or (1, 1)); pool with AvgPool2d(kernel_size) of the right size")
        super().__init__(keepdims=True, name=name)


class ReLU(_nn.ReLU):
    """torch.nn.ReLU(inplace=False). NOTE: inplace=True is accepted and gives the same output; the input
    is not overwritten (torch's inplace only saves memory; code that reads the input afterwards differs)."""

    def __init__(self, inplace=False, name=None):
        super().__init__(name=name)
        self.inplace = flag(inplace, "ReLU inplace")


class LeakyReLU(Module):
    """torch.nn.LeakyReLU(negative_slope=0.01, inplace=False): x where x > 0, else negative_slope * x (the
    gradient at 0 is negative_slope, as torch's). NOTE: inplace=True gives the same output; the input is kept."""

    def __init__(self, negative_slope=0.01, inplace=False):
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)):
            raise TypeError(f"LeakyReLU: negative_slope must be a number, got {negative_slope!r}")
        self.negative_slope, self.inplace = float(negative_slope), flag(inplace, "LeakyReLU inplace")

    def forward(self, x):
        """x where x > 0, negative_slope * x elsewhere."""
        return F.leaky_relu(x, self.negative_slope)

    def __repr__(self):
        return f"LeakyReLU(negative_slope={self.negative_slope})"


class Softmax(_nn.Softmax):
    """torch.nn.Softmax(dim): softmax over `dim`, which must be given (torch's implicit dim is deprecated)."""

    def __init__(self, dim=None, name=None):
        if dim is None:
            raise TypeError("Softmax(dim=None): give dim=, e.g. nn.Softmax(dim=1) over the classes of (N, C) "
                            "scores (torch's implicit choice is deprecated)")
        super().__init__(dim, name=name)

    def __repr__(self):
        return f"{type(self).__name__}(dim={self.axis})"


class LogSoftmax(Softmax):
    """torch.nn.LogSoftmax(dim): log_softmax over `dim` (F.nll_loss's input, as the classic examples use it)."""

    default_name = "log_softmax"

    def forward(self, x):
        """log_softmax(x) over `dim`."""
        self._check_float(x)
        return F.log_softmax(x, self.axis)


class Flatten(_nn.Flatten):
    """torch.nn.Flatten(start_dim=1, end_dim=-1): one feature axis after the batch axis. Other spans are not
    offered as a layer (x.flatten(start_dim, end_dim) takes any)."""

    def __init__(self, start_dim=1, end_dim=-1, name=None):
        _only("Flatten", start_dim=(start_dim, 1, "use x.flatten(start_dim, end_dim) in forward()"),
              end_dim=(end_dim, -1, "use x.flatten(start_dim, end_dim) in forward()"))
        super().__init__(name=name)

    def __repr__(self):
        return "Flatten(start_dim=1, end_dim=-1)"


class Identity(Module):
    """torch.nn.Identity: returns its input (a placeholder layer, e.g. a removed head)."""

    def __init__(self, *args, **kwargs):
        pass

    def forward(self, x):
        """x, unchanged."""
        return x


class ModuleList(list):
    """torch.nn.ModuleList: a list of modules whose parameters belong to the module holding it (named
    `<attribute>.<index>.<name>`, as torch's). NOTE: a plain list of modules is walked the same way here."""

    def __init__(self, modules=()):
        super().__init__(modules)


class BatchNorm2d(_nn.BatchNormalization):
    """torch.nn.BatchNorm2d(num_features, eps=1e-5, momentum=0.1, affine=True): BatchNormalization over the
    channels of (N, C, H, W) images with torch's meaning of momentum (the new statistic's weight; also
    bn.momentum = 0.03 later) and torch's running variance, the unbiased one (n / (n - 1) times the
    batch's). torch's attribute names eps, weight, bias, running_mean and running_var are Keras' epsilon,
    gamma, beta, moving_mean and moving_variance, and its state_dict() has torch's names (weight, bias,
    running_mean, running_var and num_batches_tracked, an int64 count of training batches), so a torch
    model's state_dict loads by name; files saved under the Keras names (before) load too."""

    rank = 4
    state_names = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
    optional_state = ("num_batches_tracked",)  # NOTE: as torch, which fills it in for files from before it

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, name=None,
                 dtype=None, device=None):
        _only(type(self).__name__, track_running_stats=(track_running_stats, True, "leave it True"))
        if momentum is None:
            raise NotImplementedError(f"{type(self).__name__}: momentum=None (torch's cumulative average of all "
                                      f"batches) is not offered here; give a number, e.g. momentum=0.1")
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{type(self).__name__} momentum must be a number in [0, 1], got {momentum!r}")
        affine = flag(affine, f"{type(self).__name__} affine")
        super().__init__(axis=1, momentum=momentum, epsilon=eps, center=affine, scale=affine, name=name,
                         dtype=dtype, device=device)
        self.build((positive_int(num_features, f"{type(self).__name__} num_features"),) + (1,) * (self.rank - 2))
        count = Tensor(numpy.array(0, dtype=numpy.int64), device=self.moving_mean.device)
        self.register_buffer("num_batches_tracked", count)  # torch's int64 count of training batches

    @property
    def decay(self):
        """The old statistic's weight, 1 - momentum (NOTE: momentum is torch's here, read at each step)."""
        return 1.0 - self.momentum

    @property
    def eps(self):
        """torch's name for epsilon (bn.eps = 1e-3 sets it)."""
        return self.epsilon

    @eps.setter
    def eps(self, value):
        self.epsilon = float(value)

    @property
    def weight(self):
        """torch's name for gamma (None when affine=False)."""
        return self.gamma

    @property
    def bias(self):
        """torch's name for beta (None when affine=False)."""
        return self.beta

    @property
    def running_mean(self):
        """torch's name for moving_mean."""
        return self.moving_mean

    @property
    def running_var(self):
        """torch's name for moving_variance."""
        return self.moving_variance

    def _validate(self, shape):
        if len(shape) not in (self.rank, 3 if self.rank == 2 else self.rank):
            self._fail(shape, f"expects {self.rank}-D input (torch's {type(self).__name__})")
        super()._validate(shape)

    def _follow(self, mean, variance):
        """NOTE: torch's running variance is the unbiased one: n / (n - 1) times the batch's."""
        n = math.prod(self._last_shape) // self._last_shape[1]  # the values behind each channel's statistic
        super()._follow(mean, variance * (n / max(n - 1, 1)))

    def forward(self, x):
        """Normalise as BatchNormalization, with torch's running statistics; count the training batches."""
        self._last_shape = x.shape
        if self.training:
            self.num_batches_tracked.data = self.num_batches_tracked.data + 1
        return super().forward(x)


class BatchNorm1d(BatchNorm2d):
    """torch.nn.BatchNorm1d(num_features, ...): as BatchNorm2d, over the features of (N, C) or (N, C, L) inputs."""

    rank = 2


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """torch.nn.utils.clip_grad_norm_: the norm of all the gradients taken as one vector; when it exceeds
    max_norm, every gradient is scaled in place by max_norm / (norm + 1e-6). Returns the norm, a 0-d Tensor.
    norm_type: a positive number or inf. foreach only picks torch's kernels, so it changes nothing here."""
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float)) or not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be a positive number or inf, got {norm_type!r}")
    grads = [p.grad for p in ([parameters] if isinstance(parameters, Tensor) else parameters) if p.grad is not None]
    if not grads:
        return Tensor(numpy.float32(0.0))
    with no_grad():
        if math.isinf(norm_type):
            total = grads[0].abs().max()
            for g in grads[1:]:
                total = total.maximum(g.abs().max())
        else:
            powered = [(g.abs() ** float(norm_type)).sum() for g in grads]
            total = sum(powered[1:], powered[0]) ** (1.0 / norm_type)
        value = total.item()
        if error_if_nonfinite and not math.isfinite(value):
            raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                               f"non-finite ({value}); pass error_if_nonfinite=False to scale them anyway")
        scale = float(max_norm) / (value + 1e-6)
        if scale < 1.0:  # NOTE: torch multiplies by min(scale, 1); a factor of 1 changes nothing
            for g in grads:
                g.mul_(scale)
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    """torch.nn.utils.clip_grad_value_: clamp every gradient to [-clip_value, clip_value] in place."""
    if isinstance(clip_value, bool) or not isinstance(clip_value, (int, float)) or not clip_value >= 0:
        raise ValueError(f"clip_grad_value_: clip_value must be a number >= 0, got {clip_value!r}")
    for p in ([parameters] if isinstance(parameters, Tensor) else parameters):
        if p.grad is not None:
            with no_grad():
                p.grad.copy_(p.grad.clamp(-float(clip_value), float(clip_value)))


# torch.nn.utils' spelling: nn.utils.clip_grad_norm_(...) and `from tinygrad_cnn.torch_nn.utils import ...`
utils = types.ModuleType(__name__ + ".utils", "torch.nn.utils' spelling: clip_grad_norm_, clip_grad_value_.")
utils.clip_grad_norm_ = clip_grad_norm_
utils.clip_grad_value_ = clip_grad_value_
sys.modules[utils.__name__] = utils

del Conv2D, Dense, MaxPool2D, AvgPool2D  # Keras' arguments (tinygrad_cnn.nn's), where torch's differ by a letter's case

__all__ = ["Sequential", "Conv2d", "Linear", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm2d", "BatchNorm1d", "ReLU",
           "Softmax", "LogSoftmax", "Flatten", "Identity", "ModuleList", "CrossEntropyLoss", "NLLLoss", "MSELoss",
           "Dropout", "Parameter", "clip_grad_norm_", "clip_grad_value_", "utils"]  # what is this module's own; nn's other names are here as attributes
