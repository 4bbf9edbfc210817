"""torch.autograd.functional's spelling: vjp, jvp, jacobian, hessian, vhp and hvp of a Python function of
Tensors, built on grad() (higher_order.py) with torch's signatures and torch's nesting of the results.

Also reachable as tinygrad_cnn.autograd.functional (`import tinygrad_cnn as torch;
torch.autograd.functional.jacobian(f, x)`, or `from tinygrad_cnn.autograd.functional import hessian`).

`inputs` is a Tensor or a tuple of Tensors, and `func(*inputs)` returns a Tensor or a tuple of Tensors; a
result follows that structure as torch's does: a plain Tensor where both were single Tensors, a tuple per
tuple otherwise (jacobian: outer index the output, inner the input). Without create_graph the results are
detached; with it they keep their graph and can be differentiated again (to any order).

jvp and hvp use the double-backward trick, as torch's: the gradient of the backward pass with respect to
its (linear) upstream gradient. jacobian and hessian run one backward walk per output element
(vectorize=True is accepted and gives the same values by the same loop: torch's vmap is a speed option).
strategy="forward-mode" is not offered (there is no forward-mode AD here)."""
import sys

from . import autograd
from .autograd import enable_grad
from .device import scope
from .higher_order import grad as _grad
from .tensor import Tensor, stack, zeros, zeros_like

__all__ = ["vjp", "jvp", "jacobian", "hessian", "vhp", "hvp"]


# ---------------------------------------------------------------- torch's helpers, in this engine's words

def _as_tuple(value, what, fn_name):
    """(was it a tuple, the tuple): a single Tensor is wrapped, as torch's (a list is not a tuple there either)."""
    is_tuple = isinstance(value, tuple)
    items = value if is_tuple else (value,)
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            where = f"the value at index {i}" if is_tuple else f"the given {what}"
            raise TypeError(f"The {what} given to {fn_name} must be either a Tensor or a tuple of Tensors but {where} "
                            f"has type {type(t).__name__}.")
    return is_tuple, items


def _preprocess(tensors, create_graph, need_graph):
    """Fresh leaves cut off from the caller's graph, or with create_graph (for a tensor that has a graph)
    a new node on it, so that the result can be differentiated back to the caller's tensors."""
    out = []
    for t in tensors:
        if create_graph and t.requires_grad:
            with enable_grad():
                out.append(t.view_as(t))
        else:
            out.append(t.detach().requires_grad_(need_graph) if need_graph else t.detach())
    return tuple(out)


def _postprocess(value, create_graph):
    """Detach the results unless their graph was asked for (nested tuples too)."""
    if isinstance(value, tuple):
        return tuple(_postprocess(v, create_graph) for v in value)
    return value if create_graph else value.detach()


def _unpack(value, to_unpack):
    """torch's nesting: a single Tensor where the caller gave one (a pair of flags for jacobian/hessian:
    (outputs were a tuple, inputs were a tuple))."""
    if isinstance(to_unpack, bool):
        return value if to_unpack else value[0]
    if not to_unpack[1]:
        value = tuple(v[0] for v in value)
    return value if to_unpack[0] else value[0]


_STRICT = {
    "outputs": "Output {i} of the user-provided function does not require gradients. The outputs must be computed "
               "in a differentiable manner from the input when running in strict mode.",
    "grad_inputs": "The gradient with respect to input {i} is independent of the inputs of the user-provided "
                   "function. This is not allowed in strict mode.",
    "jacobian": "While computing the hessian, found that the jacobian of the user-provided function with respect to "
                "input {i} is independent of the input. This is not allowed in strict mode. You should ensure that "
                "your function is twice differentiable and that the jacobian depends on the inputs (this would be "
                "violated by a linear function for example).",
    "hessian": "The hessian of the user-provided function with respect to input {i} is independent of the input. "
               "This is not allowed in strict mode. You should ensure that your function is thrice differentiable "
               "and that the hessian depends on the inputs.",
}

_STRICT_NONE = {
    "back": "The output of the user-provided function is independent of input {i}. This is not allowed in strict mode.",
    "back_trick": "The gradient with respect to the input is independent of entry {i} in the grad_outputs when using "
                  "the double backward trick to compute forward mode gradients. This is not allowed in strict mode.",
    "double_back": "The jacobian of the user-provided function is independent of input {i}. This is not allowed in "
                   "strict mode.",
    "double_back_trick": "The hessian of the user-provided function is independent of entry {i} in the grad_jacobian. "
                         "This is not allowed in strict mode as it prevents from using the double backward trick to "
                         "replace forward mode AD.",
}


def _check_requires_grad(tensors, kind, strict):
    """strict=True: every tensor must be there and carry a graph (torch's wording, per kind)."""
    if not strict:
        return
    for i, t in enumerate(tensors):
        if t is None:
            raise RuntimeError(_STRICT_NONE["back"].format(i=i))
        if not t.requires_grad:
            raise RuntimeError(_STRICT[kind].format(i=i))


def _validate_v(v, other, other_is_tuple):
    if len(v) != len(other):
        if other_is_tuple:
            raise RuntimeError(f"v is a tuple of invalid length: should be {len(other)} but got {len(v)}.")
        raise RuntimeError("The given v should contain a single Tensor.")
    for i, (a, b) in enumerate(zip(v, other)):
        if a.shape != b.shape:
            entry = f"Entry {i} in " if other_is_tuple else ""
            raise RuntimeError(f"{entry}v has invalid size: should be {b.shape} but got {a.shape}.")


def _autograd_grad(outputs, inputs, grad_outputs=None, create_graph=False, retain_graph=None):
    """grad() over the outputs that have a graph (None for every input when none has), None for an unused input."""
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o is not None and o.requires_grad]
    if not pairs:
        return (None,) * len(inputs)
    with enable_grad():
        return _grad([o for o, _ in pairs], list(inputs), [g for _, g in pairs], retain_graph=retain_graph,
                     create_graph=create_graph, allow_unused=True)


def _fill_in_zeros(grads, refs, strict, stage):
    """Zeros (of the reference's shape) for an input that got no gradient; strict=True refuses it."""
    out = []
    for i, (g, ref) in enumerate(zip(grads, refs)):
        if g is None:
            if strict:
                raise RuntimeError(_STRICT_NONE[stage].format(i=i))
            g = zeros_like(ref)
        out.append(g)
    return tuple(out)


def _double_backward(outputs, inputs, v, create_graph, strict, check, stage):
    """J v for J the Jacobian of `outputs` in `inputs`, by the double-backward trick (jvp, hvp): the backward
    pass is linear in its upstream gradient u, so J v is the gradient of (J^T u) . v in u, at u = 0. `check`
    names the intermediate gradients for strict mode (None: not checked), `stage` its missing-gradient error."""
    upstream = tuple(zeros_like(out, requires_grad=True) for out in outputs)
    back = _autograd_grad(outputs, inputs, upstream, create_graph=True)
    if check is not None:
        _check_requires_grad(back, check, strict)
    found = _autograd_grad(back, upstream, v, create_graph=create_graph)
    return _fill_in_zeros(found, outputs, strict, stage)


def _reverse_mode_only(fn_name, option, value):
    """torch's strategy options: "reverse-mode" runs; "forward-mode" is refused by name (no forward-mode AD here)."""
    if value not in ("forward-mode", "reverse-mode"):
        raise ValueError(f'{fn_name}: {option} must be "reverse-mode" (or torch\'s "forward-mode", not offered '
                         f'here), got {value!r}')
    if value == "forward-mode":
        raise NotImplementedError(f'{fn_name}: {option}="forward-mode" is not offered (this engine has no '
                                  f'forward-mode AD); leave {option} out (or "reverse-mode"): the values are the same')


def _single_scalar(outputs, is_tuple, fn_name):
    if is_tuple:
        raise RuntimeError(f"The function given to {fn_name} should return a single Tensor")
    if outputs[0].numel() != 1:
        raise RuntimeError(f"The Tensor returned by the function given to {fn_name} should contain a single element")


def _v_is_none(tensors, what):
    if len(tensors) != 1 or tensors[0].numel() != 1:
        raise RuntimeError(f"The vector v can only be None if the {what} a single Tensor with a single element.")


# ---------------------------------------------------------------- the six functions

def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """torch.autograd.functional.vjp: (func(*inputs), v^T J), the vector-Jacobian product at `inputs`
    (one backward walk). v: a Tensor or tuple shaped as func's outputs (None for a one-element output).
    strict=True raises where an output does not depend on an input instead of giving zeros."""
    with enable_grad():
        is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "vjp")
        inputs = _preprocess(inputs, create_graph, need_graph=True)
        is_outputs_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function", "vjp")
        _check_requires_grad(outputs, "outputs", strict)
        if v is not None:
            v = _preprocess(_as_tuple(v, "v", "vjp")[1], create_graph, need_graph=False)
            _validate_v(v, outputs, is_outputs_tuple)
        elif len(outputs) != 1 or outputs[0].numel() != 1:
            raise RuntimeError("The vector v can only be None if the user-provided function returns a single Tensor "
                               "with a single element.")
        found = _autograd_grad(outputs, inputs, v, create_graph=create_graph)
        result = _fill_in_zeros(found, inputs, strict, "back")
    return (_unpack(_postprocess(outputs, create_graph), is_outputs_tuple),
            _unpack(_postprocess(result, create_graph), is_inputs_tuple))


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """torch.autograd.functional.jvp: (func(*inputs), J v), the Jacobian-vector product, by the double-backward
    trick as torch's: the backward pass is linear in its upstream gradient u, so J v is the gradient of
    (J^T u) . v with respect to u (u = 0 here). v: shaped as the inputs (None for a one-element input)."""
    with enable_grad():
        is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "jvp")
        inputs = _preprocess(inputs, create_graph, need_graph=True)
        if v is not None:
            v = _preprocess(_as_tuple(v, "v", "jvp")[1], create_graph, need_graph=False)
            _validate_v(v, inputs, is_inputs_tuple)
        else:
            _v_is_none(inputs, "input to the user-provided function is")
        is_outputs_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function", "jvp")
        _check_requires_grad(outputs, "outputs", strict)
        result = _double_backward(outputs, inputs, v, create_graph, strict, "grad_inputs", "back_trick")
    return (_unpack(_postprocess(outputs, create_graph), is_outputs_tuple),
            _unpack(_postprocess(result, create_graph), is_outputs_tuple))


def _unit(out, j):
    """The upstream gradient that picks element j (of the flattened output): one backward walk gives row j."""
    with scope(out.device):
        array = out.xp.zeros(out.data.size, dtype=out.dtype)
        array[j] = 1
    return Tensor.wrap(array.reshape(out.data.shape), out.device)


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
    """torch.autograd.functional.jacobian: the Jacobian of func at `inputs`, entry [i][j] of shape
    outputs[i].shape + inputs[j].shape (a Tensor where func has one input and one output, a tuple per tuple
    as torch's). One backward walk per output element; create_graph=True keeps the graph, so the Jacobian
    can be differentiated again. vectorize=True gives the same values by the same loop (torch's vmap is a
    speed option); strategy="forward-mode" is not offered."""
    _reverse_mode_only("jacobian", "strategy", strategy)
    if vectorize and strict:
        raise RuntimeError("torch.autograd.functional.jacobian: `strict=True` and `vectorized=True` are not supported "
                           "together. Please either set `strict=False` or `vectorize=False`.")
    with enable_grad():
        is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "jacobian")
        inputs = _preprocess(inputs, create_graph, need_graph=True)
        is_outputs_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function", "jacobian")
        _check_requires_grad(outputs, "outputs", strict)
        result = tuple(_jacobian_of(i, out, inputs, create_graph, strict) for i, out in enumerate(outputs))
    return _unpack(_postprocess(result, create_graph), (is_outputs_tuple, is_inputs_tuple))


def _jacobian_of(i, out, inputs, create_graph, strict):
    """The Jacobian of one output with respect to each input, a row (one backward walk) per output element."""
    rows = tuple([] for _ in inputs)
    for j in range(out.numel()):
        found = _autograd_grad((out,), inputs, (_unit(out, j),), retain_graph=True, create_graph=create_graph)
        for k, (g, inp) in enumerate(zip(found, inputs)):
            if g is None:
                if strict:
                    raise RuntimeError(f"Output {i} of the user-provided function is independent of input {k}. "
                                       f"This is not allowed in strict mode.")
                g = zeros_like(inp)
            elif strict and create_graph and not g.requires_grad:
                raise RuntimeError(f"The jacobian of the user-provided function is independent of input {k}. This is "
                                   f"not allowed in strict mode when create_graph=True.")
            rows[k].append(g)
    # NOTE: an output of no elements gives an empty Jacobian of the right shape (torch's stack raises there)
    return tuple(stack(r, axis=0).reshape(out.shape + inp.shape) if r else
                 zeros(out.shape + inp.shape, dtype=inp.dtype, device=inp.device) for r, inp in zip(rows, inputs))


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False, outer_jacobian_strategy="reverse-mode"):
    """torch.autograd.functional.hessian: the Hessian of a function with one one-element output, entry [i][j]
    of shape inputs[i].shape + inputs[j].shape (a Tensor for a single input), as the Jacobian of its gradient
    (torch's way). outer_jacobian_strategy="forward-mode" is not offered."""
    is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "hessian")
    _reverse_mode_only("hessian", "outer_jacobian_strategy", outer_jacobian_strategy)

    def single_output(*inp):
        out = func(*inp)
        is_tuple, outs = _as_tuple(out, "outputs of the user-provided function", "hessian")
        _check_requires_grad(outs, "outputs", strict)
        _single_scalar(outs, is_tuple, "hessian")
        return out.squeeze()

    def gradient(*inp):
        jac = jacobian(single_output, inp, create_graph=True)
        _check_requires_grad(jac, "jacobian", strict)
        return jac

    result = jacobian(gradient, inputs, create_graph=create_graph, strict=strict, vectorize=vectorize)
    return _unpack(result, (is_inputs_tuple, is_inputs_tuple))


def _gradient_of_scalar(func, inputs, v, create_graph, strict, fn_name):
    """Shared start of vhp and hvp: the checked inputs, v and outputs, and the gradient with its graph."""
    is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", fn_name)
    inputs = _preprocess(inputs, create_graph, need_graph=True)
    if v is not None:
        v = _preprocess(_as_tuple(v, "v", fn_name)[1], create_graph, need_graph=False)
        _validate_v(v, inputs, is_inputs_tuple)
    else:
        _v_is_none(inputs, "input to the user-provided function is")
    is_outputs_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function", fn_name)
    _check_requires_grad(outputs, "outputs", strict)
    _single_scalar(outputs, is_outputs_tuple, fn_name)
    jac = _autograd_grad(outputs, inputs, create_graph=True)
    _check_requires_grad(jac, "jacobian", strict)
    return is_inputs_tuple, inputs, v, is_outputs_tuple, outputs, jac


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """torch.autograd.functional.vhp: (func(*inputs), v^T H) for a function with one one-element output: the
    gradient of (gradient . v), two backward walks. v: shaped as the inputs (None for a one-element input)."""
    with enable_grad():
        is_inputs_tuple, inputs, v, is_outputs_tuple, outputs, jac = _gradient_of_scalar(
            func, inputs, v, create_graph, strict, "vhp")
        found = _autograd_grad(jac, inputs, v, create_graph=create_graph)
        result = _fill_in_zeros(found, inputs, strict, "double_back")
    return (_unpack(_postprocess(outputs, create_graph), is_outputs_tuple),
            _unpack(_postprocess(result, create_graph), is_inputs_tuple))


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """torch.autograd.functional.hvp: (func(*inputs), H v), by the double-backward trick as torch's (the same
    values as vhp for a function twice continuously differentiable, whose Hessian is symmetric)."""
    with enable_grad():
        is_inputs_tuple, inputs, v, is_outputs_tuple, outputs, jac = _gradient_of_scalar(
            func, inputs, v, create_graph, strict, "hvp")
        _check_requires_grad(jac, "hessian", strict)
        result = _double_backward(jac, inputs, v, create_graph, strict, None, "double_back_trick")
    return (_unpack(_postprocess(outputs, create_graph), is_outputs_tuple),
            _unpack(_postprocess(result, create_graph), is_inputs_tuple))


# NOTE: torch's spelling torch.autograd.functional (an attribute of the autograd module, and an import path)
autograd.functional = sys.modules[__name__]
sys.modules[autograd.__name__ + ".functional"] = sys.modules[__name__]
