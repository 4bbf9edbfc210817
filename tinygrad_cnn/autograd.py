"""Reverse-mode autograd: Function (one op), apply (records the graph), no_grad, and the backward walk."""
import contextlib
import sys
import threading

from . import anomaly
from .device import DeviceError, device_kind, is_writeable, scope

_state = threading.local()


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


# ---------------------------------------------------------------- substitutions (filled by kernels/)

# NOTE: the core never imports kernels/; tinygrad_cnn/__init__.py imports it, and it registers here
# the kernel that replaces a reference op (a Function class) or a reference function, per device kind.
_SUBSTITUTIONS = {}  # (reference, "cpu" or "cuda") -> kernel
_mode = {"kernels": True}


def substitute(reference, kernel, devices=("cpu", "cuda")):
    """Run `kernel` in place of `reference` on these device kinds while kernels are on."""
    for kind in devices:
        _SUBSTITUTIONS[reference, kind] = kernel


def kernel_for(reference, device):
    """What runs for `reference` on `device`: its registered kernel, or `reference` itself when
    there is none or the reference mode is on (see kernels.reference())."""
    if not _mode["kernels"]:
        return reference
    return _SUBSTITUTIONS.get((reference, device_kind(device)), reference)


def substitutions():
    """Every registration so far, as a new dict {(reference, "cpu" or "cuda"): kernel} (a copy: only
    substitute() adds to the table). NOTE: a function, not a public dict, so that docs/api.md, which
    prints public constants, never shows the kernels' addresses."""
    return dict(_SUBSTITUTIONS)


def set_kernels(enabled):
    """Turn kernels on (the fast path) or off (the reference path); returns the previous setting."""
    previous, _mode["kernels"] = _mode["kernels"], bool(enabled)
    return previous


def kernels_enabled():
    """Whether registered kernels replace the reference ops (False in the reference mode)."""
    return _mode["kernels"]


# ---------------------------------------------------------------- ops

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
    # Whether apply records the op, so that backward may run: set before forward, so that a forward
    # can skip what only backward reads (the fused conv+pool's offsets of maxima). True, the safe
    # side, for a forward called by hand.
    recorded = True

    def __init__(self, xp=None, device=None):
        if xp is None:  # NOTE: MyOp()(x), PyTorch's old-style call, would otherwise fail on missing arguments
            raise TypeError(f"{type(self).__name__} is a Function: call {type(self).__name__}.apply(x, ...) (as "
                            f"torch.autograd.Function), not {type(self).__name__}()(x)")
        self.xp = xp
        self.device = self.result_device = device  # forward may move the result (ToDevice)

    def forward(self, *arrays, **kwargs):
        """Compute the output array from the input arrays (override this)."""
        raise NotImplementedError

    def backward(self, grad):
        """Map the output's gradient to one gradient (or None) per input (override this)."""
        raise NotImplementedError

    def backward_graph(self, grad, inputs, output):
        """backward() written with Tensor ops, so that it is recorded and can be differentiated again:
        what backward(create_graph=True) and grad(..., create_graph=True) run. `grad` is a Tensor,
        `inputs` the op's input Tensors and `output` its output Tensor; whatever depends on them
        must be computed from them (not from arrays saved by forward), masks and shapes may come
        from `self`. An op without it has a gradient that cannot be differentiated (an error names it)."""
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **kwargs):
        """Run forward (of this op's kernel, when one is registered) on the inputs' arrays and, when
        any input needs a gradient, record the op."""
        for i, t in enumerate(inputs):
            if not isinstance(t, Tensor) or isinstance(t.data, Tensor):
                _not_an_input(cls, i, t)
        device = inputs[0].device
        for t in inputs[1:]:
            if t.device != device:
                raise DeviceError(f"{cls.__name__}: inputs live on different devices, {device} and {t.device}; "
                                  f"move them with .to(device) first")
        op = kernel_for(cls, device)
        fn = op(inputs[0].xp, device)
        fn.recorded = needs_grad = is_grad_enabled() and any(t.requires_grad for t in inputs)
        with scope(device):  # NOTE: CuPy allocates on the current device: make it the inputs'
            out = fn.forward(*[t.data for t in inputs], **kwargs)
        result = Tensor.wrap(out, fn.result_device, requires_grad=needs_grad)
        _share_version_if_view(result, inputs)
        if needs_grad:
            fn.parents, fn.kwargs = inputs, kwargs  # NOTE: kwargs: a kernel's second derivative reruns its reference
            fn.needs_input_grad = tuple(t.requires_grad for t in inputs)
            if op.keeps_inputs:  # NOTE: backward checks none changed since
                fn.saved_versions = tuple(t.version_counter[0] for t in inputs)
            if op.keeps_output:  # exp, tanh, sigmoid, softmax, relu, pow
                fn.output_version = (result.version_counter, result.version_counter[0])
            result.grad_fn = fn
        if anomaly.enabled:  # NOTE: all that anomaly mode costs when it is off
            anomaly.check_forward(fn, inputs, result)
        return result

    def release(self):
        """Drop what forward saved, keeping only the graph structure."""
        keep = {"xp", "device", "result_device", "parents", "needs_input_grad", "saved_versions",
                "output_version", "anomaly_site"}
        for key in [k for k in self.__dict__ if k not in keep]:
            del self.__dict__[key]
        self.released = True


Tensor = None  # tensor.py sets this to its Tensor class (it imports this module, not the reverse)


def _root(array):
    base = getattr(array, "base", None)
    return array if base is None else base


def _not_an_input(cls, i, t):
    """The TypeError for an op's input that is not a Tensor, or a Tensor whose .data is a Tensor (torch's
    habit `p.data = tensor`, where .data is the array itself here)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{cls.__name__}: input {i} must be a Tensor, got {type(t).__name__}")
    raise TypeError(f"{cls.__name__}: input {i}'s .data is a Tensor, where it must be the array itself (torch's "
                    f"p.data = t): write p.data = t.data, or p.copy_(t) under no_grad()")


def _share_version_if_view(result, inputs):
    """A result that is a view of an input's memory (reshape, slicing, transpose) shares its version
    counter, as in PyTorch: a write through either changes both, so both must show it."""
    root = _root(result.data)
    for t in inputs:
        if root is t.data or root is _root(t.data):
            result.version_counter = t.version_counter
            return


# ---------------------------------------------------------------- the backward walk

def _references_of_a_local():
    probe = object()
    return sys.getrefcount(probe)


# NOTE: what sys.getrefcount says of an array that only a local variable holds, measured the way
# backward() asks (a version of Python may count differently, e.g. borrowed references)
_ONE_LOCAL = _references_of_a_local()


def backward_arrays(root, grad, retain_graph=False):
    """The walk of tensor.backward(): accumulate d(root)/d(leaf), for the upstream gradient array `grad`, into `.grad` of every
    leaf that requires a gradient, visiting each op once, after every op that uses its output."""
    grads = {id(root): grad}
    check_incoming = anomaly.enabled  # NOTE: read once per backward(), not once per node
    for node in reversed(topological_order(root)):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if check_incoming:
            anomaly.check_incoming(node, g, is_root=node is root)
        with scope(node.device):
            if node.grad_fn is None:  # a leaf's gradient is complete: it may keep `g` if nothing else holds it
                sole = sys.getrefcount(g) <= _ONE_LOCAL and g.base is None
                accumulate(node, g, sole)
            else:
                _backward_node(node, g, grads, retain_graph)


def _backward_node(node, g, grads, retain_graph):
    """Run one op's backward and add what it gives into `grads` (by parent id)."""
    fn = node.grad_fn
    check_saved(fn, node)
    in_grads = checked_gradients(fn, fn.backward(g))
    if anomaly.enabled:
        anomaly.check_backward(fn, node, g, in_grads)
    for parent, pg, needed in zip(fn.parents, in_grads, fn.needs_input_grad):
        if not needed or pg is None:
            continue
        pg = sum_to(pg, parent.data.shape)
        key = id(parent)
        grads[key] = pg if key not in grads else grads[key] + pg
    if not retain_graph:
        fn.release()


def checked_gradients(fn, in_grads):
    """What a backward returned, as a tuple with one gradient (or None) per input, each of its input's
    shape or a broadcast of it (summed back by sum_to); otherwise an error naming the op, as PyTorch's."""
    in_grads, name = in_grads if isinstance(in_grads, tuple) else (in_grads,), type(fn).__name__
    if len(in_grads) != len(fn.parents):
        raise RuntimeError(f"{name}.backward returned {len(in_grads)} gradient(s) for {len(fn.parents)} input(s); "
                           f"return one per input, in order (None for an input that has no gradient)")
    for i, (want, pg) in enumerate((tuple(p.shape), pg) for p, pg in zip(fn.parents, in_grads)):
        if pg is not None and tuple(pg.shape) != want and (len(pg.shape) < len(want) or any(
                w not in (1, d) for w, d in zip(want[::-1], pg.shape[::-1]))):
            raise RuntimeError(f"{name}.backward returned a gradient of shape {tuple(pg.shape)} for input {i} of "
                               f"shape {want}; it must have the input's shape (or a broadcast of it)")
    return in_grads


def check_saved(fn, node):
    """Refuse a backward whose saved arrays were freed, or changed in place since the op used them."""
    name = type(fn).__name__
    if getattr(fn, "released", False):
        raise RuntimeError(f"backward() through a graph whose saved arrays were freed by an earlier backward() "
                           f"(at {name}); call the first backward(retain_graph=True) to go through twice")
    for parent, version in zip(fn.parents, getattr(fn, "saved_versions", ())):
        if parent.version_counter[0] != version:
            raise RuntimeError(f"backward(): an input of {name} (shape {parent.shape}) was modified in place "
                               f"after the op used it (version {version} -> {parent.version_counter[0]}); its gradient "
                               f"would be wrong. Use .clone() before changing it, or change it after backward()")
    versions, seen = getattr(fn, "output_version", ([0], 0))
    if versions[0] != seen:
        raise RuntimeError(f"backward(): the output of {name} (shape {node.shape}) was modified in place after "
                           f"the op made it (version {seen} -> {versions[0]}); its gradient would be wrong. "
                           f"Use .clone() before changing it, or change it after backward()")


def topological_order(*roots, stop=()):
    """Tensors that need a gradient, each after all its inputs, found without recursion (not going past
    the tensors whose id is in `stop`: grad() stops at its inputs)."""
    # NOTE: a node is marked visited when it is expanded, not when it is pushed; marking on push
    # could emit a shared input before another of its consumers (x * (2 * x) lost a term).
    order, visited, stack = [], set(), [(r, False) for r in reversed(roots)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node.grad_fn is not None and id(node) not in stop:
            for parent in node.grad_fn.parents:
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def sum_to(g, shape):
    """Sum a broadcast gradient back to `shape`: the one place broadcasting is undone. `g` is an array,
    or a Tensor when gradients of gradients are recorded (higher_order.py): both have these methods."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def accumulate(leaf, g, sole=False):
    """Add a gradient array into `leaf.grad`.

    sole: nothing but the caller holds `g` and it owns its memory (backward() checks), so a first
    gradient becomes `.grad` as it is. NOTE: otherwise it is copied, since it may be another
    leaf's gradient too (x + y gives both the same array), the caller's upstream array or a view
    of memory something else writes; the copy was one launch per parameter on a GPU, as PyTorch's
    AccumulateGrad also avoids by a reference count."""
    cast = g.astype(leaf.dtype, copy=False)
    if leaf.grad is None:
        if cast is g and not sole and not (leaf.grad_home and g is leaf.grad_home[0]):
            # (an optimizer's buffer view that a kernel was handed as free is kept: kernels/homes.py)
            cast = leaf.xp.array(g, copy=True)  # NOTE: own the memory
        leaf.grad = Tensor.wrap(cast, leaf.device)
    else:
        data = leaf.grad.data
        if is_writeable(data) and data.shape == cast.shape:
            data += cast  # in place, as PyTorch accumulates: no new array per backward()
        else:  # a .grad set by hand to a read-only or differently shaped array
            leaf.grad.data = data + cast


# ---------------------------------------------------------------- for backward_graph (higher_order.py)

def constant(array, device):
    """A tensor around an array that no gradient flows into (a mask, a share): for backward_graph."""
    return Tensor.wrap(array, device)
