"""float16: optimizer state kept in float32, and losses whose clipping respects the dtype."""
import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import optim
from tinygrad_cnn.nn import functional as F

GRADS = [0.0, 1e-4, 1e-3, 1.0]


@pytest.mark.parametrize("make", [lambda ps: optim.Adam(ps, lr=1e-3), lambda ps: optim.AdamW(ps, lr=1e-3),
                                  lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9)], ids=["Adam", "AdamW", "SGD"])
def test_float16_parameters_step_like_float32_ones(make):
    """One step on float16 parameters agrees with the same step in float32 (to float16 precision);
    float16 state gave [nan, -inf, -inf, 0.999] for Adam."""
    results = {}
    for dtype in ("float16", "float32"):
        p = tg.Tensor(np.ones(4, dtype=dtype), requires_grad=True)
        opt = make([p])
        for _ in range(3):
            p.grad = tg.Tensor(np.array(GRADS, dtype=dtype))
            opt.step()
        assert p.dtype == np.dtype(dtype)
        results[dtype] = p.numpy().astype("float64")
        if dtype == "float16":
            assert all(v.dtype == np.float32 for s in opt.state for v in s.values() if hasattr(v, "dtype"))
    assert np.isfinite(results["float16"]).all()
    np.testing.assert_allclose(results["float16"], results["float32"], rtol=2e-3, atol=2e-3)


def test_float16_adam_state_survives_a_state_dict_round_trip():
    p = tg.Tensor(np.ones(4, dtype="float16"), requires_grad=True)
    opt = optim.Adam([p])
    p.grad = tg.Tensor(np.array(GRADS, dtype="float16"))
    opt.step()
    state = opt.state_dict()
    fresh = optim.Adam([tg.Tensor(np.ones(4, dtype="float16"), requires_grad=True)])
    fresh.load_state_dict(state)
    assert fresh.state[0]["exp_avg_sq"].dtype == np.float32
    np.testing.assert_array_equal(fresh.state[0]["exp_avg_sq"], opt.state[0]["exp_avg_sq"])


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_binary_cross_entropy_is_finite_at_0_and_1_in_every_float_dtype(dtype):
    probs = tg.Tensor(np.array([0.0, 1.0, 0.0, 1.0], dtype=dtype), requires_grad=True)
    targets = tg.Tensor(np.array([1.0, 0.0, 0.0, 1.0], dtype=dtype))
    loss = F.binary_cross_entropy(probs, targets)
    loss.backward()
    assert np.isfinite(loss.item()) and loss.item() > 0
    assert np.isfinite(probs.grad.numpy()).all()


def test_binary_cross_entropy_keeps_eps_1e_7_in_float32():
    probs = tg.Tensor(np.array([0.0], dtype="float32"))
    loss = F.binary_cross_entropy(probs, tg.Tensor(np.array([1.0], dtype="float32")))
    np.testing.assert_allclose(loss.item(), -np.log(np.float32(1e-7)), rtol=1e-6)
