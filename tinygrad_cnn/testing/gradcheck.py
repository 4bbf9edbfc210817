"""Compare a function's analytic gradient (backward) with central finite differences in float64."""
import numpy

from ..device import is_writeable, to_numpy
from ..autograd import no_grad
from ..tensor import Tensor


class GradcheckError(AssertionError):
    """The analytic and numeric gradients disagree; the message names the input and the worst element."""


class GradcheckReport(int):
    """What a passing gradcheck did. NOTE: an int equal to 1 (== True) that prints as True, so code written
    for the True gradcheck used to return (`assert gradcheck(...)`, `passed += gradcheck(...)`) reads as before.

    `checked`: elements (or fast mode's directions) compared. `kinks`: those where the function has a kink
    (a ReLU at 0, a max-pool tie) within eps, found with nonsmooth="skip"; of them, `left_out` elements were
    not compared and `redrawn` directions were replaced by new ones; the rest passed with a smaller step
    that no longer reaches the kink."""

    def __new__(cls, checked, kinks=0, left_out=0, redrawn=0):
        report = super().__new__(cls, 1)
        report.checked, report.kinks, report.left_out, report.redrawn = checked, kinks, left_out, redrawn
        return report

    def __str__(self):
        return "True"   # NOTE: print(gradcheck(...)) shows what it showed when gradcheck returned True

    def __repr__(self):
        return (f"GradcheckReport(checked={self.checked}, kinks={self.kinks}, left_out={self.left_out}, "
                f"redrawn={self.redrawn})")


# NOTE: gradcheck's random numbers (the upstream gradient, fast mode's directions) come from their
# own stream: SeedSequence(seed) with this spawn key. default_rng(seed), which tests also use to
# draw inputs, would give the same numbers: with u == A, a transposed gradient of A @ A passed.
_STREAM_KEY = (0x67726164,)  # "grad"


def independent_stream(seed):
    """A generator independent of numpy.random's global state, default_rng(seed) and its children."""
    return numpy.random.Generator(numpy.random.PCG64(numpy.random.SeedSequence(seed, spawn_key=_STREAM_KEY)))


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=False, seed=0, n_directions=1,
              nonsmooth="raise"):
    """Check backward() of `fn(*inputs)` against central differences; return a GradcheckReport (truthy)
    or raise GradcheckError.

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
    The random numbers come from a stream of their own (see independent_stream), never from the global or
    default generators the inputs may have been drawn from.

    Kinks: a whole model is only piecewise smooth. Where x - eps and x + eps lie on two sides of a ReLU's
    kink or a max-pool tie (the activation pattern differs between them), the central difference mixes two
    slopes and disagrees with any gradient; in a model of 10^5 ReLUs some direction often does. An element
    (or direction) that disagrees is tested for such a kink (_Line.kink: the difference quotients must
    scale with the step as a smooth function's do). nonsmooth="raise" (the default) fails, saying that a
    kink was found; nonsmooth="skip" retries it with steps of eps/4 and eps/16 and, if a kink is still
    within reach, leaves the element out (fast mode: draws a new direction, up to 10 times), counting each
    in the returned report. A smooth function's wrong gradient is never excused, and more than half of an
    input's elements across kinks still fails."""
    if not callable(fn):
        raise TypeError(f"gradcheck: fn must be a callable taking the inputs, got {type(fn).__name__}")
    if isinstance(inputs, (Tensor, numpy.ndarray, str)) or not hasattr(inputs, "__iter__"):
        raise TypeError(f"gradcheck: inputs must be a list or tuple of the arguments of fn (Tensors), got "
                        f"{type(inputs).__name__}{'; wrap a single Tensor in a list' if isinstance(inputs, Tensor) else ''}")
    for name, value, least in (("eps", eps, "> 0"), ("atol", atol, ">= 0"), ("rtol", rtol, ">= 0")):
        number = not isinstance(value, bool) and isinstance(value, (int, float, numpy.floating)) and numpy.isfinite(value)
        if not number or value < 0 or (least == "> 0" and value == 0):
            raise ValueError(f"gradcheck: {name} must be a finite number {least}, got {value!r}")
    if int(n_directions) != n_directions or n_directions < 1:
        raise ValueError(f"gradcheck: n_directions must be a positive integer, got {n_directions!r}")
    if nonsmooth not in ("raise", "skip"):
        raise ValueError(f"gradcheck: nonsmooth must be 'raise' or 'skip', got {nonsmooth!r}")
    rng = independent_stream(seed)
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
        return _check(fn, args, checked, rng, eps, atol, rtol, fast_mode, int(n_directions), nonsmooth == "skip")
    finally:
        for i, grad in saved_grads.items():
            args[i].grad = grad


def _check(fn, args, checked, rng, eps, atol, rtol, fast_mode, n_directions, skip):
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

    line = _Line(objective, eps, atol, rtol, skip)
    report = GradcheckReport(0)
    for i in checked:
        x = args[i]
        analytic = numpy.zeros(x.shape) if x.grad is None else x.grad.numpy()
        if analytic.shape != x.shape:
            raise GradcheckError(f"gradcheck: input {i} has shape {x.shape} but its gradient has shape {analytic.shape}")
        if fast_mode:
            for k in range(n_directions):
                _check_direction(i, x, analytic, line, rng, k, n_directions, report)
            report.checked += n_directions
        else:
            _check_elements(i, x, analytic, line, report)
            report.checked += x.size
    return report


def _numeric(x, flat_index, direction, objective, eps, sides=False):
    """(f(x + eps*d) - f(x - eps*d)) / (2 eps), perturbing x in place and restoring it; with `sides`,
    the pair (f(x + eps*d), f(x - eps*d)) instead."""
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
    return (plus, minus) if sides else (plus - minus) / (2 * eps)


class _Line:
    """f along one line through x (an element's axis or a direction): whether a kink lies within a step,
    and (with skip) a retry at smaller steps."""

    STEPS = (1.0, 0.25, 0.0625)  # NOTE: fractions of eps; at eps/16 a float64 loss still rounds to ~1e-8 relative

    def __init__(self, objective, eps, atol, rtol, skip):
        self.objective, self.eps, self.atol, self.rtol, self.skip = objective, eps, atol, rtol, skip
        self._center = None

    @property
    def center(self):
        """f(x), evaluated once, when the first disagreement is looked at (a passing check needs none)."""
        if self._center is None:
            self._center = self.objective()
        return self._center

    def kink(self, x, flat_index, direction, h, tolerance):
        """Whether f has a kink within h of x along the line, big enough to move the check past `tolerance`.

        NOTE: for a smooth f the central difference C(h) changes with h only as h**2 times the third
        derivative, and the difference of the one-sided slopes, D(h) = (f(x+h) - 2 f(x) + f(x-h)) / h, is
        h times the second derivative: so C(h) = C(h/2) and D(h) = 2 D(h/2) to rounding, whatever the
        curvature. Across a kink at t (|t| < h/2) with a slope jump J, C(h) - C(h/2) = -J t / 2h and
        D(h) - 2 D(h/2) = J (3 |t| / h - 1): the two vanish at different t, so one of them shows it."""
        full = _numeric(x, flat_index, direction, self.objective, h, sides=True)
        half = _numeric(x, flat_index, direction, self.objective, h / 2, sides=True)
        c_full, c_half = (full[0] - full[1]) / (2 * h), (half[0] - half[1]) / h
        d_full = (full[0] - 2 * self.center + full[1]) / h
        d_half = (half[0] - 2 * self.center + half[1]) / (h / 2)
        return abs(c_full - c_half) > tolerance / 4 or abs(d_full - 2 * d_half) > tolerance

    def settle(self, x, flat_index, direction, predicted, numeric):
        """For a disagreeing element or direction: (passed, kink found, numeric). Without skip, only whether
        a kink explains it; with skip, smaller steps are tried while a kink lies within reach."""
        for fraction in self.STEPS if self.skip else self.STEPS[:1]:
            h = self.eps * fraction
            if fraction != 1.0:
                numeric = _numeric(x, flat_index, direction, self.objective, h)
            tolerance = self.atol + self.rtol * abs(numeric)
            if abs(predicted - numeric) <= tolerance:
                return True, True, numeric
            if not (numpy.isfinite(numeric) and numpy.isfinite(predicted)
                    and self.kink(x, flat_index, direction, h, tolerance)):
                return False, fraction != 1.0, numeric
        return False, True, numeric


def _check_elements(i, x, analytic, line, report):
    objective, eps, atol, rtol = line.objective, line.eps, line.atol, line.rtol
    numeric = numpy.empty(x.size)
    for k in range(x.size):
        numeric[k] = _numeric(x, k, None, objective, eps)
    numeric = numeric.reshape(x.shape)
    error = numpy.abs(analytic - numeric) - (atol + rtol * numpy.abs(numeric))
    # NOTE: a NaN error (non-finite analytic *or* numeric value, e.g. f undefined at x +- eps) is a
    # disagreement too; `error.max() > 0` alone would let it pass silently.
    bad = ~(error <= 0)
    kinks, settled = numpy.zeros(x.shape, dtype=bool), numpy.zeros(x.shape, dtype=bool)
    for flat in numpy.flatnonzero(bad):
        index = numpy.unravel_index(flat, x.shape)
        settled[index], kinks[index], numeric[index] = line.settle(x, flat, None, analytic[index], numeric[index])
    if line.skip and kinks.sum() * 2 <= x.size:
        bad &= ~(settled | kinks)
        report.kinks += int(kinks.sum())
        report.left_out += int((kinks & ~settled).sum())
    elif line.skip:
        bad &= ~settled   # NOTE: a function kinked almost everywhere is no gradient check at all
    if bad.any():
        worst = numpy.unravel_index(numpy.argmax(numpy.where(bad, numpy.nan_to_num(error, nan=numpy.inf), -numpy.inf)),
                                    x.shape)
        raise GradcheckError(
            f"gradcheck failed for input {i} (shape {x.shape}) at index {tuple(int(j) for j in worst)}: "
            f"analytic {analytic[worst]:.8g}, numeric {numeric[worst]:.8g} "
            f"(atol={atol}, rtol={rtol}; {int(bad.sum())} of {x.size} elements disagree"
            + (f"; at {int((bad & kinks).sum())} of them the function has a kink (a ReLU at 0, a max-pool tie) "
               f"within eps, where no derivative exists" + (": pass nonsmooth='skip' to leave those out"
                                                           if not line.skip else ", at too many to leave out")
               if (bad & kinks).any() else "") + ")")


_REDRAWS = 10  # new directions drawn, with nonsmooth="skip", for one whose line keeps a kink within reach


def _check_direction(i, x, analytic, line, rng, k, n_directions, report):
    for _ in range(_REDRAWS + 1 if line.skip else 1):
        direction = rng.standard_normal(x.shape)
        direction /= max(numpy.linalg.norm(direction), 1e-12)
        xp_direction = x.xp.asarray(direction)
        numeric = _numeric(x, None, xp_direction, line.objective, line.eps)
        predicted = float((analytic * direction).sum())
        if abs(predicted - numeric) <= line.atol + line.rtol * abs(numeric):
            return
        passed, kink, numeric = line.settle(x, None, xp_direction, predicted, numeric)
        if line.skip and kink:
            report.kinks += 1
        if passed:
            return
        if not (line.skip and kink):
            break
        report.redrawn += 1
    raise GradcheckError(
        f"gradcheck (fast mode) failed for input {i} (shape {x.shape}): "
        f"{f'direction {k + 1} of {n_directions}: ' if n_directions > 1 else ''}directional derivative "
        f"analytic {predicted:.8g}, numeric {numeric:.8g} (atol={line.atol}, rtol={line.rtol})"
        + ((f"; the function has a kink (a ReLU at 0, a max-pool tie) within eps along it, where no derivative "
            f"exists" + (f", and along {_REDRAWS} other directions" if line.skip else
                         ": pass nonsmooth='skip' to try smaller steps and other directions")) if kink else ""))
