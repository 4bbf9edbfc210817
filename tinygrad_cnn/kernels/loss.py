"""The softmax cross-entropy as one op of fused kernels (the reference: nn.functional.nll_of_log_softmax)."""
import math

import numpy

from ..autograd import Function
from .fusion import arange_constant, fuse


class FusedCrossEntropy(Function):
    """-log softmax(logits)[target] per sample, then its mean, sum or nothing, fused: one stable
    log-softmax, and a backward of softmax - onehot that never builds the log-softmax graph.

    NOTE: the reduction is part of the op: the loss of a training step is one op forward and
    one backward, not three. Its elementwise steps are fused kernels (device.fuse): on a GPU the
    loss is 6 launches forward (max, exp, sum, the target's logit, the log, the mean) and 1 back
    (was 10 and 5); on the CPU they compute what the unfused steps did, bit for bit."""

    def forward(self, logits, targets, reduction="mean"):
        n = logits.shape[0]
        top = logits.max(axis=1, keepdims=True)
        exp = _exp_of_difference(logits, top)
        total = exp.sum(axis=1, keepdims=True)
        picked = logits[arange_constant(self.device, 0, n, "int64"), targets]
        self.exp, self.total, self.targets, self.reduction = exp, total, targets, reduction
        # log(total) - (picked - top), NaN for a label outside [0, classes)
        # NOTE: the scalars are NumPy scalars (of the logits' dtype, the count int64): inside cupy.fuse
        # CuPy types a Python number by its own rules (CuPy 13 with NumPy 2: float64 losses for float32 logits)
        kind = numpy.dtype(logits.dtype).type
        losses = _log_minus_difference(total[:, 0], picked, top[:, 0], targets, numpy.int64(logits.shape[1]),
                                       kind(math.nan))
        if reduction == "none":
            return losses
        reduced = losses.mean(keepdims=True) if reduction == "mean" and n else losses.sum(keepdims=True)
        # NOTE: the mean of no samples is nan (0 / 0), as PyTorch's, and as silent (NumPy's mean would warn)
        return (reduced if reduction == "sum" or n else reduced * kind(math.nan)).reshape(())

    def backward(self, g):
        n, classes = self.exp.shape
        # every sample's loss gets the same share of the upstream scalar (divided by 1: exact, unchanged);
        # NOTE: max(n, 1): no samples have an empty gradient, with no 1 / 0 (and its warning) on the way
        share, g = (max(n, 1) if self.reduction == "mean" else 1, g) if self.reduction != "none" else (1, g[:, None])
        kind = numpy.dtype(self.exp.dtype).type  # typed scalars, as in forward
        grad = _softmax_minus_onehot(self.exp, self.total, g, kind(share), self.targets[:, None],
                                     arange_constant(self.device, 0, classes, "int64"), numpy.int64(classes),
                                     kind(math.nan))
        return grad, None


@fuse
def _exp_of_difference(xp, a, b):
    """exp(a - b): the shifted exponentials of a stable softmax, in one kernel on a GPU."""
    return xp.exp(a - b)


@fuse
def _log_minus_difference(xp, total, picked, top, targets, classes, nan):
    """log(total) - (picked - top): a sample's loss from its softmax sum and its target's logit;
    `nan` where its target is not a class in [0, classes) (device labels are checked only here)."""
    return xp.where((targets >= 0) & (targets < classes), xp.log(total) - (picked - top), nan)


@fuse
def _softmax_minus_onehot(xp, exp, total, g, share, targets, classes, count, nan):
    """(softmax - onehot(targets)) * g / share, as (exp / total) * (g / share), less g / share at
    each row's target class; `targets` is (N, 1), `classes` 0 .. C-1 (`count` of them); `nan` on
    the rows whose target is not a class."""
    g = g / share
    scaled = exp / total * g
    grad = xp.where(classes == targets, scaled - g, scaled)
    return xp.where((targets >= 0) & (targets < count), grad, nan)


def cross_entropy(logits, targets, reduction="mean"):
    """nn.functional.nll_of_log_softmax as one op."""
    return FusedCrossEntropy.apply(logits, targets, reduction=reduction)
