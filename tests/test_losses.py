"""Losses: gradients under hypothesis for every reduction, values against NumPy formulas written here,
cross-entropy at extreme logits, and the errors for bad targets."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn.nn import functional as F
from tinygrad_cnn.testing import gradcheck
from tinygrad_cnn.testing.strategies import arrays, away_from
from tests.conftest import DEVICES

REDUCTIONS = ["mean", "sum", "none"]


def reduce(loss, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction](loss)


# ---------------------------------------------------------------- NumPy references

def log_softmax_ref(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def cross_entropy_ref(z, t):
    return -log_softmax_ref(z)[np.arange(len(t)), t]


def nll_ref(logp, t):
    return -logp[np.arange(len(t)), t]


def bce_ref(p, t):
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


def bce_logits_ref(z, t):
    return np.logaddexp(0.0, z) - z * t  # log(1 + e^z) - z t


def mse_ref(a, b):
    return (a - b) ** 2


# ---------------------------------------------------------------- strategies

@st.composite
def class_problems(draw, min_value=-3.0, max_value=3.0):
    n, k = draw(st.integers(1, 4)), draw(st.integers(2, 5))
    scores = draw(arrays((n, k), min_value=min_value, max_value=max_value))
    targets = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)), dtype=np.int64)
    return scores, targets


@st.composite
def binary_problems(draw, kind):
    shape = draw(st.sampled_from([(3,), (2, 3), (4, 1)]))
    if kind == "probs":  # away from the eps clip at 0 and 1, where the gradient is cut
        x = draw(arrays(shape, min_value=0.05, max_value=0.95))
    else:
        x = draw(away_from(arrays(shape, min_value=-4.0, max_value=4.0)))  # abs/relu pieces kink at 0
    targets = draw(arrays(shape, min_value=0.0, max_value=1.0))  # soft targets are allowed
    return x, targets


def leaf(a, device):
    return tg.Tensor(a, device=device, requires_grad=True)


def const(a, device):
    return tg.Tensor(a, device=device)


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(problem=class_problems())
def test_cross_entropy_gradcheck(device, reduction, problem):
    z, t = problem
    assert gradcheck(lambda a: F.cross_entropy(a, const(t, device), reduction), [leaf(z, device)])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(problem=class_problems())
def test_nll_loss_gradcheck(device, reduction, problem):
    z, t = problem
    assert gradcheck(lambda a: F.nll_loss(F.log_softmax(a), const(t, device), reduction), [leaf(z, device)])
    assert gradcheck(lambda a: F.nll_loss(a, const(t, device), reduction), [leaf(z, device)])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(problem=binary_problems("probs"))
def test_binary_cross_entropy_gradcheck(device, reduction, problem):
    p, t = problem
    assert gradcheck(lambda a, b: F.binary_cross_entropy(a, b, reduction), [leaf(p, device), const(t, device)])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(problem=binary_problems("logits"))
def test_binary_cross_entropy_with_logits_gradcheck(device, reduction, problem):
    z, t = problem
    assert gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction),
                     [leaf(z, device), const(t, device)])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(data=st.data())
def test_mse_loss_gradcheck(device, reduction, data):
    shape = data.draw(st.sampled_from([(3,), (2, 3), (2, 2, 2)]))
    a, b = data.draw(arrays(shape)), data.draw(arrays(shape))
    assert gradcheck(lambda x, y: F.mse_loss(x, y, reduction), [leaf(a, device), leaf(b, device)])


# ---------------------------------------------------------------- values

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(problem=class_problems(min_value=-20.0, max_value=20.0))
def test_class_losses_match_numpy(device, reduction, problem):
    z, t = problem
    ce = F.cross_entropy(const(z, device), const(t, device), reduction)
    np.testing.assert_allclose(ce.numpy(), reduce(cross_entropy_ref(z, t), reduction), rtol=1e-10, atol=1e-12)
    logp = log_softmax_ref(z)
    nll = F.nll_loss(const(logp, device), const(t, device), reduction)
    np.testing.assert_allclose(nll.numpy(), reduce(nll_ref(logp, t), reduction), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(probs=binary_problems("probs"), logits=binary_problems("logits"))
def test_binary_losses_match_numpy(device, reduction, probs, logits):
    p, t = probs
    out = F.binary_cross_entropy(const(p, device), const(t, device), reduction)
    np.testing.assert_allclose(out.numpy(), reduce(bce_ref(p, t), reduction), rtol=1e-10)
    z, t = logits
    out = F.binary_cross_entropy_with_logits(const(z, device), const(t, device), reduction)
    np.testing.assert_allclose(out.numpy(), reduce(bce_logits_ref(z, t), reduction), rtol=1e-10)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_matches_numpy(reduction):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    np.testing.assert_allclose(F.mse_loss(const(a, "cpu"), const(b, "cpu"), reduction).numpy(),
                               reduce(mse_ref(a, b), reduction), rtol=1e-12)


# ---------------------------------------------------------------- numerical stability

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_stable_for_logits_of_magnitude_1e4(device, dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4 - 1.0], [3e4, 2e4, -1e4]], dtype=dtype)
    t = np.array([0, 2, 1])
    logits = tg.Tensor(z, device=device, requires_grad=True)
    loss = F.cross_entropy(logits, const(t, device), reduction="sum")
    expected = cross_entropy_ref(z.astype(np.float64), t)  # [0, 1 + log(1 + e^-1), 1e4]
    assert np.isfinite(loss.item())
    np.testing.assert_allclose(loss.item(), expected.sum(), rtol=1e-6)
    loss.backward()
    grad = logits.grad.numpy()
    softmax = np.exp(log_softmax_ref(z.astype(np.float64)))
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, softmax - np.eye(3)[t], atol=1e-6)


def test_binary_cross_entropy_with_logits_is_stable_for_large_logits():
    z = np.array([800.0, -800.0, 50.0, -50.0])
    t = np.array([0.0, 1.0, 1.0, 0.0])
    logits = tg.Tensor(z, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(logits, tg.Tensor(t), reduction="none")
    np.testing.assert_allclose(loss.numpy(), bce_logits_ref(z, t), rtol=1e-12, atol=1e-15)
    loss.sum().backward()
    assert np.all(np.isfinite(logits.grad.numpy()))


def test_binary_cross_entropy_clips_probabilities_of_0_and_1():
    loss = F.binary_cross_entropy(tg.Tensor(np.array([0.0, 1.0])), tg.Tensor(np.array([1.0, 0.0])), "none")
    assert np.all(np.isfinite(loss.numpy())) and np.all(loss.numpy() > 10)


# ---------------------------------------------------------------- bad targets

@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss])
def test_float_class_targets_are_rejected(loss):
    with pytest.raises(TypeError, match="integer class indices"):
        loss(tg.rand(3, 4), tg.Tensor(np.array([0.0, 1.0, 2.0])))


@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss])
@pytest.mark.parametrize("bad", [[0, 1, 4], [0, -1, 2]])
def test_out_of_range_class_targets_are_rejected(loss, bad):
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        loss(tg.rand(3, 4), tg.Tensor(np.array(bad)))


@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss])
@pytest.mark.parametrize("targets", [np.array([0, 1]), np.array([[0], [1], [2]])])
def test_wrongly_shaped_class_targets_are_rejected(loss, targets):
    with pytest.raises(ValueError, match=r"targets shape .* does not match input shape \(3, 4\)"):
        loss(tg.rand(3, 4), tg.Tensor(targets))


def test_class_losses_need_2d_scores():
    with pytest.raises(ValueError, match="2-D"):
        F.cross_entropy(tg.rand(4), tg.Tensor(np.array([0])))


@pytest.mark.parametrize("loss", [F.binary_cross_entropy, F.binary_cross_entropy_with_logits, F.mse_loss])
def test_elementwise_losses_reject_wrong_target_shape(loss):
    with pytest.raises(ValueError, match=r"target.*shape \(2, 2\).*input shape \(4,\)"):
        loss(tg.rand(4), tg.Tensor(np.zeros((2, 2), dtype=np.float32)))


def test_unknown_reduction_is_rejected():
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(tg.rand(2, 3), tg.Tensor(np.array([0, 1])), reduction="average")


# ---------------------------------------------------------------- cross-entropy's fused kernels (device.fuse)

def _unfused_cross_entropy(z, t, g, reduction):
    """The op's steps as they were before fusion: the loss and its input gradient for upstream g."""
    shifted = z - z.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    rows = np.arange(len(t))
    losses = np.log(total[:, 0]) - shifted[rows, t]
    if reduction != "none":
        losses = (losses.mean(keepdims=True) if reduction == "mean" else losses.sum(keepdims=True)).reshape(())
        g = np.broadcast_to(g / len(t) if reduction == "mean" else g, (len(t),))
    grad = exp / total * g[:, None]
    grad[rows, t] -= g
    return losses, grad


def _bits(a):
    a = np.asarray(a)
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.itemsize])


def _cross_entropy_case(dtype, reduction, seed=0):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((37, 10)) * 4).astype(dtype)
    z[0] = 3.0  # a row of ties
    z[1, 4] = 80.0  # one dominating logit: its softmax rounds to 1
    t = rng.integers(0, 10, 37)
    g = np.asarray(rng.standard_normal(() if reduction != "none" else 37) * 3, dtype=dtype)
    return z, t, g


@pytest.mark.kernels  # the fused cross-entropy kernel
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_fused_cross_entropy_gives_the_unfused_steps_bits(device, reduction, dtype):
    """Fusion regroups the steps into kernels but computes each value as before, in the same order."""
    z, t, g = _cross_entropy_case(dtype, reduction, seed=len(reduction))
    expected_loss, expected_grad = _unfused_cross_entropy(z, t, g, reduction)
    logits = tg.Tensor(z, device=device, requires_grad=True)
    loss = F.cross_entropy(logits, t, reduction=reduction)
    loss.backward(tg.Tensor(g, device=device))
    assert loss.dtype == dtype and logits.grad.dtype == dtype
    np.testing.assert_array_equal(_bits(loss.numpy()), _bits(expected_loss))
    np.testing.assert_array_equal(_bits(logits.grad.numpy()), _bits(expected_grad))


@pytest.mark.kernels  # the fused loss kernel's launch budget
@pytest.mark.gpu
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_on_cuda_is_six_launches_forward_and_one_back(reduction):
    from tests.conftest import EMULATED
    if not EMULATED:
        pytest.skip("launch counts come from the CuPy emulation")
    from cupy_emulation import record
    z, t, g = _cross_entropy_case(np.float32, reduction)
    logits = tg.Tensor(z, device="cuda", requires_grad=True)
    targets, upstream = tg.Tensor(t, device="cuda"), tg.Tensor(g, device="cuda")
    F.cross_entropy(logits, targets, reduction=reduction)  # the first call makes the index constants
    with record() as forward:
        loss = F.cross_entropy(logits, targets, reduction=reduction)
    fn = loss.grad_fn
    with record() as backward:
        fn.backward(upstream.data)
    assert forward.launches == (5 if reduction == "none" else 6) and backward.launches == 1
    assert forward.syncs == backward.syncs == forward.h2d == backward.h2d == 0
