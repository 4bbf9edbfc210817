"""Optimizers (SGD, Adam, AdamW) that update parameters in place, and per-epoch learning-rate schedules.

Updates run on the raw arrays with each parameter's own array module (NumPy or CuPy), outside
the graph. Hyper-parameters are Python floats, so float32 parameters and their state stay float32
(NumPy 2 does not promote an array for a Python scalar).

A step whose gradients hold a NaN or an infinity is never applied: by default it is skipped and
counted in `skipped_steps` (one bad batch cannot destroy a model); `nonfinite="raise"` raises
NonFiniteGradientError instead. float16 parameters keep their optimizer state in float32."""
import math
import warnings
from collections.abc import Mapping

import numpy

from .device import to_device, to_numpy
from .parallel import over_batch
from .tensor import Tensor


def _number(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, numpy.integer, numpy.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _at_least(value, name, low=0.0):
    value = _number(value, name)
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


class NonFiniteGradientError(FloatingPointError):
    """An optimizer step met a NaN or infinite gradient (with nonfinite="raise")."""


def _state_dtype(p):
    """NOTE: float16 cannot hold Adam's second moment (1e-4 ** 2 underflows to 0, and then
    eps = 1e-8 does too, so the step divides by zero): state is float32 for anything narrower."""
    return p.dtype if p.dtype.itemsize >= 4 else numpy.dtype("float32")


class Optimizer:
    """Holds a fixed list of parameters and per-parameter state; step() updates every parameter
    that has a gradient and skips the others (their state does not advance either).

    nonfinite: what step() does when any gradient holds a NaN or an infinity: "skip" (default)
    leaves every parameter and all state untouched and adds one to `skipped_steps`; "raise"
    raises NonFiniteGradientError naming the parameters."""

    state_names = ()

    def __init__(self, params, nonfinite="skip", **hyper):
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__} needs an iterable of parameters, got a single Tensor; "
                            f"wrap it in a list")
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list; a model whose layers are not "
                             f"built yet has none (a Sequential without input_shape): give it input_shape=..., "
                             f"call model.build(input_shape) or call it on a batch before creating the optimizer")
        seen = set()
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameter {i} is a {type(p).__name__}, not a Tensor")
            if not p.requires_grad or not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: parameter {i} (shape {p.shape}) is not a leaf tensor "
                                 f"with requires_grad=True")
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: parameter {i} (shape {p.shape}) appears twice")
            seen.add(id(p))
        if nonfinite not in ("skip", "raise"):
            raise ValueError(f"nonfinite must be 'skip' or 'raise', got {nonfinite!r}")
        self.params = params
        self.state = [{} for _ in params]
        self.nonfinite = nonfinite
        self.skipped_steps = 0
        self._hyper_names = tuple(hyper)
        self.__dict__.update(self._checked(hyper))

    def _checked(self, hyper):
        """Validated copies of the hyper-parameters (raises ValueError/TypeError)."""
        hyper = dict(hyper)
        hyper["lr"] = _at_least(hyper["lr"], "lr")
        if "weight_decay" in hyper:
            hyper["weight_decay"] = _at_least(hyper["weight_decay"], "weight_decay")
        return hyper

    def __setattr__(self, name, value):
        """A hyper-parameter set after construction (optimizer.lr = ...) is checked as in __init__:
        a negative or non-finite lr would silently ascend or destroy the weights."""
        if name in self.__dict__.get("_hyper_names", ()):
            value = self._checked({**{k: getattr(self, k) for k in self._hyper_names}, name: value})[name]
        object.__setattr__(self, name, value)

    def zero_grad(self):
        """Clear `.grad` of every parameter (set it to None); call it before each backward()."""
        for p in self.params:
            p.grad = None

    def step(self):
        """Update every parameter that has a gradient, in place; those without one are skipped."""
        if not self._gradients_finite():
            return
        for p, g, state in self._with_grads():
            self._update(p, g, state)

    def _gradients_finite(self):
        """True when every gradient is finite; otherwise count a skipped step (or raise).

        NOTE: one sum per gradient, and one host sync per device: a sum is finite whenever all
        its terms are (NaN and inf propagate), so only a non-finite sum, which may also be an
        overflow of large finite values, is checked element by element."""
        totals = {}  # device -> (array module, sum of its gradients' sums)
        with numpy.errstate(over="ignore", invalid="ignore"):  # an overflow here is checked just below
            for p in self.params:
                if p.grad is not None:
                    xp, total = totals.get(p.device, (p.xp, 0))
                    totals[p.device] = xp, total + p.grad.data.sum()
        if all(bool(xp.isfinite(total)) for xp, total in totals.values()):
            return True
        bad = [f"parameter {i} (shape {p.shape})" for i, p in enumerate(self.params)
               if p.grad is not None and not bool(p.xp.isfinite(p.grad.data).all())]
        if not bad:
            return True
        message = (f"{type(self).__name__}.step: non-finite gradient (NaN or inf) in {', '.join(bad[:4])}"
                   f"{' and more' if len(bad) > 4 else ''}")
        if self.nonfinite == "raise":
            raise NonFiniteGradientError(message)
        self.skipped_steps += 1
        warnings.warn(f"{message}: step skipped, parameters unchanged ({self.skipped_steps} skipped so far)",
                      RuntimeWarning, stacklevel=3)
        return False


    def _with_grads(self):
        """(parameter, gradient array, state) for each parameter that has a gradient."""
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                if p.grad.shape != p.shape:
                    raise ValueError(f"{type(self).__name__}: gradient shape {p.grad.shape} does not match "
                                     f"parameter shape {p.shape}")
                p._version[0] += 1  # the parameter is about to change: saved graphs that used it are stale
                yield p, p.grad.data, state

    def _update(self, p, g, state):
        raise NotImplementedError

    # ------------------------------------------------------------ checkpoints

    def state_dict(self):
        """A flat dict of NumPy arrays and Python scalars (np.savez-able): the hyper-parameters,
        "param_count", and "state.<i>.<name>" for each parameter's buffers and step count."""
        out = {name: getattr(self, name) for name in self._hyper_names}
        out["param_count"] = len(self.params)
        for i, state in enumerate(self.state):
            for name, value in state.items():
                out[f"state.{i}.{name}"] = value if isinstance(value, int) else numpy.array(to_numpy(value), copy=True)
        return out

    def load_state_dict(self, state):
        """Restore what state_dict() returned (arrays may come back 0-d from np.load). Everything is
        checked first; a wrong parameter count, shape or key raises one ValueError listing each problem
        and changes nothing."""
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict needs a mapping, got {type(state).__name__}")
        problems, per_param = [], [{} for _ in self.params]
        missing = [k for k in self._hyper_names + ("param_count",) if k not in state]
        problems += [f"missing key {k!r}" for k in missing]
        if "param_count" in state and int(numpy.asarray(state["param_count"])) != len(self.params):
            problems.append(f"the state is for {int(numpy.asarray(state['param_count']))} parameters, "
                            f"this optimizer has {len(self.params)}")
        for key, value in state.items():
            if key in self._hyper_names or key == "param_count":
                continue
            parts = key.split(".")
            if len(parts) != 3 or parts[0] != "state" or not parts[1].isdigit() or \
                    parts[2] not in self.state_names + ("step",):
                problems.append(f"unexpected key {key!r}")
                continue
            i, name = int(parts[1]), parts[2]
            if i >= len(self.params):
                problems.append(f"{key!r}: there is no parameter {i} (this optimizer has {len(self.params)})")
            elif name == "step":
                per_param[i][name] = int(numpy.asarray(value))
            elif tuple(numpy.shape(value)) != self.params[i].shape:
                problems.append(f"{key!r}: shape {tuple(numpy.shape(value))}, parameter {i} has shape "
                                f"{self.params[i].shape}")
            else:
                per_param[i][name] = numpy.asarray(to_numpy(value))
        hyper = {}
        if not problems:
            try:
                hyper = self._checked({k: _plain(state[k]) for k in self._hyper_names})
            except (TypeError, ValueError) as e:
                problems.append(str(e))
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state does not fit:\n  " +
                             "\n  ".join(problems))
        self.__dict__.update(hyper)
        for p, state, loaded in zip(self.params, self.state, per_param):
            state.clear()
            for name, value in loaded.items():
                state[name] = value if name == "step" else to_device(numpy.array(value, dtype=_state_dtype(p)),
                                                                     p.device)

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._hyper_names)
        return f"{type(self).__name__}({len(self.params)} parameters, {args})"


def _plain(value):
    """A 0-d array back to a Python scalar, a 1-d one to a tuple (as np.load returns them)."""
    array = numpy.asarray(value)
    if array.ndim == 0:
        return array.item()
    return tuple(array.tolist())


class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch's momentum: buf = momentum*buf + g (buf = g at the
    first step), then p -= lr*buf, or p -= lr*(g + momentum*buf) with nesterov. weight_decay adds
    weight_decay*p to the gradient (L2)."""

    state_names = ("momentum_buffer",)

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0, nonfinite="skip"):
        super().__init__(params, nonfinite, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)

    def _checked(self, hyper):
        hyper = super()._checked(hyper)
        hyper["momentum"] = _at_least(hyper["momentum"], "momentum")
        if not isinstance(hyper["nesterov"], (bool, numpy.bool_)):
            raise TypeError(f"nesterov must be True or False, got {hyper['nesterov']!r}")
        hyper["nesterov"] = bool(hyper["nesterov"])
        if hyper["nesterov"] and hyper["momentum"] == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        return hyper

    def _update(self, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.astype(_state_dtype(p), copy=True)
            else:
                buf *= self.momentum
                buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        p.data -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction, as in PyTorch; weight_decay is L2 added to the gradient
    (coupled with the adaptive scaling; see AdamW for the decoupled form).

    eps_hat: where eps goes. False (PyTorch): p -= lr * m_hat / (sqrt(v_hat) + eps), eps added after
    the bias correction. True (Keras and TensorFlow, the paper's "epsilon hat"): p -= lr_t * m /
    (sqrt(v) + eps) with lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t), eps added before it, so
    early steps, when sqrt(1 - beta2**t) is small, are damped for gradients near eps's size (at
    t = 1, a gradient of 1e-6 moves its weight 0.24*lr instead of 0.91*lr with eps = 1e-7).
    NOTE: the keras front end uses True: with False, training from the same start drifts from
    Keras' by up to 1e-1 (relative, per weight array) after one step; with True, 2e-5 after ten."""

    state_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, nonfinite="skip",
                 eps_hat=False):
        if not isinstance(eps_hat, bool):
            raise TypeError(f"eps_hat must be True or False, got {eps_hat!r}")
        self.eps_hat = eps_hat
        super().__init__(params, nonfinite, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _checked(self, hyper):
        hyper = super()._checked(hyper)
        betas = hyper["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}")
        betas = tuple(_number(b, "betas") for b in betas)
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        hyper["betas"] = betas
        hyper["eps"] = _at_least(hyper["eps"], "eps")
        return hyper

    def _decay(self, p, g):
        return g + self.weight_decay * p.data if self.weight_decay else g

    def step(self):
        """Update every parameter that has a gradient, in place.

        NOTE: all parameters in one split over cores (parallel.py): their elements, laid end to
        end, are cut into one range per thread, and each thread updates its pieces of each
        parameter. Small parameters no longer run one after another on one core."""
        if not self._gradients_finite():
            return
        flat, rest = [], []
        for p, g, state in self._with_grads():
            arrays = self._prepare(p, g, state)
            if p.xp.__name__ == "numpy" and all(a.flags.c_contiguous for a in arrays):
                cpu = p.xp
                flat.append(([a.reshape(-1) for a in arrays], state["step"]))
            else:
                rest.append((p.xp, arrays, state["step"]))
        for xp, arrays, t in rest:
            self._adam_step(xp, *arrays, t)
        starts = [0]
        for arrays, _ in flat:
            starts.append(starts[-1] + arrays[0].size)

        def work(span):
            for (arrays, t), lo, hi in zip(flat, starts[:-1], starts[1:]):
                if lo < span.stop and span.start < hi:
                    piece = slice(max(span.start, lo) - lo, min(span.stop, hi) - lo)
                    self._adam_step(cpu, *[a[piece] for a in arrays], t)

        if flat:
            over_batch(cpu, starts[-1], starts[-1], work)

    def _prepare(self, p, g, state):
        """(parameter, gradient, first moment, second moment) arrays, with weight decay applied
        and the step count advanced."""
        g = self._decay(p, g)
        if "exp_avg" not in state:
            state["exp_avg"] = p.xp.zeros_like(p.data, dtype=_state_dtype(p))
            state["exp_avg_sq"] = p.xp.zeros_like(p.data, dtype=_state_dtype(p))
        g = g.astype(state["exp_avg"].dtype, copy=False)
        state["step"] = state.get("step", 0) + 1
        return p.data, g, state["exp_avg"], state["exp_avg_sq"]

    def _adam_step(self, xp, p, g, m, v, t):
        """The update of one array (or a slice of one), in place.

        NOTE: through one scratch buffer: a temporary per term made this 2.5x slower. The bias
        corrections are Python floats, so float32 state is never promoted to float64."""
        beta1, beta2 = self.betas
        scratch = xp.empty_like(m)
        m += xp.multiply(xp.subtract(g, m, out=scratch), 1 - beta1, out=scratch)  # m + (1-b1)(g-m), as PyTorch's lerp
        v *= beta2
        v += xp.multiply(xp.multiply(g, 1 - beta2, out=scratch), g, out=scratch)
        # p -= lr/c1 * m / (sqrt(v)/c2 + eps), with c1, c2 = 1 - beta1**t, sqrt(1 - beta2**t), written
        # as lr*c2/c1 * m / (sqrt(v) + eps*c2) to save a pass; with eps_hat, eps is not scaled by c2
        c1, c2 = 1 - beta1 ** t, math.sqrt(1 - beta2 ** t)
        denom = xp.sqrt(v, out=scratch)
        denom += self.eps if self.eps_hat else self.eps * c2
        step = xp.divide(m, denom, out=scratch)
        step *= self.lr * c2 / c1
        p -= step


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr*weight_decay before the
    Adam step, so decay is not scaled down for parameters with large gradients."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, nonfinite="skip",
                 eps_hat=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, nonfinite=nonfinite,
                         eps_hat=eps_hat)

    def _decay(self, p, g):
        if self.weight_decay:
            p.data *= 1 - self.lr * self.weight_decay
        return g


# ---------------------------------------------------------------- learning-rate schedules

class LRScheduler:
    """Sets optimizer.lr from the epoch count; call step() once per epoch, after the epoch's updates."""

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__} needs an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_epoch = 0
        self._last_lr = self.base_lr

    def lr_at(self, epoch):
        """The learning rate after `epoch` epochs (each schedule defines it; step() sets it)."""
        raise NotImplementedError

    def step(self):
        """Count one more epoch and set optimizer.lr (call once per epoch, after its updates)."""
        self.last_epoch += 1
        self._last_lr = float(self.lr_at(self.last_epoch))
        self.optimizer.lr = self._last_lr

    def get_last_lr(self):
        """The learning rate set by the last step() (the initial one before any step), a float."""
        return self._last_lr

    def state_dict(self):
        """{'base_lr', 'last_epoch'}, for a checkpoint (the schedule's own settings are not saved)."""
        return {"base_lr": self.base_lr, "last_epoch": self.last_epoch}

    def load_state_dict(self, state):
        """Restore what state_dict() returned, and set optimizer.lr to match."""
        self.base_lr = float(numpy.asarray(state["base_lr"]))
        self.last_epoch = int(numpy.asarray(state["last_epoch"]))
        self._last_lr = float(self.lr_at(self.last_epoch)) if self.last_epoch else self.base_lr
        self.optimizer.lr = self._last_lr


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        if isinstance(step_size, bool) or not isinstance(step_size, (int, numpy.integer)) or step_size < 1:
            raise ValueError(f"step_size must be a positive int, got {step_size!r}")
        self.step_size = int(step_size)
        self.gamma = _number(gamma, "gamma")
        if self.gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        super().__init__(optimizer)

    def lr_at(self, epoch):
        """base_lr * gamma ** (epoch // step_size)."""
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2: from base_lr down to
    eta_min at epoch T_max (and back up after, as PyTorch's closed form does)."""

    def __init__(self, optimizer, T_max, eta_min=0.0):  # noqa: N803 (PyTorch's argument name)
        if isinstance(T_max, bool) or not isinstance(T_max, (int, numpy.integer)) or T_max < 1:
            raise ValueError(f"T_max must be a positive int, got {T_max!r}")
        self.T_max = int(T_max)
        self.eta_min = _at_least(eta_min, "eta_min")
        super().__init__(optimizer)

    def lr_at(self, epoch):
        """eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2."""
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


__all__ = ["Optimizer", "NonFiniteGradientError", "SGD", "Adam", "AdamW", "LRScheduler", "StepLR", "CosineAnnealingLR"]
