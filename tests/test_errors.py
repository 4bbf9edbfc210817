"""Bad input fails early with the right exception and a message that says what was wrong:
shapes (both named), dtypes, devices (mixed, missing CuPy, bad names), and misuse of backward()."""
import re
import sys

import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import DeviceError, Function, Tensor, ops
from tinygrad_cnn.device import array_module, canonical_device


def t(*shape, requires_grad=False):
    return Tensor(np.ones(shape), requires_grad=requires_grad)


# ---------------------------------------------------------------- shapes

SHAPE_ERRORS = [
    ("add", lambda a, b: a + b, (2, 3), (4,)),
    ("sub", lambda a, b: a - b, (2, 3), (2, 2)),
    ("mul", lambda a, b: a * b, (3, 1, 2), (4, 3)),
    ("div", lambda a, b: a / b, (5,), (4,)),
    ("pow", lambda a, b: a ** b, (2,), (3,)),
    ("maximum", lambda a, b: tc.maximum(a, b), (2, 3), (4,)),
    ("minimum", lambda a, b: tc.minimum(a, b), (2, 3), (4,)),
    ("matmul", lambda a, b: a @ b, (2, 3), (4, 2)),
    ("matmul", lambda a, b: a @ b, (3,), (4,)),
    ("matmul", lambda a, b: a @ b, (2, 2, 3), (3, 3, 1)),   # batch dims 2 and 3 do not broadcast
    ("concatenate", lambda a, b: tc.concatenate([a, b], axis=1), (2, 3), (3, 3)),
    ("where", lambda a, b: tc.where(np.ones(a.shape, bool), a, b), (2, 3), (4,)),
]


@pytest.mark.parametrize("op, fn, s1, s2", SHAPE_ERRORS, ids=[f"{e[0]}-{e[2]}-{e[3]}" for e in SHAPE_ERRORS])
def test_mismatched_shapes_name_both_shapes(op, fn, s1, s2):
    with pytest.raises(ValueError) as info:
        fn(t(*s1), t(*s2))
    message = str(info.value)
    assert str(s1) in message and str(s2) in message, message
    assert op in message, message


@pytest.mark.parametrize("fn, shapes", [
    (lambda x: x.reshape(4, 2), [(2, 3), (4, 2)]),
    (lambda x: x.reshape(-1, 4), [(2, 3), (-1, 4)]),
    (lambda x: x.broadcast_to(3, 3), [(2, 3), (3, 3)]),
    (lambda x: x.squeeze(0), [(2, 3)]),
    (lambda x: x.sum(axis=2), [(2, 3)]),
    (lambda x: x.transpose(0, 0), [(2, 3)]),
    (lambda x: x.pad([(1, 1)] * 3), [(2, 3)]),
    (lambda x: x.flatten(1, 0), []),
    (lambda x: x.max(axis=(0, 0)), []),
    (lambda x: tc.stack([x, t(4)]), [(2, 3), (4,)]),
], ids=["reshape", "reshape-1", "broadcast_to", "squeeze", "axis", "transpose", "pad", "flatten", "repeated-axis",
        "stack"])
def test_bad_shape_arguments_are_value_errors(fn, shapes):
    with pytest.raises(ValueError) as info:
        fn(t(2, 3))
    for s in shapes:
        assert str(s) in str(info.value), str(info.value)


def test_index_out_of_range_names_the_shape():
    with pytest.raises(IndexError, match=re.escape("(2, 3)")):
        t(2, 3)[5]


@pytest.mark.parametrize("index", [np.array([0.5]), [0.5], Tensor([0.0])])
def test_float_indices_are_refused(index):
    with pytest.raises(IndexError, match="integer or boolean"):
        t(2, 3)[index]


def test_max_of_an_empty_tensor():
    with pytest.raises(ValueError, match="empty"):
        Tensor(np.ones(0)).max()


def test_matmul_of_a_0d_tensor():
    with pytest.raises(ValueError, match=r"\(\) and \(3,\)"):
        Tensor(2.0) @ t(3)


# ---------------------------------------------------------------- dtypes

@pytest.mark.parametrize("make", [lambda: Tensor([1, 2], requires_grad=True),
                                  lambda: Tensor(np.arange(3)).requires_grad_(),
                                  lambda: Tensor(np.array([True])).requires_grad_(),
                                  lambda: tc.ones(2, dtype=np.int32, requires_grad=True)],
                         ids=["list", "arange", "bool", "factory"])
def test_requires_grad_on_a_non_float_tensor_is_a_type_error(make):
    with pytest.raises(TypeError, match="floating-point"):
        make()


@pytest.mark.parametrize("op", ["exp", "log", "sqrt", "tanh", "sigmoid", "softmax", "log_softmax", "logsumexp"])
def test_float_only_op_on_an_int_tensor_is_a_type_error(op):
    with pytest.raises(TypeError, match=f"{op} needs a floating-point tensor, got int64"):
        getattr(Tensor([1, 2]), op)()


@pytest.mark.parametrize("other", ["x", None, 1 + 2j, object()])
def test_unsupported_operand_is_a_type_error(other):
    with pytest.raises(TypeError, match="mul: unsupported operand"):
        t(2) * other


def test_matmul_needs_tensors():
    with pytest.raises(TypeError, match="two tensors"):
        tc.matmul(t(3), np.ones(3))


def test_function_apply_needs_tensors():
    with pytest.raises(TypeError, match="Add: input 1 must be a Tensor, got ndarray"):
        ops.Add.apply(t(2), np.ones(2))


# ---------------------------------------------------------------- backward misuse

def test_backward_on_a_non_scalar_needs_a_gradient():
    y = t(2, 3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"one-element.*\(2, 3\)"):
        y.backward()


def test_backward_with_a_wrong_shape_gradient_names_both_shapes():
    y = t(2, 3, requires_grad=True) * 2
    with pytest.raises(ValueError, match=re.escape("gradient shape (3,) does not match tensor shape (2, 3)")):
        y.backward(np.ones(3))
    with pytest.raises(ValueError, match=re.escape("(3, 2)")):
        y.backward(Tensor(np.ones((3, 2))))


def test_backward_on_a_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        t(1).backward()


def test_one_element_backward_without_gradient_is_fine():
    x = t(1, 1, requires_grad=True)
    (x * 3.0).backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((1, 1), 3.0))


# ---------------------------------------------------------------- devices: mixing (simulated)

def fake_cuda(values, dtype=np.float64):
    """A tensor that claims to live on cuda:0. Real CUDA tensors cannot be made without a GPU
    (Tensor.wrap(.., "cuda:0") already asks CuPy for the array module), so a CPU tensor is
    relabelled: every device check compares `.device` before touching the data."""
    x = Tensor(np.asarray(values, dtype=dtype))
    x.device = "cuda:0"
    return x


def _mixed_device_message(fn):
    with pytest.raises(DeviceError) as info:
        fn()
    return str(info.value)


MIXED = [
    ("add", lambda c, g: c + g), ("add", lambda c, g: g + c), ("sub", lambda c, g: c - g),
    ("mul", lambda c, g: c * g), ("div", lambda c, g: g / c), ("pow", lambda c, g: c ** g),
    ("maximum", lambda c, g: tc.maximum(c, g)), ("minimum", lambda c, g: c.minimum(g)),
    ("matmul", lambda c, g: c @ g), ("matmul", lambda c, g: tc.matmul(g, c)),
    ("concatenate", lambda c, g: tc.concatenate([c, g])), ("stack", lambda c, g: tc.stack([c, g])),
    ("where", lambda c, g: tc.where(np.array([True, False]), c, g)),
    ("where", lambda c, g: tc.where(Tensor(np.array([True, False])), g, g)),  # condition on the CPU
    ("Add", lambda c, g: ops.Add.apply(c, g)),      # Function.apply's own check
    ("MatMul", lambda c, g: ops.MatMul.apply(g, c)),
]


@pytest.mark.parametrize("op, fn", MIXED, ids=[f"{m[0]}-{i}" for i, m in enumerate(MIXED)])
def test_mixed_devices_name_the_op_and_both_devices(op, fn):
    cpu = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    message = _mixed_device_message(lambda: fn(cpu, fake_cuda([3.0, 4.0])))
    assert op in message and "cpu" in message and "cuda:0" in message, message


def test_mixed_devices_in_a_users_function():
    class Pair(Function):
        def forward(self, a, b):
            return a + b

        def backward(self, g):
            return g, g

    message = _mixed_device_message(lambda: Pair.apply(Tensor([1.0]), fake_cuda([2.0])))
    assert "Pair" in message and "cpu" in message and "cuda:0" in message


def test_index_tensor_on_another_device():
    message = _mixed_device_message(lambda: t(3)[fake_cuda([0], dtype=np.int64)])
    assert "cpu" in message and "cuda:0" in message


def test_backward_gradient_on_another_device():
    y = t(2, requires_grad=True) * 2
    message = _mixed_device_message(lambda: y.backward(fake_cuda([1.0, 1.0])))
    assert "backward" in message and "cpu" in message and "cuda:0" in message


# ---------------------------------------------------------------- devices: CuPy missing, bad names

@pytest.fixture
def no_cupy(monkeypatch):
    """Make `import cupy` fail, as on a machine without it (also on one with a GPU)."""
    monkeypatch.setitem(sys.modules, "cupy", None)


@pytest.mark.parametrize("make", [
    lambda: Tensor([1.0], device="cuda"),
    lambda: Tensor([1.0], device="gpu"),
    lambda: tc.zeros(2, device="cuda:0"),
    lambda: tc.randn(2, device="cuda"),
    lambda: tc.arange(3, device="cuda"),
    lambda: Tensor([1.0]).to("cuda"),
    lambda: Tensor([1.0]).cuda(),
    lambda: array_module("cuda:1"),
], ids=["tensor", "gpu-alias", "zeros", "randn", "arange", "to", "cuda()", "array_module"])
def test_cuda_without_cupy_says_cupy_is_missing_and_how_to_install(no_cupy, make):
    with pytest.raises(DeviceError) as info:
        make()
    message = str(info.value)
    assert "CuPy" in message and "not installed" in message and "pip install" in message, message
    assert "cupy-cuda12x" in message


def test_cuda_available_is_false_without_cupy(no_cupy):
    assert tc.cuda_available() is False


def test_device_error_is_a_runtime_error():
    assert issubclass(DeviceError, RuntimeError)


@pytest.mark.parametrize("name", ["tpu", "cuda:", "cuda:x", "cuda:-1", "cpu:0", "", "cuda 0", "gpu:1.5", "mps"])
def test_bad_device_strings_are_value_errors(name):
    for make in (lambda: canonical_device(name), lambda: Tensor([1.0], device=name),
                 lambda: tc.zeros(2, device=name), lambda: Tensor([1.0]).to(name)):
        with pytest.raises(ValueError, match="unknown device"):
            make()


@pytest.mark.parametrize("device", [0, 1.0, ["cpu"]])
def test_non_string_device_is_a_type_error(device):
    with pytest.raises(TypeError, match="device must be a string"):
        Tensor([1.0], device=device)
