"""In-place ops as PyTorch has them (issue 12 item 2): they mutate the same object and memory, refuse to
change what autograd tracks, and a change after an op saved its input makes backward raise."""
import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import nn
from tinygrad_cnn.nn import functional as F


def test_augmented_assignment_under_no_grad_changes_the_models_weight():
    model = nn.Dense(2)
    (model(tg.ones(4, 3)).sum()).backward()
    w = model.weight
    memory = w.data
    before = w.numpy().copy()
    p = model.weight
    with tg.no_grad():
        p -= 0.1 * p.grad
    assert p is w and model.weight is w and w.data is memory
    np.testing.assert_allclose(w.numpy(), before - 0.1 * w.grad.numpy(), rtol=1e-6)
    assert w.is_leaf and w.requires_grad


@pytest.mark.parametrize("name, arg, expect", [
    ("add_", 2.0, lambda a: a + 2), ("sub_", 2.0, lambda a: a - 2), ("mul_", 3.0, lambda a: a * 3),
    ("div_", 4.0, lambda a: a / 4), ("fill_", 7.0, lambda a: np.full_like(a, 7)),
    ("copy_", np.arange(3, dtype=np.float32), lambda a: np.broadcast_to(np.arange(3, dtype=np.float32), a.shape)),
])
def test_methods_mutate_the_same_memory(name, arg, expect):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = tg.Tensor(a.copy())
    memory = t.data
    assert getattr(t, name)(arg) is t
    assert t.data is memory
    np.testing.assert_allclose(t.numpy(), expect(a))
    assert t.dtype == np.float32


def test_zero_and_setitem():
    t = tg.Tensor(np.ones((2, 3), np.float32))
    t[0] = 5
    t[1, 2] = tg.Tensor(9.0)
    np.testing.assert_array_equal(t.numpy(), [[5, 5, 5], [1, 1, 9]])
    t.zero_()
    np.testing.assert_array_equal(t.numpy(), np.zeros((2, 3)))


@pytest.mark.parametrize("op", [lambda w: w.add_(1), lambda w: w.mul_(2), lambda w: w.zero_(),
                                lambda w: w.fill_(1), lambda w: w.copy_(np.zeros(3, np.float32)),
                                lambda w: w.__setitem__(0, 1.0)])
def test_leaf_that_requires_grad_refused_with_grad_on_allowed_under_no_grad(op):
    w = tg.Tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        op(w)
    with tg.no_grad():
        op(w)
    assert w.is_leaf and w.requires_grad


def test_augmented_assignment_on_a_leaf_with_grad_on_is_refused_not_a_silent_new_non_leaf():
    w = tg.Tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        w *= 2


def test_augmented_assignment_inside_a_graph_keeps_the_gradient_right():
    x = tg.Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    y = x * 3
    y += x * x
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 + 2 * np.array([1.0, 2.0]))


def test_modified_after_saved_for_backward_raises():
    x = tg.Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    a = tg.Tensor(np.array([3.0, 4.0], np.float32))
    y = (x * a).sum()  # mul saves a for x's gradient
    a.mul_(10)
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_optimizer_step_then_backward_through_the_old_graph_raises():
    w = tg.Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    with tg.no_grad():
        w -= 0.5 * w.grad
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_detach_shares_the_version_counter():
    x = tg.Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    y = (x * x).sum()
    x.detach().add_(1)
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_clone_is_a_copy_in_the_graph():
    x = tg.Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    c = x.clone()
    assert c.data is not x.data
    (c * c).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    with tg.no_grad():
        c.add_(1)
    np.testing.assert_allclose(x.numpy(), [1.0, 2.0])


@pytest.mark.parametrize("op, err", [
    (lambda t: t.add_(np.ones((4, 3), np.float32)), ValueError),
    (lambda t: t.copy_(np.ones(4, np.float32)), ValueError),
    (lambda t: t.fill_(np.ones(2, np.float32)), ValueError),
])
def test_shape_errors_are_clear(op, err):
    t = tg.Tensor(np.ones((2, 3), np.float32))
    with pytest.raises(err, match="shape"):
        op(t)


def test_float_into_int_refused():
    t = tg.Tensor(np.arange(3))
    with pytest.raises(TypeError, match="dtype"):
        t.div_(2)
    with pytest.raises(TypeError, match="dtype"):
        t[0] = 0.5


def test_output_saved_for_backward_modified_raises():
    # Exp keeps its output for backward: changing it under no_grad gave a silently wrong gradient
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    out = w.exp()
    with tg.no_grad():
        out[0] = 0
    with pytest.raises(RuntimeError, match=r"the output of Exp \(shape \(2,\)\) was modified in place"):
        out.sum().backward()
    assert w.grad is None


@pytest.mark.parametrize("view", [lambda x: x.reshape(2), lambda x: x[0], lambda x: x.T, lambda x: x.detach()])
def test_change_through_a_view_raises(view):
    # a view made by an op shares the memory, so it shares the version counter too (as in PyTorch)
    w = tg.Tensor([[1.0, 2.0]], requires_grad=True)
    x = tg.Tensor([[3.0, 4.0]])
    y = (w * x).sum()
    v = view(x)
    v.mul_(100)
    assert x.version_counter[0] == 1
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_a_copy_does_not_share_the_counter():
    x = tg.Tensor([[3.0, 4.0]])
    c = x * 1
    c.add_(1)
    assert x.version_counter[0] == 0 and x.tolist() == [[3.0, 4.0]]


# ---------------------------------------------------------------- what an op keeps for backward

def _functions(cls=tg.autograd.Function):
    for sub in cls.__subclasses__():
        yield sub
        yield from _functions(sub)


def _arrays(value):
    """Every array reachable from an op's attributes (through tuples, lists and dicts)."""
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _arrays(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _arrays(v)


_X = np.random.default_rng(0).uniform(0.5, 2.0, (3, 4))
_Y = np.random.default_rng(1).uniform(0.5, 2.0, (3, 4))

# one call of each op that says it keeps its inputs' or its output's array out of backward
CALLS = {
    "Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b, "Div": lambda a, b: a / b,
    "Maximum": lambda a, b: a.maximum(b), "Where": lambda a, b: tg.where(a > b, a, b), "Neg": lambda a, b: -a,
    "Exp": lambda a, b: a.exp(), "Log": lambda a, b: a.log(), "Sqrt": lambda a, b: a.sqrt(),
    "Abs": lambda a, b: a.abs(), "Tanh": lambda a, b: a.tanh(), "ReLU": lambda a, b: (a - 1).relu(),
    "Sigmoid": lambda a, b: a.sigmoid(), "Clip": lambda a, b: a.clip(0.7, 1.5), "Cast": lambda a, b: a.astype("float32"),
    "Sum": lambda a, b: a.sum(axis=0), "Max": lambda a, b: a.max(axis=1), "LogSumExp": lambda a, b: a.logsumexp(axis=1),
    "Softmax": lambda a, b: a.softmax(axis=1), "LogSoftmax": lambda a, b: a.log_softmax(axis=1),
    "Reshape": lambda a, b: a.reshape(4, 3), "Permute": lambda a, b: a.transpose(1, 0),
    "Expand": lambda a, b: a.reshape(1, 3, 4).broadcast_to(2, 3, 4), "Pad": lambda a, b: a.pad(((1, 0), (0, 2))),
    "GetItem": lambda a, b: a[np.array([0, 2, 2])], "Concatenate": lambda a, b: tg.concatenate([a, b]),
    "MatMul": lambda a, b: a @ b.T, "Clone": lambda a, b: a.clone(),
    "Convolution": lambda a, b: F.conv2d(a.reshape(1, 1, 3, 4), b[:2, :2].reshape(1, 1, 2, 2)),
    "MaxPool": lambda a, b: F.max_pool2d(a.reshape(1, 1, 3, 4), 2, 1),
    "AvgPool": lambda a, b: F.avg_pool2d(a.reshape(1, 1, 3, 4), 2, 1),
    # the ops that second derivatives use (backward_graph)
    "Identity": lambda a, b: tg.higher_order.Identity.apply(a, copy=True),
    "Scatter": lambda a, b: tg.ops.Scatter.apply(a, shape=(4, 4), index=(slice(0, 3),)),
    "Im2Col": lambda a, b: tg.conv.Im2Col.apply(a.reshape(1, 1, 3, 4), windows=_windows()),
    "Col2Im": lambda a, b: tg.conv.Col2Im.apply(tg.concatenate([a, b]).reshape(1, 1, 2, 2, 2, 3),
                                                          windows=_windows()),
}


def _windows():
    return tg.conv.Windows(np, (1, 1, 3, 4), ((0, 0), (0, 0)), (2, 2), (1, 1), (1, 1))
# a kernel is checked under the name of the reference op it replaces (kernels.TABLE)
REFERENCE_OF = {row.kernel.__name__: row.reference.__name__ for row in tg.kernels.TABLE}


def test_every_op_that_keeps_less_has_a_call_here():
    lighter = {REFERENCE_OF.get(f.__name__, f.__name__) for f in _functions() if not (f.keeps_inputs and f.keeps_output)}
    assert lighter <= set(CALLS), sorted(lighter - set(CALLS))


@pytest.mark.parametrize("mode", ["fast", "reference"])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_what_an_op_says_it_does_not_keep_shares_no_memory_with_what_it_keeps(name, mode):
    a, b = tg.Tensor(_X.copy(), requires_grad=True), tg.Tensor(_Y.copy(), requires_grad=True)
    with tg.kernels.enabled() if mode == "fast" else tg.kernels.reference():
        out = CALLS[name](a, b)
    fn = out.grad_fn
    assert REFERENCE_OF.get(type(fn).__name__, type(fn).__name__) == name
    kept = [v for k, v in vars(fn).items() if k not in ("parents",)]
    kept = list(_arrays(kept))
    if not fn.keeps_inputs:
        assert not any(np.shares_memory(k, t.data) for k in kept for t in fn.parents), name
    if not fn.keeps_output:
        assert not any(np.shares_memory(k, out.data) for k in kept), name


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_change_after_the_op_either_leaves_its_gradient_right_or_raises(name):
    """Change the inputs (or the output) in place after the op: backward must give the gradient of
    the values the op saw, or refuse; never a third answer."""
    for change in ("inputs", "output"):
        a, b = tg.Tensor(_X.copy(), requires_grad=True), tg.Tensor(_Y.copy(), requires_grad=True)
        out = CALLS[name](a, b)
        upstream = np.random.default_rng(2).normal(size=out.shape)
        reference = [g.copy() for g in _gradients(name, upstream)]
        changed = list(out.grad_fn.parents) if change == "inputs" else [out]
        if not all(t.data.flags.writeable for t in changed):
            continue  # a broadcast view cannot be written at all
        with tg.no_grad():
            for t in changed:
                t.mul_(3).add_(1)
        try:
            (out * tg.Tensor(upstream)).sum().backward()
        except RuntimeError as error:
            assert "modified in place" in str(error)
            keeps = type(out.grad_fn).keeps_inputs if change == "inputs" else type(out.grad_fn).keeps_output
            assert keeps, f"{name} refused a change to its {change}, which it says backward does not read"
            continue
        got = [t.grad.numpy() if t.grad is not None else np.zeros_like(r) for t, r in zip((a, b), reference)]
        for g, r in zip(got, reference):
            np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12, err_msg=f"{name}, {change} changed")


def _gradients(name, upstream):
    a, b = tg.Tensor(_X.copy(), requires_grad=True), tg.Tensor(_Y.copy(), requires_grad=True)
    (CALLS[name](a, b) * tg.Tensor(upstream)).sum().backward()
    return [t.grad.numpy() if t.grad is not None else np.zeros_like(_X) for t in (a, b)]


def test_a_sum_does_not_keep_its_input_so_changing_it_is_allowed_as_in_pytorch():
    x = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = tg.Tensor(np.array([3.0, 4.0]))
    s = (x + y).sum()
    y.add_(10)  # neither + nor sum reads y in backward
    s.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])
