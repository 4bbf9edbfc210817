"""Function: the base of every differentiable op, and the switch that turns graph building off."""
import contextlib
import sys
import threading
import types

from . import anomaly as _anomaly
from .device import DeviceError, use_device

_state = threading.local()


def _references_of_a_free_home():
    holder = types.SimpleNamespace(value=(object(),))
    holder.listed = [holder.value[0]]
    local = holder.value[0]
    return sys.getrefcount(local)


# NOTE: what sys.getrefcount says of a gradient home that only its parameter (in a tuple), its
# optimizer (a list) and a local variable hold
_FREE_HOME = _references_of_a_free_home()


def is_grad_enabled():
    """Whether new ops record the graph that backward() needs."""
    return getattr(_state, "grad_enabled", True)


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        self.previous = is_grad_enabled()
        _state.grad_enabled = self.enabled

    def __exit__(self, *exc):
        _state.grad_enabled = self.previous
        return False


def no_grad():
    """Context manager and decorator: ops inside build no graph and save nothing for backward."""
    return _GradMode(False)


def enable_grad():
    """Context manager and decorator: turn graph building back on inside a no_grad block."""
    return _GradMode(True)


def _root(array):
    base = getattr(array, "base", None)
    return array if base is None else base


def _share_version_if_view(result, inputs):
    """A result that is a view of an input's memory (reshape, slicing, transpose) shares its version
    counter, as in PyTorch: a write through either changes both, so both must show it."""
    root = _root(result.data)
    for t in inputs:
        if root is t.data or root is _root(t.data):
            result._version = t._version
            return


class Function:
    """One op: `forward` maps raw arrays to a raw array, `backward` maps the output's gradient
    to one gradient (or None) per tensor input. `self.xp` is the array module of the inputs'
    device, so the same code runs on NumPy and CuPy. Anything the op stores on `self` is freed
    once backward has used it, unless the graph is retained.

    Gradients may have the broadcast shape of the output: the engine sums them back to each
    input's shape, so ops never reason about broadcasting themselves."""

    # What backward reads, so that backward() refuses to run after either was changed in place (its
    # gradient would be wrong), as PyTorch does for the tensors an op saved. NOTE: both default to
    # True, the safe side; an op whose backward does not need its inputs' arrays (Sum, Add, a
    # reshape) or its output (Mul, Log) says so, and tests/test_inplace.py checks that nothing
    # such an op keeps shares memory with what it claims not to keep.
    keeps_inputs = True
    keeps_output = True

    def __init__(self, xp, device):
        self.xp = xp
        self.device = device

    def forward(self, *arrays, **kwargs):
        """Compute the output array from the input arrays (override this)."""
        raise NotImplementedError

    def backward(self, grad):
        """Map the output's gradient to one gradient (or None) per input (override this)."""
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **kwargs):
        """Run forward on the inputs' arrays and, when any input needs a gradient, record the op."""
        from .tensor import Tensor
        for i, t in enumerate(inputs):
            if not isinstance(t, Tensor):
                raise TypeError(f"{cls.__name__}: input {i} must be a Tensor, got {type(t).__name__}")
        device = inputs[0].device
        for t in inputs[1:]:
            if t.device != device:
                raise DeviceError(f"{cls.__name__}: inputs live on different devices, {device} and {t.device}; "
                                  f"move them with .to(device) first")
        fn = cls(inputs[0].xp, device)
        if device == "cpu":
            out = fn.forward(*[t.data for t in inputs], **kwargs)
        else:  # NOTE: CuPy allocates on the current device: make it the inputs' (cuda:1 stays on GPU 1)
            with use_device(device):
                out = fn.forward(*[t.data for t in inputs], **kwargs)
        needs_grad = is_grad_enabled() and any(t.requires_grad for t in inputs)
        result = Tensor._wrap(out, device, requires_grad=needs_grad)
        _share_version_if_view(result, inputs)
        if needs_grad:
            fn.parents = inputs
            fn.needs_input_grad = tuple(t.requires_grad for t in inputs)
            if cls.keeps_inputs:  # NOTE: backward checks none changed since
                fn.saved_versions = tuple(t._version[0] for t in inputs)
            if cls.keeps_output:  # exp, tanh, sigmoid, softmax, relu, pow
                fn.output_version = (result._version, result._version[0])
            result._ctx = fn
        if _anomaly._enabled:  # NOTE: all that anomaly mode costs when it is off
            _anomaly.check_forward(fn, inputs, result)
        return result

    def grad_home(self, i, shape, dtype):
        """The array that input i's gradient may be written into (with out=), or None: the view of an
        optimizer's flat gradient buffer that is that parameter's (optim.py), while it is free (the
        parameter has no gradient yet, and nothing else holds the view or another view of the buffer)
        and of this shape and dtype.

        NOTE: an op that writes a parameter's gradient there spares the optimizer gathering the
        gradients into its buffer, one copy per parameter (a launch each on a GPU); backward() then
        keeps the array as the gradient without a copy (Tensor._accumulate)."""
        parent = self.parents[i]
        if parent._grad_home is None or parent.grad is not None or not self.needs_input_grad[i]:
            return None
        home, buffer_refs, device = parent._grad_home
        if device != parent.device or home.shape != tuple(shape) or home.dtype != dtype:
            return None  # (a model moved since the optimizer laid it out: its next step lays it out again)
        if sys.getrefcount(home) > _FREE_HOME or sys.getrefcount(home.base) > buffer_refs:
            return None  # held elsewhere, or a view of the buffer is
        return home

    def release(self):
        """Drop what forward saved, keeping only the graph structure."""
        keep = {"xp", "device", "parents", "needs_input_grad", "saved_versions", "output_version", "anomaly_site"}
        for key in [k for k in self.__dict__ if k not in keep]:
            del self.__dict__[key]
        self.released = True
