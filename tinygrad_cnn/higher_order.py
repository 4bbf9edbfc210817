"""Gradients of gradients: backward(create_graph=True) and grad(), the walk that records the gradient
computation (each op's backward_graph, in Tensor ops) so that its results can be differentiated again.

The array walk of a training step (autograd.backward_arrays) never comes here; this module is the general
walk: several outputs, gradients of chosen inputs (PyTorch's autograd.grad), and with create_graph
Tensors in place of arrays. A kernel keeps its array backward; when a graph is asked for at one of
its nodes, its reference is recomputed (kernels off) and differentiated instead."""
from . import anomaly, autograd
from .autograd import (DeviceError, Function, check_saved, accumulate, checked_gradients, enable_grad, scope,
                       set_kernels, substitutions, sum_to, topological_order)

_REFERENCE_OF = {}  # kernel op -> the reference it replaces (found once: _reference_of)


class Identity(Function):
    """x itself (copy=False: the same memory) or a copy of it; the gradient passes unchanged. The
    engine's own op: it ties a kernel's recomputed reference to the tensors it stands for, and gives
    a leaf a gradient in memory of its own when the graph of the gradient is kept."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, x, copy=False):
        return x.copy() if copy else x

    def backward(self, g):
        return g

    def backward_graph(self, g, inputs, output):
        return g


def run_backward(roots, grads, inputs=None, retain_graph=False, create_graph=False, stop_at_inputs=False):
    """The general walk behind backward(create_graph=True) and grad(): several roots, each with its
    upstream gradient (arrays, or with create_graph Tensors whose ops are recorded).

    Without `inputs` the gradients are accumulated into `.grad` of the leaves; with them, the
    gradient of each input is returned (None where it got none) and no `.grad` is touched, and only
    the ops on a path from a root to an input run. stop_at_inputs: no input is an ancestor of another,
    so the walk need not go past them (the engine's own calls)."""
    order = topological_order(*roots, stop={id(t) for t in inputs} if stop_at_inputs else ())
    wanted = None
    if inputs is not None:
        wanted = {}
        for k, t in enumerate(inputs):
            wanted.setdefault(id(t), []).append(k)
        needed = set()  # the nodes on a path to an input: parents come before children in `order`
        for node in order:
            if id(node) in wanted or (node.grad_fn is not None and any(id(p) in needed for p in node.grad_fn.parents)):
                needed.add(id(node))
    found = None if inputs is None else [None] * len(inputs)
    pending = {}
    for root, g in zip(roots, grads):
        pending[id(root)] = g if id(root) not in pending else pending[id(root)] + g
    root_ids = {id(r) for r in roots}
    check_incoming = anomaly.enabled
    for node in reversed(order):
        g = pending.pop(id(node), None)
        if g is None or (wanted is not None and id(node) not in needed):
            continue
        if check_incoming:
            anomaly.check_incoming(node, _array(g), is_root=id(node) in root_ids)
        with scope(node.device):
            if wanted is not None and id(node) in wanted:
                for k in wanted[id(node)]:
                    found[k] = g
            if node.grad_fn is None:
                if wanted is None:
                    accumulate_graph(node, g) if create_graph else accumulate(node, g)
                continue
            if wanted is not None and not any(id(p) in needed for p in node.grad_fn.parents):
                continue
            _run_node(node, g, pending, retain_graph, create_graph, None if wanted is None else needed)
    return found


def _array(g):
    return g.data if isinstance(g, autograd.Tensor) else g


def _run_node(node, g, pending, retain_graph, create_graph, needed):
    """One op's backward (recorded when create_graph), its gradients added into `pending`."""
    fn = node.grad_fn
    check_saved(fn, node)
    if create_graph:
        with enable_grad():
            in_grads = differentiable_backward(fn, node, g)
    else:
        in_grads = fn.backward(g)
    in_grads = checked_gradients(fn, in_grads)
    if anomaly.enabled:
        anomaly.check_backward(fn, node, _array(g), tuple(None if x is None else _array(x) for x in in_grads))
    for parent, pg, need in zip(fn.parents, in_grads, fn.needs_input_grad):
        if not need or pg is None or (needed is not None and id(parent) not in needed):
            continue
        if create_graph:
            with enable_grad():
                pg = sum_to(pg, parent.shape)  # (Tensor ops, recorded: sum_to takes either)
        else:
            pg = sum_to(pg, parent.data.shape)
        key = id(parent)
        if key in pending:
            if create_graph:
                with enable_grad():
                    pending[key] = pending[key] + pg
            else:
                pending[key] = pending[key] + pg
        else:
            pending[key] = pg
    if not retain_graph:
        fn.release()


def differentiable_backward(fn, node, g):
    """fn's gradients as Tensors with a graph: its backward_graph; for a kernel, its reference op's,
    on the reference recomputed from the same inputs (one forward more, only when a graph is asked for)."""
    reference = _reference_of(type(fn))
    if reference is not None:
        return _reference_gradients(fn, reference, g)
    if type(fn).backward_graph is Function.backward_graph:
        name = type(fn).__name__
        raise RuntimeError(f"create_graph=True: {name} has no differentiable backward (its backward() works on "
                           f"arrays); give {name} a backward_graph(grad, inputs, output) written with Tensor ops "
                           f"(see docs/how-it-works.md), or differentiate only once")
    return fn.backward_graph(g, fn.parents, node)


def _reference_of(op):
    """The reference op or function that the kernel op `op` replaces (kernels.TABLE), or None for a
    reference op or a Function of the user's. A kernel that a kernel *function* applies (a fused loss or
    layer sequence registered as a function) has that function's row: the kernel function whose code
    names `op`. NOTE: looked up once per op class, at its first second derivative."""
    if op not in _REFERENCE_OF:
        rows = list(substitutions().items())
        found = [reference for (reference, _), kernel in rows if kernel is op]
        found += [reference for (reference, _), kernel in rows if getattr(kernel, "__code__", None) is not None
                  and op.__name__ in kernel.__code__.co_names and kernel.__globals__.get(op.__name__) is op]
        _REFERENCE_OF[op] = found[0] if found else None
    return _REFERENCE_OF[op]


def _reference_gradients(fn, reference, g):
    """The gradients of a kernel's op as those of its reference, which is recomputed (kernels off) on
    aliases of the same inputs: so the gradients' graph reaches the inputs, and the walk over the
    recomputed ops stops at the aliases. NOTE: the switch is process-wide; a thread running ops
    meanwhile runs them as references too, which changes speed, not results."""
    aliases = [Identity.apply(p) if need else p for p, need in zip(fn.parents, fn.needs_input_grad)]
    forward = getattr(reference, "graph_forward", None) or getattr(reference, "apply", reference)
    previous = set_kernels(False)
    try:
        with enable_grad():
            out = forward(*aliases, **fn.kwargs)
        targets = [a for a, need in zip(aliases, fn.needs_input_grad) if need]
        got = iter(run_backward([out], [g], inputs=targets, retain_graph=True, create_graph=True,
                                stop_at_inputs=True))
    finally:
        set_kernels(previous)
    return tuple(next(got) if need else None for need in fn.needs_input_grad)


def accumulate_graph(leaf, g):
    """Add a gradient Tensor (with its graph) into `leaf.grad`: a copy of its own the first time
    (another leaf may have been given the same tensor), out of place afterwards, as PyTorch does."""
    with enable_grad():
        if g.dtype != leaf.dtype:
            g = g.astype(leaf.dtype)
        leaf.grad = Identity.apply(g, copy=True) if leaf.grad is None else leaf.grad + g


def backward(tensor, gradient, retain_graph):
    """tensor.backward(gradient, retain_graph, create_graph=True): gradients with a graph into `.grad`."""
    if gradient is None and tensor.size != 1:
        raise RuntimeError(f"backward() without a gradient needs a one-element tensor, this one has shape "
                           f"{tensor.shape}; pass backward(grad) with an upstream gradient")
    upstream = initial_gradient(tensor, gradient, True, "backward(): gradient")
    run_backward([tensor], [upstream], retain_graph=retain_graph is not False, create_graph=True)


def backward_of(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """torch.autograd.backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    accumulate into `.grad` the gradients of `tensors` (a Tensor or a sequence), each with its upstream gradient
    from grad_tensors (None: 1, for a one-element tensor), as t.backward(g) for each but in one walk. inputs: the
    only tensors (leaves or not) whose `.grad` is filled. create_graph keeps the graph of the gradients
    (retain_graph then defaults to True). Also tinygrad_cnn.autograd.backward; tensor.backward(inputs=) comes here."""
    roots = _as_tensors(tensors, "tensors", "backward()")
    grads = [None] * len(roots) if grad_tensors is None else \
        list(grad_tensors) if isinstance(grad_tensors, (list, tuple)) else [grad_tensors]
    if not roots or len(grads) != len(roots):
        raise ValueError(f"backward(): {len(grads)} grad_tensors for {len(roots)} tensors (give one per tensor, "
                         f"None for a one-element one)")
    for k, (t, g) in enumerate(zip(roots, grads)):
        if not t.requires_grad:
            raise RuntimeError(f"backward(): tensors[{k}] (shape {t.shape}) does not require grad: no input had "
                               f"requires_grad=True, or it was computed under no_grad()")
        if g is None and t.size != 1:
            raise RuntimeError(f"backward() without a gradient needs a one-element tensor, tensors[{k}] has shape "
                               f"{t.shape}; pass the upstream gradient (grad_tensors=) of its shape")
    retain = create_graph if retain_graph is None else retain_graph
    if inputs is None:
        upstream = [initial_gradient(t, g, create_graph, f"backward(): grad_tensors[{k}]")
                    for k, (t, g) in enumerate(zip(roots, grads))]
        run_backward(roots, upstream, retain_graph=retain, create_graph=create_graph)
        return
    inputs = _as_tensors(inputs, "inputs", "backward()")
    if not inputs:
        raise RuntimeError("backward(): inputs= cannot be empty (as torch's); leave it out to fill every leaf")
    found = grad(roots, inputs, grads, retain_graph=retain, create_graph=create_graph, allow_unused=True)
    for t, g in zip(inputs, found):
        if g is not None:
            accumulate_graph(t, g) if create_graph else accumulate(t, g.data, sole=True)


def _as_tensors(value, name, caller="grad()"):
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for k, t in enumerate(items):
        if not isinstance(t, autograd.Tensor):
            raise TypeError(f"{caller}: {name} must be Tensors, {name}[{k}] is a {type(t).__name__}")
    return items



def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """The gradients of `outputs` (a Tensor or a sequence) with respect to `inputs` (a Tensor or a
    sequence), as a tuple of Tensors, one per input; `.grad` is left alone. PyTorch's torch.autograd.grad,
    also as tinygrad_cnn.autograd.grad.

    grad_outputs: the upstream gradient of each output (None: 1, for a one-element output).
    create_graph: record the gradient computation, so the results can be differentiated again (to any
    order); the graph is then kept (retain_graph defaults to create_graph).
    allow_unused: give None for an input the outputs do not depend on, instead of an error.
    materialize_grads: give zeros there instead (allow_unused then defaults to True, as torch's).
    only_inputs: torch's deprecated argument, ignored as torch ignores it. is_grads_batched (torch's vmap
    over grad_outputs) is not offered: call grad() once per upstream gradient."""
    if is_grads_batched:
        raise NotImplementedError("grad(): is_grads_batched=True (a vmap over grad_outputs) is not offered; call "
                                  "grad() once per upstream gradient (retain_graph=True)")
    if materialize_grads and allow_unused is False:
        raise ValueError("grad(): materialize_grads=True gives zeros for unused inputs; leave allow_unused out or "
                         "set it True")
    allow_unused = bool(allow_unused) or bool(materialize_grads)
    outputs = _as_tensors(outputs, "outputs")
    inputs = _as_tensors(inputs, "inputs")
    if not outputs or not inputs:
        raise ValueError("grad(): needs at least one output and one input")
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    else:
        grad_outputs = list(grad_outputs) if isinstance(grad_outputs, (list, tuple)) else [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad(): {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for k, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"grad(): inputs[{k}] (shape {t.shape}) does not require grad; create it with "
                               f"requires_grad=True")
    roots, upstream = [], []
    for k, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if not out.requires_grad:
            raise RuntimeError(f"grad(): outputs[{k}] (shape {out.shape}) does not require grad: it does not "
                               f"depend on any input that requires grad, or was computed under no_grad()")
        roots.append(out)
        upstream.append(initial_gradient(out, g, create_graph, f"grad(): grad_outputs[{k}]"))
    retain = create_graph if retain_graph is None else retain_graph
    found = run_backward(roots, upstream, inputs=inputs, retain_graph=retain, create_graph=create_graph)
    results = []
    for k, (t, g) in enumerate(zip(inputs, found)):
        if g is None and materialize_grads:
            results.append(autograd.Tensor.wrap(t.xp.zeros(t.data.shape, dtype=t.dtype), t.device))
        elif g is None:
            if not allow_unused:
                raise RuntimeError(f"grad(): inputs[{k}] (shape {t.shape}) was not used to compute the outputs; "
                                   f"pass allow_unused=True to get None for it")
            results.append(None)
        elif create_graph:
            with enable_grad():
                results.append(g.astype(t.dtype) if g.dtype != t.dtype else g)
        else:  # NOTE: a copy: the array may be an upstream gradient or another input's gradient too
            results.append(autograd.Tensor.wrap(t.xp.array(g, dtype=t.dtype, copy=True), t.device))
    return tuple(results)


def initial_gradient(out, g, create_graph, what):
    """The upstream gradient of `out`: an array, or with create_graph a Tensor (which may have a graph)."""
    if g is None:
        if out.size != 1:
            raise RuntimeError(f"{what} is needed: the output has shape {out.shape}, not one element; pass "
                               f"the upstream gradient (e.g. ones of its shape)")
        ones = out.xp.ones(out.data.shape, dtype=out.dtype)
        return autograd.Tensor.wrap(ones, out.device) if create_graph else ones
    if isinstance(g, autograd.Tensor):
        if g.device != out.device:
            raise DeviceError(f"{what} is on {g.device}, the output on {out.device}")
        if g.shape != out.shape:
            raise ValueError(f"{what} has shape {g.shape}, the output {out.shape}")
        if create_graph:
            with enable_grad():
                return g.astype(out.dtype) if g.dtype != out.dtype else g
        g = g.data
    with scope(out.device):
        array = out.xp.asarray(g, dtype=out.dtype)
    if array.shape != out.data.shape:
        raise ValueError(f"{what} has shape {tuple(array.shape)}, the output {out.shape}")
    return autograd.Tensor.wrap(array, out.device) if create_graph else array


# NOTE: torch's spellings torch.autograd.grad and torch.autograd.backward; set here because autograd.py is the
# engine this module builds on (whose own walk is autograd.backward_arrays)
autograd.grad = grad
autograd.backward = backward_of
