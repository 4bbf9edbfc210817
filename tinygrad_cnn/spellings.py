"""PyTorch's argument names accepted beside NumPy's, for code written for PyTorch."""
import collections
import functools

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
                return values
            dim = kwargs.get("dim", kwargs.get("axis", args[0] if args else None))
            if dim is None or isinstance(dim, (tuple, list)):  # torch has no indices for these either
                return values
            rest = args[1:] if "dim" not in kwargs and "axis" not in kwargs else args
            keepdim = kwargs.get("keepdim", kwargs.get("keepdims", rest[0] if rest else False))
            return ValuesIndices(values, getattr(self, arg_name)(axis=dim, keepdims=keepdim))
        return wrapper
    return decorate
