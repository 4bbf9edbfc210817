"""gradcheck must catch wrong backwards: plant one bug per op and watch it fail, with a message that
names the input, the index, and the analytic and numeric values; fast_mode must catch them too.
The softmax bug also shows why a check through `.sum()` is worthless: d/dx sum(softmax(x)) = 0."""
import re

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_cnn as tc
from tinygrad_cnn import Function, Tensor, ops
from tinygrad_cnn.testing import GradcheckError, gradcheck
from tinygrad_cnn.testing import strategies as S

from conftest import DEVICES

# ---------------------------------------------------------------- planted bugs


class SigmoidMissingOneMinus(Function):
    """Correct forward; backward forgets the (1 - out) factor."""
    def forward(self, x):
        self.out = 0.5 * self.xp.tanh(0.5 * x) + 0.5
        return self.out

    def backward(self, g):
        return g * self.out


class MatMulTransposedGrad(Function):
    """Correct forward; both gradients come back transposed (same shape for square matrices)."""
    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        return (g @ self.b.T).T, (self.a.T @ g).T


class SoftmaxZeroGrad(Function):
    """Correct forward; backward returns zeros."""
    def forward(self, x):
        e = self.xp.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def backward(self, g):
        return self.xp.zeros_like(g)


class MulWrongSecondGrad(Function):
    """The gradient for the first input is right, for the second it uses b instead of a."""
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        return g * self.b, g * self.b


class ExpNaNGrad(Function):
    def forward(self, x):
        return self.xp.exp(x)

    def backward(self, g):
        return g * self.xp.nan


def square_pair(n_min=2):
    """Two tie-free square matrices: with n >= 2 a transposed gradient has the right shape but wrong values."""
    return st.integers(n_min, 4).flatmap(lambda n: st.tuples(S.tie_free_arrays((n, n)), S.tie_free_arrays((n, n))))


def rows(min_last=2):
    """Arrays whose last axis has >= 2 elements (softmax over one element is constant, its gradient 0)."""
    return S.shapes(min_dims=1, max_dims=3, max_side=4).filter(lambda s: s[-1] >= min_last).flatmap(S.arrays)


# name: (wrong op, correct op, strategy of input tuples)
PLANTED = {
    "sigmoid_without_one_minus": (SigmoidMissingOneMinus.apply, lambda x: x.sigmoid(),
                                  S.shapes(max_side=4).flatmap(S.arrays).map(lambda a: (a,))),
    "matmul_gradient_transposed": (MatMulTransposedGrad.apply, lambda a, b: a @ b, square_pair()),
    "softmax_backward_zeros": (SoftmaxZeroGrad.apply, lambda x: x.softmax(-1), rows().map(lambda a: (a,))),
    "mul_wrong_second_gradient": (MulWrongSecondGrad.apply, lambda a, b: a * b,
                                  S.shapes(max_side=4).flatmap(lambda s: st.tuples(
                                      S.away_from(S.arrays(s), margin=0.3), S.away_from(S.arrays(s), margin=0.3)))
                                  .filter(lambda ab: np.abs(ab[0] - ab[1]).max() > 0.1)),
}
planted_param = pytest.mark.parametrize("name", sorted(PLANTED))


def _tensors(arrays, device):
    return [Tensor(a, device=device, requires_grad=True) for a in arrays]


@pytest.mark.parametrize("device", DEVICES)
@planted_param
@given(data=st.data())
def test_gradcheck_catches_planted_bug(name, device, data):
    wrong, right, inputs = PLANTED[name]
    arrays = data.draw(inputs, label="inputs")
    assert gradcheck(right, _tensors(arrays, device)), "control: the correct op must pass"
    with pytest.raises(GradcheckError, match=r"input \d+ \(shape .*\) at index \(.*\): analytic .*, numeric"):
        gradcheck(wrong, _tensors(arrays, device))


FIXED = {  # deterministic inputs for fast mode, large enough that a random direction cannot miss
    "sigmoid_without_one_minus": lambda rng: (rng.standard_normal((3, 4)),),
    "matmul_gradient_transposed": lambda rng: (rng.standard_normal((4, 4)), rng.standard_normal((4, 4))),
    "softmax_backward_zeros": lambda rng: (rng.standard_normal((3, 4)),),
    "mul_wrong_second_gradient": lambda rng: (rng.standard_normal((3, 4)), rng.standard_normal((3, 4))),
}


@pytest.mark.parametrize("device", DEVICES)
@planted_param
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_mode_catches_planted_bug(name, device, seed):
    wrong, right, _ = PLANTED[name]
    arrays = FIXED[name](np.random.default_rng(seed))
    assert gradcheck(right, _tensors(arrays, device), fast_mode=True, seed=seed)
    with pytest.raises(GradcheckError, match=r"fast mode.*input \d.*directional derivative analytic .*, numeric"):
        gradcheck(wrong, _tensors(arrays, device), fast_mode=True, seed=seed)


# ---------------------------------------------------------------- why not .sum()

@given(x=rows())
def test_sum_scalarisation_misses_softmax_zero_backward(x):
    """Through .sum() the broken softmax passes (sum(softmax) is the constant 1, so both gradients are
    0); with gradcheck's random upstream it fails."""
    assert gradcheck(lambda t: SoftmaxZeroGrad.apply(t).sum(), [Tensor(x, requires_grad=True)])
    t = Tensor(x, requires_grad=True)
    SoftmaxZeroGrad.apply(t).sum().backward()
    numeric_zero = Tensor(x, requires_grad=True)
    numeric_zero.softmax(-1).sum().backward()
    np.testing.assert_allclose(numeric_zero.grad.numpy(), t.grad.numpy(), atol=1e-12)  # the bug is invisible
    with pytest.raises(GradcheckError):
        gradcheck(SoftmaxZeroGrad.apply, [Tensor(x, requires_grad=True)])


# ---------------------------------------------------------------- the message

MESSAGE = re.compile(r"input (\d+) \(shape \(([\d, ]*)\)\) at index \(([\d, ]*)\): "
                     r"analytic (\S+), numeric (\S+) \(atol=.*; (\d+) of (\d+) elements disagree\)")


def _parse(message):
    m = MESSAGE.search(message)
    assert m, f"unexpected gradcheck message: {message}"
    tup = lambda s: tuple(int(v) for v in s.replace(" ", "").split(",") if v)  # noqa: E731
    return int(m[1]), tup(m[2]), tup(m[3]), float(m[4]), float(m[5]), int(m[6]), int(m[7])


def _vjp(fn, arrays, upstream):
    """Gradients of fn at arrays for one upstream, via backward."""
    ts = _tensors(arrays, "cpu")
    fn(*ts).backward(upstream)
    return [t.grad.numpy() for t in ts]


@pytest.mark.parametrize("name", ["sigmoid_without_one_minus", "matmul_gradient_transposed",
                                  "mul_wrong_second_gradient"])
def test_message_names_input_index_and_the_true_values(name):
    """fn = sum(op(x) * w) has a scalar output, so gradcheck's upstream is one number u: the analytic
    value it reports must be u * wrong[idx] and the numeric one u * right[idx], for the same u."""
    wrong, right, _ = PLANTED[name]
    rng = np.random.default_rng(3)
    arrays = FIXED[name](rng)
    w = rng.standard_normal(right(*[Tensor(a) for a in arrays]).shape)
    weighted = lambda op: (lambda *ts: (op(*ts) * Tensor(w)).sum())  # noqa: E731
    with pytest.raises(GradcheckError) as info:
        gradcheck(weighted(wrong), _tensors(arrays, "cpu"))
    i, shape, index, analytic, numeric, bad_count, size = _parse(str(info.value))
    expected_input = 1 if name == "mul_wrong_second_gradient" else 0
    assert i == expected_input and shape == arrays[i].shape and size == arrays[i].size
    assert 1 <= bad_count <= size and len(index) == arrays[i].ndim
    wrong_grad = _vjp(wrong, arrays, w)[i][index]
    right_grad = _vjp(right, arrays, w)[i][index]
    assert not np.isclose(wrong_grad, right_grad)
    u = analytic / wrong_grad
    assert np.isclose(numeric, u * right_grad, rtol=1e-5), (analytic, numeric, wrong_grad, right_grad)


@pytest.mark.parametrize("fast_mode", [False, True])
def test_undefined_numeric_derivative_fails_instead_of_passing(fast_mode):
    """log at 1e-7 with eps=1e-6 evaluates log of a negative number: the numeric value is NaN,
    and a NaN must never count as agreement (a wrong backward would hide behind it)."""
    x = Tensor(np.array([1.0, 1e-7]), requires_grad=True)
    with np.errstate(invalid="ignore"), pytest.raises(GradcheckError, match="nan"):
        gradcheck(lambda t: t.log(), [x], fast_mode=fast_mode)


def test_non_finite_gradient_is_reported():
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(ExpNaNGrad.apply, [Tensor(np.ones((2, 2)), requires_grad=True)])


# ---------------------------------------------------------------- gradcheck's own contract

def test_fast_mode_needs_two_evaluations_per_input_not_per_element():
    calls = []

    def fn(a, b):
        calls.append(1)
        return (a * b).tanh()

    a, b = np.random.default_rng(0).standard_normal((2, 3, 4))
    gradcheck(fn, [Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)], fast_mode=True)
    assert len(calls) == 1 + 2 * 2
    calls.clear()
    gradcheck(fn, [Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)])
    assert len(calls) == 1 + 2 * (a.size + b.size)


def test_constant_inputs_are_not_checked():
    """Only inputs with requires_grad=True are checked: a wrong gradient for a constant is never seen."""
    a, b = np.random.default_rng(0).standard_normal((2, 3))
    assert gradcheck(MulWrongSecondGrad.apply, [Tensor(a, requires_grad=True), Tensor(b)])
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(MulWrongSecondGrad.apply, [Tensor(a), Tensor(b, requires_grad=True)])


def test_gradcheck_leaves_the_callers_tensors_alone():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    before = x.numpy().copy()
    gradcheck(lambda t: t.exp(), [x])
    np.testing.assert_array_equal(x.numpy(), before)
    assert x.grad is None


@pytest.mark.parametrize("make", [
    lambda a: a.T,                                  # non-contiguous: must be perturbed element by element
    lambda a: np.broadcast_to(a[0], a.shape),       # read-only view: must be checked on a copy
    lambda a: a[0, 0],                              # a NumPy scalar
    lambda a: np.asfortranarray(a),
], ids=["transposed", "read-only", "numpy-scalar", "fortran"])
def test_gradcheck_handles_any_layout_of_a_float64_leaf(make):
    x = Tensor(make(np.random.default_rng(0).standard_normal((3, 4))), requires_grad=True)
    assert gradcheck(lambda t: (t * 2.0).tanh(), [x])
    with pytest.raises(GradcheckError):
        gradcheck(SigmoidMissingOneMinus.apply, [x])


def test_float64_parameters_are_checked_in_place_and_their_grad_restored():
    """fn may ignore its arguments and read the parameters from elsewhere (a model)."""
    rng = np.random.default_rng(1)
    w = Tensor(rng.standard_normal((3, 2)), requires_grad=True)
    x = Tensor(rng.standard_normal((4, 3)))
    w.grad = Tensor(np.full((3, 2), 7.0))
    before = w.numpy().copy()
    assert gradcheck(lambda *_: (x @ w).tanh(), [w])
    with pytest.raises(GradcheckError):
        gradcheck(lambda *_: SigmoidMissingOneMinus.apply(x @ w), [w])
    np.testing.assert_array_equal(w.numpy(), before)
    np.testing.assert_array_equal(w.grad.numpy(), np.full((3, 2), 7.0))


def test_gradcheck_runs_float32_inputs_in_float64():
    x = Tensor(np.linspace(-1, 1, 6, dtype=np.float32), requires_grad=True)
    seen = []
    assert gradcheck(lambda t: seen.append(t.dtype) or t.tanh(), [x])
    assert set(seen) == {np.dtype(np.float64)}


def test_gradcheck_rejects_a_downcasting_function():
    with pytest.raises(GradcheckError, match="float32"):
        gradcheck(lambda t: t.astype(tc.float32), [Tensor(np.ones(3), requires_grad=True)])


def test_float32_output_message_names_both_causes_and_the_fix():
    # The usual cause: fn reads float32 parameters from a model, not the float64 copies it is given.
    tc.manual_seed(0)
    layer = tc.nn.Dense(3)
    layer.build((4,))
    batch = Tensor(np.random.default_rng(0).standard_normal((5, 4)))
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda *params: layer(batch).tanh(), layer.parameters())
    message = str(info.value)
    assert "fn returned float32 from float64 inputs" in message
    assert "a model's parameters" in message and "an op in fn casts down to float32" in message
    assert "float64 leaf tensors" in message and "checked in place" in message
    for p in layer.parameters():  # the fix the message gives
        p.data = p.data.astype("float64")
    assert gradcheck(lambda *params: layer(batch).tanh(), layer.parameters())


def test_gradcheck_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="requires_grad"):
        gradcheck(lambda t: t.exp(), [Tensor(np.ones(3))])


def test_gradcheck_needs_a_tensor_result():
    with pytest.raises(TypeError, match="Tensor"):
        gradcheck(lambda t: t.numpy(), [Tensor(np.ones(3), requires_grad=True)])


def test_library_ops_pass_where_planted_ones_fail():
    """The engine's own Mul and Sigmoid pass on the inputs the planted versions fail on."""
    x = np.random.default_rng(5).standard_normal((3, 4))
    assert gradcheck(ops.Sigmoid.apply, [Tensor(x, requires_grad=True)])
    assert gradcheck(ops.Mul.apply, [Tensor(x, requires_grad=True), Tensor(x[::-1].copy(), requires_grad=True)])


# ---------------------------------------------------------------- gradcheck's random stream

@pytest.mark.parametrize("seed", [0, 1, 7])
def test_a_transposed_matmul_gradient_on_a_times_a_is_caught_with_inputs_from_default_rng(seed):
    """Inputs drawn from default_rng(seed), as tests do. If gradcheck drew its upstream gradient from
    default_rng(seed) too, u would equal A, and for u == A the transposed gradient of A @ A is the
    right one: the bug passed with seed 0 (checked)."""
    a = np.random.default_rng(seed).standard_normal((4, 4))
    for fast_mode in (False, True):
        assert gradcheck(lambda t: t @ t, [Tensor(a, requires_grad=True)], fast_mode=fast_mode, seed=seed)
        with pytest.raises(GradcheckError):
            gradcheck(lambda t: MatMulTransposedGrad.apply(t, t), [Tensor(a, requires_grad=True)],
                      fast_mode=fast_mode, seed=seed)


def test_the_random_stream_is_independent_of_the_global_and_default_generators():
    from tinygrad_cnn.testing.gradcheck import independent_stream
    drawn = independent_stream(0).standard_normal(8)
    np.random.seed(0)
    others = [np.random.default_rng(0).standard_normal(8), np.random.standard_normal(8),
              np.random.default_rng([0]).standard_normal(8)]
    others += [g.standard_normal(8) for g in np.random.default_rng(0).spawn(4)]
    for other in others:
        assert np.abs(drawn - other).min() > 0, "gradcheck's stream shares numbers with another generator"
    np.testing.assert_array_equal(drawn, independent_stream(0).standard_normal(8))  # but it is reproducible
    # and gradcheck itself neither reads nor moves the global generators
    state, tc_state = np.random.get_state()[1].copy(), tc.get_rng().bit_generator.state
    gradcheck(lambda t: t.tanh(), [Tensor(np.ones(3), requires_grad=True)], fast_mode=True)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    assert tc.get_rng().bit_generator.state == tc_state


class ScaleOneElement(Function):
    """Correct except for one element of the gradient, scaled: an error a single direction can miss."""
    def forward(self, x):
        return x * 1.0

    def backward(self, g):
        g = g.copy()
        g.reshape(-1)[0] *= 1.05
        return g


def test_more_directions_evaluate_more_and_catch_what_one_direction_misses():
    x = np.random.default_rng(3).standard_normal((20, 20))
    calls = []

    def counted(t):
        calls.append(1)
        return ScaleOneElement.apply(t)

    # one direction misses a 5% error in one of 400 elements for about half the seeds (11 of 20)
    passed = 0
    for seed in range(20):
        try:
            passed += gradcheck(counted, [Tensor(x, requires_grad=True)], fast_mode=True, seed=seed)
        except GradcheckError:
            pass
    assert passed >= 10
    calls.clear()
    with pytest.raises(GradcheckError, match=r"direction \d+ of 400"):
        gradcheck(counted, [Tensor(x, requires_grad=True)], fast_mode=True, n_directions=400)
    assert len(calls) <= 1 + 2 * 400
    calls.clear()
    assert gradcheck(lambda t: t * 1.0, [Tensor(x, requires_grad=True)], fast_mode=True, n_directions=3)
    with pytest.raises(ValueError, match="n_directions"):
        gradcheck(lambda t: t * 1.0, [Tensor(x, requires_grad=True)], fast_mode=True, n_directions=0)
