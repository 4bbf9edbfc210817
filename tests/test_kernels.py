"""Every kernel against the reference it replaces (kernels.TABLE): the same call through the public API
with the kernels on (the default) and off (kernels.reference()), values and gradients for a random
upstream gradient, on NumPy and on the (emulated) GPU. Plus the switch itself, and that the kernel
that ran is the one named."""
import os
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn import Tensor, conv, kernels, ops
from tinygrad_cnn.kernels import conv as conv_kernels, conv_few, winograd
from tinygrad_cnn.nn import functional as F
from tinygrad_cnn.testing import strategies as S

from conftest import DEVICES, PROFILE
from op_specs import linear_case, matmul_case
from test_conv_pool import conv2d_loop, conv_cases, conv_pads, conv_pool_cases, pool_cases

device_param = pytest.mark.parametrize("device", DEVICES)


pytestmark = pytest.mark.kernels  # each test turns the reference ops on itself where it wants them


def _run(fn, arrays, device, upstream_seed=0):
    """fn's output and every input's gradient for a random upstream gradient, as NumPy arrays."""
    inputs = [None if a is None else Tensor(a, device=device, requires_grad=True) for a in arrays]
    out = fn(*inputs)
    upstream = np.random.default_rng(upstream_seed).standard_normal(out.shape)
    out.backward(Tensor(upstream, device=device))
    return out, [out.numpy()] + [t.grad.numpy() for t in inputs if t is not None]


def _same_both_ways(fn, arrays, device, rtol=1e-10, atol=1e-12):
    """Run fn with the kernels and on the reference ops; assert equal values and gradients, and
    return the type of the op that made each output (the kernel's, then the reference's)."""
    fast_out, fast = _run(fn, arrays, device)
    with kernels.reference():
        ref_out, ref = _run(fn, arrays, device)
    for name, a, b in zip(["value"] + [f"gradient {i}" for i in range(len(fast))], fast, ref):
        assert a.shape == b.shape, f"{name}: shape {a.shape} with the kernels, {b.shape} without"
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"{name} differs from the reference")
    return type(fast_out.grad_fn), type(ref_out.grad_fn)


def _top_ops(fn_types):
    return tuple(t.__name__ for t in fn_types)


# ---------------------------------------------------------------- ops

@device_param
@given(x=S.shapes(min_dims=0, max_dims=3, max_side=5).flatmap(lambda s: S.away_from(S.arrays(s), margin=1e-3)))
def test_relu_kernel(device, x):
    ran = _same_both_ways(lambda t: t.relu(), [x], device)
    assert _top_ops(ran) == ("ThreadedReLU", "ReLU")


@device_param
@given(data=st.data())
def test_matmul_kernel(device, data):
    ranks = data.draw(st.sampled_from([(2, 2), (1, 2), (2, 1), (3, 2), (3, 3)]), label="ranks")
    case = data.draw(matmul_case(*ranks, batch=min(ranks) > 2), label="case")
    ran = _same_both_ways(lambda a, b: a @ b, case.arrays, device)
    expected = "SplitMatMul" if device == "cpu" else "MatMul"  # the split is a CPU kernel only
    assert _top_ops(ran)[1] == "MatMul" and ran[0].__name__ == expected


@device_param
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("bias", [False, True])
@given(data=st.data())
def test_linear_kernel(device, relu, bias, data):
    case = data.draw(linear_case(bias=bias), label="case")
    if relu:  # keep every pre-activation away from ReLU's kink, where the two may break ties apart
        x, w = case.arrays[:2]
        pre = x @ w.T + (case.arrays[2] if bias else 0)
        data.draw(st.just(None).filter(lambda _: np.abs(pre).min(initial=1.0) > 1e-6))
    ran = _same_both_ways(lambda *t: F.linear(*t, relu=relu), case.arrays, device)
    assert _top_ops(ran) == ("FusedLinear", "ReLU" if relu else "Linear")


# ---------------------------------------------------------------- convolution and pooling

@device_param
@given(case=conv_cases())
def test_convolution_kernel(device, case):
    x, w, b, kwargs = case
    ran = _same_both_ways(lambda *t: F.conv2d(*t, **kwargs), [x, w, b], device)
    assert _top_ops(ran) == ("FusedConvolution", "Convolution")


def _no_near_ties(y, pool, relu, gap=1e-6):
    """Whether every pool window of y (N, C, H, W) has one clear maximum (and, with relu, no value
    near 0): the kernel and the reference may round tied values apart, and then pick apart."""
    (ph, pw), (n, c, h, w) = pool, y.shape
    tiles = y[:, :, :h // ph * ph, :w // pw * pw].reshape(n, c, h // ph, ph, w // pw, pw)
    tiles = np.sort(tiles.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // ph, w // pw, ph * pw), axis=-1)
    clear = ph * pw == 1 or np.all(tiles[..., -1] - tiles[..., -2] > gap)
    return bool(clear and (not relu or np.abs(tiles[..., -1]).min(initial=1.0) > gap))


@device_param
@pytest.mark.parametrize("relu", [False, True])
@settings(suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(case=conv_pool_cases())
def test_fused_conv_pool_relu_kernel(device, relu, case):
    x, w, b, kwargs, pool = case
    jitter = np.random.default_rng(0)  # NOTE: drawn values tie often (0, 1, ...): a little noise breaks most ties
    x, w = x + jitter.uniform(-1e-3, 1e-3, x.shape), w + jitter.uniform(-1e-3, 1e-3, w.shape)
    assume(_no_near_ties(conv2d_loop(x, w, b, **kwargs), pool, relu))
    ran = _same_both_ways(lambda *t: F.conv2d_max_pool2d(*t, pool_size=pool, relu=relu, **kwargs), [x, w, b], device)
    few = device == "cpu" and x.shape[1] <= conv_few.MAX_CHANNELS  # (kernels/conv_few.py: the first layer's)
    assert _top_ops(ran) == ("FewChannelConvolution" if few else "FusedConvolution", "ReLU" if relu else "MaxPool")


@device_param
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@settings(suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data())
def test_convolution_input_gradient_from_rows_of_taps(device, dtype, data):
    """The input gradient's full correlation (kernels/conv.py, _InputGradient._rows on the CPU: one GEMM
    over each output pixel's horizontal taps, then the vertical taps' sums added from shifted rows; a
    GPU's im2col) against the reference ops: batches that split into several chunks, odd sizes, non-square kernels,
    dilations, paddings within the kernel's reach, wide channel counts, with and without a pool."""
    n, o = data.draw(st.integers(1, 19), label="n"), data.draw(st.integers(1, 20), label="o")
    c = data.draw(st.integers(-(-o // 2), 20), label="c")  # C >= O / 2: the full path
    kernel = data.draw(st.integers(1, 4), label="kh"), data.draw(st.integers(1, 4), label="kw")
    dilation = data.draw(st.sampled_from([(1, 1), (2, 1), (1, 2)]), label="dilation")
    padding = data.draw(st.sampled_from(["valid", "same", 1, (0, 1), (2, 1)]), label="padding")
    (top, bottom), (left, right) = conv_pads(padding, kernel, dilation)
    reach = [d * (k - 1) for k, d in zip(kernel, dilation)]
    assume(max(top, bottom) <= reach[0] and max(left, right) <= reach[1])  # (else col2im's path)
    h = data.draw(st.integers(max(1, reach[0] + 1 - top - bottom), 11), label="h")
    w = data.draw(st.integers(max(1, reach[1] + 1 - left - right), 11), label="w")
    out_h, out_w = h + top + bottom - reach[0], w + left + right - reach[1]
    pool = data.draw(st.sampled_from([None] + ([(2, 2)] if min(out_h, out_w) >= 2 else [])), label="pool")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    x, weight, b = (rng.standard_normal(s).astype(dtype) for s in ((n, c, h, w), (o, c) + kernel, (o,)))
    if pool is not None:  # the kernel and the reference round apart, so near-ties could route apart
        assume(_no_near_ties(conv2d_loop(x, weight, b, 1, padding, dilation), pool, False, gap=1e-3))
        fn = lambda *t: F.conv2d_max_pool2d(*t, padding=padding, dilation=dilation, pool_size=pool)  # noqa: E731
    else:
        fn = lambda *t: F.conv2d(*t, padding=padding, dilation=dilation)  # noqa: E731
    tol = 1e-9 if dtype == np.float64 else 1e-3

    def run():
        inputs = [Tensor(a, device=device, requires_grad=True) for a in (x, weight, b)]
        out = fn(*inputs)
        out.backward(Tensor(np.random.default_rng(1).standard_normal(out.shape).astype(dtype), device=device))
        return [t.grad.numpy() for t in inputs]

    path = "_rows" if device == "cpu" else "_im2col_rows"  # (a GPU's full path: see _InputGradient.__init__)
    with mock.patch.object(conv_kernels._InputGradient, path, autospec=True,
                           side_effect=getattr(conv_kernels._InputGradient, path)) as full_path:
        fast = run()
    assert full_path.called, f"the input gradient did not take the full path ({path})"
    with kernels.reference():
        ref = run()
    for name, a, r in zip(["x", "weight", "bias"], fast, ref):
        assert a.dtype == dtype, f"{name}'s gradient is {a.dtype}"
        np.testing.assert_allclose(a, r, rtol=tol, atol=tol, err_msg=f"{name}'s gradient differs from the reference")


@pytest.mark.parametrize("relu", [False, True])
@settings(suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data())
def test_winograd_conv_pool_relu_kernel(relu, data):
    """conv2d_max_pool2d where kernels/winograd.py applies (3x3, stride 1, 2x2 pool over an even
    output, enough input channels; the CPU only): Winograd F(2x2, 3x3) against the reference ops."""
    c = data.draw(st.integers(32, 35), label="channels")
    n, o, side = data.draw(st.integers(1, 3), label="n"), data.draw(st.integers(1, 3), label="o"), \
        2 * data.draw(st.integers(1, 3), label="half side")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    x, w, b = rng.standard_normal((n, c, side, side)), rng.standard_normal((o, c, 3, 3)), rng.standard_normal(o)
    assume(_no_near_ties(conv2d_loop(x, w, b, 1, "same", 1), (2, 2), relu))
    with mock.patch.object(winograd, "WINS_FROM_CHANNELS", 32):  # (not chosen by default: see winograd.py)
        ran = _same_both_ways(lambda *t: F.conv2d_max_pool2d(*t, pool_size=2, relu=relu, padding="same"), [x, w, b],
                              "cpu")
    assert _top_ops(ran) == ("WinogradConvPool", "ReLU" if relu else "MaxPool")


@device_param
@given(case=pool_cases())
def test_max_pool_kernel(device, case):
    x, kwargs = case
    ran = _same_both_ways(lambda t: F.max_pool2d(t, **kwargs), [x], device)
    assert _top_ops(ran) == ("RoutedMaxPool", "MaxPool")


# ---------------------------------------------------------------- the layer plan

def _tutorial_like(seed, data_format="channels_first"):
    tg.manual_seed(seed)
    shape = (1, 8, 8) if data_format == "channels_first" else (8, 8, 1)
    return tg.nn.Sequential([
        tg.nn.Conv2D(4, 3, padding="same", activation="relu", data_format=data_format, dtype="float64"),
        tg.nn.MaxPool2D(2, data_format=data_format),
        tg.nn.Conv2D(5, 3, activation="relu", data_format=data_format, dtype="float64"),
        tg.nn.Flatten(), tg.nn.Dense(6, activation="relu", dtype="float64"),
        tg.nn.Dense(3, dtype="float64")], input_shape=shape)


@device_param
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
@settings(max_examples=4 if PROFILE == "ci" else 30)
@given(seed=st.integers(0, 2**16))
def test_layer_plan_kernel(device, data_format, seed):
    """Sequential with the plan (fused conv+pool+ReLU, Dense+ReLU) and layer by layer: the same
    output and parameter gradients."""
    model = _tutorial_like(seed, data_format).to(device)
    x = np.random.default_rng(seed).standard_normal((3,) + model.input_shape)
    results = []
    for switch in (kernels.enabled, kernels.reference):
        model.zero_grad()
        with switch():
            out = model(Tensor(x, device=device))
            out.backward(Tensor(np.random.default_rng(1).standard_normal(out.shape), device=device))
        results.append([out.numpy()] + [p.grad.numpy() for p in model.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- the switch

def test_every_row_names_a_reference_of_the_core_and_a_kernel_of_this_package():
    for row in kernels.TABLE:
        assert row.kernel.__module__.startswith("tinygrad_cnn.kernels."), row
        assert not row.reference.__module__.startswith("tinygrad_cnn.kernels"), row
        assert set(row.devices) <= {"cpu", "cuda"} and row.why, row
        assert row.kernel is not row.reference, row
        if isinstance(row.reference, type) and issubclass(row.reference, tg.Function):  # errors name the one that ran
            assert issubclass(row.kernel, tg.Function) and row.kernel.__name__ != row.reference.__name__, row


def test_the_core_never_imports_kernels():
    """Kernels import the core; the core files name nothing of kernels/ (the package's __init__ installs them)."""
    package = os.path.dirname(tg.__file__)
    for name in ("device.py", "autograd.py", "tensor.py", "ops.py", "conv.py", "nn/layers.py"):
        with open(os.path.join(package, name), encoding="utf-8") as f:
            source = f.read()
        assert "import kernels" not in source and "from .kernels" not in source and "from ..kernels" not in source, name


def test_reference_context_restores_the_previous_mode_also_on_error():
    assert kernels.kernels_enabled()
    with pytest.raises(ZeroDivisionError):
        with kernels.reference():
            assert not kernels.kernels_enabled()
            assert kernels.kernel_for(ops.ReLU, "cpu") is ops.ReLU
            1 / 0
    assert kernels.kernels_enabled() and kernels.kernel_for(ops.ReLU, "cpu") is not ops.ReLU
    with kernels.reference():
        with kernels.enabled():
            assert kernels.kernels_enabled()
        assert not kernels.kernels_enabled()


def _subprocess(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env}, cwd=os.path.dirname(os.path.dirname(tg.__file__)))


def test_environment_switch_runs_the_reference_ops():
    code = ("import tinygrad_cnn as tg; x = tg.Tensor([[-1.0, 2.0]], requires_grad=True); "
            "print(type(x.relu().grad_fn).__name__, tg.kernels.kernels_enabled())")
    assert _subprocess(code, TINYGRAD_CNN_KERNELS="reference").stdout.split() == ["ReLU", "False"]
    assert _subprocess(code, TINYGRAD_CNN_KERNELS="").stdout.split() == ["ThreadedReLU", "True"]
    bad = _subprocess(code, TINYGRAD_CNN_KERNELS="slow")
    assert bad.returncode != 0 and "TINYGRAD_CNN_KERNELS must be 'fast' (the default) or 'reference'" in bad.stderr


def test_an_in_place_error_names_the_kernel_that_ran():
    w = Tensor(np.ones((2, 3)), requires_grad=True)
    x = Tensor(np.ones((4, 3)))
    for switch, name in ((kernels.enabled, "FusedLinear"), (kernels.reference, "Linear")):
        with switch():
            out = F.linear(x, w)
        with tg.no_grad():
            x.add_(1)
        with pytest.raises(RuntimeError, match=f"an input of {name} \\(shape"):
            out.sum().backward()


# ---------------------------------------------------------------- the loss and the optimizer step

@device_param
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(data=st.data())
def test_cross_entropy_kernel(device, reduction, data):
    n, classes = data.draw(st.integers(1, 5), label="n"), data.draw(st.integers(1, 6), label="classes")
    logits = data.draw(S.arrays((n, classes), min_value=-30, max_value=30), label="logits")
    targets = np.array(data.draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n), label="targets"))
    ran = _same_both_ways(lambda t: F.cross_entropy(t, Tensor(targets, device=device), reduction), [logits], device)
    assert ran[0].__name__ == "FusedCrossEntropy" and "CrossEntropy" not in ran[1].__name__


OPTIMIZERS = {
    "sgd": lambda ps, wd: tg.optim.SGD(ps, lr=0.1, weight_decay=wd),
    "nesterov": lambda ps, wd: tg.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=wd),
    "adam": lambda ps, wd: tg.optim.Adam(ps, lr=0.01, weight_decay=wd),
    "adam_eps_hat": lambda ps, wd: tg.optim.Adam(ps, lr=0.01, eps=1e-3, eps_hat=True, weight_decay=wd),
    "adamw": lambda ps, wd: tg.optim.AdamW(ps, lr=0.01, weight_decay=wd + 0.01),
    "rmsprop": lambda ps, wd: tg.optim.RMSprop(ps, lr=0.01, weight_decay=wd),
    "rmsprop_centered_momentum": lambda ps, wd: tg.optim.RMSprop(ps, lr=0.01, momentum=0.9, centered=True,
                                                                  weight_decay=wd),
    "rmsprop_keras": lambda ps, wd: tg.optim.RMSprop(ps, lr=0.01, eps=1e-7, eps_inside=True, weight_decay=wd),
    "adadelta": lambda ps, wd: tg.optim.Adadelta(ps, weight_decay=wd),
}


@device_param
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@settings(max_examples=5 if PROFILE == "ci" else 40)
@given(seed=st.integers(0, 2**16), weight_decay=st.sampled_from([0.0, 0.1]), dtype=st.sampled_from(["float32", "float64"]))
def test_optimizer_step_kernel(device, name, seed, weight_decay, dtype):
    """A few steps, one with a NaN gradient (skipped) and one where a parameter has no gradient: the
    flat-buffer step (kernels/optim.py) and the textbook one end at the same parameters and state."""
    results = []
    for switch in (kernels.enabled, kernels.reference):
        rng = np.random.default_rng(seed)
        params = [Tensor(rng.standard_normal(s).astype(dtype), device=device, requires_grad=True) for s in [(3, 4), (4,), (2,)]]
        opt = OPTIMIZERS[name](params, weight_decay)
        with switch(), pytest.warns(RuntimeWarning, match="non-finite") if device == "cpu" else _nothing():
            for step in range(5):
                for k, p in enumerate(params):
                    grad = rng.standard_normal(p.shape).astype(dtype)
                    if step == 2 and k == 1:
                        grad[0] = np.nan
                    p.grad = None if step == 3 and k == 2 else Tensor(grad, device=device)
                opt.step()
        results.append(([p.numpy() for p in params], opt.state_dict(), opt.skipped_steps))
    (fast, fast_state, fast_skips), (ref, ref_state, ref_skips) = results
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-14)
    for a, b in zip(fast, ref):
        np.testing.assert_allclose(a, b, **tol)
    assert sorted(fast_state) == sorted(ref_state) and fast_skips == ref_skips == 1
    for key in fast_state:
        np.testing.assert_allclose(np.asarray(fast_state[key], dtype=float), np.asarray(ref_state[key], dtype=float),
                                   **tol, err_msg=key)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
