"""Stateless layer functions (PyTorch's argument names and NCHW layout) and the losses."""
import math
import numpy

from .. import conv, ops
from ..autograd import kernel_for
from ..device import device_of, random_uniform, use_device
from ..spellings import torch_names
from ..tensor import Tensor, generator_or_global, where


def _check_tensor(x, name, ndim=None, what=""):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a Tensor, got {type(x).__name__}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {what}, got shape {x.shape}")


def as_tensor(x, name="input"):
    """x itself for a Tensor; a NumPy or CuPy array, a list or a number as a Tensor on its device
    (floats as float32), as Keras and PyTorch functions accept them."""
    if isinstance(x, Tensor):
        return x
    try:
        return Tensor(x)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a Tensor or array-like, got {type(x).__name__}: {e}") from None


def _check_float(x, name):
    if x.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype.name}; use .float()")


# ---------------------------------------------------------------- convolution and pooling

def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """2-D cross-correlation. x (N, C, H, W), weight (O, C, KH, KW), bias (O,).

    padding is an int, a pair, or 'valid' (none) / 'same' (output size = input size; stride 1)."""
    inputs, kwargs = _conv_args(x, weight, bias, stride, padding, dilation)
    return conv.Convolution.apply(*inputs, **kwargs)


def conv2d_max_pool2d(x, weight, bias=None, stride=1, padding=0, dilation=1, pool_size=2, relu=False):
    """max_pool2d(conv2d(x, weight, bias, stride, padding, dilation), pool_size) as one op,
    followed by ReLU when relu=True.

    The same values and gradients, faster: the convolution's full-size output is pooled, and
    in backward its gradient formed and used, a few images at a time while still in cache.
    The pooling windows do not overlap (stride = pool_size); rows and columns past the last
    whole window are left out, as max_pool2d leaves them out."""
    inputs, kwargs = _conv_args(x, weight, bias, stride, padding, dilation)
    pool = conv.pair(pool_size, "pool_size")
    if min(pool) < 1:
        raise ValueError(f"conv2d_max_pool2d: pool_size must be >= 1, got {pool_size!r}")
    (top, bottom), (left, right) = kwargs["padding"]
    (kh, kw), (sh, sw), (dh, dw) = weight.shape[2:], kwargs["stride"], kwargs["dilation"]
    out_h = conv.output_size(x.shape[2] + top + bottom, kh, sh, 0, dh)
    out_w = conv.output_size(x.shape[3] + left + right, kw, sw, 0, dw)
    if pool[0] > out_h or pool[1] > out_w:
        raise ValueError(f"conv2d_max_pool2d: pool window {pool} is larger than the convolution's "
                         f"{out_h}x{out_w} output (input shape {x.shape})")
    return kernel_for(conv.conv_pool_relu, x.device)(*inputs, pool=pool, relu=bool(relu), **kwargs)


def _conv_args(x, weight, bias, stride, padding, dilation):
    """Check conv2d's arguments; return its input tensors and the Convolution op's keyword arguments."""
    _check_tensor(x, "conv2d input", 4, "(N, C, H, W)")
    _check_tensor(weight, "conv2d weight", 4, "(out_channels, in_channels, KH, KW)")
    _check_float(x, "conv2d input")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels (shape {x.shape}) but the weight expects "
                         f"{weight.shape[1]} (shape {weight.shape})")
    stride, dilation = conv.pair(stride, "stride"), conv.pair(dilation, "dilation")
    kh, kw = weight.shape[2:]
    if kh < 1 or kw < 1:  # NOTE: a 0-size kernel sums nothing: the output would be all zeros (or bias)
        raise ValueError(f"conv2d: the kernel must be at least 1x1, the weight has shape {weight.shape}")
    if weight.shape[0] < 1 or weight.shape[1] < 1:  # NOTE: as a 0-size kernel; an empty batch (N = 0) is fine
        raise ValueError(f"conv2d: needs at least one input and one output channel, the weight has shape "
                         f"{weight.shape}")
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0, 0), (0, 0))
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError("conv2d: padding='same' needs stride 1 (as in PyTorch)")
            pads = (conv.same_padding(kh, dilation[0]), conv.same_padding(kw, dilation[1]))
        else:
            raise ValueError(f"conv2d: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    else:
        ph, pw = conv.pair(padding, "padding")
        if ph < 0 or pw < 0:
            raise ValueError(f"conv2d: padding must be >= 0, got {padding!r}")
        pads = ((ph, ph), (pw, pw))
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"conv2d: stride and dilation must be >= 1, got {stride} and {dilation}")
    h = x.shape[2] + sum(pads[0])
    w = x.shape[3] + sum(pads[1])
    if dilation[0] * (kh - 1) + 1 > h or dilation[1] * (kw - 1) + 1 > w:
        raise ValueError(f"conv2d: kernel {kh}x{kw} (dilation {dilation}) is larger than the padded input "
                         f"{h}x{w} (input shape {x.shape})")
    inputs = [x, weight]
    if bias is not None:
        _check_tensor(bias, "conv2d bias", 1, "(out_channels,)")
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(f"conv2d: bias shape {bias.shape} does not match {weight.shape[0]} output channels")
        inputs.append(bias)
    return inputs, dict(stride=stride, padding=pads, dilation=dilation)


def _pool_args(name, x, kernel_size, stride, padding):
    _check_tensor(x, f"{name} input", 4, "(N, C, H, W)")
    kernel = conv.pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else conv.pair(stride, "stride")
    padding = conv.pair(padding, "padding")
    if min(kernel) < 1 or min(stride) < 1:
        raise ValueError(f"{name}: kernel_size and stride must be >= 1, got {kernel} and {stride}")
    if padding[0] * 2 > kernel[0] or padding[1] * 2 > kernel[1] or min(padding) < 0:
        raise ValueError(f"{name}: padding {padding} must be >= 0 and at most half the kernel {kernel}")
    if kernel[0] > x.shape[2] + 2 * padding[0] or kernel[1] > x.shape[3] + 2 * padding[1]:
        raise ValueError(f"{name}: window {kernel} is larger than the padded input (input shape {x.shape})")
    return dict(kernel=kernel, stride=stride, padding=padding)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max over windows; stride defaults to the kernel size."""
    return conv.MaxPool.apply(x, **_pool_args("max_pool2d", x, kernel_size, stride, padding))


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over windows (zero padding counts); stride defaults to the kernel size."""
    _check_float(x, "avg_pool2d input")
    return conv.AvgPool.apply(x, **_pool_args("avg_pool2d", x, kernel_size, stride, padding))


# ---------------------------------------------------------------- dense and activations

def linear(x, weight, bias=None, relu=False):
    """x @ weight.T + bias, weight shaped (out_features, in_features) as in PyTorch; with relu=True,
    max(x @ weight.T + bias, 0) in the same op (what Dense(activation='relu') runs)."""
    _check_tensor(x, "linear input")
    _check_tensor(weight, "linear weight", 2, "(out_features, in_features)")
    if x.ndim == 0:
        raise ValueError("linear: input must have at least one axis (the features)")
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {x.shape[-1]} features (shape {x.shape}) but the weight expects "
                         f"{weight.shape[1]} (shape {weight.shape})")
    if bias is not None:
        _check_tensor(bias, "linear bias", 1, "(out_features,)")
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(f"linear: bias shape {bias.shape} does not match {weight.shape[0]} output features")
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return kernel_for(ops.linear_relu, x.device)(*inputs) if relu else ops.Linear.apply(*inputs)


@torch_names
def flatten(x, start_axis=0, end_axis=-1):
    """Merge axes start_axis..end_axis (PyTorch's start_dim, end_dim) into one: torch.flatten(x, 1)."""
    return as_tensor(x, "flatten input").flatten(start_axis, end_axis)


def relu(x):
    """max(x, 0), elementwise (Tensor.relu); the gradient is 0 at and below 0."""
    return as_tensor(x, "relu input").relu()


def sigmoid(x):
    """1 / (1 + exp(-x)), elementwise, via tanh so large |x| never overflows."""
    return as_tensor(x, "sigmoid input").sigmoid()


def tanh(x):
    """tanh(x), elementwise (Tensor.tanh)."""
    return as_tensor(x, "tanh input").tanh()


@torch_names
def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) over `axis` (PyTorch's dim=), with the max subtracted first so it never overflows."""
    return as_tensor(x, "softmax input").softmax(axis)


@torch_names
def log_softmax(x, axis=-1):
    """log(softmax(x)) over `axis` (PyTorch's dim=), as x - logsumexp(x): never log(0); pair it with nll_loss."""
    return as_tensor(x, "log_softmax input").log_softmax(axis)


def dropout(x, p=0.5, training=True, generator=None):
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout).
    The mask is drawn from `generator` (a numpy.random.Generator) when given, else the global one."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    rng = generator_or_global(generator, "dropout")
    if not training or p == 0.0:
        return x
    # NOTE: the random numbers are made where x lives (no host->device copy per call on a GPU)
    keep = random_uniform(x.device, x.shape, x.dtype, rng) >= p
    with use_device(x.device):
        mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    return x * Tensor.wrap(mask, x.device)


# ---------------------------------------------------------------- losses

def _check_reduction(reduction):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(loss, reduction):
    _check_reduction(reduction)
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def _class_targets(logits, targets, name):
    _check_tensor(logits, f"{name} input", 2, "(N, classes)")
    _check_float(logits, f"{name} input")
    if logits.shape[1] == 0:
        raise ValueError(f"{name}: the input has no classes (shape {logits.shape}); it needs at least one")
    given_raw = not isinstance(targets, Tensor)
    if given_raw:  # NOTE: not numpy.asarray: CuPy arrays refuse it; host data stays on the host until checked
        targets = Tensor(targets, device="cpu" if device_of(targets) == "cpu" else logits.device)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"{name}: targets must be integer class indices, got {targets.dtype.name}")
    if targets.shape != (logits.shape[0],):
        raise ValueError(f"{name}: targets shape {targets.shape} does not match input shape {logits.shape}; "
                         f"expected ({logits.shape[0]},)")
    if targets.device != logits.device and not given_raw:
        raise ValueError(f"{name}: input on {logits.device}, targets on {targets.device}")
    # NOTE: the range is checked here only where the targets are on the host: on a GPU, min/max would
    # be a blocking sync in the middle of every training step (issue 11). Labels already on the device
    # are checked inside the loss's own kernels instead (no launch, no sync): CuPy wraps out-of-range
    # indices silently, so the loss and gradient of such a sample are NaN, which the optimizer's
    # non-finite check then skips (or refuses) and anomaly mode names, never a silent wrong loss.
    if targets.device == "cpu" and targets.size and (
            int(targets.data.min()) < 0 or int(targets.data.max()) >= logits.shape[1]):
        raise ValueError(f"{name}: targets must lie in [0, {logits.shape[1] - 1}], got values from "
                         f"{int(targets.data.min())} to {int(targets.data.max())}")
    if targets.device != logits.device:
        targets = targets.to(logits.device)
    return targets


def cross_entropy(logits, targets, reduction="mean", label_smoothing=0.0):
    """Softmax cross-entropy of raw scores (N, classes) against integer class targets (N,). With
    label_smoothing e (torch's), the target distribution is (1 - e) one-hot + e uniform over the classes.
    Float targets of the scores' shape (N, classes) are class probabilities (torch's soft targets: mixup)."""
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) or not 0 <= label_smoothing <= 1:
        raise ValueError(f"cross_entropy: label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
    if isinstance(targets, Tensor) and targets.dtype.kind == "f" and isinstance(logits, Tensor) \
            and targets.ndim == 2 and targets.shape == logits.shape:
        _check_reduction(reduction)
        return _soft_cross_entropy(logits, targets, reduction, float(label_smoothing))
    targets = _class_targets(logits, targets, "cross_entropy")
    _check_reduction(reduction)
    if not label_smoothing:
        return softmax_cross_entropy(logits, targets, reduction)
    uniform = -logits.log_softmax(axis=1).mean(axis=1)  # the loss against the uniform distribution
    hard = softmax_cross_entropy(logits, targets, "none")
    return _reduce(hard * (1.0 - label_smoothing) + uniform * float(label_smoothing), reduction)


def _soft_cross_entropy(logits, probs, reduction, label_smoothing):
    """-(p * log_softmax(x)).sum(1) for target probabilities p (N, classes), smoothed as torch's:
    (1 - e) p + e / classes."""
    _check_float(logits, "cross_entropy input")
    if probs.device != logits.device:
        raise ValueError(f"cross_entropy: input on {logits.device}, targets on {probs.device}")
    probs = probs.astype(logits.dtype)
    if label_smoothing:
        probs = probs * (1.0 - label_smoothing) + label_smoothing / logits.shape[1]
    return _reduce(-(probs * logits.log_softmax(axis=1)).sum(axis=1), reduction)


def softmax_cross_entropy(logits, targets, reduction="mean"):
    """cross_entropy on checked arguments (integer targets on the logits' device, a valid reduction):
    the fused kernel (kernels/loss.py), or nll_of_log_softmax in the reference mode."""
    return kernel_for(nll_of_log_softmax, logits.device)(logits, targets, reduction)


def nll_of_log_softmax(logits, targets, reduction="mean"):
    """The mathematics of cross_entropy: the target's -log_softmax, reduced."""
    return nll_loss(logits.log_softmax(axis=1), targets, reduction)


def nll_loss(log_probs, targets, reduction="mean"):
    """Negative log-likelihood of log-probabilities (N, classes), e.g. the output of log_softmax."""
    targets = _class_targets(log_probs, targets, "nll_loss")
    picked = log_probs[Tensor.wrap(log_probs.xp.arange(log_probs.shape[0]), log_probs.device), targets]
    return _reduce(-picked, reduction)


def _binary_targets(x, targets, name):
    _check_tensor(x, f"{name} input")
    _check_float(x, f"{name} input")
    if not isinstance(targets, Tensor):
        targets = Tensor(targets, device=x.device, dtype=x.dtype)  # a CuPy array stays on its GPU
    if targets.shape != x.shape:
        raise ValueError(f"{name}: targets shape {targets.shape} does not match input shape {x.shape}")
    return targets.astype(x.dtype)


def binary_cross_entropy_with_logits(logits, targets, reduction="mean", weight=None, pos_weight=None):
    """BCE on raw scores, as max(x, 0) - x*t + log(1 + exp(-|x|)): never overflows, never log(0).
    torch's weight= scales each element's loss and pos_weight= the positive term (both broadcast):
    (1 - t) x + (1 + (pw - 1) t) (log(1 + exp(-|x|)) + max(-x, 0))."""
    targets = _binary_targets(logits, targets, "binary_cross_entropy_with_logits")
    _check_reduction(reduction)
    softplus = (1 + (-logits.abs()).exp()).log()
    if pos_weight is None:
        loss = logits.relu() - logits * targets + softplus
    else:
        pos_weight = logits._operand(pos_weight, "binary_cross_entropy_with_logits pos_weight")
        loss = (1 - targets) * logits + (1 + (pos_weight - 1) * targets) * (softplus + (-logits).relu())
    if weight is not None:
        loss = loss * logits._operand(weight, "binary_cross_entropy_with_logits weight")
    return _reduce(loss, reduction)


def check_unit_interval(x, what, name, logits_hint="binary_cross_entropy_with_logits"):
    """Refuse values outside [0, 1]: the clip would turn them into a tiny loss with zero gradient.
    An out-of-range input is most likely logits: the message points to `logits_hint`.

    NOTE: checked on the CPU only: on a GPU, reading the min and max back is a device-to-host
    sync in the middle of a training step."""
    if x.xp is not numpy or not x.size:
        return
    values = x.data[~numpy.isnan(x.data)]  # NOTE: min/max of [2, nan] is nan, which hid the 2
    if not values.size:
        return
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 1:
        raise ValueError(f"{name}: {what} must lie in [0, 1], got values from {low:g} to {high:g}"
                         + (f"; for raw scores (logits) use {logits_hint}" if what == "input" else ""))


def binary_cross_entropy(probs, targets, reduction="mean", eps=1e-7):
    """BCE on probabilities in [0, 1] (ValueError outside, on the CPU); they are clipped to
    [eps, 1 - eps] so log never sees 0.

    NOTE: eps is raised to the dtype's gap below 1 where it is smaller: in float16, 1 - 1e-7
    rounds to 1 and log(1 - p) is -inf; with 2**-11 the loss stays below 7.7 and its gradient
    below 2048. float32 and float64 keep eps = 1e-7."""
    targets = _binary_targets(probs, targets, "binary_cross_entropy")
    check_unit_interval(probs, "input", "binary_cross_entropy")
    check_unit_interval(targets, "targets", "binary_cross_entropy")
    if numpy.dtype(probs.dtype).kind == "f":
        eps = max(eps, float(numpy.finfo(probs.dtype).epsneg))
    p = probs.clip(eps, 1 - eps)
    loss = -(targets * p.log() + (1 - targets) * (1 - p).log())
    return _reduce(loss, reduction)


def mse_loss(prediction, target, reduction="mean"):
    """Mean squared error of a float prediction (an int one would truncate a float target to ints)."""
    _check_tensor(prediction, "mse_loss input")
    _check_float(prediction, "mse_loss input")
    if not isinstance(target, Tensor):
        target = Tensor(target, device=prediction.device, dtype=prediction.dtype)
    if target.shape != prediction.shape:
        raise ValueError(f"mse_loss: target shape {target.shape} does not match input shape {prediction.shape}")
    diff = prediction - target
    return _reduce(diff * diff, reduction)


def _regression_pair(prediction, target, name):
    """|prediction - target| after the checks mse_loss makes (a float prediction, one shape)."""
    _check_tensor(prediction, f"{name} input")
    _check_float(prediction, f"{name} input")
    if not isinstance(target, Tensor):
        target = Tensor(target, device=prediction.device, dtype=prediction.dtype)
    if target.shape != prediction.shape:
        raise ValueError(f"{name}: target shape {target.shape} does not match input shape {prediction.shape}")
    return (prediction - target).abs()


def l1_loss(prediction, target, reduction="mean"):
    """torch's F.l1_loss: the mean (or sum) of |prediction - target|."""
    return _reduce(_regression_pair(prediction, target, "l1_loss"), reduction)


def smooth_l1_loss(prediction, target, reduction="mean", beta=1.0):
    """torch's F.smooth_l1_loss: 0.5 d^2 / beta where d = |prediction - target| < beta, else d - 0.5 beta
    (beta = 0 is l1_loss)."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be a number >= 0, got {beta!r}")
    d = _regression_pair(prediction, target, "smooth_l1_loss")
    if beta == 0:
        return _reduce(d, reduction)
    return _reduce(where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta), reduction)


def huber_loss(prediction, target, reduction="mean", delta=1.0):
    """torch's F.huber_loss: 0.5 d^2 where d = |prediction - target| < delta, else delta (d - 0.5 delta)."""
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or delta <= 0:
        raise ValueError(f"huber_loss: delta must be a number > 0, got {delta!r}")
    d = _regression_pair(prediction, target, "huber_loss")
    return _reduce(where(d < delta, d * d * 0.5, (d - 0.5 * delta) * delta), reduction)


def leaky_relu(x, negative_slope=0.01):
    """torch's F.leaky_relu: x where x > 0, negative_slope * x elsewhere (the gradient at 0 is negative_slope)."""
    _check_tensor(x, "leaky_relu input")
    _check_float(x, "leaky_relu input")
    return where(x.data > 0, x, x * negative_slope)


def one_hot(tensor, num_classes=-1):
    """torch's F.one_hot: int64 (..., num_classes) rows with a 1 at each index (num_classes=-1: the largest
    index + 1); no gradient, as torch's."""
    tensor = as_tensor(tensor, "one_hot input")
    if tensor.dtype.kind not in "iu":
        raise TypeError(f"one_hot: needs integer class indices, got {tensor.dtype.name}")
    low = int(tensor.data.min()) if tensor.size else 0
    high = int(tensor.data.max()) if tensor.size else -1
    if num_classes == -1:
        num_classes = high + 1
    if low < 0 or high >= num_classes:
        raise ValueError(f"one_hot: indices must lie in [0, {num_classes - 1}], got values from {low} to {high}")
    xp = tensor.xp
    return Tensor.wrap((tensor.data[..., None] == xp.arange(num_classes)).astype(numpy.int64), tensor.device)
