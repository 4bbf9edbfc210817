"""gradcheck across kinks (issue 27): where x - eps and x + eps lie on two sides of a ReLU's kink or a
max-pool tie, the central difference mixes two slopes. gradcheck must say so, and with nonsmooth="skip"
retry with smaller steps, leave out (or redraw) what stays across a kink and count it, without ever
excusing a wrong gradient of a smooth function."""
import importlib.util
import io
import contextlib
import os

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import Function, Tensor
from tinygrad_cnn.testing import GradcheckError, gradcheck

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def relu_of(offsets):
    """f(x) = sum(relu(x - offsets) * weights): kinks at x = offsets."""
    weights = Tensor(np.linspace(1.0, 2.0, len(offsets)))
    return lambda x: ((x - Tensor(offsets)).relu() * weights).sum()


class ExpScaledGrad(Function):
    """exp(k x) whose backward is 1% off: smooth, with a curvature of k^2 exp(k x)."""

    def forward(self, x):
        self.out = self.xp.exp(50.0 * x)
        return self.out

    def backward(self, g):
        return g * 50.0 * self.out * 1.01


def test_a_relu_kink_inside_eps_is_named_and_skipped():
    x = np.array([0.5, 1.0, 2.0])
    offsets = np.array([0.1, 1.0 + 3e-7, 1.5])   # element 1 lies 3e-7 from its kink: inside eps = 1e-6
    with pytest.raises(GradcheckError, match=r"kink .* within eps.*nonsmooth='skip'"):
        gradcheck(relu_of(offsets), [Tensor(x, requires_grad=True)], eps=1e-6)
    report = gradcheck(relu_of(offsets), [Tensor(x, requires_grad=True)], eps=1e-6, nonsmooth="skip")
    # a step of eps/4 no longer reaches the kink: checked, not left out
    assert (report.checked, report.kinks, report.left_out) == (3, 1, 0)


def test_an_element_exactly_at_a_kink_is_left_out_and_counted():
    x = np.array([0.5, 1.0, 2.0, 3.0])
    offsets = np.array([0.1, 1.0, 1.5, 2.0])       # element 1 exactly at its kink: no step avoids it
    report = gradcheck(relu_of(offsets), [Tensor(x, requires_grad=True)], nonsmooth="skip")
    assert (report.checked, report.kinks, report.left_out) == (4, 1, 1)


def test_a_max_tie_inside_eps_is_a_kink():
    a = np.array([1.0, 2.0 + 2e-7, -1.0])
    b = Tensor(np.array([0.0, 2.0, 0.5]))
    fn = lambda t: tg.maximum(t, b).sum() * 3.0  # noqa: E731
    with pytest.raises(GradcheckError, match="kink"):
        gradcheck(fn, [Tensor(a, requires_grad=True)])
    assert gradcheck(fn, [Tensor(a, requires_grad=True)], nonsmooth="skip").kinks == 1


def test_a_wrong_gradient_of_a_smooth_function_is_never_excused():
    """Curvature 2500 * exp(50 x): large second differences, but no kink; the 1% error must fail."""
    x = np.array([0.01, 0.02, -0.03])
    for nonsmooth in ("raise", "skip"):
        with pytest.raises(GradcheckError) as info:
            gradcheck(ExpScaledGrad.apply, [Tensor(x, requires_grad=True)], nonsmooth=nonsmooth)
        assert "kink" not in str(info.value)
        with pytest.raises(GradcheckError) as info:
            gradcheck(ExpScaledGrad.apply, [Tensor(x, requires_grad=True)], fast_mode=True, nonsmooth=nonsmooth)
        assert "kink" not in str(info.value)


def test_a_function_kinked_at_most_elements_still_fails():
    x = np.array([1.0, 2.0, 3.0, 0.5])
    with pytest.raises(GradcheckError, match="too many to leave out"):
        gradcheck(relu_of(np.array([1.0, 2.0, 3.0, 0.0])), [Tensor(x, requires_grad=True)], nonsmooth="skip")


def test_nonsmooth_takes_raise_or_skip():
    with pytest.raises(ValueError, match="nonsmooth must be 'raise' or 'skip', got 'ignore'"):
        gradcheck(lambda t: t.tanh(), [Tensor(np.ones(2), requires_grad=True)], nonsmooth="ignore")


def test_the_report_reads_as_the_true_gradcheck_returned():
    report = gradcheck(lambda t: t.tanh(), [Tensor(np.ones(3), requires_grad=True)])
    assert report == True and 0 + report == 1  # noqa: E712 - what callers of the old `return True` did
    assert (report.checked, report.kinks, report.left_out, report.redrawn) == (3, 0, 0, 0)


def load_mnist_example():
    spec = importlib.util.spec_from_file_location("kinks_mnist_example", os.path.join(ROOT, "examples", "mnist.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_examples_whole_model_check_passes_for_any_seed(seed):
    """Weights from manual_seed(0) put a direction across a kink (found by issue 27): skipped, not failed."""
    example = load_mnist_example()
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), rng.integers(0, 10, 4)
    tg.manual_seed(seed)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        report = example.check_gradients(x, y, seed=0)
    assert report.checked == 8 and "gradient check passed" in out.getvalue()
    if seed == 0:
        assert report.kinks == 1 and "1 of 8 directions crossed" in out.getvalue()
