"""Autograd semantics: accumulation, shared inputs and diamonds, grad modes, detach, retain_graph,
very deep graphs, and which tensors may hold gradients."""
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor, enable_grad, is_grad_enabled, no_grad
from tinygrad_cnn.testing import gradcheck
from tinygrad_cnn.testing import strategies as S

from conftest import DEVICES

device_param = pytest.mark.parametrize("device", DEVICES)


def leaf(values, device="cpu"):
    return Tensor(np.asarray(values, dtype=np.float64), device=device, requires_grad=True)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---------------------------------------------------------------- accumulation

@device_param
def test_gradients_accumulate_across_backward_calls(device):
    x = leaf(rand(3, 2), device)
    (x * x).sum().backward()
    first = x.grad.numpy().copy()
    np.testing.assert_allclose(first, 2 * x.numpy())
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)
    x.zero_grad()
    assert x.grad is None
    x.tanh().sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1 - np.tanh(x.numpy()) ** 2)


def test_accumulated_grad_owns_its_memory():
    """The stored grad must not alias the upstream array nor another leaf's grad."""
    x, y = leaf(rand(3)), leaf(rand(3, seed=1))
    upstream = np.ones(3)
    (x + y).backward(upstream)
    upstream[:] = 7.0
    x.grad.data += 1.0
    np.testing.assert_array_equal(y.grad.numpy(), np.ones(3))
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 2.0))


def test_later_backward_calls_accumulate_in_place():
    """Like PyTorch: the same .grad array is updated; a read-only .grad set by hand still works."""
    x = leaf(rand(3))
    (x * 2.0).sum().backward()
    grad, array = x.grad, x.grad.data
    (x * 3.0).sum().backward()
    assert x.grad is grad and x.grad.data is array
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 5.0))
    x.grad = Tensor(np.broadcast_to(np.float64(1.0), (3,)))  # read-only memory
    (x * 2.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 3.0))


class _Fresh(tc.Function):
    """An op whose backward returns a new array and tells which (by id, so as not to hold it), or
    holds on to it (`kept`), or returns a view of a larger array."""
    made, kept = [], []

    def forward(self, x, mode="fresh"):
        self.mode = mode
        return x * 1.0

    def backward(self, grad):
        out = grad * 2.0
        if self.mode == "view":
            return self.xp.concatenate([out, out])[: out.shape[0]]
        if self.mode == "kept":
            _Fresh.kept.append(out)
        _Fresh.made.append(id(out))
        return out


@device_param
def test_a_first_gradient_nothing_else_holds_becomes_grad_without_a_copy(device):
    x = leaf(rand(3), device)
    _Fresh.apply(x).sum().backward()
    assert id(x.grad.data) == _Fresh.made[-1]  # the very array (alive, so the id is its own)
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 2.0))
    _Fresh.apply(x).sum().backward()  # and later gradients still add into it in place
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 4.0))


@device_param
@pytest.mark.parametrize("mode", ["kept", "view"])
def test_a_gradient_held_elsewhere_or_a_view_is_copied(device, mode):
    x = leaf(rand(3), device)
    _Fresh.apply(x, mode=mode).sum().backward()
    if mode == "kept":
        assert id(x.grad.data) != id(_Fresh.kept[-1])
        x.grad.data += 1.0
        np.testing.assert_array_equal(tc.device.to_numpy(_Fresh.kept[-1]), np.full(3, 2.0))
    assert x.grad.data.base is None  # its own memory
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 2.0 + (mode == "kept")))


@device_param
def test_a_leaf_given_its_own_upstream_gradient_copies_it(device):
    x = leaf(rand(3), device)
    upstream = Tensor(np.ones(3), device=device)
    x.backward(upstream)
    x.grad.data += 1.0
    np.testing.assert_array_equal(upstream.numpy(), np.ones(3))


@pytest.mark.gpu
def test_a_training_step_copies_no_gradient_it_can_keep():
    """A dense model's weight and bias gradients are kept as backward made them: no copy (a launch
    on a GPU) per parameter."""
    from tinygrad_cnn import autograd
    from tinygrad_cnn.nn import Dense, Sequential
    model = Sequential([Dense(4, activation="relu"), Dense(3)], input_shape=(5,))
    model.to("cuda")
    copies = []
    original = autograd.accumulate

    def spy(leaf, g, sole=False):
        copies.append(not sole)
        return original(leaf, g, sole)
    autograd.accumulate = spy
    try:
        model(Tensor(rand(2, 5).astype(np.float32), device="cuda")).sum().backward()
    finally:
        autograd.accumulate = original
    assert copies == [False] * 4


# ---------------------------------------------------------------- shared inputs and diamonds

@device_param
def test_tensor_used_twice(device):
    x = leaf(rand(4), device)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())


@pytest.mark.parametrize("build", [lambda x: x * (x * 2), lambda x: (x * 2) * x, lambda x: x * 2 * x,
                                   lambda x: (x + x) * x],
                         ids=["x*(2x)", "(2x)*x", "x*2*x", "(x+x)*x"])
def test_shared_input_in_either_operand_order(build):
    """d(2x^2)/dx = 4x however the graph is spelled (x * (2x) once lost a term)."""
    x = leaf(rand(5))
    build(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * x.numpy())


@device_param
def test_diamond_graph(device):
    x = leaf(rand(2, 3), device)
    y = x * 3.0            # one node, two consumers
    z = y.exp() + y * y    # d/dx = 3 exp(3x) + 18 x
    z.sum().backward()
    xv = x.numpy()
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.exp(3 * xv) + 18 * xv)
    assert y.grad is None, "only leaves keep .grad"


OPS = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b.tanh(), lambda a, b: (a * b).tanh(),
       lambda a, b: a.sigmoid() * b]


@st.composite
def random_dag(draw):
    shape = draw(S.shapes(max_dims=2, max_side=3))
    inputs = tuple(draw(S.arrays(shape, min_value=-2, max_value=2)) for _ in range(draw(st.integers(1, 3))))
    nodes = draw(st.lists(st.tuples(st.integers(0, len(OPS) - 1), st.integers(0, 99), st.integers(0, 99)),
                          min_size=1, max_size=10))
    return inputs, nodes


def evaluate_dag(inputs, nodes):
    values = list(inputs)
    for op, i, j in nodes:
        values.append(OPS[op](values[i % len(values)], values[j % len(values)]))
    out = values[-1]
    for v in values[:-1]:  # every node reaches the output, most of them along several paths
        out = out + v
    return out


@device_param
@given(dag=random_dag())
def test_random_dags_match_finite_differences(device, dag):
    inputs, nodes = dag
    assert gradcheck(lambda *ts: evaluate_dag(ts, nodes), [leaf(a, device) for a in inputs])


# ---------------------------------------------------------------- grad modes

def test_no_grad_context_builds_no_graph():
    x = leaf(rand(3))
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2
    assert is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()
    np.testing.assert_allclose(y.numpy(), 2 * x.numpy())


def test_no_grad_as_decorator():
    @no_grad()
    def step(t):
        assert not is_grad_enabled()
        return t * 2 + 1

    x = leaf(rand(3))
    y = step(x)
    assert not y.requires_grad and y.is_leaf
    assert is_grad_enabled()


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert is_grad_enabled()


def test_enable_grad_inside_no_grad():
    x = leaf(rand(3))
    with no_grad():
        with enable_grad():
            assert is_grad_enabled()
            y = x * x
        z = x * x
        assert not is_grad_enabled()
    assert y.requires_grad and not z.requires_grad
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())


def test_enable_grad_as_decorator():
    @enable_grad()
    def f(t):
        return t * t

    x = leaf(rand(3))
    with no_grad():
        y = f(x)
    assert y.requires_grad


# ---------------------------------------------------------------- detach

def test_detach_cuts_the_graph_and_shares_memory():
    x = leaf(rand(4))
    d = x.detach()
    assert not d.requires_grad and d.is_leaf
    assert np.shares_memory(d.data, x.data)
    (d * x).sum().backward()  # the gradient flows only through the second factor
    np.testing.assert_allclose(x.grad.numpy(), x.numpy())
    assert d.grad is None


def test_detach_of_an_intermediate():
    x = leaf(rand(4))
    y = x.exp()
    (y.detach() * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp(x.numpy()))


# ---------------------------------------------------------------- retain_graph

def test_second_backward_without_retain_graph_raises():
    x = leaf(rand(3))
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward_which_doubles_the_gradient():
    x = leaf(rand(3))
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    once = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * once)


def test_backward_frees_saved_arrays_unless_retained():
    x = leaf(rand(3))
    y = x.exp() * x
    ctx = y.grad_fn
    assert "a" in vars(ctx) and "b" in vars(ctx)
    y.sum().backward(retain_graph=True)
    assert "a" in vars(ctx), "retain_graph=True keeps what forward saved"
    y.sum().backward()
    assert "a" not in vars(ctx) and "b" not in vars(ctx)
    assert ctx.parents[1] is x, "the graph structure stays"


# ---------------------------------------------------------------- very deep graphs

def test_backward_through_50000_ops_does_not_recurse():
    depth = 50_000
    assert sys.getrecursionlimit() < depth, "the test only means something below the recursion limit"
    x = leaf(np.array([1.5, -2.0]))
    y = x
    for _ in range(depth):
        y = y * 1.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(2))  # d(x * 1 * 1 ...)/dx = 1, exactly
    del y  # tearing the chain down must not recurse either


def test_deep_float32_chain_keeps_dtype():
    x = Tensor(np.array([0.25], dtype=np.float32), requires_grad=True)
    y = x
    for _ in range(2_000):
        y = y + 0.0
    y.backward(np.ones(1, dtype=np.float32))
    assert x.grad.dtype == np.float32 and x.grad.item() == 1.0


# ---------------------------------------------------------------- who gets a gradient

def test_int_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(TypeError, match="int64"):
        Tensor([1, 2, 3]).requires_grad_()
    with pytest.raises(TypeError):
        tc.zeros(2, dtype=np.int32, requires_grad=True)


def test_int_operand_gets_no_gradient():
    x = leaf(rand(3))
    k = Tensor(np.array([1, 2, 3]))
    (x * k).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.array([1.0, 2.0, 3.0]))
    assert k.grad is None and not k.requires_grad


def test_constant_operand_gets_no_gradient_and_its_backward_is_skipped():
    calls = []

    class Spy(tc.Function):
        def forward(self, a, b):
            return a * b

        def backward(self, g):
            calls.append(self.needs_input_grad)
            return g * 2, None

    x, c = leaf(rand(3)), Tensor(rand(3, seed=1))
    Spy.apply(x, c).sum().backward()
    assert calls == [(True, False)]
    assert c.grad is None
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 2.0))


def test_result_requires_grad_iff_an_input_does():
    x, c = leaf(rand(3)), Tensor(rand(3))
    assert (x + c).requires_grad and (c + x).requires_grad
    assert not (c + c).requires_grad
    assert (c + c).is_leaf


def test_requires_grad_false_on_an_op_result_is_refused():
    x = leaf(rand(3))
    with pytest.raises(RuntimeError, match="detach"):
        (x * 2).requires_grad_(False)
    assert x.requires_grad_(False) is x and not x.requires_grad


@device_param
def test_broadcast_gradients_are_summed_back(device):
    x, y = leaf(rand(3, 1), device), leaf(rand(4), device)
    (x + y).sum().backward()
    assert x.grad.shape == (3, 1) and y.grad.shape == (4,)
    np.testing.assert_array_equal(x.grad.numpy(), np.full((3, 1), 4.0))  # each x[i] meets 4 y's
    np.testing.assert_array_equal(y.grad.numpy(), np.full(4, 3.0))


def test_backward_with_an_explicit_gradient():
    x = leaf(rand(2, 3))
    g = rand(2, 3, seed=4)
    (x * 3.0).backward(Tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), 3 * g)
    x.zero_grad()
    (x * 3.0).backward(g)  # a bare array works too
    np.testing.assert_allclose(x.grad.numpy(), 3 * g)
