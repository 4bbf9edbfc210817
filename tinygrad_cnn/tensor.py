"""Tensor: an array on a device plus the graph that reverse-mode autograd walks back."""
import copy
import numbers

import numpy

from . import autograd, checks, higher_order, ops
from .autograd import Function, is_grad_enabled
from .checks import AxisError, is_float, is_int  # noqa: F401 (AxisError: tg.AxisError, raised by checks.axis)
from .device import array_module, canonical_device, device_of, module_for, scope, to_device, to_numpy, use_device
from .spellings import TorchMethods, torch_names, values_and_indices

float32 = numpy.dtype("float32")
float64 = numpy.dtype("float64")
_rng = numpy.random.default_rng()


def manual_seed(seed):
    """Seed the global generator behind rand, randn, weight initialisers and dropout with an int >= 0.

    Process-wide, as torch.manual_seed: all threads share that generator. Where each thread (or
    model) needs its own stream, pass generator= to the initialisers, Dropout and DataLoader."""
    global _rng
    checks.seed(seed)
    _rng = numpy.random.default_rng(seed)


def get_rng():
    """The global NumPy generator (random numbers are drawn on the CPU, so seeds agree across devices)."""
    return _rng


def generator_or_global(generator, where):
    """`generator` when given (a numpy.random.Generator of the caller's own), else the global one.

    NOTE: the global generator is shared by every thread, so two threads drawing from it (two
    models built or trained at once) get numbers in whichever order they ask; a generator of
    each thread's own makes each reproducible."""
    if generator is None:
        return _rng
    if not isinstance(generator, numpy.random.Generator):
        raise TypeError(f"{where}: generator must be a numpy.random.Generator (e.g. numpy.random.default_rng(0)), "
                        f"got {type(generator).__name__}")
    return generator


def _as_array(data):
    """NOTE: NumPy reductions return scalars (np.float64), which cannot be written in place (gradcheck,
    optimizers); keep `.data` a 0-d array instead, as CuPy always does."""
    return numpy.asarray(data) if isinstance(data, numpy.generic) else data


class Tensor(TorchMethods):
    """An n-dimensional array on a device ("cpu" or "cuda:N") that records the ops applied to it,
    so that backward() can fill `.grad` of every tensor created with requires_grad=True.

    Python floats become float32; NumPy and CuPy arrays keep their dtype; integers stay integer
    (labels, indices) and can never require a gradient."""

    __array_ufunc__ = None  # NOTE: makes `numpy_scalar * tensor` call Tensor.__rmul__
    grad_home = None  # (view, refs, device): an optimizer's gradient buffer's view for it (kernels/homes.py)

    def __init__(self, data, device=None, dtype=None, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.data
        if device is None:
            device = device_of(data) if hasattr(data, "__cuda_array_interface__") else None
        device = canonical_device(device)
        data = to_device(checks.tensor_data(data, dtype), device)
        if dtype is not None:
            data = data.astype(dtype, copy=False)
        self.data, self.device, self.xp = _as_array(data), device, module_for(device)
        self.grad, self.grad_fn, self.version_counter, self.requires_grad = None, None, [0], False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def wrap(cls, data, device, requires_grad=False):
        """A tensor around an array already on the canonical `device`, without any check: what ops and
        kernels make their results with (use the constructor for anything else)."""
        t = cls.__new__(cls)
        t.data, t.device, t.grad, t.grad_fn, t.requires_grad = _as_array(data), device, None, None, requires_grad
        t.version_counter = [0]
        t.xp = module_for(device)
        return t

    # ------------------------------------------------------------ attributes

    @property
    def shape(self):
        """The shape, a tuple of ints."""
        return tuple(self.data.shape)

    @property
    def ndim(self):
        """The number of axes."""
        return self.data.ndim

    @property
    def size(self):
        """The number of elements, an int, as NumPy's attribute; called, torch's method: x.size() is the
        shape (a tuple), x.size(dim) the length of one axis."""
        return Size(self.data.size, self.data.shape)

    def numel(self):
        """The number of elements, a Python int (torch's name for `size`)."""
        return int(self.data.size)

    @property
    def dtype(self):
        """The NumPy dtype (float32, float64, an integer type or bool), on any device."""
        return numpy.dtype(self.data.dtype)

    @property
    def is_leaf(self):
        """True for a tensor not produced by an op (made by you, or under `no_grad`)."""
        return self.grad_fn is None

    @property
    def T(self):
        """The transpose, axes reversed (as NumPy's `.T`)."""
        return self.transpose()

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self):
        body = numpy.array2string(self.numpy(), separator=", ", precision=4, threshold=20, prefix="Tensor(")
        extras = f", dtype={self.dtype.name}, device='{self.device}'"
        if self.requires_grad:
            extras += ", requires_grad=True"
        return f"Tensor({body}{extras})"

    def requires_grad_(self, requires_grad=True):
        """Mark a leaf tensor as a parameter whose gradient backward() should compute."""
        checks.can_require_grad(self, requires_grad)
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self):
        """The same data, cut off from the graph (shares memory, like PyTorch)."""
        t = Tensor.wrap(self.data, self.device)
        t.version_counter = self.version_counter  # NOTE: same memory, same counter: an in-place change through either is seen
        return t

    def clone(self):
        """A copy with its own memory that stays in the graph (the gradient flows back to self)."""
        return Clone.apply(self)

    def __deepcopy__(self, memo):
        """copy.deepcopy of a leaf (best = copy.deepcopy(model)): a leaf with its own memory on the same
        device, its requires_grad and a copy of its .grad, as torch's; one an op made is refused, as torch
        refuses it. NOTE: not an optimizer's gradient home (kernels/homes.py): the copy is in no optimizer."""
        checks.deep_copyable(self)
        with scope(self.device):
            t = type(self).wrap(self.data.copy(), self.device, self.requires_grad)
        memo[id(self)] = t
        t.grad = None if self.grad is None else copy.deepcopy(self.grad, memo)
        return t

    def __getstate__(self):
        """pickle: the values (a NumPy copy), the device and requires_grad, as torch's (not .grad or the graph:
        an unpickled tensor is a leaf)."""
        return {"data": self.numpy(), "device": self.device, "requires_grad": self.requires_grad}

    def __setstate__(self, state):
        with scope(state["device"]):
            t = Tensor(state["data"], device=state["device"], requires_grad=state["requires_grad"])
        self.__dict__.update(t.__dict__)

    def numpy(self):
        """A NumPy array with the values, copied from the GPU when needed."""
        return to_numpy(self.data)

    def __dlpack__(self, *args, **kwargs):
        """DLPack export of the data, without a copy: `numpy.from_dlpack(t)`, `cupy.from_dlpack(t)` and
        `torch.from_dlpack(t)` see the same memory (so writes through them show here)."""
        return self.data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        """(DLPack device type, index): (1, 0) on the CPU, (2, N) on cuda:N."""
        return self.data.__dlpack_device__()

    def item(self):
        """The value of a one-element tensor as a Python number (ValueError for more elements)."""
        checks.one_element(self)
        return self.numpy().reshape(()).item()

    def __float__(self):
        """float(t) for a one-element tensor, as item() (ValueError for more elements)."""
        return float(self.item())

    def __int__(self):
        """int(t) for a one-element tensor, truncated as int() of a float is."""
        return int(self.item())

    def tolist(self):
        """The values as nested Python lists (copied from the GPU when needed)."""
        return self.numpy().tolist()

    def to(self, *args, device=None, dtype=None, non_blocking=False, copy=False):
        """The tensor on another device and/or with another dtype, as torch's: to("cuda"), to(float64),
        to("cuda", float64), to(device=..., dtype=...), to(other_tensor) (its device and dtype). Gradients
        flow back to the original; copy=True always makes a new tensor. non_blocking is accepted (a hint)."""
        device, dtype = checks.to_arguments(self, args, device, dtype)
        if not isinstance(non_blocking, bool) or not isinstance(copy, bool):
            raise TypeError(f"to(): non_blocking and copy must be True or False, got {non_blocking!r}, {copy!r}")
        out = self if dtype is None else self.astype(dtype)
        if device is not None and device != out.device:
            out = ToDevice.apply(out, device=device)
        return out.clone() if copy and out is self else out

    def cpu(self):
        """The tensor on the CPU, `to('cpu')`; gradients flow back to the original."""
        return self.to("cpu")

    def cuda(self, index=0):
        """The tensor on GPU `index`, `to(f'cuda:{index}')`; gradients flow back to the original."""
        return self.to(f"cuda:{index}")

    def astype(self, dtype):
        """Cast; float-to-float casts are differentiable."""
        dtype = checks.tensor_dtype(dtype)
        if dtype == self.dtype:
            return self
        if is_float(dtype) and is_float(self.dtype):
            return ops.Cast.apply(self, dtype=dtype)
        return Tensor.wrap(self.data.astype(dtype), self.device)

    def float(self):
        """Cast to float32 (differentiable from another float dtype)."""
        return self.astype(float32)

    def double(self):
        """Cast to float64, as gradcheck wants (differentiable from another float dtype)."""
        return self.astype(float64)

    # ------------------------------------------------------------ autograd

    def backward(self, grad=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires a gradient.

        Without `grad`, self must hold one element (a loss); otherwise `grad` is the upstream
        gradient, of self's shape. Saved arrays are freed afterwards unless retain_graph=True.
        create_graph=True records the gradient computation, so that the `.grad` tensors can be
        differentiated again (higher_order.py; retain_graph then defaults to True). inputs: a tensor
        or a list, the only ones whose `.grad` is filled (as torch's). PyTorch's order of arguments;
        its first is called `gradient` there."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: no input had "
                               "requires_grad=True, or it was computed under no_grad()")
        if inputs is not None:
            return higher_order.backward_of(self, grad, retain_graph, create_graph, inputs)
        if create_graph:
            return higher_order.backward(self, grad, retain_graph)
        with scope(self.device):
            grad = checks.upstream_gradient(self, grad)
        autograd.backward_arrays(self, grad, bool(retain_graph))

    def zero_grad(self):
        """Clear `.grad` (set it to None), so the next backward() starts from zero."""
        self.grad = None

    # ------------------------------------------------------------ in-place ops

    def _write(self, values, name):
        """Store `values` (an array) into self's memory, keeping shape and dtype, and bump the version."""
        checks.fits_in_place(self, values, name)
        if getattr(self.data.flags, "writeable", True):
            self.data[...] = values
        else:  # NOTE: read-only memory (a NumPy view of a constant): take a private copy, then write
            self.data = values.astype(self.dtype, copy=True)
        self.version_counter[0] += 1
        return self

    def _inplace(self, fn, other, name):
        checks.can_change_in_place(self, name)
        other = self._operand(other, name)
        checks.no_grad_operand(other, name)
        return self._write(fn(self.data, other.data), name)

    def add_(self, other, alpha=1):
        """self += alpha * other in place (same object, same memory; torch's alpha, as in an EMA's
        ema.mul_(d).add_(p, alpha=1 - d)); returns self."""
        checks.number_argument(alpha, "add_", "alpha")
        return self._inplace(lambda a, b: a + b if alpha == 1 else a + alpha * b, other, "add_")

    def sub_(self, other, alpha=1):
        """self -= alpha * other in place; returns self."""
        checks.not_bool(self, "sub_", "use logical ops or cast first")
        checks.number_argument(alpha, "sub_", "alpha")
        return self._inplace(lambda a, b: a - b if alpha == 1 else a - alpha * b, other, "sub_")

    def mul_(self, other):
        """self *= other in place; returns self."""
        return self._inplace(lambda a, b: a * b, other, "mul_")

    def div_(self, other):
        """self /= other in place (float tensors only); returns self."""
        return self._inplace(lambda a, b: a / b, other, "div_")

    def fill_(self, value):
        """Set every element to `value` in place; returns self."""
        checks.can_change_in_place(self, "fill_")
        value = self._operand(value, "fill_")
        checks.one_fill_value(value)
        return self._write(self.xp.full(self.data.shape, value.data.reshape(()), dtype=self.dtype), "fill_")

    def zero_(self):
        """Set every element to 0 in place; returns self."""
        return self.fill_(0)

    def copy_(self, src):
        """Copy src's values (broadcast to self's shape, cast to self's dtype) into self; returns self."""
        checks.can_change_in_place(self, "copy_")
        values = checks.copy_source(self, self._operand(src, "copy_"))
        return self._write(values.astype(self.dtype, copy=False), "copy_")

    def __setitem__(self, index, value):
        checks.can_change_in_place(self, "__setitem__ (t[i] = v)")
        checks.no_grad_value(value)
        value = self._operand(value, "__setitem__")
        index, _ = checks.index(index, self)
        checks.float_into_int(self, value.dtype, "__setitem__: float values cannot be stored into")
        data = self.data if getattr(self.data.flags, "writeable", True) else self.data.copy()
        try:
            data[index] = value.data
        except IndexError as e:
            raise checks.index_error(self, e) from None
        except ValueError as e:
            raise ValueError(f"__setitem__: a value of shape {value.shape} does not fit tensor[{checks.short(index)}] "
                             f"of shape {self.shape}: {e}") from None
        self.data = data
        self.version_counter[0] += 1

    def _augmented(self, fn, other, name, out_of_place):
        """x op= y: in place (same object) when autograd is not tracking either side, as PyTorch does;
        inside a graph of non-leaf tensors, the out-of-place result (the gradient stays right)."""
        tracked = is_grad_enabled() and (self.requires_grad or (isinstance(other, Tensor) and other.requires_grad))
        if not tracked:
            return self._inplace(fn, other, name)
        if self.requires_grad and self.grad_fn is None:
            checks.can_change_in_place(self, name)  # raises: a leaf that requires grad
        return out_of_place(self, other)

    def __iadd__(self, other):
        return self._augmented(lambda a, b: a + b, other, "+=", lambda a, b: a + b)

    def __isub__(self, other):
        if not (is_grad_enabled() and self.requires_grad):
            checks.not_bool(self, "-=", "use logical ops or cast first")
        return self._augmented(lambda a, b: a - b, other, "-=", lambda a, b: a - b)

    def __imul__(self, other):
        return self._augmented(lambda a, b: a * b, other, "*=", lambda a, b: a * b)

    def __itruediv__(self, other):
        return self._augmented(lambda a, b: a / b, other, "/=", lambda a, b: a / b)

    # ------------------------------------------------------------ operand coercion

    def _operand(self, other, op_name):
        """Turn a scalar into a tensor of self's dtype and check the other tensor's device."""
        if isinstance(other, Tensor):
            checks.operand_device(self, other, op_name)
            return other
        if isinstance(other, numbers.Number) and not isinstance(other, complex):
            if is_float(self.dtype):
                dtype = self.dtype
            elif isinstance(other, bool) and self.dtype.kind == "b":
                dtype = self.dtype  # bool with bool stays bool, as in PyTorch (and x - True is refused)
            elif isinstance(other, numbers.Integral):
                dtype = numpy.promote_types(self.dtype, numpy.int64)
            else:
                dtype = float32
            return Tensor.wrap(self.xp.asarray(other, dtype=dtype), self.device)
        if isinstance(other, (list, tuple)) or hasattr(other, "__array_interface__") or hasattr(other, "__cuda_array_interface__"):
            return Tensor(other, device=self.device)
        raise TypeError(f"{op_name}: unsupported operand of type {type(other).__name__}")

    def _binary(self, fn, other, op_name, reverse=False):
        other = self._operand(other, op_name)
        a, b = (other, self) if reverse else (self, other)
        checks.broadcastable(op_name, a, b)
        if fn is ops.Div and not (is_float(a.dtype) or is_float(b.dtype)):
            # NOTE: torch's rule, not NumPy's float64: uint8 images / 255 are float32, as the model is
            a, b = a.astype(float32), b.astype(float32)
        a, b = _promote(a, b)
        if fn is ops.Sub:
            checks.not_bool(a, "sub (x - y)", "use x != y (logical xor) or cast first")
        elif fn is ops.Pow:
            checks.int_power(a, b)
        return fn.apply(a, b)

    def __add__(self, other):
        return self._binary(ops.Add, other, "add")

    def __radd__(self, other):
        return self._binary(ops.Add, other, "add", reverse=True)

    def __sub__(self, other):
        return self._binary(ops.Sub, other, "sub")

    def __rsub__(self, other):
        return self._binary(ops.Sub, other, "sub", reverse=True)

    def __mul__(self, other):
        return self._binary(ops.Mul, other, "mul")

    def __rmul__(self, other):
        return self._binary(ops.Mul, other, "mul", reverse=True)

    def __truediv__(self, other):
        return self._binary(ops.Div, other, "div")

    def __rtruediv__(self, other):
        return self._binary(ops.Div, other, "div", reverse=True)

    def __pow__(self, other):
        if is_int(other) and other < 0:  # a number: checked here on any device, without reading an array
            checks.int_power(self, other)
        return self._binary(ops.Pow, other, "pow")

    def __rpow__(self, other):
        return self._binary(ops.Pow, other, "pow", reverse=True)

    def __neg__(self):
        checks.not_bool(self, "neg (-x)", "use x == False (logical not) or cast first")
        return ops.Neg.apply(self)

    def __pos__(self):
        return self

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(self._operand(other, "matmul"), self)

    # comparisons: no gradient, boolean results
    def _compare(self, other, name):
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            # NOTE: a number is compared as it is: turned into an int tensor's float32 first, 1e-92 would be 0
            return Tensor.wrap(getattr(self.data, name)(other), self.device)
        other = self._operand(other, name)
        checks.broadcastable(name.strip("_"), self, other)
        return Tensor.wrap(getattr(self.data, name)(other.data), self.device)

    def __lt__(self, other):
        return self._compare(other, "__lt__")

    def __le__(self, other):
        return self._compare(other, "__le__")

    def __gt__(self, other):
        return self._compare(other, "__gt__")

    def __ge__(self, other):
        return self._compare(other, "__ge__")

    def __eq__(self, other):
        return self._compare(other, "__eq__")

    def eq(self, other):
        """PyTorch's name for ==: elementwise equality, a bool tensor."""
        return self == other

    def __ne__(self, other):
        return self._compare(other, "__ne__")

    __hash__ = object.__hash__

    def __bool__(self):
        checks.one_truth_value(self)
        return bool(self.item())

    def any(self, dim=None, keepdim=False):
        """Whether any element is nonzero, as torch's: a bool tensor (0-d without dim, which `if` reads as a bool)."""
        return Tensor(self.xp.any(self.data, axis=dim, keepdims=keepdim), device=self.device)

    def all(self, dim=None, keepdim=False):
        """Whether every element is nonzero, as torch's: a bool tensor (0-d without dim, which `if` reads as a bool)."""
        return Tensor(self.xp.all(self.data, axis=dim, keepdims=keepdim), device=self.device)

    # ------------------------------------------------------------ unary math

    def _float_op(self, fn, name, **kwargs):
        checks.floating(self, name)
        return fn.apply(self, **kwargs)

    def exp(self):
        """Elementwise e**x; the gradient reuses the output."""
        return self._float_op(ops.Exp, "exp")

    def log(self):
        """Elementwise natural logarithm; the gradient is g / x."""
        return self._float_op(ops.Log, "log")

    def sqrt(self):
        """Elementwise square root; the gradient is g / (2 sqrt(x)), infinite at 0."""
        return self._float_op(ops.Sqrt, "sqrt")

    def abs(self):
        """Elementwise absolute value; the gradient is sign(x), 0 at 0."""
        return ops.Abs.apply(self)

    def tanh(self):
        """Elementwise hyperbolic tangent; the gradient is 1 - tanh(x)**2."""
        return self._float_op(ops.Tanh, "tanh")

    def relu(self):
        """Elementwise max(x, 0); the gradient is 1 where x > 0 and 0 elsewhere, x = 0 included."""
        checks.not_bool(self, "relu", "cast it first, e.g. x.float()")
        return ops.ReLU.apply(self)

    def sigmoid(self):
        """Elementwise 1 / (1 + exp(-x)), computed via tanh so large |x| never overflows."""
        return self._float_op(ops.Sigmoid, "sigmoid")

    def clip(self, low=None, high=None):
        """Clamp to [low, high] (either may be None); the gradient passes inside, bounds included."""
        low, high = checks.clip_bounds(self, low, high)
        return ops.Clip.apply(self, low=low, high=high)

    def maximum(self, other):
        """Elementwise maximum with a tensor or number; at a tie each side gets half the gradient."""
        return self._binary(ops.Maximum, other, "maximum")

    def minimum(self, other):
        """Elementwise minimum with a tensor or number; at a tie each side gets half the gradient."""
        other = self._operand(other, "minimum")
        checks.broadcastable("minimum", self, other)  # before the negations, so the error names minimum
        a, b = _promote(self, other)
        if not is_float(a.dtype):  # NOTE: -x wraps for unsigned ints and fails for bools; ints need no grad
            return Tensor.wrap(self.xp.minimum(a.data, b.data), self.device)
        return -((-a).maximum(-b))

    # ------------------------------------------------------------ reductions

    def _axis(self, axis):
        """An axis argument checked against this tensor's rank (checks.axis)."""
        return checks.axis(self, axis)

    @torch_names
    def sum(self, axis=None, keepdims=False):
        """Sum over `axis` (None: all axes; an int or a tuple); the gradient broadcasts back."""
        return ops.Sum.apply(self, axis=self._axis(axis), keepdims=keepdims)

    @torch_names
    def mean(self, axis=None, keepdims=False):
        """Mean over `axis` (None: all axes; an int or a tuple); the gradient is spread evenly."""
        axis = self._axis(axis)
        axes = range(self.ndim) if axis is None else (axis,) if isinstance(axis, int) else axis
        count = 1
        for a in axes:
            count *= self.shape[a]
        if count == 0:  # NOTE: the mean of no elements is nan (0/0), as PyTorch's, and silent, as PyTorch's
            return self.sum(axis, keepdims) * float("nan")
        return self.sum(axis, keepdims) * (1.0 / count)

    @values_and_indices("argmax")
    @torch_names
    def max(self, axis=None, keepdims=False):
        """Maximum over `axis` (None: all axes); tied maxima share the gradient equally. Spelled as torch,
        max(dim=1), it returns torch's (values, indices) pair."""
        axis = self._axis(axis)
        checks.something_to_pick(self, "max", axis)
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

    @values_and_indices("argmin")
    @torch_names
    def min(self, axis=None, keepdims=False):
        """Minimum over `axis` (None: all axes); tied minima share the gradient equally. Spelled as torch,
        min(dim=1), it returns torch's (values, indices) pair."""
        checks.something_to_pick(self, "min", self._axis(axis))
        if not is_float(self.dtype):  # NOTE: as in minimum, -x is wrong for uint and bool
            return Tensor.wrap(self.data.min(axis=self._axis(axis), keepdims=keepdims), self.device)
        return -((-self).max(axis=axis, keepdims=keepdims))

    @torch_names
    def logsumexp(self, axis=None, keepdims=False):
        """log(sum(exp(x))) over `axis`, with the max subtracted first so it never overflows;
        -inf (the log of an empty sum) over a zero-size axis, as in PyTorch."""
        axis = self._axis(axis)
        if self._over_nothing(axis, "logsumexp"):
            return self.sum(axis, keepdims) - float("inf")  # NOTE: the max of no elements is undefined
        return self._float_op(ops.LogSumExp, "logsumexp", axis=axis, keepdims=keepdims)

    @torch_names
    def softmax(self, axis=-1):
        """exp(x) / sum(exp(x)) over `axis` (default: the last), with the max subtracted so it never overflows."""
        axis = self._axis(axis)
        if self._over_nothing(axis, "softmax"):
            return self * 1.0  # an empty result of the same shape: there is nothing to normalise
        return self._float_op(ops.Softmax, "softmax", axis=axis)

    @torch_names
    def log_softmax(self, axis=-1):
        """log(softmax(x)) over `axis`, as x - logsumexp(x): finite where softmax underflows to 0."""
        axis = self._axis(axis)
        if self._over_nothing(axis, "log_softmax"):
            return self * 1.0
        return self._float_op(ops.LogSoftmax, "log_softmax", axis=axis)

    def _over_nothing(self, axis, name):
        """True when a float tensor is reduced over an axis of size 0 (axis already checked)."""
        checks.floating(self, name)
        if self.size:
            return False
        axes = range(self.ndim) if axis is None else (axis,) if isinstance(axis, int) else axis
        return any(self.shape[a] == 0 for a in axes)

    @torch_names
    def argmax(self, axis=None, keepdims=False):
        """Index of the maximum over `axis` (None: in the flattened tensor), an integer tensor, no gradient."""
        return self._arg("argmax", axis, keepdims)

    @torch_names
    def argmin(self, axis=None, keepdims=False):
        """Index of the minimum over `axis` (None: in the flattened tensor), an integer tensor, no gradient."""
        return self._arg("argmin", axis, keepdims)

    def _arg(self, name, axis, keepdims):
        """Index of the max/min (no gradient); keepdims as in NumPy, also for axis=None."""
        axis = checks.arg_axis(self, name, axis)
        out = getattr(self.data, name)(axis=axis)
        if keepdims:
            out = out.reshape((1,) * self.ndim) if axis is None else self.xp.expand_dims(out, axis)
        return Tensor.wrap(out, self.device)

    # ------------------------------------------------------------ movement

    def reshape(self, *shape):
        """The same elements in a new shape, reshape(2, 3) or reshape((2, 3)); one size may be -1."""
        shape = checks.new_shape(self, shape)
        if shape == self.shape:
            return self
        return ops.Reshape.apply(self, shape=shape)

    @torch_names
    def flatten(self, start_axis=0, end_axis=-1):
        """Merge axes start_axis..end_axis into one (Keras' Flatten is flatten(1))."""
        if self.ndim == 0:
            return self.reshape(1)
        start, end = checks.axis_span(self, start_axis, end_axis)
        merged = 1
        for s in self.shape[start:end + 1]:
            merged *= s
        return self.reshape(self.shape[:start] + (merged,) + self.shape[end + 1:])

    def transpose(self, *axes):
        """Permute axes; with none given, reverse them (NumPy's rule); two axes transpose(0, 1) swap them (PyTorch's)."""
        axes = checks.permutation(self, axes)
        if axes == tuple(range(self.ndim)):
            return self
        return ops.Permute.apply(self, axes=axes)

    def permute(self, *axes):
        """PyTorch's permute: a full permutation of the axes, permute(2, 0, 1) (transpose(0, 1) swaps two)."""
        return self.transpose(axes[0] if len(axes) == 1 else axes)

    def view_as(self, other):
        """PyTorch's x.view_as(y): x reshaped to y's shape."""
        return self.reshape(other.shape)

    def view(self, *shape):
        """PyTorch's name for reshape: the same elements in a new shape (one size may be -1). Unlike
        PyTorch's view it never fails on a non-contiguous tensor: the result is a reshape either way."""
        return self.reshape(*shape)

    def swapaxes(self, axis1, axis2):
        """Exchange two axes (a transpose)."""
        axes = list(range(self.ndim))
        a, b = self._axis(axis1), self._axis(axis2)
        if self.ndim == 0:
            return self
        axes[a], axes[b] = axes[b], axes[a]
        return self.transpose(axes)

    @torch_names
    def expand_dims(self, axis):
        """Insert an axis of size 1 at `axis`, counted in the result as NumPy does."""
        axis = checks.new_axis(self, axis)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    unsqueeze = expand_dims

    @torch_names
    def squeeze(self, axis=None):
        """Remove axes of size 1: all of them, or those in `axis` (which must have size 1)."""
        if axis is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        axes = self._axis(axis)
        if self.ndim == 0:
            return self
        axes = (axes,) if isinstance(axes, int) else axes
        checks.squeezable(self, axes)
        return self.reshape(tuple(s for i, s in enumerate(self.shape) if i not in axes))

    def broadcast_to(self, *shape):
        """Broadcast to a larger shape without copying; the gradient is summed back."""
        shape = checks.broadcast_target(self, shape)
        if shape == self.shape:
            return self
        return ops.Expand.apply(self, shape=shape)

    expand = broadcast_to

    def pad(self, pad_width, value=0.0):
        """Constant padding with NumPy's pad_width: an int, a (before, after) pair for every axis,
        or a (before, after) pair per axis."""
        pad_width = checks.pad_width(self, pad_width)
        return ops.Pad.apply(self, pad_width=pad_width, value=value)

    def __getitem__(self, index):
        index, advanced = checks.index(index, self)
        try:
            return ops.GetItem.apply(self, index=index, advanced=advanced)
        except IndexError as e:
            raise checks.index_error(self, e) from None


autograd.Tensor = Tensor  # NOTE: the engine makes the results of ops without importing this module


class Clone(Function):
    """A copy in new memory; the gradient passes through unchanged."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return g

    def backward_graph(self, g, inputs, output):
        return g


# ---------------------------------------------------------------- functions of several tensors

class ToDevice(Function):
    """Copy to another device; the gradient is copied back."""
    def forward(self, x, device):
        self.result_device = device
        with use_device(device):
            return to_device(x, device)

    def backward(self, g):
        return to_device(g, self.device)

    def backward_graph(self, g, inputs, output):
        return g.to(self.device)


class Size(int):
    """Tensor.size: NumPy's element count (an int in every use), and torch's method when called:
    size() is the shape, size(dim) one axis' length (dim counted from the end when negative)."""

    def __new__(cls, count, shape):
        size = super().__new__(cls, count)
        size.shape = shape
        return size

    def __call__(self, dim=None):
        if dim is None:
            return tuple(self.shape)
        if not is_int(dim):
            raise TypeError(f"size(dim): dim must be an int, got {dim!r}")
        if not -len(self.shape) <= dim < len(self.shape):
            raise IndexError(f"size({dim}): dimension out of range for a tensor of shape {self.shape}")
        return self.shape[dim]

    def __reduce__(self):
        return int, (int(self),)  # NOTE: pickled, copied or saved it is a plain int


def _promote(a, b):
    """Give two operands one dtype: ints join the float; two floats follow NumPy (float32+float64 -> float64)."""
    if a.dtype == b.dtype:
        return a, b
    fa, fb = is_float(a.dtype), is_float(b.dtype)
    if fa and not fb:
        return a, b.astype(a.dtype)
    if fb and not fa:
        return a.astype(b.dtype), b
    dtype = numpy.promote_types(a.dtype, b.dtype)
    return a.astype(dtype), b.astype(dtype)


def matmul(a, b):
    """Matrix product with NumPy's rules for 1-D, 2-D and batched operands."""
    checks.matmul_operands(a, b)
    return ops.MatMul.apply(*_promote(a, b))


@torch_names
def concatenate(tensors, axis=0):
    """Join tensors along an existing `axis` (dtypes are promoted); the gradient is split back."""
    tensors = list(tensors)
    checks.joinable("concatenate", tensors)
    axis_n = checks.concatenate_axis(tensors, axis)
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = numpy.promote_types(dtype, t.dtype)
    return ops.Concatenate.apply(*[t.astype(dtype) for t in tensors], axis=axis_n)


@torch_names
def stack(tensors, axis=0):
    """Join tensors of one shape along a new `axis`."""
    tensors = list(tensors)
    checks.joinable("stack", tensors)
    checks.one_shape(tensors)
    return concatenate([t.expand_dims(axis) for t in tensors], axis=axis)


def where(condition, a, b):
    """Elementwise choice: a where condition holds, else b (differentiable in a and b)."""
    if not isinstance(a, Tensor):
        a = b._operand(a, "where") if isinstance(b, Tensor) else Tensor(a)
    b = a._operand(b, "where")
    cond = condition.data if isinstance(condition, Tensor) else a.xp.asarray(condition)
    shape = checks.where_shape(condition, cond, a, b)
    a, b = _promote(a, b)
    return ops.Where.apply(a, b, condition=a.xp.broadcast_to(cond.astype(bool), shape))


def maximum(a, b):
    """Elementwise maximum of two operands, at least one a Tensor (see Tensor.maximum)."""
    return a.maximum(b) if isinstance(a, Tensor) else b.maximum(a)


def minimum(a, b):
    """Elementwise minimum of two operands, at least one a Tensor (see Tensor.minimum)."""
    return a.minimum(b) if isinstance(a, Tensor) else b.minimum(a)


# ---------------------------------------------------------------- factories

def _factory(array, device, requires_grad):
    device = canonical_device(device)
    with use_device(device):
        data = to_device(array, device)
    return Tensor.wrap(data, device).requires_grad_(requires_grad) if requires_grad else Tensor.wrap(data, device)


def _make(device, fill):
    device = canonical_device(device)
    xp = array_module(device)
    with use_device(device):
        return fill(xp), device


def zeros(*shape, dtype=float32, device=None, requires_grad=False):
    """A tensor of zeros, zeros(2, 3) or zeros((2, 3)); float32 unless `dtype` says otherwise."""
    data, device = _make(device, lambda xp: xp.zeros(checks.sizes(shape, "zeros"), dtype=dtype))
    return Tensor.wrap(data, device).requires_grad_(requires_grad)


def ones(*shape, dtype=float32, device=None, requires_grad=False):
    """A tensor of ones, ones(2, 3) or ones((2, 3)); float32 unless `dtype` says otherwise."""
    data, device = _make(device, lambda xp: xp.ones(checks.sizes(shape, "ones"), dtype=dtype))
    return Tensor.wrap(data, device).requires_grad_(requires_grad)


def full(shape, fill_value, dtype=float32, device=None, requires_grad=False):
    """A tensor of `shape` (an int or a tuple) filled with `fill_value`."""
    shape = checks.sizes(tuple(shape) if isinstance(shape, (tuple, list)) else (shape,), "full")
    checks.fill_value(fill_value)
    data, device = _make(device, lambda xp: xp.full(shape, fill_value, dtype=dtype))
    return Tensor.wrap(data, device).requires_grad_(requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    """Zeros of `t`'s shape and device, and its dtype unless `dtype` is given."""
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    """Ones of `t`'s shape and device, and its dtype unless `dtype` is given."""
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def rand(*shape, dtype=float32, device=None, requires_grad=False):
    """Uniform on [0, 1) from the global generator (see manual_seed)."""
    return _factory(_rng.random(checks.sizes(shape, "rand")).astype(dtype), device, requires_grad)


def randn(*shape, dtype=float32, device=None, requires_grad=False):
    """Standard normal from the global generator (see manual_seed)."""
    return _factory(_rng.standard_normal(checks.sizes(shape, "randn")).astype(dtype), device, requires_grad)


def arange(start, stop=None, step=1, dtype=None, device=None):
    """Evenly spaced values in [start, stop), as numpy.arange: int64 for int arguments, else float32."""
    if stop is None:
        start, stop = 0, start
    checks.arange_step(step)
    if dtype is None:
        dtype = numpy.int64 if all(isinstance(v, int) for v in (start, stop, step)) else float32
    data, device = _make(device, lambda xp: xp.arange(start, stop, step, dtype=dtype))
    return Tensor.wrap(data, device)


def eye(n, m=None, dtype=float32, device=None, requires_grad=False):
    """The n x m identity matrix (m defaults to n)."""
    n, m = checks.sizes((n, n if m is None else m), "eye")
    data, device = _make(device, lambda xp: xp.eye(n, m, dtype=dtype))
    return Tensor.wrap(data, device).requires_grad_(requires_grad)
