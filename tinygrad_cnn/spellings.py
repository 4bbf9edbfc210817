"""PyTorch's argument names accepted beside NumPy's, for code written for PyTorch."""
import collections
import functools
import warnings

# PyTorch's argument names for NumPy's: `x.sum(dim=1, keepdim=True)` is `x.sum(axis=1, keepdims=True)`.
TORCH_ALIASES = {"dim": "axis", "keepdim": "keepdims", "start_dim": "start_axis", "end_dim": "end_axis"}


def torch_names(fn):
    """Let `fn` also take PyTorch's names (dim, keepdim, start_dim, end_dim) for its NumPy ones;
    giving both spellings of one argument is a TypeError naming them."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        for theirs, ours in TORCH_ALIASES.items():
            if theirs in kwargs:
                if ours in kwargs:
                    raise TypeError(f"{fn.__name__}() got both {theirs}= and {ours}= (the same argument, "
                                    f"PyTorch's and NumPy's name): give one")
                kwargs[ours] = kwargs.pop(theirs)
        return fn(*args, **kwargs)
    return wrapper


# torch's x.max(dim=1) result: a (values, indices) pair whose fields are also named
ValuesIndices = collections.namedtuple("ValuesIndices", ["values", "indices"])


def values_and_indices(arg_name):
    """torch's spellings x.max(dim=1) and x.max(1, keepdim=True) return (values, indices); so does `fn` (max
    or min) when given dim= or keepdim= with one int axis, the indices from the method `arg_name` (argmax or
    argmin). NumPy's spellings, max(axis=1), max(1) and max(1, keepdims=True), keep NumPy's answer: the
    values alone.

    NOTE: without it, `values, indices = x.max(dim=1)` unpacked the rows of the values, and
    x.max(1, keepdim=True)[1] (the classic MNIST example's prediction) was the second row's maximum: silent
    wrong answers in code written for PyTorch."""
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(self, *args, **kwargs):
            values = fn(self, *args, **kwargs)
            if "dim" not in kwargs and "keepdim" not in kwargs:
                if args and isinstance(args[0], int) and not isinstance(args[0], bool) and "keepdims" not in kwargs:
                    # NOTE: x.max(1) is both NumPy's axis=1 (the values, what it returns) and torch's dim=1
                    # (a pair): torch's x.max(1)[1] would silently be the second row's maximum, so it is said
                    warnings.warn(f"x.{fn.__name__}({args[0]}) returns the values alone (NumPy's axis={args[0]}); "
                                  f"torch's (values, indices) pair is x.{fn.__name__}(dim={args[0]}), and "
                                  f"x.{fn.__name__}(axis={args[0]}) says you meant NumPy's", UserWarning, stacklevel=2)
                return values
            dim = kwargs.get("dim", kwargs.get("axis", args[0] if args else None))
            if dim is None or isinstance(dim, (tuple, list)):  # torch has no indices for these either
                return values
            rest = args[1:] if "dim" not in kwargs and "axis" not in kwargs else args
            keepdim = kwargs.get("keepdim", kwargs.get("keepdims", rest[0] if rest else False))
            return ValuesIndices(values, getattr(self, arg_name)(axis=dim, keepdims=keepdim))
        return wrapper
    return decorate


# torch.Tensor methods not offered here, and what to write instead (asked for, they raise an AttributeError saying so)
TORCH_ONLY_METHODS = {
    "nonzero": "write tinygrad_cnn.tensor(numpy.argwhere(x.numpy())) (the (n, ndim) indices, no gradient)",
    "gather": "write x[tinygrad_cnn.arange(n), index] to pick one element per row (differentiable)",
    "new_zeros": "write tinygrad_cnn.zeros(*shape, dtype=x.dtype, device=x.device)",
    "new_ones": "write tinygrad_cnn.ones(*shape, dtype=x.dtype, device=x.device)",
    "new_tensor": "write tinygrad_cnn.tensor(data, dtype=x.dtype, device=x.device)",
    "chunk": "write slices, x[i * n:(i + 1) * n]", "split": "write slices, x[i * n:(i + 1) * n]",
    "repeat": "write x.broadcast_to(shape) (x.expand) for a size-1 axis, or tinygrad_cnn.cat([x] * n, dim)",
    "masked_fill": "write tinygrad_cnn.where(mask, value, x)",
    "topk": "write x.argmax(dim) for k = 1, or x.numpy() and numpy.argsort",
    "sort": "write x.numpy() and numpy.sort / numpy.argsort (no gradient)",
    "argsort": "write x.numpy() and numpy.argsort", "cumsum": "write x.numpy().cumsum(axis) (no gradient)",
    "data_ptr": "write x.data.ctypes.data (the array behind it is x.data, a NumPy or CuPy array)",
    "pin_memory": "drop the call: there is no pinned memory here",
    "share_memory_": "drop the call: there are no worker processes here",
    "normal_": "write torch_nn.init.normal_(x, mean, std) (the init functions fill a weight in place)",
    "uniform_": "write torch_nn.init.uniform_(x, a, b) (the init functions fill a weight in place)",
    "prod": "write x.log().sum(dim).exp() for positive x, or x.numpy().prod(axis) (no gradient)",
    "pow_": "write x = x ** p (the in-place family here is add_, sub_, mul_, div_, fill_, zero_, copy_)",
    "relu_": "write x = x.relu() (the in-place family here is add_, sub_, mul_, div_, fill_, zero_, copy_)",
    "clamp_": "write x = x.clamp(min, max) (the in-place family here is add_, sub_, mul_, div_, fill_, zero_, copy_)",
}


class _TorchMethods:
    """torch.Tensor's names for what Tensor already does (a base of Tensor), so that code written for
    PyTorch runs unchanged: x.dim(), x.t(), x.pow(2), x.add(y), x.clamp(min=0), x.long(), x.is_cuda, ...
    torch's methods that are not here raise an AttributeError naming what to write instead."""

    def __getattr__(self, name):
        if name in TORCH_ONLY_METHODS:
            raise AttributeError(f"Tensor has no {name}() (torch's): {TORCH_ONLY_METHODS[name]}")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def dim(self):
        """The number of axes (torch's name for ndim)."""
        return self.ndim

    ndimension = dim

    def contiguous(self, memory_format=None):
        """self, as torch's for a contiguous tensor. NOTE: here view() never needs it: it reshapes any
        tensor, so the usual x.contiguous().view(...) costs nothing more."""
        if memory_format is not None:
            raise NotImplementedError("contiguous(memory_format=...): memory formats are not offered here")
        return self

    @property
    def is_cuda(self):
        """True on a GPU ("cuda:N"), as torch's."""
        return self.device.startswith("cuda")

    def t(self):
        """torch's t(): the transpose of a tensor of at most 2 dimensions (a 1-D or 0-d one as it is)."""
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, this one has {self.ndim} (shape "
                               f"{self.shape}); use transpose(dim0, dim1) or permute(...)")
        return self.transpose()

    @torch_names
    def norm(self, p="fro", axis=None, keepdims=False):
        """torch's x.norm(p="fro", dim=None, keepdim=False): the vector p-norm over dim (None: all elements) for
        p = "fro" (the 2-norm of the elements), 1, 2, float("inf") or any p > 0; the gradient where the norm is 0
        is 0, as torch's. Matrix norms ("nuc", p <= 0) are refused. (The op: norms.py.)"""
        from .norms import norm
        return norm(self, p, axis, keepdims)

    def pow(self, exponent):
        """self ** exponent."""
        return self ** exponent

    def add(self, other, alpha=1):
        """self + alpha * other, as torch.add (alpha scales the other operand)."""
        return self + (other if alpha == 1 else alpha * other)

    def sub(self, other, alpha=1):
        """self - alpha * other, as torch.sub."""
        return self - (other if alpha == 1 else alpha * other)

    def neg(self):
        """-self, as torch's."""
        return -self

    def mul(self, other):
        """self * other."""
        return self * other

    def div(self, other):
        """self / other (true division)."""
        return self / other

    def matmul(self, other):
        """self @ other."""
        return self @ other

    def mm(self, other):
        """self @ other for two 2-D tensors, as torch.mm (matmul broadcasts; mm does not)."""
        if self.ndim != 2 or getattr(other, "ndim", None) != 2:
            raise RuntimeError(f"mm() multiplies two 2-D tensors, got shapes {self.shape} and "
                               f"{getattr(other, 'shape', type(other).__name__)}; matmul (or @) takes others")
        return self @ other

    def ne(self, other):
        """self != other, elementwise (a bool tensor)."""
        return self != other

    def clamp(self, min=None, max=None):  # noqa: A002 (torch's argument names)
        """torch's clamp(min, max): clip(min, max), either bound may be None; the gradient passes inside,
        bounds included, as torch's."""
        return self.clip(min, max)

    def long(self):
        """Cast to int64 (labels for a loss), as torch's; no gradient flows through an integer cast."""
        return self.astype("int64")

    def int(self):
        """Cast to int32, as torch's."""
        return self.astype("int32")

    def bool(self):
        """Cast to bool, as torch's."""
        return self.astype("bool")

    def half(self):
        """Cast to float16, as torch's (x.to(tinygrad_cnn.half)); the gradient flows back as float32 would."""
        return self.to(dtype="float16")

    def is_floating_point(self):
        """True for a float dtype (float16, float32, float64), as torch's."""
        return self.dtype.kind == "f"

    def reshape_as(self, other):
        """self.reshape(other.shape), as torch's (view_as's twin)."""
        return self.reshape(other.shape)

    def __format__(self, spec):
        """f"{loss:.4f}" of a one-element tensor formats its number, as torch's; others only with no spec."""
        if self.size == 1 and self.ndim <= 1 and spec:
            return format(self.item(), spec)
        if spec:
            raise TypeError(f"unsupported format string {spec!r} for a Tensor of shape {self.shape}: only "
                            f"one-element tensors take a number's format (write x.item() or x.tolist())")
        return str(self)

    def __index__(self):
        """A one-element integer tensor as a Python int wherever Python wants an index, as torch's: the CIFAR
        tutorial's `classes[labels[j]]`, `range(n)`, `lst[t]`. Float and bool tensors refuse, as torch's."""
        if self.dtype.kind not in "iu" or self.size != 1:
            raise TypeError(f"only integer tensors of a single element can be converted to an index (this one: "
                            f"{self.dtype.name}, shape {self.shape}); write int(x.item()) or index with x.tolist()")
        return int(self.data.reshape(()).item())

    def round(self, decimals=0):
        """torch's round (half to even, as torch's and NumPy's); its gradient is 0, as torch's."""
        return _step(self, lambda a: self.xp.round(a, decimals), "round")

    def floor(self):
        """torch's floor; its gradient is 0, as torch's."""
        return _step(self, self.xp.floor, "floor")

    def ceil(self):
        """torch's ceil; its gradient is 0, as torch's."""
        return _step(self, self.xp.ceil, "ceil")

    def trunc(self):
        """torch's trunc (toward 0); its gradient is 0, as torch's."""
        return _step(self, self.xp.trunc, "trunc")

    def sign(self):
        """torch's sign (-1, 0 or 1 in self's dtype); its gradient is 0, as torch's."""
        return _step(self, self.xp.sign, "sign")

    def __floordiv__(self, other):
        """self // other, elementwise, as torch's floor division. NOTE: no gradient flows through it (the result
        is a constant), where torch's raises at backward() that floor_divide has no derivative."""
        return _no_grad_binary(self, other, "__floordiv__", "floor_divide")

    def __rfloordiv__(self, other):
        return _no_grad_binary(self, other, "__rfloordiv__", "floor_divide")

    def __mod__(self, other):
        """self % other, elementwise (Python's sign rule, as torch's remainder): self - floor(self / other) * other
        with the floor a constant, so the gradient is torch's (1 for self, -floor(self / other) for other)."""
        other = self._operand(other, "remainder")
        if self.dtype.kind != "f" and other.dtype.kind != "f":
            return _no_grad_binary(self, other, "__mod__", "remainder")
        return self - _no_grad_binary(self, other, "__floordiv__", "remainder") * other

    def __rmod__(self, other):
        return self._operand(other, "remainder").__mod__(self)

    @torch_names
    def var(self, axis=None, unbiased=None, keepdims=False, correction=None):
        """torch's var(dim=None, unbiased=True, keepdim=False) and var(dim, correction=1): the mean squared
        deviation over dim, divided by n - correction (1 by default, the unbiased one, as torch's; 0 with
        unbiased=False); composed of differentiable ops, so its gradient is the mean's and the square's."""
        if isinstance(axis, bool):  # torch's x.var(False): unbiased given first
            axis, unbiased = None, axis
        if unbiased is not None and correction is not None:
            raise TypeError("var: give unbiased= or correction=, not both")
        correction = (1 if unbiased is None or unbiased else 0) if correction is None else correction
        axes = tuple(range(self.ndim)) if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
        n = 1
        for a in axes:
            n *= self.shape[a]
        deviation = self - self.mean(axis=axis, keepdims=True)
        return (deviation * deviation).sum(axis=axis, keepdims=keepdims) / max(n - correction, 0)

    @torch_names
    def std(self, axis=None, unbiased=None, keepdims=False, correction=None):
        """torch's std(dim=None, unbiased=True, keepdim=False): var(...).sqrt(), the unbiased one by default
        (the data-normalisation habit `(x - x.mean()) / x.std()`)."""
        return self.var(axis, unbiased, keepdims, correction).sqrt()

    def type(self, dtype=None, non_blocking=False):
        """torch's x.type(): without a dtype the type's name ('torch.FloatTensor', 'torch.cuda.LongTensor');
        with one (torch.float, "float32", or a name such as 'torch.FloatTensor') the tensor cast to it, as
        x.to(dtype): the Quickstart's `(pred.argmax(1) == y).type(torch.float).sum()`."""
        if dtype is None:
            name = TENSOR_TYPES.get(self.dtype.name, self.dtype.name)
            return f"torch.{'cuda.' if self.is_cuda else ''}{name}"
        if isinstance(dtype, str) and dtype.startswith("torch."):
            wanted = {v: k for k, v in TENSOR_TYPES.items()}.get(dtype.rsplit(".", 1)[-1])
            if wanted is None:
                raise TypeError(f"type({dtype!r}): not a tensor type name; give a dtype (torch.float, torch.long, "
                                f"...) or one of {', '.join('torch.' + n for n in TENSOR_TYPES.values())}")
            dtype = wanted
        return self.to(dtype=dtype)


def _step(x, fn, name):
    """fn(x) (a step function) with torch's gradient, 0: where(False, x, fn(x)) keeps x in the graph (its
    gradient exactly 0) and the values exactly fn(x), infinities included (x * 0 would make nan)."""
    from .tensor import where
    if x.dtype.kind == "b":
        raise TypeError(f"{name}: not defined for bool tensors (as torch's); cast first, x.float()")
    values = type(x).wrap(fn(x.data), x.device)
    if not x.requires_grad:
        return values
    return where(x.xp.zeros(x.shape, dtype=bool), x, values)


def _no_grad_binary(x, other, method, name):
    """x's array `method` other's, as a new tensor outside the graph (torch's floor_divide and remainder have
    no useful gradient: a step function's is 0)."""
    other = x._operand(other, name)
    return type(x).wrap(getattr(x.data, method)(other.data), x.device)


# torch's legacy tensor type names, by NumPy dtype name (x.type() reads them, x.type(name) takes them)
TENSOR_TYPES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
                "int64": "LongTensor", "int32": "IntTensor", "int16": "ShortTensor", "int8": "CharTensor",
                "uint8": "ByteTensor", "bool": "BoolTensor"}


# NOTE: the public name other files import; the class's own name is private, so that docs/make_api.py lists
# its methods under Tensor (a private base's members are documented with the class)
TorchMethods = _TorchMethods
