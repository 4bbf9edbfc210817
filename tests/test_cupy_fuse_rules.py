"""The emulation types fused kernels as CuPy does (rules read from the real package into
tests/cupy_emulation/fuse_rules.json by make_fuse_rules.py), wraps integer indices as CuPy's kernels
do, and the package's kernels give the CPU's results under CuPy 14's rule and CuPy 13's (issue 23).
Also: where a gradient that crosses devices lands, and the non-finite check over dtype groups."""
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import nn, optim
from tinygrad_cnn.nn import functional as F

from conftest import EMULATED

HERE = Path(__file__).resolve().parent
RULES = json.loads((HERE / "cupy_emulation" / "fuse_rules.json").read_text())
emulated = pytest.mark.skipif(not EMULATED, reason="checks the emulation itself (a real GPU is in use)")
PYTHON_VALUES = {"bool": True, "int": 3, "float": 0.5}  # make_fuse_rules.PYTHON_SCALARS


@pytest.fixture
def cp():
    import cupy
    return cupy


def _probe_operand(label):
    """make_fuse_rules.operands()'s label -> the emulation's (dtype, scalar, weak type, constant)."""
    kind, name = label.split(":")
    if kind == "array":
        return np.dtype(name), False, False, None
    if kind == "numpy":
        return np.dtype(name), True, np.dtype(name).type, None
    value = PYTHON_VALUES[name]
    return np.dtype(type(value)), True, type(value), value if kind == "constant" else None


def test_the_rules_come_from_cupy_14_and_hold_float16_for_python_scalars():
    assert RULES["cupy_version"].startswith("14.") and RULES["rule"] == "v14"
    subtract = {tuple(labels): loop for labels, loop in RULES["probes"]["subtract"]}
    # the finding of issue 23: Python scalars alone compute in float16 inside fuse
    assert subtract[("constant:int", "python:float")] == "eee"
    assert subtract[("array:f", "python:float")] == "fff"
    assert subtract[("array:f", "numpy:d")] == "ddd"  # a NumPy scalar is not weak in effect
    assert RULES["indexing"]["wraps"]


@emulated
@pytest.mark.parametrize("ufunc", sorted(RULES["probes"]))
def test_the_emulation_picks_every_loop_real_cupy_fuse_picked(ufunc):
    import cupy_emulation
    name = "where" if ufunc == "where" else ufunc
    wrong = []
    for labels, loop in RULES["probes"][ufunc]:
        chosen = cupy_emulation._choose_loop(name, [_probe_operand(label) for label in labels], [])
        expected = None if loop.startswith("error") else [np.dtype(c) for c in loop]
        got = None if chosen is None else list(chosen[0] + chosen[1])
        if got != expected:
            wrong.append((labels, loop, got))
    assert not wrong, f"{len(wrong)} of {len(RULES['probes'][ufunc])} differ, e.g. {wrong[:3]}"


@emulated
@pytest.mark.gpu
def test_a_fused_kernel_computes_python_scalars_in_float16_as_cupy_14_does(cp):
    import cupy_emulation

    def kernel(p, b1):
        p -= 1 - b1
        return p * b1

    p = cp.zeros(2, dtype=cp.float32)
    out = cp.fuse(kernel)(p, 0.9)
    assert p.get()[0] == -np.float32(np.float16(1 - np.float16(0.9)))  # 0.0999755859375, not 0.1
    assert out.dtype == np.float32
    with cupy_emulation.fuse_rules("v13"):  # CuPy 13 with NumPy 2: a Python float argument is float64
        q = cp.zeros(2, dtype=cp.float32)
        out = cp.fuse(kernel)(q, 0.9)
    assert q.get()[0] == np.float32(-(1 - 0.9)) and out.dtype == np.float64
    typed = cp.zeros(2, dtype=cp.float32)
    assert cp.fuse(kernel)(typed, np.float32(0.9)).dtype == np.float32
    assert typed.get()[0] == -(np.float32(1) - np.float32(0.9))


@emulated
@pytest.mark.gpu
def test_integer_indices_wrap_as_cupys_kernels_do(cp):
    a = cp.arange(3, dtype=cp.float32)
    np.testing.assert_array_equal(a[cp.asarray([3, -4, 7, -1])].get(), [0, 2, 1, 2])
    b = cp.arange(6, dtype=cp.float32).reshape(2, 3)
    np.testing.assert_array_equal(b[cp.asarray([0, 1]), cp.asarray([3, -1])].get(), [0, 5])


@pytest.mark.kernels  # the fused loss kernel (the reference checks labels with a sync and raises)
@pytest.mark.gpu
@pytest.mark.parametrize("classes", [3, 10])
def test_a_device_label_equal_to_the_class_count_gives_nan_not_class_0(classes):
    """CuPy wraps label `classes` to class 0; the loss kernels' mask (label < classes) makes it NaN."""
    x = np.random.default_rng(1).standard_normal((4, classes)).astype(np.float32)
    logits = tg.Tensor(x, device="cuda", requires_grad=True)
    labels = tg.Tensor(np.array([0, classes, classes - 1, -1]), device="cuda")
    loss = F.cross_entropy(logits, labels, reduction="none")
    loss.sum().backward()
    values, grad = loss.numpy(), logits.grad.numpy()
    assert np.isnan(values[[1, 3]]).all() and np.isfinite(values[[0, 2]]).all()
    assert np.isnan(grad[[1, 3]]).all() and np.isfinite(grad[[0, 2]]).all()


def _tutorial_model(device):
    tg.manual_seed(0)
    model = nn.Sequential([
        nn.Conv2D(32, (3, 3), padding="same", activation="relu"), nn.MaxPool2D((2, 2), strides=2),
        nn.Conv2D(64, (3, 3), padding="same", activation="relu"), nn.MaxPool2D((2, 2), strides=2),
        nn.Flatten(), nn.Dense(128, activation="relu"), nn.Dense(10, activation="softmax"),
    ], input_shape=(1, 28, 28))
    model.to(device)
    return model


OPTIMIZERS = {
    "adam": lambda ps: optim.Adam(ps, lr=1e-3),
    # lr * weight_decay = 1e-5: in float16, 1 - 1e-5 is 1.0 and the decay vanished (issue 23)
    "adamw": lambda ps: optim.AdamW(ps, lr=1e-3, weight_decay=1e-2),
    "sgd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
}


@emulated
@pytest.mark.gpu
@pytest.mark.parametrize("rules", ["v13", "v14"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_tutorial_steps_match_the_cpu_under_both_cupy_versions_rules(rules, name, monkeypatch):
    import cupy_emulation
    # NOTE: the direct conv kernel on the CPU too, as on the GPU (see test_cupy_emulation.py's test)
    monkeypatch.setattr(tg.kernels.winograd, "WINS_FROM_CHANNELS", 1 << 30)
    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 8)
    results = {}
    for device in ("cpu", "cuda"):
        model = _tutorial_model(device)
        optimizer = OPTIMIZERS[name](model.parameters())
        with cupy_emulation.fuse_rules(rules):
            for _ in range(2):
                loss = F.cross_entropy(model.logits(tg.Tensor(x, device=device)), tg.Tensor(y, device=device))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        assert loss.dtype == np.float32 and all(p.dtype == np.float32 for p in model.parameters())
        results[device] = (loss.item(), [p.numpy() for p in model.parameters()])
    assert results["cuda"][0] == pytest.approx(results["cpu"][0], rel=1e-5)
    for gpu, cpu in zip(results["cuda"][1], results["cpu"][1]):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5)  # as the test in test_cupy_emulation.py


@pytest.mark.gpu
def test_a_gradient_that_crossed_to_the_gpu_comes_back_to_the_cpu():
    x = tg.Tensor(np.arange(3, dtype=np.float32), requires_grad=True)
    (x.to("cuda") * 2).sum().backward()
    assert x.grad.device == "cpu" and type(x.grad.data) is np.ndarray
    np.testing.assert_array_equal(x.grad.numpy(), [2, 2, 2])
    y = tg.Tensor(np.ones(2, dtype=np.float32), device="cuda", requires_grad=True)
    y.to("cpu").sum().backward()
    assert y.grad.device == "cuda:0"


@pytest.mark.parametrize("bad_first", [False, True])
def test_a_nan_in_any_dtype_group_skips_the_whole_step(bad_first):
    """One float32 and one float64 parameter (two flat groups): a NaN in either gradient skips both."""
    a = tg.Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    b = tg.Tensor(np.ones(2, dtype=np.float64), requires_grad=True)
    opt = optim.SGD([a, b], lr=0.1)
    ga, gb = np.ones(3, dtype=np.float32), np.ones(2, dtype=np.float64)
    (ga if bad_first else gb)[0] = np.nan
    a.grad, b.grad = tg.Tensor(ga), tg.Tensor(gb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        opt.step()
    assert opt.skipped_steps == 1
    np.testing.assert_array_equal(a.numpy(), 1)
    np.testing.assert_array_equal(b.numpy(), 1)


@pytest.mark.gpu
@pytest.mark.parametrize("bad_first", [False, True])
def test_a_nan_in_any_dtype_group_skips_the_whole_step_on_a_gpu(bad_first):
    a = tg.Tensor(np.ones(3, dtype=np.float32), device="cuda", requires_grad=True)
    b = tg.Tensor(np.ones(2, dtype=np.float64), device="cuda", requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    ga, gb = np.ones(3, dtype=np.float32), np.ones(2, dtype=np.float64)
    (ga if bad_first else gb)[0] = np.nan
    a.grad, b.grad = tg.Tensor(ga, device="cuda"), tg.Tensor(gb, device="cuda")
    opt.step()
    assert opt.skipped_steps == 1
    np.testing.assert_array_equal(a.numpy(), 1)
    np.testing.assert_array_equal(b.numpy(), 1)
