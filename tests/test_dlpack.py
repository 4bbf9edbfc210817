"""DLPack: arrays move between tinygrad_cnn, NumPy and (where installed) PyTorch without a copy."""
import numpy as np
import pytest

import tinygrad_cnn as tg


def test_from_dlpack_shares_numpy_memory_both_ways():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = tg.from_dlpack(a)
    assert t.shape == (2, 3) and t.dtype == np.float32 and t.device == "cpu"
    assert np.shares_memory(t.data, a)
    back = np.from_dlpack(t)
    assert np.shares_memory(back, a)
    a[0, 0] = 42.0
    assert t.numpy()[0, 0] == 42.0 and back[0, 0] == 42.0
    assert t.__dlpack_device__() == (1, 0)


def test_from_dlpack_refuses_what_is_not_an_array():
    with pytest.raises(TypeError, match="__dlpack__"):
        tg.from_dlpack([1.0, 2.0])
    with pytest.raises(TypeError, match="float"):
        tg.from_dlpack(np.arange(3), requires_grad=True)


def test_from_dlpack_result_trains():
    t = tg.from_dlpack(np.ones(3), requires_grad=True)
    (t * t).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), 2 * np.ones(3))


def test_torch_sees_the_same_memory():
    torch = pytest.importorskip("torch", reason="torch not installed (pip install torch==2.13.0)")
    t = tg.Tensor(np.arange(4, dtype=np.float32))
    pt = torch.from_dlpack(t)
    pt[1] = -1.0
    assert t.numpy()[1] == -1.0
    back = tg.from_dlpack(pt)
    assert np.shares_memory(back.data, t.data)
