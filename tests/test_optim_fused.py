"""The optimizers' flat, fused step (issue 11): parameters laid end to end per device and dtype, a few
kernels a step on a GPU whatever the parameter count, and the non-finite check kept on the device.

The references below are the plain per-parameter formulas (PyTorch's, Adam's first moment in lerp
form), run in float32 with NumPy, including a step whose gradient holds a NaN (skipped: nothing
moves and the step count does not advance)."""
import warnings

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import optim
from tinygrad_cnn.nn.module import _move

from conftest import DEVICES, EMULATED

emulated = pytest.mark.skipif(not EMULATED, reason="counts come from the CuPy emulation")
SHAPES = [(3, 4), (4,), (2, 1, 3, 3), ()]
NAN_AT = 2  # the third step's gradients hold a NaN


def grads_sequence(steps=5, seed=0):
    rng = np.random.default_rng(seed)
    seq = []
    for s in range(steps):
        grads = [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
        if s == NAN_AT:
            grads[1][2] = np.nan
        seq.append(grads)
    return seq


def start_values(seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]


def reference_adam(values, seq, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    """Adam written plainly, one parameter at a time, in float32."""
    b1, b2 = betas
    out = []
    for k, p in enumerate(values):
        p, m, v, t = p.copy(), np.zeros_like(p), np.zeros_like(p), 0
        for grads in seq:
            if not all(np.isfinite(g).all() for g in grads):
                continue  # a skipped step: nothing moves, t stays
            g = grads[k]
            t += 1
            if decoupled:
                p = p * np.float32(1 - lr * weight_decay)
            else:
                g = g + np.float32(weight_decay) * p
            m = m + (g - m) * np.float32(1 - b1)  # torch.lerp(m, g, 1 - b1)
            v = v * np.float32(b2) + np.float32(1 - b2) * g * g
            m_hat, v_hat = m / np.float32(1 - b1 ** t), v / np.float32(1 - b2 ** t)
            p = p - np.float32(lr) * m_hat / (np.sqrt(v_hat) + np.float32(eps))
        out.append(p)
    return out


def reference_sgd(values, seq, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    out = []
    for k, p in enumerate(values):
        p, buf = p.copy(), None
        for grads in seq:
            if not all(np.isfinite(g).all() for g in grads):
                continue
            d = grads[k] + np.float32(weight_decay) * p
            if momentum:
                buf = d if buf is None else np.float32(momentum) * buf + d
                d = d + np.float32(momentum) * buf if nesterov else buf
            p = p - np.float32(lr) * d
        out.append(p)
    return out


def run(opt, params, seq):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the skipped step warns on the CPU
        for grads in seq:
            for p, g in zip(params, grads):
                p.grad = tg.Tensor(g, device=p.device)
            opt.step()
    return [p.numpy() for p in params]


def make_params(device, dtype=np.float32):
    return [tg.Tensor(v.astype(dtype), device=device, requires_grad=True) for v in start_values()]


CASES = {
    "adam": (lambda ps: optim.Adam(ps, lr=0.01), lambda vs, seq: reference_adam(vs, seq, lr=0.01)),
    "adam_l2": (lambda ps: optim.Adam(ps, lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
                lambda vs, seq: reference_adam(vs, seq, lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    "adamw": (lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.5),
              lambda vs, seq: reference_adam(vs, seq, lr=0.01, weight_decay=0.5, decoupled=True)),
    "sgd": (lambda ps: optim.SGD(ps, lr=0.1), lambda vs, seq: reference_sgd(vs, seq, lr=0.1)),
    "sgd_momentum": (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
                     lambda vs, seq: reference_sgd(vs, seq, lr=0.05, momentum=0.9, weight_decay=0.01)),
    "sgd_nesterov": (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True),
                     lambda vs, seq: reference_sgd(vs, seq, lr=0.05, momentum=0.8, nesterov=True)),
}


# ---------------------------------------------------------------- numerics

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES)
def test_updates_match_the_plain_reference_through_a_skipped_step(device, case):
    make, reference = CASES[case]
    params = make_params(device)
    opt = make(params)
    seq = grads_sequence()
    got = run(opt, params, seq)
    for g, e in zip(got, reference(start_values(), seq)):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, e, rtol=2e-6, atol=1e-7)
    assert opt.skipped_steps == 1


@pytest.mark.parametrize("device", DEVICES)
def test_the_step_count_does_not_advance_on_a_skipped_step(device):
    params = make_params(device)
    opt = optim.Adam(params, lr=0.01)
    run(opt, params, grads_sequence(4))
    state = opt.state_dict()
    assert [state[f"state.{i}.step"] for i in range(len(SHAPES))] == [3] * len(SHAPES)


@pytest.mark.parametrize("device", DEVICES)
def test_a_skipped_first_step_leaves_no_state(device):
    params = make_params(device)
    opt = optim.Adam(params)
    seq = grads_sequence(3)[NAN_AT:NAN_AT + 1]
    before = [p.numpy().copy() for p in params]
    run(opt, params, seq)
    assert opt.skipped_steps == 1
    assert [k for k in opt.state_dict() if k.startswith("state.")] == []
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.numpy(), b)


@pytest.mark.parametrize("device", DEVICES)
def test_parameters_without_a_gradient_keep_their_own_step_count(device):
    params = make_params(device)
    opt = optim.Adam(params, lr=0.05)
    seq = [g for k, g in enumerate(grads_sequence(5)) if k != NAN_AT]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k, grads in enumerate(seq):
            for i, (p, g) in enumerate(zip(params, grads)):
                p.grad = None if (i == 1 and k == 1) else tg.Tensor(g, device=device)
            opt.step()
    values = start_values()
    for i, p in enumerate(params):
        mine = [[g[i]] for k, g in enumerate(seq) if not (i == 1 and k == 1)]
        np.testing.assert_allclose(p.numpy(), reference_adam([values[i]], mine, lr=0.05)[0], rtol=2e-6, atol=1e-7)
    steps = opt.state_dict()
    assert [steps[f"state.{i}.step"] for i in range(len(SHAPES))] == [4, 3, 4, 4]


@pytest.mark.kernels  # the fused optimizer kernel's bits
def test_cpu_results_are_the_same_bits_as_the_earlier_order_of_operations():
    """On the CPU the fused kernel is the plain function, running the earlier per-parameter code's
    operations in its order, with Python-float bias corrections: the same float32 bits."""
    params = make_params("cpu")
    got = run(optim.Adam(params, lr=0.01, weight_decay=0.1), params, grads_sequence())
    by_hand = []
    for k, p in enumerate(start_values()):
        p, m, v, t = p.copy(), np.zeros_like(p), np.zeros_like(p), 0
        for grads in grads_sequence():
            if not all(np.isfinite(g).all() for g in grads):
                continue
            t += 1
            g = grads[k] + 0.1 * p
            m += (g - m) * (1 - 0.9)
            v *= 0.999
            v += g * (1 - 0.999) * g
            c1, c2 = 1 - 0.9 ** t, (1 - 0.999 ** t) ** 0.5
            p -= m / (np.sqrt(v) + 1e-8 * c2) * (0.01 * c2 / c1)
        by_hand.append(p)
    for g, e in zip(got, by_hand):
        np.testing.assert_array_equal(g, e)


# ---------------------------------------------------------------- the GPU budget

def _eight_params(device="cuda"):
    rng = np.random.default_rng(3)
    shapes = [(32, 1, 3, 3), (32,), (64, 32, 3, 3), (64,), (128, 64), (128,), (10, 128), (10,)]
    return [tg.Tensor(rng.standard_normal(s).astype(np.float32), device=device, requires_grad=True)
            for s in shapes]


def _set_grads(params, bad=False, seed=4):
    rng = np.random.default_rng(seed)
    for k, p in enumerate(params):
        g = rng.standard_normal(p.shape).astype(np.float32)
        if bad and k == 5:
            g[7] = np.inf
        p.grad = tg.Tensor(g, device=p.device)


@pytest.mark.gpu
@emulated
@pytest.mark.kernels  # the fused optimizer kernel's launch budget
@pytest.mark.parametrize("make", [lambda ps: optim.Adam(ps), lambda ps: optim.AdamW(ps),
                                  lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)],
                         ids=["Adam", "AdamW", "SGD"])
def test_a_gpu_step_is_five_launches_and_no_sync_for_eight_parameters(make):
    from cupy_emulation import record
    params = _eight_params()
    opt = make(params)
    _set_grads(params)
    opt.step()  # the first step lays the parameters out
    _set_grads(params, seed=5)
    with record() as counts:
        opt.step()
    # gather, isfinite, all, count, update (was 12 per parameter plus a sum each and one sync); the gather of
    # 8 gradients set by hand is 8 copies as CuPy counts (concatenate: one kernel only for more than 8 arrays);
    # gradients from backward() are written in place and need none (test_gpu_budget.py)
    assert counts.as_dict() == dict(launches=4 + 8, syncs=0, h2d=0, d2h=0, h2d_bytes=0, d2h_bytes=0), counts.sites
    before = [p.numpy().copy() for p in params]
    _set_grads(params, bad=True)
    with record() as counts:
        opt.step()
    assert counts.syncs == 0 and counts.launches == 4 + 8
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.numpy(), b)
    with record() as counts:
        assert opt.skipped_steps == 1
    assert counts.syncs == 1


@pytest.mark.gpu
def test_nonfinite_raise_on_a_gpu_names_the_parameter_and_changes_nothing():
    params = _eight_params()
    opt = optim.Adam(params, nonfinite="raise")
    before = [p.numpy().copy() for p in params]
    _set_grads(params, bad=True)
    with pytest.raises(optim.NonFiniteGradientError, match=r"parameter 5 \(shape \(128,\)\)"):
        opt.step()
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.numpy(), b)
    assert opt.skipped_steps == 0 and "state.0.step" not in opt.state_dict()


@pytest.mark.gpu
def test_float16_and_float32_parameters_on_one_gpu_skip_together():
    params = [tg.Tensor(np.ones(4, dtype=np.float16), device="cuda", requires_grad=True),
              tg.Tensor(np.ones(3, dtype=np.float32), device="cuda", requires_grad=True)]
    opt = optim.Adam(params, lr=0.1)
    params[0].grad = tg.Tensor(np.array([1, 2, np.nan, 4], dtype=np.float16), device="cuda")
    params[1].grad = tg.Tensor(np.ones(3, dtype=np.float32), device="cuda")
    opt.step()
    assert opt.skipped_steps == 1
    np.testing.assert_array_equal(params[1].numpy(), np.ones(3, dtype=np.float32))
    params[0].grad = tg.Tensor(np.ones(4, dtype=np.float16), device="cuda")
    opt.step()
    assert params[0].dtype == np.float16 and opt.state[0]["exp_avg"].dtype == np.float32
    np.testing.assert_allclose(params[0].numpy(), 0.9, rtol=1e-3)  # one step of size lr
    np.testing.assert_allclose(params[1].numpy(), 0.9, rtol=1e-6)


@pytest.mark.gpu
@emulated
@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_parameters_on_cuda_1_are_updated_there_while_device_0_is_current(mode):
    """Also on the reference path, which checked the gradients and made the state on the current device
    (found by the suite run with TINYGRAD_CNN_KERNELS=reference)."""
    import cupy
    params = _eight_params("cuda:1")
    expected = _eight_params("cpu")
    opt, reference = optim.Adam(params, lr=0.01), optim.Adam(expected, lr=0.01)
    for seed in (4, 5):
        _set_grads(params, seed=seed)
        _set_grads(expected, seed=seed)
        assert cupy.cuda.Device().id == 0
        with tg.kernels.enabled() if mode == "fast" else tg.kernels.reference():
            opt.step()
        reference.step()
    assert all(p.data.device.id == 1 and p.device == "cuda:1" for p in params)
    assert all(v.device.id == 1 for s in opt.state for v in s.values())
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.numpy(), e.numpy(), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- the layout

@pytest.mark.parametrize("device", DEVICES)
def test_a_parameter_whose_data_is_replaced_is_still_updated(device):
    """model.load_state_dict and p.data = ... replace a parameter's array: the optimizer takes the
    new values into its place, and the state carries on as if they had been written in place."""
    replaced, written = make_params(device), make_params(device)
    a, b = optim.Adam(replaced, lr=0.01), optim.Adam(written, lr=0.01)
    seq = [g for k, g in enumerate(grads_sequence()) if k != NAN_AT]
    run(a, replaced, seq[:2])
    run(b, written, seq[:2])
    new = np.full(SHAPES[0], 3.0, dtype=np.float32)
    replaced[0].data = tg.Tensor(new, device=device).data
    with tg.no_grad():
        written[0].copy_(tg.Tensor(new, device=device))
    run(a, replaced, seq[2:])
    run(b, written, seq[2:])
    for p, q in zip(replaced, written):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    assert np.abs(replaced[0].numpy() - 3.0).max() < 0.1  # it moved from the new values


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_moving_the_parameters_to_another_device_keeps_the_state(mode):
    """Also on the reference path, whose state stayed where it was made (found by the suite run with
    TINYGRAD_CNN_KERNELS=reference: a NumPy moment met a CuPy gradient)."""
    moved, stayed = make_params("cpu"), make_params("cpu")
    a, b = optim.Adam(moved, lr=0.01), optim.Adam(stayed, lr=0.01)
    seq = [g for k, g in enumerate(grads_sequence()) if k != NAN_AT]
    with tg.kernels.enabled() if mode == "fast" else tg.kernels.reference():
        run(a, moved, seq[:2])
        run(b, stayed, seq[:2])
        for p in moved:
            _move(p, "cuda:0")  # what Module.to does to each parameter
        run(a, moved, seq[2:])
        run(b, stayed, seq[2:])
    assert a.state_dict()["state.0.step"] == 4
    for p, q in zip(moved, stayed):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=2e-6, atol=1e-7)


def test_state_views_follow_the_flat_buffers_and_skipped_steps_can_be_reset():
    params = make_params("cpu")
    opt = optim.Adam(params, lr=0.01)
    run(opt, params, grads_sequence(3))
    assert opt.skipped_steps == 1
    assert all(set(s) == {"exp_avg", "exp_avg_sq"} for s in opt.state)
    np.testing.assert_array_equal(opt.state_dict()["state.1.exp_avg"], opt.state[1]["exp_avg"])
    opt.skipped_steps = 0
    assert opt.skipped_steps == 0
