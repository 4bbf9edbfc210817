"""In-place ops as PyTorch has them (issue 12 item 2): they mutate the same object and memory, refuse to
change what autograd tracks, and a change after an op saved its input makes backward raise."""
import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import nn


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
    assert x._version[0] == 1
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_a_copy_does_not_share_the_counter():
    x = tg.Tensor([[3.0, 4.0]])
    c = x * 1
    c.add_(1)
    assert x._version[0] == 0 and x.tolist() == [[3.0, 4.0]]
