"""Flatten then Dense on an (N, C, H, W) input held channels-last in memory (what the convolution kernels
return) runs as one op, kernels.dense.FlattenLinear: the input's rows read as they lie, the weight's
columns permuted to match, the weight itself (state_dict, files) in the user's (C, H, W) order. Checked
against the reference ops (a flatten's copy, then linear) and central differences in float64, with a
random upstream gradient; an optimizer's steps; the second derivative; logits() fused as forward is."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn import Tensor, kernels, nn, optim
from tinygrad_cnn.kernels import dense, parallel
from tinygrad_cnn.testing import gradcheck, gradgradcheck
from tinygrad_cnn.testing import strategies as S

from conftest import DEVICES, PROFILE

device_param = pytest.mark.parametrize("device", DEVICES)
few = settings(max_examples=6 if PROFILE == "ci" else 40, deadline=None)


def _channels_last(array):
    """The same (N, C, H, W) values held in (N, H, W, C) memory, as the convolution kernels return them."""
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@st.composite
def flatten_dense_cases(draw, max_side=4):
    units = draw(st.integers(1, 3), label="units")
    n = draw(st.integers(2 * units + 1, 2 * units + 3), label="n")  # the plan folds batches over 2 * units
    c = draw(st.integers(2, 4), label="c")
    h, w = draw(st.integers(1, max_side), label="h"), draw(st.integers(2, max_side), label="w")
    x = draw(S.arrays((n, c, h, w)), label="x")
    weight = draw(S.arrays((units, c * h * w)), label="weight")
    bias = draw(S.arrays((units,)), label="bias")
    upstream = draw(S.arrays((n, units)), label="upstream")
    return x, weight, bias, upstream


def _model(weight, bias, activation, use_bias, shape, device):
    model = nn.Sequential([nn.Flatten(), nn.Dense(weight.shape[0], activation=activation, use_bias=use_bias,
                                                  dtype="float64")], input_shape=shape).to(device)
    model.layers[1].weight.data[...] = model.layers[1].weight.xp.asarray(weight)
    if use_bias:
        model.layers[1].bias.data[...] = model.layers[1].bias.xp.asarray(bias)
    return model


def _run(model, x, upstream, device):
    """The output, the input's and the parameters' gradients (NumPy), and the op that made the output."""
    model.zero_grad()
    xt = Tensor(x, device=device, requires_grad=True)
    out = model(xt)
    out.backward(Tensor(upstream, device=device))
    return [out.numpy(), xt.grad.numpy()] + [p.grad.numpy() for p in model.parameters()], type(out.grad_fn)


@device_param
@pytest.mark.parametrize("activation", ["relu", None, "tanh"])
@pytest.mark.parametrize("use_bias", [True, False])
@few
@given(case=flatten_dense_cases())
def test_flatten_dense_of_channels_last_memory_is_the_reference(device, activation, use_bias, case):
    x, weight, bias, upstream = case
    pre = x.reshape(len(x), -1) @ weight.T + (bias if use_bias else 0)
    assume(activation != "relu" or np.abs(pre).min() > 1e-6)  # (rounding may cross ReLU's kink apart)
    model = _model(weight, bias, activation, use_bias, x.shape[1:], device)
    fast, op = _run(model, _channels_last(x), upstream, device)
    with kernels.reference():
        reference, _ = _run(model, x, upstream, device)
    # (on a GPU the plan does not fold: kernels/plan.py)
    folded = "FlattenLinear" if device == "cpu" else "FusedLinear"
    assert op.__name__ == (folded if activation in ("relu", None) else "Tanh")
    for name, a, b in zip(["output", "input gradient", "weight gradient", "bias gradient"], fast, reference):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


@device_param
def test_the_flatten_copies_nothing_and_the_input_gradient_comes_back_channels_last(device):
    rng = np.random.default_rng(0)
    x = Tensor(_channels_last(rng.standard_normal((13, 3, 2, 5)).astype(np.float32)), device=device, requires_grad=True)
    model = nn.Sequential([nn.Flatten(), nn.Dense(6, activation="relu")], input_shape=(3, 2, 5)).to(device)
    # (the op itself on a GPU, where the plan does not fold: kernels/plan.py)
    out = model(x) if device == "cpu" else dense.flatten_linear(x, *model.layers[1].parameters(), relu=True)
    fn = out.grad_fn
    assert type(fn) is dense.FlattenLinear
    assert fn.x2.base is not None and tg.device.to_numpy(fn.x2).shape == (13, 30)
    xp = x.xp
    assert xp.shares_memory(fn.x2, x.data)  # the rows are the input's memory: no copy
    out.backward(Tensor(rng.standard_normal(out.shape), device=device))
    assert dense.channels_last(x.grad.data) or x.grad.data.transpose(0, 2, 3, 1).flags.c_contiguous


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("use_bias", [True, False])
@few
@given(case=flatten_dense_cases(max_side=3))
def test_flatten_linear_gradients_are_central_differences(relu, use_bias, case):
    x, weight, bias, upstream = case
    if relu:
        pre = x.reshape(len(x), -1) @ weight.T + (bias if use_bias else 0)
        assume(np.abs(pre).min() > 1e-3)
    inputs = [Tensor(_channels_last(x), requires_grad=True), Tensor(weight, requires_grad=True)]
    inputs += [Tensor(bias, requires_grad=True)] if use_bias else []
    assert gradcheck(lambda *t: dense.flatten_linear(*t, relu=relu), inputs, atol=1e-7, rtol=1e-6)
    assert gradgradcheck(lambda *t: dense.flatten_linear(*t, relu=relu), inputs, atol=1e-6, rtol=1e-5)


def _tutorial_like(seed, device):
    tg.manual_seed(seed)
    return nn.Sequential([
        nn.Conv2D(4, 3, padding="same", activation="relu", dtype="float64"), nn.MaxPool2D(2),
        nn.Flatten(), nn.Dense(5, activation="relu", dtype="float64"), nn.Dense(3, dtype="float64")],
        input_shape=(2, 6, 6)).to(device)


@device_param
def test_training_with_the_fold_is_training_with_the_flatten(device):
    """Three Adam steps (the weight's gradient written into the optimizer's buffer, in the user's order):
    the same parameters as on the reference ops; the weight keeps its (units, C*H*W) shape and order."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((11, 2, 6, 6)), rng.integers(0, 3, 11)  # (the plan folds batches over 2 * 5)
    trained = []
    for switch in (kernels.enabled, kernels.reference):
        model = _tutorial_like(1, device)
        opt = optim.Adam(model.parameters(), lr=1e-2)
        with switch():
            for _ in range(3):
                loss = nn.functional.cross_entropy(model.logits(Tensor(x, device=device)), Tensor(y, device=device))
                opt.zero_grad()
                loss.backward()
                opt.step()
        trained.append({k: tg.device.to_numpy(v) for k, v in model.state_dict().items()})
    assert trained[0].keys() == trained[1].keys()
    for key in trained[0]:
        np.testing.assert_allclose(trained[0][key], trained[1][key], rtol=1e-9, atol=1e-12, err_msg=key)


@device_param
def test_logits_are_the_forward_bit_for_bit_when_the_dense_after_the_flatten_is_last(device):
    """logits() runs the last layer inside the plan, so it fuses with the Flatten as forward's does."""
    tg.manual_seed(0)
    model = nn.Sequential([nn.Conv2D(5, 3, activation="relu"), nn.Flatten(), nn.Dense(7)],
                          input_shape=(3, 9, 9)).to(device)
    x = Tensor(np.random.default_rng(0).standard_normal((15, 3, 9, 9)).astype(np.float32), device=device)
    logits, out = model.logits(x), model(x)
    np.testing.assert_array_equal(logits.numpy(), out.numpy())
    assert type(logits.grad_fn) is (dense.FlattenLinear if device == "cpu" else dense.FusedLinear)


class _CountingNumPy:
    """NumPy as split_product sees it, counting its matmul calls (the pieces of a product)."""
    __name__ = "numpy"

    def __init__(self):
        self.calls = 0

    def __getattr__(self, name):
        return getattr(np, name)

    def matmul(self, *args, **kwargs):
        self.calls += 1
        return np.matmul(*args, **kwargs)


def test_a_product_cut_by_rows_has_pieces_of_at_least_rows_piece_the_same_bits_on_any_thread_count():
    """Dense 3136 -> 128 at inference batch 1000: each piece packs the whole weight again, so 4 pieces
    of 250 rows, not 8 of 125; the pieces depend on the shapes only, so the bits do not on the threads."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((1000, 3136)).astype(np.float32), rng.standard_normal((3136, 128)).astype(np.float32)
    results = []
    try:
        for threads in (1, 2, 3):
            parallel.set_num_threads(threads)
            xp = _CountingNumPy()
            results.append(dense.split_product(xp, a, b, np.empty((1000, 128), np.float32)))
            assert xp.calls == 1000 // 250
    finally:
        parallel.set_num_threads(None)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    np.testing.assert_allclose(results[0], a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("batch, folded", [(8, False), (9, True), (1000, True)])
def test_the_plan_folds_batches_of_more_than_twice_the_units(batch, folded):
    """The fold copies the weight (and in training its gradient) instead of the batch: only where
    that is fewer bytes in training as in inference (kernels/plan.py), whether recorded or not."""
    rng = np.random.default_rng(0)
    model = nn.Sequential([nn.Flatten(), nn.Dense(4, activation="relu")], input_shape=(3, 2, 2))
    x = Tensor(_channels_last(rng.standard_normal((batch, 3, 2, 2)).astype(np.float32)), requires_grad=True)
    recorded = model(x)
    assert type(recorded.grad_fn) is (dense.FlattenLinear if folded else dense.FusedLinear)
    with tg.no_grad():
        inferred = model(x)
    np.testing.assert_array_equal(inferred.numpy(), recorded.numpy())
