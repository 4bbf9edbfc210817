"""Anomaly mode: find the op that made the first NaN or infinity, in forward or in backward.

With the mode on, every op's output is checked after its forward, and every gradient an op's
backward returns is checked after it runs. The first non-finite value raises AnomalyError naming
the op, the phase, the shapes and dtypes, the index that went bad, how many values are NaN or
infinite, and the line of user code (the first frame outside tinygrad_cnn) that created the op.
A value that was already non-finite in an op's input, or in the gradient reaching it, is not
blamed on that op: the error says where it came from instead.

With the mode off (the default) an op pays one test of the module global `enabled`: no stack is
captured and no array is scanned. benchmarks/bench_anomaly.py measures both.

The flag is one per process, as PyTorch's is, not one per thread like no_grad(): a training that
runs ops on worker threads is checked on all of them."""
import contextlib
import linecache
import os
import sys

from .device import device_of, module_of, use_device

# NOTE: read directly by Function.apply and autograd.backward_arrays; the whole cost of the mode when off
enabled = False

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class AnomalyError(FloatingPointError):
    """Anomaly mode found the first NaN or infinity; the message names the op that made it.

    A FloatingPointError rather than PyTorch's RuntimeError: it is what NumPy raises under
    errstate(all='raise') and what the optimizers' NonFiniteGradientError is, so one
    `except FloatingPointError` catches every non-finite report of the library. Attributes: `op` (the op's class name), `phase` ('forward',
    'backward' or 'input'), `index` (the output or input that went bad, or None) and `site`
    ('file:line' where the op was created, or None)."""

    def __init__(self, message, op=None, phase=None, index=None, site=None):
        super().__init__(message)
        self.op, self.phase, self.index, self.site = op, phase, index, site


def is_anomaly_enabled():
    """Whether ops check their outputs and gradients for NaN and infinity."""
    return enabled


def _set(mode):
    global enabled
    if not isinstance(mode, bool):
        raise TypeError(f"anomaly mode must be True or False, got {mode!r}")
    enabled = mode


class set_detect_anomaly:
    """Turn anomaly mode on or off now; used in a `with` block, the previous state comes back
    at its end (as PyTorch's set_detect_anomaly)."""

    def __init__(self, mode):
        self.previous = enabled
        _set(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _set(self.previous)
        return False


class detect_anomaly(contextlib.ContextDecorator):
    """Context manager and decorator: anomaly mode on inside, so the first NaN or infinity made
    by an op's forward or backward raises AnomalyError naming the op and the line that created
    it. Each op then scans its output (on a GPU: one host sync per check), so use it to debug.
    The previous state comes back on exit, also when the block raises; blocks nest."""

    def __init__(self):
        self._previous = []  # a stack, so that one instance used as a decorator may recurse

    def __enter__(self):
        self._previous.append(enabled)
        _set(True)
        return self

    def __exit__(self, *exc):
        _set(self._previous.pop())
        return False


# ---------------------------------------------------------------- checks (only run with the mode on)

def creation_site():
    """(filename, line, function) of the first frame outside the tinygrad_cnn package, or None."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return None
    return frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name


def _site_text(site):
    if site is None:
        return None
    filename, line, function = site
    return f"{filename}:{line}"


def _where_created(site):
    if site is None:
        return "created while anomaly mode was off, so its source line is unknown"
    filename, line, function = site
    code = linecache.getline(filename, line).strip()
    return f"created at {filename}:{line} in {function}" + (f"\n    {code}" if code else "")


def _is_finite(array):
    """NOTE: on CuPy the bool() waits for the GPU: anomaly mode costs one host sync per check."""
    if array.dtype.kind not in "fc":
        return True  # integers and bools cannot hold NaN or inf
    with use_device(device_of(array)):  # NOTE: CuPy refuses an array of another device than the current
        return bool(module_of(array).isfinite(array).all())


def _count(array):
    xp = module_of(array)
    with use_device(device_of(array)):
        nan = int(xp.isnan(array).sum())
        inf = int(xp.isinf(array).sum())
    return f"{nan + inf} of {array.size} values non-finite ({nan} nan, {inf} inf)"


def _describe(array):
    return f"{tuple(array.shape)} {array.dtype}"


def _signature(input_arrays, output_array):
    inputs = ", ".join(f"{i}: {_describe(a)}" for i, a in enumerate(input_arrays))
    return f"inputs [{inputs}] -> output {_describe(output_array)}"


def _origin(tensor):
    ctx = tensor.grad_fn
    if ctx is None:
        return "a leaf/data tensor"
    site = getattr(ctx, "anomaly_site", None)
    if site is None:
        return f"the output of {type(ctx).__name__}, made while anomaly mode was off"
    return f"the output of {type(ctx).__name__} created at {_site_text(site)}, finite then: changed in place since"


def check_forward(fn, inputs, result):
    """After an op's forward: record where it was created, and raise if its output is not finite.
    The inputs are scanned only when the output is bad, to tell whose fault it is."""
    fn.anomaly_site = site = creation_site()
    out = result.data
    if _is_finite(out):
        return
    op = type(fn).__name__
    signature = _signature([t.data for t in inputs], out)
    for i, t in enumerate(inputs):
        if not _is_finite(t.data):
            raise AnomalyError(f"anomaly mode: input {i} of {op} was already non-finite ({_origin(t)}): "
                               f"{_count(t.data)}; the op is not to blame. {op} forward: {signature}; "
                               f"{_where_created(site)}", op=op, phase="input", index=i, site=_site_text(site))
    raise AnomalyError(f"anomaly mode: {op} forward made output 0 non-finite from finite inputs: {_count(out)}; "
                       f"{signature}; {_where_created(site)}", op=op, phase="forward", index=0,
                       site=_site_text(site))


def check_incoming(node, grad, is_root):
    """Before a node's backward: the gradient reaching it must be finite. Every op's returned
    gradient was already checked, so a bad one here was given to backward(), or overflowed when
    gradients of several uses were added or a broadcast gradient was summed back to a shape."""
    if _is_finite(grad):
        return
    if is_root:
        raise AnomalyError(f"anomaly mode: the gradient given to backward() is non-finite: {_count(grad)}, "
                           f"shape {_describe(grad)}", phase="input")
    fn = node.grad_fn
    op = type(fn).__name__ if fn is not None else None
    target = f"the output of {op}" if op else f"a leaf tensor of shape {node.shape}"
    site = getattr(fn, "anomaly_site", None)
    raise AnomalyError(f"anomaly mode: the gradient reaching {target} is non-finite ({_count(grad)}) although "
                       f"every backward before returned finite gradients: adding the gradients of its uses, or "
                       f"summing a broadcast gradient back to its shape, overflowed"
                       + (f"; {_where_created(site)}" if fn is not None else ""),
                       op=op, phase="backward", index=None, site=_site_text(site))


def check_backward(fn, node, grad, input_grads):
    """After an op's backward, whose incoming gradient `grad` was found finite: raise if a
    gradient it returned for an input that needs one is not finite."""
    for i, (g, needed) in enumerate(zip(input_grads, fn.needs_input_grad)):
        if not needed or g is None or _is_finite(g):
            continue
        op, site = type(fn).__name__, getattr(fn, "anomaly_site", None)
        inputs = ", ".join(f"{j}: {tuple(p.shape)} {p.dtype}" for j, p in enumerate(fn.parents))
        raise AnomalyError(f"anomaly mode: {op} backward returned a non-finite gradient for input {i} from "
                           f"a finite incoming gradient: {_count(g)}; inputs [{inputs}] -> output "
                           f"{_describe(node.data)}, incoming gradient {_describe(grad)}; op {_where_created(site)}",
                           op=op, phase="backward", index=i, site=_site_text(site))
