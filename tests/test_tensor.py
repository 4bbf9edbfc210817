"""Tensor basics: construction and dtypes, factories, seeding, attributes, conversions, repr, and
how the default device and device names are chosen."""
import sys

import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import DeviceError, Tensor
from tinygrad_cnn.device import DEFAULT_DEVICE_ENV, canonical_device

from conftest import DEVICES

device_param = pytest.mark.parametrize("device", DEVICES)

# ---------------------------------------------------------------- construction and dtypes


@pytest.mark.parametrize("data, dtype, shape", [
    (2.5, np.float32, ()),
    (3, np.int64, ()),
    (True, np.bool_, ()),
    ([1.0, 2.0], np.float32, (2,)),
    ([[1, 2, 3], [4, 5, 6]], np.int64, (2, 3)),
    ([[1, 2.5]], np.float32, (1, 2)),            # a float anywhere makes it float32
    ([[[0.5]], [[1.5]]], np.float32, (2, 1, 1)),
], ids=["float", "int", "bool", "floats", "nested-ints", "mixed", "3-d"])
def test_python_data(data, dtype, shape):
    t = Tensor(data)
    assert t.dtype == dtype and t.shape == shape
    np.testing.assert_array_equal(t.numpy(), np.asarray(data, dtype=dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int32, np.int64, np.uint8, np.bool_])
def test_numpy_arrays_keep_their_dtype(dtype):
    a = (np.arange(6).reshape(2, 3) % 3).astype(dtype)
    t = Tensor(a)
    assert t.dtype == dtype and t.shape == (2, 3)
    np.testing.assert_array_equal(t.numpy(), a)


def test_numpy_scalars_keep_their_dtype_and_become_arrays():
    t = Tensor(np.float64(2.5))
    assert t.dtype == np.float64 and t.shape == ()
    t.data[...] = 1.0  # an array, writable in place (gradcheck and optimizers do this)
    assert t.item() == 1.0


@device_param
def test_data_of_a_full_reduction_is_an_array(device):
    s = Tensor(np.ones((2, 3)), device=device).sum()
    assert s.shape == () and s.ndim == 0
    s.data[...] = 0.0
    assert s.item() == 0.0


def test_dtype_argument_converts():
    assert Tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert Tensor(np.ones(2), dtype="float32").dtype == np.float32
    assert Tensor([1.5, 2.5], dtype=tc.float64).numpy().dtype == np.float64


def test_tensor_from_tensor_shares_data():
    a = Tensor(np.arange(3.0))
    b = Tensor(a)
    assert np.shares_memory(a.data, b.data) and b.dtype == np.float64


@pytest.mark.parametrize("bad", ["abc", [1, "a"], None, {"a": 1}, np.array(["x"]), 1 + 2j])
def test_unsupported_data_is_a_type_error(bad):
    with pytest.raises(TypeError, match="Tensor cannot hold"):
        Tensor(bad)


# ---------------------------------------------------------------- factories

@device_param
@pytest.mark.parametrize("factory, fill", [(tc.zeros, 0.0), (tc.ones, 1.0)])
def test_zeros_ones_shapes_as_varargs_or_tuple(device, factory, fill):
    for t in (factory(2, 3, device=device), factory((2, 3), device=device), factory([2, 3], device=device)):
        assert t.shape == (2, 3) and t.dtype == np.float32 and t.device == canonical_device(device)
        np.testing.assert_array_equal(t.numpy(), np.full((2, 3), fill))
    assert factory(4, device=device).shape == (4,)
    assert factory(device=device).shape == ()
    assert factory(2, dtype=np.float64, device=device).dtype == np.float64
    assert factory(2, device=device, requires_grad=True).requires_grad


@device_param
def test_full(device):
    t = tc.full((2, 3), 7.5, device=device)
    assert t.shape == (2, 3) and t.dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), np.full((2, 3), 7.5))
    assert tc.full(4, -1.0, device=device).shape == (4,)
    assert tc.full(2, 3, dtype=np.int64, device=device).dtype == np.int64


@device_param
@pytest.mark.parametrize("factory", [tc.rand, tc.randn])
def test_rand_randn(device, factory):
    a = factory(200, 3, device=device)
    b = factory((200, 3), device=device)
    assert a.shape == b.shape == (200, 3) and a.dtype == np.float32
    assert a.device == canonical_device(device)
    assert not np.array_equal(a.numpy(), b.numpy()), "two draws must differ"
    if factory is tc.rand:
        assert a.numpy().min() >= 0.0 and a.numpy().max() < 1.0
    else:
        assert a.numpy().min() < 0.0 < a.numpy().max()
    assert factory(3, dtype=np.float64, device=device).dtype == np.float64


@pytest.mark.parametrize("factory", [tc.rand, tc.randn])
def test_manual_seed_reproduces(factory):
    tc.manual_seed(1234)
    first = factory(3, 4).numpy()
    tc.manual_seed(1234)
    again = factory(3, 4).numpy()
    tc.manual_seed(4321)
    other = factory(3, 4).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.gpu
@pytest.mark.parametrize("factory", [tc.rand, tc.randn])
def test_manual_seed_agrees_across_devices(factory):
    tc.manual_seed(7)
    cpu = factory(5).numpy()
    tc.manual_seed(7)
    np.testing.assert_array_equal(factory(5, device="cuda").numpy(), cpu)


@device_param
def test_arange(device):
    t = tc.arange(5, device=device)
    assert t.dtype == np.int64
    np.testing.assert_array_equal(t.numpy(), np.arange(5))
    f = tc.arange(0, 1, 0.25, device=device)
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f.numpy(), np.arange(0, 1, 0.25, dtype=np.float32))
    np.testing.assert_array_equal(tc.arange(2, 9, 3, device=device).numpy(), np.arange(2, 9, 3))


@device_param
def test_eye(device):
    np.testing.assert_array_equal(tc.eye(3, device=device).numpy(), np.eye(3))
    np.testing.assert_array_equal(tc.eye(2, 4, device=device).numpy(), np.eye(2, 4))
    assert tc.eye(3, dtype=np.float64, device=device).dtype == np.float64


@device_param
def test_zeros_like_ones_like_keep_shape_dtype_device(device):
    base = Tensor(np.arange(6.0).reshape(3, 2), device=device)
    for factory, fill in ((tc.zeros_like, 0.0), (tc.ones_like, 1.0)):
        t = factory(base)
        assert t.shape == (3, 2) and t.dtype == np.float64 and t.device == base.device
        np.testing.assert_array_equal(t.numpy(), np.full((3, 2), fill))
        assert factory(base, dtype=np.float32).dtype == np.float32
        assert factory(base, requires_grad=True).requires_grad


# ---------------------------------------------------------------- attributes

def test_attributes():
    t = Tensor(np.zeros((2, 3, 4), dtype=np.float32))
    assert t.shape == (2, 3, 4) and isinstance(t.shape, tuple)
    assert t.ndim == 3 and t.size == 24 and isinstance(t.size, int) and len(t) == 2
    assert t.dtype == np.float32 and isinstance(t.dtype, np.dtype)
    assert t.device == "cpu"
    assert t.requires_grad is False and t.grad is None and t.is_leaf
    assert t.T.shape == (4, 3, 2)


def test_len_of_a_0d_tensor_is_an_error():
    with pytest.raises(TypeError, match="0-d"):
        len(Tensor(1.0))


def test_item():
    assert Tensor(2.5).item() == 2.5 and isinstance(Tensor(2.5).item(), float)
    assert Tensor([[7]]).item() == 7 and isinstance(Tensor([[7]]).item(), int)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        Tensor([1.0, 2.0]).item()


def test_requires_grad_underscore_returns_self_and_sets_the_flag():
    t = Tensor([1.0, 2.0])
    assert t.requires_grad_() is t and t.requires_grad
    assert t.requires_grad_(False) is t and not t.requires_grad


def test_detach():
    x = Tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf and d.grad is None
    np.testing.assert_array_equal(d.numpy(), np.array([2.0, 4.0], dtype=np.float32))


def test_numpy_returns_an_ndarray_and_tolist_a_list():
    t = Tensor([[1.0, 2.0], [3.0, 4.0]])
    a = t.numpy()
    assert type(a) is np.ndarray and a.dtype == np.float32
    assert t.tolist() == [[1.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize("name", ["cpu", "CPU", " cpu "])
def test_to_cpu_on_cpu_is_the_same_tensor(name):
    t = Tensor([1.0])
    assert t.to(name) is t and t.cpu() is t


def test_repr_shows_values_dtype_device_and_grad_flag():
    text = repr(Tensor(np.array([[1.5, -2.0]]), requires_grad=True))
    assert text.startswith("Tensor(") and "1.5" in text and "-2." in text
    assert "float64" in text and "device='cpu'" in text and "requires_grad=True" in text
    plain = repr(Tensor([3, 4]))
    assert "int64" in plain and "requires_grad" not in plain and "3" in plain and "4" in plain


def test_repr_of_a_large_tensor_is_summarised():
    text = repr(tc.zeros(1000))
    assert "..." in text and len(text) < 200


def test_bool_of_a_one_element_tensor_and_ambiguity_otherwise():
    assert bool(Tensor([2.0]) > 1.0)
    with pytest.raises(ValueError, match="ambiguous"):
        bool(Tensor([1.0, 2.0]) > 1.0)


# ---------------------------------------------------------------- default device and device names

def test_default_device_env_var_cpu(monkeypatch):
    monkeypatch.setenv(DEFAULT_DEVICE_ENV, "cpu")
    assert Tensor([1.0]).device == "cpu" and tc.zeros(2).device == "cpu" and tc.randn(2).device == "cpu"


def test_default_device_is_cpu_without_env_var(monkeypatch):
    monkeypatch.delenv(DEFAULT_DEVICE_ENV, raising=False)
    assert Tensor([1.0]).device == "cpu"


@pytest.mark.parametrize("value", ["cuda", "gpu", "cuda:0"])
def test_default_device_env_var_cuda_without_cupy_raises(monkeypatch, value):
    monkeypatch.setitem(sys.modules, "cupy", None)  # simulate a machine without CuPy
    monkeypatch.setenv(DEFAULT_DEVICE_ENV, value)
    for make in (lambda: Tensor([1.0]), lambda: tc.zeros(2), lambda: tc.randn(2)):
        with pytest.raises(DeviceError, match="CuPy"):
            make()


def test_default_device_env_var_nonsense_is_a_value_error(monkeypatch):
    monkeypatch.setenv(DEFAULT_DEVICE_ENV, "tpu")
    with pytest.raises(ValueError, match="tpu"):
        Tensor([1.0])


@pytest.mark.parametrize("name, canonical", [
    ("cpu", "cpu"), ("CPU", "cpu"), (" cpu ", "cpu"), ("cuda", "cuda:0"), ("gpu", "cuda:0"), ("GPU", "cuda:0"),
    ("cuda:0", "cuda:0"), ("cuda:1", "cuda:1"), ("gpu:2", "cuda:2"), ("cuda:01", "cuda:1"),
])
def test_canonical_device(name, canonical):
    assert canonical_device(name) == canonical


def test_canonical_device_default_follows_env_var(monkeypatch):
    monkeypatch.setenv(DEFAULT_DEVICE_ENV, "gpu")
    assert canonical_device(None) == "cuda:0"
    monkeypatch.setenv(DEFAULT_DEVICE_ENV, "")
    assert canonical_device(None) == "cpu"


# ---------------------------------------------------------------- the package


def test_import_gives_the_submodules_and_loads_no_optional_dependency():
    import subprocess
    from pathlib import Path
    optional = ("hypothesis", "matplotlib", "tqdm", "cupy", "tinygrad_cnn.testing.strategies", "urllib.request")
    probe = ("import sys, tinygrad_cnn as tg\n"
             "tg.nn.Dense, tg.optim.Adam, tg.data.DataLoader, tg.datasets.mnist.load_data\n"
             "tg.device.canonical_device, tg.checkpoint.save_arrays, tg.testing.gradcheck\n"
             f"optional = {optional!r}\n"
             "print(sorted(m for m in sys.modules if m in optional or m.split('.')[0] in optional))\n")
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]", f"import tinygrad_cnn loaded {run.stdout.strip()}"
