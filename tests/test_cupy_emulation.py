"""The CuPy emulation (tests/cupy_emulation) follows CuPy's rules, and a full training step of the
tutorial model runs on it (or on a real GPU, which always takes precedence) as on the CPU."""
import json
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import nn, optim
from tinygrad_cnn.nn import functional as F

from conftest import EMULATED

HERE = Path(__file__).resolve().parent
emulated = pytest.mark.skipif(not EMULATED, reason="checks the emulation itself (a real GPU is in use)")


@pytest.fixture
def cp():
    import cupy
    return cupy


def test_the_name_list_comes_from_cupy_14():
    names = json.loads((HERE / "cupy_emulation" / "names.json").read_text())
    assert names["cupy_version"].startswith("14.")
    assert "fuse" in names["cupy"] and "asnumpy" in names["cupy"]
    assert "writeable" not in names["flags"] and "c_contiguous" in names["flags"]
    assert "where" not in names["cupy"]["add"]["params"]


@emulated
@pytest.mark.gpu
def test_emulation_refuses_what_cupy_refuses(cp):
    a = cp.arange(6, dtype=cp.float32).reshape(2, 3)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Unsupported type"):
        a + np.ones(3, dtype=np.float32)
    with pytest.raises(TypeError, match="unexpected keyword argument 'where'"):
        cp.add(a, 1, where=True)
    with pytest.raises(AttributeError, match="writeable"):
        a.flags.writeable
    with pytest.raises(AttributeError, match="no attribute 'geomspace'"):
        cp.geomspace  # NumPy has it, CuPy 14 does not
    with pytest.raises(TypeError, match="add.at"):
        cp.add.at(cp.zeros(3, dtype=cp.int64), cp.asarray([0]), 1)
    np.testing.assert_array_equal(a.get(), np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(a[cp.asarray([3])].get(), a[cp.asarray([1])].get())  # wraps, as CuPy does
    with cp.cuda.Device(1):
        b = cp.zeros(3)
    with pytest.raises(ValueError, match="different from the current device"):
        b + 1


@emulated
@pytest.mark.gpu
def test_a_view_holds_its_base_array_as_cupy_views_do(cp):
    """CuPy's view.base is the array that owns the memory (the same object, kept alive by the view):
    tensor.backward() counts references to know whether a gradient may be kept without a copy."""
    import sys
    a = cp.arange(6, dtype=cp.float32)
    before = sys.getrefcount(a)
    view = a.reshape(2, 3)
    assert a.base is None and view.base is a and view.T.base is a and view[1:].base is a
    assert sys.getrefcount(a) == before + 1
    assert (a * 2).base is None


@emulated
@pytest.mark.gpu
def test_emulation_counts_launches_syncs_and_transfers_by_line(cp):
    from cupy_emulation import record
    with record() as counts:
        a = cp.asarray(np.ones(4, dtype=np.float32))  # one transfer, 16 bytes
        b = a * 2 + 1  # two launches
        view = b.reshape(2, 2).T  # none
        value = float(view.sum())  # one launch, one sync, one transfer back
    assert value == 12.0
    assert counts.as_dict() == dict(launches=3, syncs=1, h2d=1, d2h=1, h2d_bytes=16, d2h_bytes=4)
    lines = {site for (kind, site) in counts.sites if kind == "launch"}
    assert all(site.startswith("tests/test_cupy_emulation.py:") for site in lines), lines


def _tutorial_model(device):
    tg.manual_seed(0)
    model = nn.Sequential([
        nn.Conv2D(32, (3, 3), padding="same", activation="relu"), nn.MaxPool2D((2, 2), strides=2),
        nn.Conv2D(64, (3, 3), padding="same", activation="relu"), nn.MaxPool2D((2, 2), strides=2),
        nn.Flatten(), nn.Dense(128, activation="relu"), nn.Dense(10, activation="softmax"),
    ], input_shape=(1, 28, 28))
    model.to(device)
    return model


@pytest.mark.gpu
def test_a_training_step_of_the_tutorial_model_on_cuda_matches_the_cpu(monkeypatch):
    # NOTE: the CPU runs the direct convolution kernel here, as the GPU does: with Winograd for conv2
    # (kernels/winograd.py, CPU only), Adam's first steps magnify its different float32 rounding of
    # near-zero weight gradients to 6e-5 in 25 of conv2's 18,432 weights (tests/test_winograd.py
    # checks Winograd against the reference)
    monkeypatch.setattr(tg.kernels.winograd, "WINS_FROM_CHANNELS", 1 << 30)
    rng = np.random.default_rng(0)
    x = rng.random((16, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    results = {}
    for device in ("cpu", "cuda"):
        model = _tutorial_model(device)
        optimizer = optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(2):
            loss = F.cross_entropy(model.logits(tg.Tensor(x, device=device)), tg.Tensor(y, device=device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        assert all(p.device == tg.device.canonical_device(device) for p in model.parameters())
        results[device] = (loss.item(), [p.numpy() for p in model.parameters()])
    assert results["cuda"][0] == pytest.approx(results["cpu"][0], rel=1e-5)
    for gpu, cpu in zip(results["cuda"][1], results["cpu"][1]):
        # NOTE: atol 1e-5: the GPU sums a convolution's weight gradient in one chunk, the CPU in one
        # per thread share; Adam's first steps (lr 1e-3) magnify that float32 order difference
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5)
