"""Optimizers and schedules: three steps against updates computed here with NumPy, state that
survives a save, dtypes that stay float32, and the validation errors."""
import math

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import optim
from tests.conftest import DEVICES

P0 = np.array([[0.5, -1.0, 2.0], [0.0, 0.25, -3.0]])
GRADS = [np.random.default_rng(k).standard_normal(P0.shape) for k in range(3)]


def param(device="cpu", dtype=np.float64):
    return tg.Tensor(P0.astype(dtype), device=device, requires_grad=True)


def run(opt, p, grads):
    for g in grads:
        opt.zero_grad()
        p.grad = None if g is None else tg.Tensor(g.astype(p.dtype), device=p.device)
        opt.step()
    return p.numpy()


# ---------------------------------------------------------------- NumPy references

def sgd_reference(p, grads, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    buf = None
    for g in grads:
        d = g + weight_decay * p
        if momentum:
            buf = d if buf is None else momentum * buf + d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
    return p


def adam_reference(p, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False, eps_hat=False):
    """Kingma & Ba's algorithm with bias-corrected moments; L2 in the gradient, or decoupled decay;
    with eps_hat, Keras' update: lr_t * m / (sqrt(v) + eps), lr_t = lr * sqrt(1 - b2**t) / (1 - b1**t)."""
    m = v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g ** 2
        if eps_hat:
            lr_t = lr * math.sqrt(1 - betas[1] ** t) / (1 - betas[0] ** t)
            p = p - lr_t * m / (np.sqrt(v) + eps)
            continue
        m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


# ---------------------------------------------------------------- updates

def test_plain_sgd_is_the_sum_of_the_gradients():
    p = param()
    np.testing.assert_allclose(run(optim.SGD([p], lr=0.1), p, GRADS), P0 - 0.1 * sum(GRADS), rtol=1e-12)


def test_sgd_momentum_by_hand():
    p, m = param(), 0.9
    velocities = [GRADS[0], m * GRADS[0] + GRADS[1], m * m * GRADS[0] + m * GRADS[1] + GRADS[2]]
    np.testing.assert_allclose(run(optim.SGD([p], lr=0.1, momentum=m), p, GRADS), P0 - 0.1 * sum(velocities),
                               rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kwargs", [
    dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.8, nesterov=True),
    dict(lr=0.1, weight_decay=0.01), dict(lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.1),
])
def test_sgd_matches_numpy(device, kwargs):
    p = param(device)
    np.testing.assert_allclose(run(optim.SGD([p], **kwargs), p, GRADS), sgd_reference(P0, GRADS, **kwargs),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kwargs", [
    dict(lr=1e-3), dict(lr=0.1, betas=(0.8, 0.99), eps=1e-6), dict(lr=0.01, weight_decay=0.1),
])
def test_adam_matches_numpy(device, kwargs):
    p = param(device)
    np.testing.assert_allclose(run(optim.Adam([p], **kwargs), p, GRADS), adam_reference(P0, GRADS, **kwargs),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kwargs", [dict(lr=0.01), dict(lr=0.1, weight_decay=0.5, betas=(0.5, 0.9))])
def test_adamw_matches_numpy(device, kwargs):
    p = param(device)
    expected = adam_reference(P0, GRADS, decoupled=True, **{"weight_decay": 1e-2, **kwargs})
    np.testing.assert_allclose(run(optim.AdamW([p], **kwargs), p, GRADS), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("make", [optim.Adam, optim.AdamW])
def test_eps_hat_is_keras_placement_of_epsilon(device, make):
    """Gradients near eps's size, where the two placements differ most in the first steps."""
    small = [g * 1e-6 for g in GRADS]
    decoupled = make is optim.AdamW
    kwargs = dict(lr=0.01, eps=1e-6, weight_decay=0.1)
    keras_like = adam_reference(P0, small, decoupled=decoupled, eps_hat=True, **kwargs)
    p = param(device)
    np.testing.assert_allclose(run(make([p], eps_hat=True, **kwargs), p, small), keras_like, rtol=1e-12, atol=1e-14)
    q = param(device)
    pytorch_like = run(make([q], **kwargs), q, small)
    np.testing.assert_allclose(pytorch_like, adam_reference(P0, small, decoupled=decoupled, **kwargs),
                               rtol=1e-12, atol=1e-14)
    assert np.abs(pytorch_like - keras_like).max() > 1e-3  # the placements differ by far more than rounding


def test_keras_adam_places_epsilon_as_keras_does():
    from tinygrad_cnn import keras
    p = param()
    for opt in (keras.optimizers.Adam(), keras.optimizers.AdamW()):
        made = opt._make([p])
        assert made.eps_hat is True and made.eps == 1e-7
    with pytest.raises(TypeError, match="eps_hat"):
        optim.Adam([param()], eps_hat="yes")


def test_adamw_decay_differs_from_adam_l2():
    a, b = param(), param()
    run(optim.Adam([a], lr=0.1, weight_decay=0.5), a, GRADS)
    run(optim.AdamW([b], lr=0.1, weight_decay=0.5), b, GRADS)
    assert not np.allclose(a.numpy(), b.numpy())


def test_parameters_without_gradient_are_skipped_and_keep_their_step_count():
    p, q = param(), param()
    opt = optim.Adam([p, q], lr=0.1)
    for k, g in enumerate(GRADS):
        opt.zero_grad()
        p.grad = tg.Tensor(g)
        q.grad = None if k == 1 else tg.Tensor(g)
        opt.step()
    np.testing.assert_allclose(p.numpy(), adam_reference(P0, GRADS, lr=0.1), rtol=1e-12)
    np.testing.assert_allclose(q.numpy(), adam_reference(P0, [GRADS[0], GRADS[2]], lr=0.1), rtol=1e-12)


def test_zero_grad_clears_every_gradient():
    p, q = param(), param()
    opt = optim.SGD([p, q], lr=0.1)
    (p * q).sum().backward()
    assert p.grad is not None and q.grad is not None
    opt.zero_grad()
    assert p.grad is None and q.grad is None


def test_a_real_loss_goes_down():
    p = tg.Tensor(np.array([3.0, -2.0]), requires_grad=True)
    opt = optim.Adam([p], lr=0.1)
    losses = []
    for _ in range(20):
        loss = (p * p).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ---------------------------------------------------------------- dtypes

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
    lambda ps: optim.Adam(ps, lr=1e-3, weight_decay=1e-4),
    lambda ps: optim.AdamW(ps),
])
def test_float32_parameters_and_state_stay_float32(device, make):
    p = param(device, np.float32)
    opt = make([p])
    run(opt, p, GRADS)
    assert p.dtype == np.float32 and p.data.dtype == np.float32
    arrays = [v for v in opt.state_dict().values() if isinstance(v, np.ndarray)]
    assert arrays and all(a.dtype == np.float32 for a in arrays)


def test_float32_updates_agree_with_float64_reference():
    p = param(dtype=np.float32)
    run(optim.Adam([p], lr=0.01), p, GRADS)
    np.testing.assert_allclose(p.numpy(), adam_reference(P0, GRADS, lr=0.01), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- state

@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: optim.Adam(ps, lr=0.05),
    lambda ps: optim.AdamW(ps, lr=0.05, weight_decay=0.1),
])
def test_state_dict_round_trip_through_npz_continues_identically(tmp_path, make):
    p = param()
    opt = make([p])
    run(opt, p, GRADS[:2])
    np.savez(tmp_path / "opt.npz", **opt.state_dict())
    resumed_p = tg.Tensor(p.numpy().copy(), requires_grad=True)
    resumed = make([resumed_p])
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as f:
        resumed.load_state_dict(dict(f))
    run(opt, p, GRADS[2:])
    run(resumed, resumed_p, GRADS[2:])
    np.testing.assert_array_equal(resumed_p.numpy(), p.numpy())
    uninterrupted = param()
    np.testing.assert_array_equal(run(make([uninterrupted]), uninterrupted, GRADS), p.numpy())


def test_load_state_dict_restores_hyperparameters():
    a = optim.Adam([param()], lr=0.5, betas=(0.5, 0.6))
    b = optim.Adam([param()])
    b.load_state_dict(a.state_dict())
    assert b.lr == 0.5 and b.betas == (0.5, 0.6)


def test_mismatched_optimizer_state_is_rejected_with_reasons():
    p = param()
    opt = optim.Adam([p], lr=0.1)
    run(opt, p, GRADS[:1])
    state = opt.state_dict()
    with pytest.raises(ValueError, match="for 1 parameters, this optimizer has 2"):
        optim.Adam([param(), param()]).load_state_dict(state)
    small = tg.Tensor(np.zeros(3), requires_grad=True)
    with pytest.raises(ValueError, match=r"'state.0.exp_avg': shape \(2, 3\), parameter 0 has shape \(3,\)"):
        optim.Adam([small]).load_state_dict(state)
    with pytest.raises(ValueError, match="unexpected key 'state.0.exp_avg'"):
        optim.SGD([param()], lr=0.1, momentum=0.9).load_state_dict({**state, "momentum": 0.9, "nesterov": False})
    broken = {k: v for k, v in state.items() if k != "lr"}
    with pytest.raises(ValueError, match="missing key 'lr'"):
        optim.Adam([param()]).load_state_dict(broken)


# ---------------------------------------------------------------- schedules

def test_step_lr():
    opt = optim.SGD([param()], lr=0.2)
    schedule = optim.StepLR(opt, step_size=2, gamma=0.5)
    assert schedule.get_last_lr() == [0.2]
    for epoch in range(1, 7):
        schedule.step()
        assert schedule.get_last_lr() == [pytest.approx(0.2 * 0.5 ** (epoch // 2))]
        assert [opt.lr] == schedule.get_last_lr()


def test_cosine_annealing_lr():
    opt = optim.Adam([param()], lr=0.1)
    schedule = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.01)
    seen = []
    for epoch in range(1, 5):
        schedule.step()
        seen += schedule.get_last_lr()
        assert opt.lr == pytest.approx(0.01 + 0.09 * (1 + math.cos(math.pi * epoch / 4)) / 2)
    assert seen == sorted(seen, reverse=True) and seen[-1] == pytest.approx(0.01)


def test_schedule_state_round_trip():
    opt = optim.SGD([param()], lr=1.0)
    a = optim.StepLR(opt, step_size=1, gamma=0.5)
    a.step()
    a.step()
    b = optim.StepLR(optim.SGD([param()], lr=1.0), step_size=1, gamma=0.5)
    b.load_state_dict(a.state_dict())
    assert b.get_last_lr() == [b.optimizer.lr] == [0.25]


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize("make, match", [
    (lambda p: optim.SGD([p], lr=-0.1), "lr"),
    (lambda p: optim.SGD([p], lr=float("nan")), "lr"),
    (lambda p: optim.SGD([p], lr=0.1, momentum=-0.5), "momentum"),
    (lambda p: optim.SGD([p], lr=0.1, nesterov=True), "nesterov"),
    (lambda p: optim.SGD([p], lr=0.1, weight_decay=-1e-4), "weight_decay"),
    (lambda p: optim.Adam([p], betas=(0.9, 1.0)), "betas"),
    (lambda p: optim.Adam([p], betas=(-0.1, 0.9)), "betas"),
    (lambda p: optim.Adam([p], betas=0.9), "betas"),
    (lambda p: optim.Adam([p], eps=-1e-8), "eps"),
    (lambda p: optim.AdamW([p], weight_decay=-0.1), "weight_decay"),
    (lambda p: optim.Adam([]), "empty"),
    (lambda p: optim.Adam([p, p]), "twice"),
    (lambda p: optim.Adam([tg.Tensor(np.zeros(2))]), "requires_grad"),
    (lambda p: optim.StepLR(optim.SGD([p], lr=0.1), step_size=0), "step_size"),
    (lambda p: optim.StepLR(optim.SGD([p], lr=0.1), step_size=1, gamma=0.0), "gamma"),
    (lambda p: optim.CosineAnnealingLR(optim.SGD([p], lr=0.1), T_max=0), "T_max"),
    (lambda p: optim.CosineAnnealingLR(optim.SGD([p], lr=0.1), T_max=3, eta_min=-1.0), "eta_min"),
])
def test_bad_hyperparameters_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make(param())


@pytest.mark.parametrize("make", [
    lambda p: optim.SGD(p, lr=0.1),
    lambda p: optim.Adam([np.zeros(3)]),
    lambda p: optim.SGD([p], lr="fast"),
    lambda p: optim.StepLR(object(), step_size=1),
])
def test_wrong_types_raise_type_error(make):
    with pytest.raises(TypeError):
        make(param())

