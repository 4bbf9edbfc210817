"""PyTorch's argument names accepted beside NumPy's, for code written for PyTorch."""
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
