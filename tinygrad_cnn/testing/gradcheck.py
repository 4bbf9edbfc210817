"""Compare a function's analytic gradient (backward) with central finite differences in float64."""
import numpy

from ..device import is_writeable, to_numpy
from ..autograd import no_grad
from ..tensor import Tensor


class GradcheckError(AssertionError):
    """The analytic and numeric gradients disagree; the message names the input and the worst element."""


# NOTE: gradcheck's random numbers (the upstream gradient, fast mode's directions) come from their
# own stream: SeedSequence(seed) with this spawn key. default_rng(seed), which tests also use to
# draw inputs, would give the same numbers: with u == A, a transposed gradient of A @ A passed.
_STREAM_KEY = (0x67726164,)  # "grad"


def _stream(seed):
    """A generator independent of numpy.random's global state, default_rng(seed) and its children."""
    return numpy.random.Generator(numpy.random.PCG64(numpy.random.SeedSequence(seed, spawn_key=_STREAM_KEY)))


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=False, seed=0, n_directions=1):
    """Check backward() of `fn(*inputs)` against central differences; return True or raise GradcheckError.

    Tensors with requires_grad=True (and bare float arrays) are checked; other tensors are passed
    as constants. Inputs are copied to float64, except float64 leaf tensors that require grad:
    those are checked in place (values and `.grad` restored afterwards), so `fn` may ignore its
    arguments and read them from elsewhere, e.g. a model's parameters.

    The output is contracted with a *random* upstream gradient, never with ones: d/dx
    sum(softmax(x)) is exactly zero, so `.sum()` would hide a softmax whose backward returns zeros.

    fast_mode=True checks `n_directions` random directions per input instead of every element:
    2 * n_directions evaluations per input instead of two per element, for large inputs. One
    direction checks one number, the projection of the gradient on it: a wrong gradient passes
    only if its error is (nearly) orthogonal to the direction, which a random direction makes
    unlikely but not impossible; each further direction multiplies the chance of missing it.
    The random numbers come from a stream of their own (see _stream), never from the global or
    default generators the inputs may have been drawn from."""
    if int(n_directions) != n_directions or n_directions < 1:
        raise ValueError(f"gradcheck: n_directions must be a positive integer, got {n_directions!r}")
    rng = _stream(seed)
    args, checked, saved_grads = [], [], {}
    for i, x in enumerate(inputs):
        if (isinstance(x, Tensor) and x.requires_grad and x.is_leaf and x.dtype == numpy.float64
                and is_writeable(x.data)):  # read-only: check a copy
            saved_grads[i] = x.grad
            x.grad = None
            args.append(x)
            checked.append(i)
            continue
        if isinstance(x, Tensor):
            wants_grad = x.requires_grad
            device = x.device
            data = x.data
        elif hasattr(x, "dtype") and hasattr(x, "shape"):
            wants_grad, device, data = numpy.dtype(x.dtype).kind == "f", None, x
        else:
            args.append(x)
            continue
        float_input = numpy.dtype(data.dtype).kind == "f"
        t = Tensor(data, device=device, dtype="float64" if float_input else None)
        if wants_grad and float_input:
            t = Tensor(t.data.copy(), device=t.device, requires_grad=True)
            checked.append(i)
        args.append(t)
    if not checked:
        raise ValueError("gradcheck: no input requires a gradient; pass tensors with requires_grad=True")

    try:
        return _check(fn, args, checked, rng, eps, atol, rtol, fast_mode, int(n_directions))
    finally:
        for i, grad in saved_grads.items():
            args[i].grad = grad


def _check(fn, args, checked, rng, eps, atol, rtol, fast_mode, n_directions):
    out = fn(*args)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    if out.dtype != numpy.float64:
        low = out.dtype.name
        raise GradcheckError(
            f"gradcheck: fn returned {low} from float64 inputs. Either fn reads {low} tensors other than "
            f"its arguments, e.g. a model's parameters (gradcheck perturbs float64 copies of {low} inputs, "
            f"which such an fn ignores): make those float64 leaf tensors (p.data = p.data.astype('float64')) "
            f"and pass them in `inputs`, where they are checked in place; or an op in fn casts down to {low}.")
    upstream = rng.standard_normal(out.shape)
    upstream_t = Tensor(upstream, device=out.device)
    out.backward(upstream_t)

    def objective():
        with no_grad():
            return float((fn(*args).numpy() * upstream).sum())

    for i in checked:
        x = args[i]
        analytic = numpy.zeros(x.shape) if x.grad is None else x.grad.numpy()
        if analytic.shape != x.shape:
            raise GradcheckError(f"gradcheck: input {i} has shape {x.shape} but its gradient has shape {analytic.shape}")
        if fast_mode:
            for k in range(n_directions):
                _check_direction(i, x, analytic, objective, rng, eps, atol, rtol, k, n_directions)
        else:
            _check_elements(i, x, analytic, objective, eps, atol, rtol)
    return True


def _numeric(x, flat_index, direction, objective, eps):
    """(f(x + eps*d) - f(x - eps*d)) / (2 eps), perturbing x in place and restoring it."""
    data = x.data
    original = data.copy()
    if flat_index is not None:
        # NOTE: index the element itself; data.reshape(-1) would be a copy for a non-contiguous
        # array (a transposed parameter checked in place) and the perturbation would be lost.
        index = tuple(int(j) for j in numpy.unravel_index(flat_index, data.shape))
        data[index] = original[index] + eps
        plus = objective()
        data[index] = original[index] - eps
        minus = objective()
    else:
        data[...] = original + eps * direction
        plus = objective()
        data[...] = original - eps * direction
        minus = objective()
    data[...] = original
    return (plus - minus) / (2 * eps)


def _check_elements(i, x, analytic, objective, eps, atol, rtol):
    numeric = numpy.empty(x.size)
    for k in range(x.size):
        numeric[k] = _numeric(x, k, None, objective, eps)
    numeric = numeric.reshape(x.shape)
    error = numpy.abs(analytic - numeric) - (atol + rtol * numpy.abs(numeric))
    # NOTE: a NaN error (non-finite analytic *or* numeric value, e.g. f undefined at x +- eps) is a
    # disagreement too; `error.max() > 0` alone would let it pass silently.
    bad = ~(error <= 0)
    if bad.any():
        worst = numpy.unravel_index(numpy.argmax(numpy.where(bad, numpy.nan_to_num(error, nan=numpy.inf), -numpy.inf)),
                                    x.shape)
        raise GradcheckError(
            f"gradcheck failed for input {i} (shape {x.shape}) at index {tuple(int(j) for j in worst)}: "
            f"analytic {analytic[worst]:.8g}, numeric {numeric[worst]:.8g} "
            f"(atol={atol}, rtol={rtol}; {int(bad.sum())} of {x.size} elements disagree)")


def _check_direction(i, x, analytic, objective, rng, eps, atol, rtol, k=0, n_directions=1):
    direction = rng.standard_normal(x.shape)
    direction /= max(numpy.linalg.norm(direction), 1e-12)
    xp_direction = x.xp.asarray(direction)
    numeric = _numeric(x, None, xp_direction, objective, eps)
    predicted = float((analytic * direction).sum())
    if not abs(predicted - numeric) <= atol + rtol * abs(numeric):
        raise GradcheckError(
            f"gradcheck (fast mode) failed for input {i} (shape {x.shape}): "
            f"{f'direction {k + 1} of {n_directions}: ' if n_directions > 1 else ''}directional derivative "
            f"analytic {predicted:.8g}, numeric {numeric:.8g} (atol={atol}, rtol={rtol})")
