"""Every speed choice of the framework, each a replacement of a reference op or layer sequence.

The core (device, autograd, tensor, ops, conv, optim) is the plain mathematics and never imports
this package; importing tinygrad_cnn installs the rows of TABLE, and from then on an op's apply()
runs the kernel registered for its device kind. TINYGRAD_CNN_KERNELS=reference in the environment,
or `with kernels.reference():`, runs the reference path instead (for reading, debugging, testing).
Each kernel is tested against its reference (tests/test_kernels.py)."""
import contextlib
import os
from typing import Any, NamedTuple

from .. import conv as reference_conv, ops, optim as reference_optim
from ..autograd import kernel_for, kernels_enabled, set_kernels, substitute
from ..nn import functional, layers
from . import conv, conv_few, dense, loss, optim, plan, winograd

ENV = "TINYGRAD_CNN_KERNELS"


class Row(NamedTuple):
    reference: Any   # the reference op (a Function class) or function it replaces
    kernel: Any      # what runs instead, with the same arguments and results
    devices: tuple   # the device kinds it runs on ("cpu", "cuda")
    why: str
    via: Any = None  # the kernel that picks this one for some inputs (not installed itself), or None


_BOTH = ("cpu", "cuda")

# One row per substitution: which reference each kernel replaces, where, and what it buys.
TABLE = [
    Row(ops.ReLU, dense.ThreadedReLU, _BOTH, "rows over CPU cores; the gradient one fused kernel on a GPU"),
    Row(ops.MatMul, dense.SplitMatMul, ("cpu",), "2-D products split over CPU cores by their longer side"),
    Row(ops.Linear, dense.FusedLinear, _BOTH, "products split over cores; input and weight gradients at once"),
    Row(ops.linear_relu, dense.linear_relu, _BOTH, "bias and ReLU in one pass (one GPU kernel), in the same op"),
    Row(reference_conv.Convolution, conv.FusedConvolution, _BOTH,
        "channels-last im2col in cache-sized chunks over CPU cores; bias folded into the GEMM"),
    Row(reference_conv.conv_pool_relu, conv.conv_pool_relu, _BOTH,
        "conv + bias + max-pool + ReLU as one op, pooled in cache; the gradient routed by one byte per window; "
        "few input channels (CPU): one 4x4 patch row per pool window (conv_patches)"),
    Row(reference_conv.conv_pool_relu, winograd.conv_pool_relu, ("cpu",),
        "3x3 stride-1 conv + 2x2 pool as Winograd F(2x2, 3x3) if chosen (winograd.WINS_FROM_CHANNELS; off by default)"),
    Row(reference_conv.conv_pool_relu, conv_few.FewChannelConvolution, ("cpu",),
        "one input channel, if chosen (conv_few.MAX_CHANNELS; off by default): chunks in L2, no data gradient",
        via=conv.conv_pool_relu),
    Row(reference_conv.MaxPool, conv.RoutedMaxPool, _BOTH, "one byte per window (its first maximum), routed back"),
    Row(layers.run_layers, plan.run_layers, _BOTH,
        "Conv2D/Dense + MaxPool2D fused (pool before ReLU); Flatten of channels-last memory + Dense as one op on the CPU (no copy)"),
    Row(functional.nll_of_log_softmax, loss.cross_entropy, _BOTH,
        "log-softmax, pick, reduce and backward as fused kernels: 6 launches forward, 1 back on a GPU"),
    Row(reference_optim.Optimizer, optim.FlatEngine, _BOTH,
        "parameters end to end: a step is a few fused kernels over all; on a GPU the finite check needs no sync"),
]


def install():
    """Register every row of TABLE (tinygrad_cnn/__init__.py calls it once); a row with `via` is
    picked by that kernel, which its own row installs."""
    for row in TABLE:
        if row.via is None:
            substitute(row.reference, row.kernel, row.devices)


@contextlib.contextmanager
def reference():
    """Run the reference ops inside the block (kernels off), whatever the environment says."""
    previous = set_kernels(False)
    try:
        yield
    finally:
        set_kernels(previous)


@contextlib.contextmanager
def enabled():
    """Run the kernels inside the block, also where TINYGRAD_CNN_KERNELS=reference turned them off."""
    previous = set_kernels(True)
    try:
        yield
    finally:
        set_kernels(previous)


def _mode_from_environment():
    value = os.environ.get(ENV, "fast").strip().lower()
    if value not in ("fast", "reference", ""):
        raise ValueError(f"{ENV} must be 'fast' (the default) or 'reference', got {value!r}")
    set_kernels(value != "reference")


def table():
    """TABLE as text, one line per substitution (benchmarks/size.py and the docs print it)."""
    def name(obj):
        return f"{obj.__module__.replace('tinygrad_cnn.', '')}.{obj.__qualname__}"
    rows = [(name(row.reference), name(row.kernel), "/".join(row.devices), row.why) for row in TABLE]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}  ->  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}" for a, b, c, d in rows)


install()
_mode_from_environment()

__all__ = ["TABLE", "Row", "install", "reference", "enabled", "kernel_for", "kernels_enabled", "table", "ENV"]
