"""Non-finite values lose nothing: optimizers never apply a NaN or infinite gradient, and one NaN
pixel in one batch no longer destroys a model."""
import warnings

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import nn, optim
from tinygrad_cnn.nn import functional as F

OPTIMIZERS = {
    "SGD": lambda ps, **kw: optim.SGD(ps, lr=0.1, momentum=0.9, **kw),
    "Adam": lambda ps, **kw: optim.Adam(ps, lr=1e-2, **kw),
    "AdamW": lambda ps, **kw: optim.AdamW(ps, lr=1e-2, **kw),
}


def two_params():
    return [tg.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True), tg.Tensor(np.ones(3), requires_grad=True)]


def set_grads(params, bad=None):
    for k, p in enumerate(params):
        g = np.full(p.shape, 0.5)
        if bad is not None and k == 1:
            g[0] = bad
        p.grad = tg.Tensor(g)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_gradient_skips_the_whole_step_and_counts_it(name, bad):
    params = two_params()
    opt = OPTIMIZERS[name](params)
    set_grads(params)
    opt.step()
    before = [p.numpy().copy() for p in params]
    state_before = opt.state_dict()
    set_grads(params, bad)
    with pytest.warns(RuntimeWarning, match=r"non-finite gradient .*parameter 1 \(shape \(3,\)\).*skipped"):
        opt.step()
    assert opt.skipped_steps == 1
    for p, b in zip(params, before):  # neither parameter moved, not even the one with finite gradients
        np.testing.assert_array_equal(p.numpy(), b)
    state_after = opt.state_dict()
    for key, value in state_before.items():
        np.testing.assert_array_equal(np.asarray(state_after[key]), np.asarray(value), err_msg=key)
    set_grads(params)
    opt.step()  # a clean step afterwards updates as usual
    assert opt.skipped_steps == 1
    assert all(np.isfinite(p.numpy()).all() for p in params)
    assert not np.array_equal(params[0].numpy(), before[0])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_nonfinite_raise_names_the_parameter_and_changes_nothing(name):
    params = two_params()
    opt = OPTIMIZERS[name](params, nonfinite="raise")
    set_grads(params, np.nan)
    with pytest.raises(optim.NonFiniteGradientError, match=r"parameter 1 \(shape \(3,\)\)"):
        opt.step()
    np.testing.assert_array_equal(params[0].numpy(), np.arange(6.0).reshape(2, 3))
    assert opt.skipped_steps == 0


def test_large_finite_gradients_whose_sum_overflows_are_still_applied():
    p = tg.Tensor(np.zeros(4, dtype="float32"), requires_grad=True)
    opt = optim.SGD([p], lr=1e-38)
    p.grad = tg.Tensor(np.full(4, 3e38, dtype="float32"))  # the sum overflows to inf; every value is finite
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
    assert opt.skipped_steps == 0 and np.isfinite(p.numpy()).all() and (p.numpy() < 0).all()


def test_unknown_nonfinite_policy_is_refused():
    with pytest.raises(ValueError, match="nonfinite must be 'skip' or 'raise'"):
        optim.Adam(two_params(), nonfinite="ignore")


def small_cnn():
    tg.manual_seed(0)
    return nn.Sequential([nn.Conv2D(4, (3, 3), padding="same", activation="relu"), nn.MaxPool2D((2, 2)),
                          nn.Flatten(), nn.Dense(10, activation="softmax")], input_shape=(1, 8, 8))


def test_one_nan_pixel_in_one_batch_no_longer_destroys_the_model():
    """Before: every parameter NaN after one Adam step, for good. Now the bad step is skipped."""
    rng = np.random.default_rng(0)
    x = rng.random((64, 1, 8, 8)).astype("float32")
    y = (x.reshape(64, -1).sum(1) > 32).astype("int64") + 3 * (x[:, 0, 0, 0] > 0.5)
    x[37, 0, 4, 4] = np.nan  # one pixel of one image in the third batch
    model = small_cnn()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for epoch in range(3):
            for i in range(0, 64, 16):
                loss = F.cross_entropy(model.logits(tg.Tensor(x[i:i + 16])), tg.Tensor(y[i:i + 16]))
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
    assert opt.skipped_steps == 3  # the batch with the NaN, once per epoch
    assert all(np.isfinite(p.numpy()).all() for p in model.parameters())
    finite = [v for v in losses if np.isfinite(v)]
    assert len(finite) == len(losses) - 3 and finite[-1] < finite[0]  # and it still learns
