"""Anomaly mode (tg.detect_anomaly): the first NaN or infinity is named by the op that made it, in
forward or backward, with the line of this file that created the op; a value that was already bad
in an input is blamed on the input; with the mode off nothing is checked and nothing changes."""
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn import AnomalyError, Function, Tensor, anomaly
from tinygrad_cnn.nn import functional as F
from tinygrad_cnn.testing import strategies as S

from conftest import DEVICES, EMULATED

# NOTE: NumPy warns on log(0), 0/0, sqrt(-1) and overflow; the point here is what anomaly mode says
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture(autouse=True)
def _mode_off_after_each_test():
    assert not tg.is_anomaly_enabled()
    yield
    tg.set_detect_anomaly(False)


def next_line():
    """The line number after the caller's line: the op under test is created there."""
    return sys._getframe(1).f_lineno + 1


# ---------------------------------------------------------------- custom user ops

class InfForward(Function):
    """A user op whose forward overflows: x * 1e308 in float64."""
    def forward(self, x):
        return x * 1e308 * 10

    def backward(self, g):
        return g * 1e309


class NanBackward(Function):
    """A user op whose forward is fine and whose backward returns NaN."""
    def forward(self, x):
        return 2 * x

    def backward(self, g):
        return g * self.xp.nan


class BadSecondGradient(Function):
    """a * b, whose gradient for b (input 1) is NaN and for a is right."""
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        return g * self.b, g * self.xp.nan


# ---------------------------------------------------------------- forward

FORWARD_CASES = [  # (op name, the op on x, x, non-finite count)
    ("Log", lambda x: x.log(), [0.0, 1.0, 2.0], "1 of 3 values non-finite (0 nan, 1 inf)"),
    ("Div", lambda x: x / x, [0.0, 1.0, 2.0], "1 of 3 values non-finite (1 nan, 0 inf)"),
    ("Sqrt", lambda x: x.sqrt(), [-1.0, -4.0, 2.0], "2 of 3 values non-finite (2 nan, 0 inf)"),
    ("Exp", lambda x: x.exp(), [100.0, 1.0, 89.0], "2 of 3 values non-finite (0 nan, 2 inf)"),
    ("Pow", lambda x: x ** -1.0, [0.0, 1.0, 2.0], "1 of 3 values non-finite (0 nan, 1 inf)"),
    ("InfForward", InfForward.apply, [1.0, 0.0, -1.0], "2 of 3 values non-finite (0 nan, 2 inf)"),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op, make, values, count", FORWARD_CASES, ids=[c[0] for c in FORWARD_CASES])
def test_forward_names_the_op_that_made_the_first_non_finite_value(device, op, make, values, count):
    dtype = np.float64 if op == "InfForward" else np.float32
    x = Tensor(np.array(values, dtype=dtype), device=device, requires_grad=True)
    with tg.detect_anomaly():
        with pytest.raises(AnomalyError) as caught:
            make(x)
    e = caught.value
    assert (e.op, e.phase, e.index) == (op, "forward", 0)
    message = str(e)
    assert f"{op} forward made output 0 non-finite from finite inputs" in message
    assert count in message
    assert f"inputs [0: (3,) {np.dtype(dtype)}" in message and f"-> output (3,) {np.dtype(dtype)}" in message
    assert e.site.startswith(__file__ + ":")


def test_the_site_is_the_line_of_user_code_that_created_the_op():
    x = Tensor([0.0, 1.0])
    with tg.detect_anomaly():
        with pytest.raises(AnomalyError) as caught:
            line = next_line()
            x.log()
    assert caught.value.site == f"{__file__}:{line}"
    assert f"created at {__file__}:{line} in test_the_site_is_the_line_of_user_code_that_created_the_op" \
        in str(caught.value)
    assert "x.log()" in str(caught.value)  # the source line is quoted


@pytest.mark.parametrize("mode, op", [("fast", "FusedLinear"), ("reference", "Linear")])
def test_a_layer_is_named_by_the_op_that_ran_and_the_site_is_the_model_call(mode, op):
    """Frames inside tinygrad_cnn (Sequential, Dense, functional) are skipped: the site is the
    line here that called the model. The op named is the one that ran: the kernel in the fast mode."""
    model = tg.nn.Sequential([tg.nn.Dense(3)], input_shape=(2,))
    model.layers[0].weight.data[...] = 3e38
    x = Tensor(np.ones((4, 2), dtype=np.float32))
    with tg.detect_anomaly(), (tg.kernels.enabled() if mode == "fast" else tg.kernels.reference()):
        with pytest.raises(AnomalyError) as caught:
            line = next_line()
            model(x)
    assert caught.value.op == op and caught.value.phase == "forward"
    assert caught.value.site == f"{__file__}:{line}"
    assert "inputs [0: (4, 2) float32, 1: (3, 2) float32, 2: (3,) float32] -> output (4, 3) float32" \
        in str(caught.value)


@pytest.mark.kernels  # names the kernel that ran (FusedConvolution)
def test_conv2d_overflow_is_named_conv2d():
    x = Tensor(np.full((1, 1, 4, 4), 1e30, dtype=np.float32))
    w = Tensor(np.full((2, 1, 3, 3), 1e30, dtype=np.float32), requires_grad=True)
    with tg.detect_anomaly():
        with pytest.raises(AnomalyError) as caught:
            F.conv2d(x, w)
    assert (caught.value.op, caught.value.phase) == ("FusedConvolution", "forward")
    assert "8 of 8 values non-finite (0 nan, 8 inf)" in str(caught.value)


def test_the_first_bad_op_is_blamed_not_a_later_one():
    x = Tensor([0.0, 1.0], requires_grad=True)
    with tg.detect_anomaly():
        y = x * 1.0                       # finite
        with pytest.raises(AnomalyError) as caught:
            (y.log() * 2).sum()           # Log makes -inf; Mul and Sum would carry it on
    assert caught.value.op == "Log"


# ---------------------------------------------------------------- inputs that were already bad

@pytest.mark.parametrize("device", DEVICES)
def test_a_nan_in_the_data_is_blamed_on_the_input_not_the_first_op(device):
    x = Tensor(np.array([np.nan, 1.0, 2.0], dtype=np.float32), device=device)
    with tg.detect_anomaly():
        with pytest.raises(AnomalyError) as caught:
            x * 2
    e = caught.value
    assert (e.op, e.phase, e.index) == ("Mul", "input", 0)
    assert "input 0 of Mul was already non-finite (a leaf/data tensor)" in str(e)
    assert "1 of 3 values non-finite (1 nan, 0 inf)" in str(e)
    assert "the op is not to blame" in str(e)


def test_the_bad_input_index_is_named():
    a = Tensor([1.0, 2.0])
    b = Tensor([1.0, np.inf])
    with tg.detect_anomaly():
        with pytest.raises(AnomalyError) as caught:
            a + b
    assert (caught.value.phase, caught.value.index) == ("input", 1)
    assert "input 1 of Add was already non-finite" in str(caught.value)


def test_a_value_made_before_the_mode_was_on_names_the_op_that_made_it():
    y = Tensor([0.0, 1.0], requires_grad=True).log()   # -inf, unchecked: the mode is off
    with tg.detect_anomaly():
        with pytest.raises(AnomalyError) as caught:
            y * 2
    assert caught.value.phase == "input"
    assert "input 0 of Mul was already non-finite (the output of Log, made while anomaly mode was off" \
        in str(caught.value)


def test_an_input_that_is_bad_but_gives_a_finite_output_raises_nothing():
    """A masked infinity (relu of -inf is 0) is not an anomaly: only bad outputs are."""
    x = Tensor([-np.inf, 1.0], requires_grad=True)
    with tg.detect_anomaly():
        y = x.relu()
    np.testing.assert_array_equal(y.numpy(), [0.0, 1.0])


# ---------------------------------------------------------------- backward

@pytest.mark.parametrize("device", DEVICES)
def test_sqrt_at_zero_is_named_in_backward_with_its_forward_site(device):
    x = Tensor(np.array([0.0, 4.0], dtype=np.float32), device=device, requires_grad=True)
    with tg.detect_anomaly():
        line = next_line()
        y = x.sqrt()                      # finite: sqrt(0) = 0
        loss = (y * 3).sum()
        with pytest.raises(AnomalyError) as caught:
            loss.backward()               # d sqrt / dx at 0 is inf
    e = caught.value
    assert (e.op, e.phase, e.index) == ("Sqrt", "backward", 0)
    message = str(e)
    assert "Sqrt backward returned a non-finite gradient for input 0 from a finite incoming gradient" in message
    assert "1 of 2 values non-finite (0 nan, 1 inf)" in message
    assert "inputs [0: (2,) float32] -> output (2,) float32, incoming gradient (2,) float32" in message
    assert e.site == f"{__file__}:{line}"


def test_the_first_backward_that_goes_bad_is_blamed_not_the_ones_below_it():
    x = Tensor([0.0, 1.0], requires_grad=True)
    with tg.detect_anomaly():
        y = (x * 3).sqrt()
        loss = (y * y).sum()              # backward: 2y = 0 reaches Sqrt, 0 / 0 = nan; Mul below would carry it
        with pytest.raises(AnomalyError) as caught:
            loss.backward()
    assert (caught.value.op, caught.value.phase) == ("Sqrt", "backward")
    assert "1 of 2 values non-finite (1 nan, 0 inf)" in str(caught.value)


@pytest.mark.parametrize("device", DEVICES)
def test_a_custom_function_whose_backward_returns_nan_is_named(device):
    x = Tensor(np.ones(3), device=device, requires_grad=True)
    with tg.detect_anomaly():
        line = next_line()
        y = NanBackward.apply(x)
        with pytest.raises(AnomalyError) as caught:
            y.sum().backward()
    assert (caught.value.op, caught.value.phase, caught.value.index) == ("NanBackward", "backward", 0)
    assert caught.value.site == f"{__file__}:{line}"
    assert "3 of 3 values non-finite (3 nan, 0 inf)" in str(caught.value)


def test_the_input_whose_gradient_went_bad_is_named():
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0], requires_grad=True)
    with tg.detect_anomaly():
        y = BadSecondGradient.apply(a, b)
        with pytest.raises(AnomalyError) as caught:
            y.sum().backward()
    assert (caught.value.op, caught.value.index) == ("BadSecondGradient", 1)
    assert "gradient for input 1" in str(caught.value)


def test_a_bad_gradient_for_an_input_that_needs_none_is_ignored():
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0])               # no gradient wanted: its NaN gradient is never used
    with tg.detect_anomaly():
        BadSecondGradient.apply(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [3.0, 4.0])


def test_a_non_finite_gradient_given_to_backward_is_named_as_such():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with tg.detect_anomaly():
        y = x * 2
        with pytest.raises(AnomalyError) as caught:
            y.backward(Tensor([np.nan, 1.0]))
    assert caught.value.phase == "input"
    assert "the gradient given to backward() is non-finite: 1 of 2 values non-finite" in str(caught.value)


def test_an_overflow_when_a_broadcast_gradient_is_summed_back_is_reported():
    """Mul's backward returns two finite 3e38s for a (1,) input; summing them back to (1,) gives inf."""
    a = Tensor(np.ones(1, dtype=np.float32), requires_grad=True)
    b = Tensor(np.full(2, 3e38, dtype=np.float32))
    with tg.detect_anomaly():
        y = a * b                          # finite: 3e38 each
        with pytest.raises(AnomalyError) as caught:
            y.backward(tg.ones_like(y))
    assert caught.value.phase == "backward"
    assert "the gradient reaching a leaf tensor of shape (1,) is non-finite" in str(caught.value)
    assert "overflowed" in str(caught.value)


# ---------------------------------------------------------------- off: nothing checked, nothing changed

def test_off_mode_raises_nothing_and_gives_numpys_values():
    x = Tensor([0.0, 4.0], requires_grad=True)
    y = x.sqrt()
    y.sum().backward()
    np.testing.assert_array_equal(y.numpy(), [0.0, 2.0])
    np.testing.assert_array_equal(x.grad.numpy(), [np.inf, 0.25])
    np.testing.assert_array_equal(Tensor([0.0]).log().numpy(), [-np.inf])
    np.testing.assert_array_equal(NanBackward.apply(x).numpy(), [0.0, 8.0])


def test_off_mode_captures_no_stack_and_scans_no_array(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("anomaly code ran with the mode off")
    for name in ("creation_site", "check_forward", "check_incoming", "check_backward", "_is_finite"):
        monkeypatch.setattr(anomaly, name, refuse)
    x = Tensor([0.0, 4.0], requires_grad=True)
    y = x.sqrt()
    (y * 2).sum().backward()
    assert not hasattr(y.grad_fn, "anomaly_site")


@pytest.mark.skipif(not EMULATED, reason="counts syncs on the CuPy emulation")
def test_on_the_emulated_gpu_off_mode_adds_no_sync_and_on_mode_one_per_check():
    from cupy_emulation import record
    for mode, forward_syncs, backward_syncs in ((False, 0, 0), (True, 2, 6)):
        x = Tensor(np.ones(3, dtype=np.float32), device="cuda", requires_grad=True)
        with tg.set_detect_anomaly(mode):
            with record() as forward:
                loss = (x * x).sum()           # two ops: Mul, Sum
            with record() as backward:
                loss.backward()                # 3 gradients reach a node (loss, x*x, x), 3 returned (Sum; Mul, one per input)
        assert (forward.syncs, backward.syncs) == (forward_syncs, backward_syncs), mode
        np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])


@pytest.mark.skipif(not EMULATED, reason="needs a second (emulated) GPU")
def test_on_a_second_gpu_the_checks_run_on_that_gpu():
    """CuPy refuses an array of another device than the current one: the checks make it current."""
    x = Tensor(np.array([0.0, 4.0], dtype=np.float32), device="cuda:1", requires_grad=True)
    with tg.detect_anomaly():
        y = x.sqrt()
        with pytest.raises(AnomalyError) as caught:
            y.sum().backward()
        assert caught.value.op == "Sqrt"
        with pytest.raises(AnomalyError) as caught:
            x.log()
        assert caught.value.op == "Log"


def _model_values(x, w, device):
    """A small graph of many ops; its outputs and gradients, as NumPy arrays."""
    xt = Tensor(x, device=device, requires_grad=True)
    wt = Tensor(w, device=device, requires_grad=True)
    h = (xt @ wt).tanh()
    z = (h * h + 1).log() + (h.exp() / (1 + h * h)).sqrt() - h.relu().softmax(axis=-1)
    loss = z.sum() + (xt.abs() + 1).log().mean()
    loss.backward()
    return [z.numpy(), loss.numpy(), xt.grad.numpy(), wt.grad.numpy()]


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_on_and_off_give_bit_identical_values_and_gradients(device, data):
    n, m, k = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    x, w = data.draw(S.arrays((n, m))), data.draw(S.arrays((m, k)))
    off = _model_values(x, w, device)
    with tg.detect_anomaly():
        on = _model_values(x, w, device)
    for a, b in zip(off, on):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype


# ---------------------------------------------------------------- the switches

def test_the_flag_api():
    assert tg.is_anomaly_enabled() is False
    tg.set_detect_anomaly(True)
    assert tg.is_anomaly_enabled() is True
    with pytest.raises(AnomalyError):
        Tensor([0.0]).log()
    tg.set_detect_anomaly(False)
    assert tg.is_anomaly_enabled() is False
    Tensor([0.0]).log()
    with pytest.raises(TypeError, match="anomaly mode must be True or False, got 1"):
        tg.set_detect_anomaly(1)
    assert tg.is_anomaly_enabled() is False


def test_set_detect_anomaly_in_a_with_block_restores_the_previous_state():
    with tg.detect_anomaly():
        with tg.set_detect_anomaly(False):
            assert not tg.is_anomaly_enabled()
            Tensor([0.0]).log()            # off here: no error
        assert tg.is_anomaly_enabled()


def test_the_context_manager_restores_the_state_after_an_exception():
    with pytest.raises(ValueError):
        with tg.detect_anomaly():
            assert tg.is_anomaly_enabled()
            raise ValueError("boom")
    assert not tg.is_anomaly_enabled()
    with pytest.raises(AnomalyError):
        with tg.detect_anomaly():
            Tensor([0.0]).log()
    assert not tg.is_anomaly_enabled()


def test_nested_use_restores_each_level():
    outer = tg.detect_anomaly()
    with outer:
        with tg.detect_anomaly():
            assert tg.is_anomaly_enabled()
        assert tg.is_anomaly_enabled()     # the inner exit restored on, not off
        with outer:                        # the same instance again, nested in itself
            assert tg.is_anomaly_enabled()
        assert tg.is_anomaly_enabled()
    assert not tg.is_anomaly_enabled()
    tg.set_detect_anomaly(True)
    with tg.detect_anomaly():
        pass
    assert tg.is_anomaly_enabled()         # it was on before the block, so it stays on


def test_detect_anomaly_as_a_decorator():
    @tg.detect_anomaly()
    def log_of(values):
        assert tg.is_anomaly_enabled()
        return Tensor(values).log()
    with pytest.raises(AnomalyError):
        log_of([0.0])
    assert not tg.is_anomaly_enabled()


def test_anomaly_error_is_a_floating_point_error():
    assert issubclass(AnomalyError, FloatingPointError)
    assert issubclass(tg.optim.NonFiniteGradientError, FloatingPointError)
