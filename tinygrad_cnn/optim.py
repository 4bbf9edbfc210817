"""Optimizers (SGD, Adam, AdamW), the textbook update of each parameter in place, and per-epoch
learning-rate schedules (schedules.py).

A step whose gradients hold a NaN or an infinity is never applied: by default it is skipped and
counted in `skipped_steps` (one bad batch cannot destroy a model); `nonfinite="raise"` raises
NonFiniteGradientError instead. float16 parameters keep their state in float32. Hyper-parameters
are Python floats, so float32 parameters and their state stay float32. kernels/ replace the
per-parameter loop by a few fused kernels over all parameters at once (kernels/optim.py)."""
import math
import warnings

import numpy

from . import checks
from .autograd import kernel_for
from .device import all_finite, scope, to_device, to_numpy
from .optim_state import ParamGroup, StateDict, at_least, number
from .tensor import Tensor


class NonFiniteGradientError(FloatingPointError):
    """An optimizer step met a NaN or infinite gradient (with nonfinite="raise")."""


def state_dtype(p):
    """NOTE: float16 cannot hold Adam's second moment (1e-4 ** 2 underflows to 0, and then
    eps = 1e-8 does too, so the step divides by zero): state is float32 for anything narrower."""
    return p.dtype if p.dtype.itemsize >= 4 else numpy.dtype("float32")


class Optimizer(StateDict):
    """Holds a fixed list of parameters and per-parameter state; step() updates every parameter
    that has a gradient and skips the others (their state does not advance either).

    `state[i]` holds parameter i's buffers (state_names) once it has had a gradient; `steps[i]`
    how many updates it has had. nonfinite: "skip" (default) leaves every parameter and all state
    untouched when any gradient holds a NaN or an infinity, warns and adds one to `skipped_steps`;
    "raise" raises NonFiniteGradientError naming the parameters."""

    state_names = ()
    counts_steps = False  # whether state_dict saves each parameter's step count ("state.<i>.step")

    def __init__(self, params, nonfinite="skip", **hyper):
        if isinstance(params, Tensor) or not hasattr(params, "__iter__"):
            got = "a single Tensor; wrap it in a list" if isinstance(params, Tensor) else type(params).__name__
            raise TypeError(f"{type(self).__name__} needs an iterable of parameters (model.parameters()), got {got}")
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list; a model whose layers are not "
                             f"built yet has none (a Sequential without input_shape): give it input_shape=..., "
                             f"call model.build(input_shape) or call it on a batch before creating the optimizer")
        checks.optimizer_params(type(self).__name__, params)
        if nonfinite not in ("skip", "raise"):
            raise ValueError(f"nonfinite must be 'skip' or 'raise', got {nonfinite!r}")
        self.params, self.nonfinite = params, nonfinite
        self.state, self.steps = [{} for _ in params], [0] * len(params)
        self.engine = None  # the kernel running the steps (kernels.optim), made at the first step
        self._skipped = 0
        self._hyper_names = tuple(hyper)
        self.__dict__.update(self._checked(hyper))

    def _checked(self, hyper):
        """Validated copies of the hyper-parameters (raises ValueError/TypeError)."""
        hyper = dict(hyper)
        hyper["lr"] = at_least(hyper["lr"], "lr")
        if "weight_decay" in hyper:
            hyper["weight_decay"] = at_least(hyper["weight_decay"], "weight_decay")
        return hyper

    def __setattr__(self, name, value):
        """A hyper-parameter set after construction (optimizer.lr = ...) is checked as in __init__:
        a negative or non-finite lr would silently ascend or destroy the weights."""
        if name in self.__dict__.get("_hyper_names", ()):
            value = self._checked({**{k: getattr(self, k) for k in self._hyper_names}, name: value})[name]
        object.__setattr__(self, name, value)

    @property
    def skipped_steps(self):
        """How many steps were skipped for a non-finite gradient (a GPU kernel may keep the count on the
        device: reading it then waits for the GPU)."""
        return self._skipped + (self.engine.skipped() if self.engine is not None else 0)

    @skipped_steps.setter
    def skipped_steps(self, value):
        self._skipped = int(value)
        if self.engine is not None:
            self.engine.reset_skipped()

    def zero_grad(self, set_to_none=True):
        """Clear `.grad` of every parameter (set it to None; with set_to_none=False, as torch's, fill it
        with zeros in place); call it before each backward()."""
        for p in self.params:
            p.grad = None if set_to_none or p.grad is None else p.grad.zero_()

    def step(self):
        """Update every parameter that has a gradient, in place; those without one are skipped."""
        for i, p in enumerate(self.params):
            if p.grad is not None and (p.grad.shape, p.grad.device) != (p.shape, p.device):
                raise ValueError(f"{type(self).__name__}: parameter {i} has shape {p.shape} on {p.device}, "
                                 f"its gradient shape {p.grad.shape} on {p.grad.device}")
        self._use_engine(kernel_for(Optimizer, self.params[0].device))
        if self.engine is not None:
            return self.engine.step()
        members = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not members or not self.gradients_finite(members):
            return
        for i in members:
            p = self.params[i]
            p.version_counter[0] += 1  # about to change: saved graphs that used it are stale
            self.steps[i] += 1
            with scope(p.device):  # NOTE: the state is made on the parameter's GPU, not the current one
                if not self.state[i]:
                    self.state[i] = {name: p.xp.zeros(p.shape, dtype=state_dtype(p)) for name in self.state_names}
                self.state[i] = {k: to_device(v, p.device) for k, v in self.state[i].items()}  # after a model.to(...)
                self.update(p.xp, p.data, p.grad.data.astype(state_dtype(p), copy=False), self.state[i], self.steps[i])

    def gradients_finite(self, members):
        """True when every member's gradient is finite; else warns and counts a skip, or raises."""
        bad = [i for i in members if not all_finite(self.params[i].grad.data)]
        if not bad:
            return True
        names = [f"parameter {i} (shape {self.params[i].shape})" for i in bad]
        message = (f"{type(self).__name__}.step: non-finite gradient (NaN or inf) in {', '.join(names[:4])}"
                   f"{' and more' if len(names) > 4 else ''}")
        if self.nonfinite == "raise":
            raise NonFiniteGradientError(message)
        self._skipped += 1
        warnings.warn(f"{message}: step skipped, parameters unchanged ({self.skipped_steps} skipped so far)",
                      RuntimeWarning, stacklevel=3)
        return False

    def update(self, xp, p, g, state, t):
        """Update parameter array p in place from its gradient g, its state buffers and step count t."""
        raise NotImplementedError

    def _use_engine(self, engine_type):
        """Hand the state to a kernel (kernels.optim) or take it back, when the kernels were switched."""
        if engine_type is Optimizer and self.engine is not None:
            saved, self._skipped, self.engine = self.engine.export(), self.skipped_steps, None
            self._import(saved)
        elif engine_type is not Optimizer and self.engine is None:
            saved, self.engine = self._export(), engine_type(self)
            if any(count or arrays for count, arrays in saved):  # NOTE: else it starts from zeros made in place
                self.engine.load(saved)

    def _saved_names(self):
        """The state buffers state_dict saves."""
        return self.state_names

    def _export(self):
        """Per parameter: (its step count, {name: NumPy copy of each saved buffer}), (0, {}) before its
        first applied step."""
        if self.engine is not None:
            return self.engine.export()
        return [(t, {name: numpy.array(to_numpy(state[name]), copy=True) for name in self._saved_names()} if t else {})
                for t, state in zip(self.steps, self.state)]

    def _import(self, saved):
        """Set every parameter's step count and buffers from `saved` (as _export gives); what is missing
        starts from zero."""
        if self.engine is not None:
            return self.engine.load(saved)
        for i, (p, (t, arrays)) in enumerate(zip(self.params, saved)):
            self.state[i] = {}
            if t or arrays:
                zeros = numpy.zeros(p.shape, dtype=state_dtype(p))
                with scope(p.device):
                    self.state[i] = {name: to_device(numpy.array(arrays.get(name, zeros), dtype=zeros.dtype)
                                                     .reshape(p.shape), p.device) for name in self.state_names}
            self.steps[i] = max(int(t), 1 if arrays else 0)

    def __repr__(self):
        return f"{type(self).__name__}({len(self.params)} parameters, " + \
            ", ".join(f"{k}={getattr(self, k)!r}" for k in self._hyper_names) + ")"


class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch's momentum: buf = momentum*buf + g (buf = g at the
    first step), then p -= lr*buf, or p -= lr*(g + momentum*buf) with nesterov. weight_decay adds
    weight_decay*p to the gradient (L2)."""

    state_names = ("momentum_buffer",)

    def __init__(self, params, lr=1e-3, momentum=0.0, nesterov=False, weight_decay=0.0, nonfinite="skip"):
        super().__init__(params, nonfinite, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)

    def _checked(self, hyper):
        hyper = super()._checked(hyper)
        hyper["momentum"] = at_least(hyper["momentum"], "momentum")
        if not isinstance(hyper["nesterov"], (bool, numpy.bool_)):
            raise TypeError(f"nesterov must be True or False, got {hyper['nesterov']!r}")
        hyper["nesterov"] = bool(hyper["nesterov"])
        if hyper["nesterov"] and hyper["momentum"] == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        return hyper

    def _saved_names(self):
        """NOTE: the buffer starts at zero (momentum*0 + g is g, PyTorch's first step); without
        momentum it is not used, and not saved."""
        return self.state_names if self.momentum else ()

    def update(self, xp, p, g, state, t):
        """g plus L2 decay, through the momentum buffer (PyTorch's form), then p -= lr * g."""
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


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
    counts_steps = True
    decoupled = False

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
        hyper["betas"] = betas = tuple(number(b, "betas") for b in betas)
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        hyper["eps"] = at_least(hyper["eps"], "eps")
        return hyper

    def update(self, xp, p, g, state, t):
        """NOTE: the bias corrections are Python floats, so float32 state is never promoted to float64."""
        (beta1, beta2), m, v = self.betas, state["exp_avg"], state["exp_avg_sq"]
        if self.weight_decay and self.decoupled:
            p *= 1 - self.lr * self.weight_decay
        elif self.weight_decay:
            g = g + self.weight_decay * p
        m += (g - m) * (1 - beta1)  # m = beta1*m + (1 - beta1)*g
        v *= beta2
        v += g * (1 - beta2) * g
        c1, c2 = 1 - beta1 ** t, math.sqrt(1 - beta2 ** t)
        if self.eps_hat:
            p -= self.lr * c2 / c1 * m / (xp.sqrt(v) + self.eps)
        else:
            p -= self.lr / c1 * m / (xp.sqrt(v) / c2 + self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr*weight_decay before the
    Adam step, so decay is not scaled down for parameters with large gradients."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, nonfinite="skip",
                 eps_hat=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, nonfinite=nonfinite,
                         eps_hat=eps_hat)



class RMSprop(Optimizer):
    """RMSprop (Hinton), as PyTorch's: square_avg = alpha*square_avg + (1-alpha)*g^2, then
    p -= lr * g / (sqrt(square_avg) + eps); centered subtracts the squared mean gradient from
    square_avg first; momentum keeps buf = momentum*buf + g / denominator and steps lr*buf.
    weight_decay adds weight_decay*p to the gradient (L2).

    eps_inside: where eps goes. False (PyTorch): sqrt(square_avg) + eps. True (Keras):
    sqrt(square_avg + eps), which keras.optimizers.RMSprop uses, with Keras' epsilon 1e-7."""

    state_names = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 nonfinite="skip", eps_inside=False):
        if not isinstance(eps_inside, bool):
            raise TypeError(f"eps_inside must be True or False, got {eps_inside!r}")
        self.eps_inside = eps_inside
        super().__init__(params, nonfinite, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, centered=centered)

    def _checked(self, hyper):
        hyper = super()._checked(hyper)
        hyper["alpha"] = number(hyper["alpha"], "alpha")
        if not 0.0 <= hyper["alpha"] <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {hyper['alpha']}")
        hyper["eps"], hyper["momentum"] = at_least(hyper["eps"], "eps"), at_least(hyper["momentum"], "momentum")
        if not isinstance(hyper["centered"], (bool, numpy.bool_)):
            raise TypeError(f"centered must be True or False, got {hyper['centered']!r}")
        hyper["centered"] = bool(hyper["centered"])
        return hyper

    def _saved_names(self):
        return ("square_avg",) + ("momentum_buffer",) * bool(self.momentum) + ("grad_avg",) * self.centered

    def update(self, xp, p, g, state, t):
        """The running mean of g^2 (and of g, centered), then a step of g over its root (through momentum)."""
        if self.weight_decay:
            g = g + self.weight_decay * p
        square_avg = state["square_avg"]
        square_avg *= self.alpha
        square_avg += (1 - self.alpha) * g * g
        average = square_avg
        if self.centered:
            state["grad_avg"] *= self.alpha
            state["grad_avg"] += (1 - self.alpha) * g
            average = square_avg - state["grad_avg"] * state["grad_avg"]
        denominator = xp.sqrt(average + self.eps) if self.eps_inside else xp.sqrt(average) + self.eps
        if self.momentum:
            state["momentum_buffer"] *= self.momentum
            state["momentum_buffer"] += g / denominator
            p -= self.lr * state["momentum_buffer"]
        else:
            p -= self.lr * g / denominator


class Adadelta(Optimizer):
    """Adadelta (Zeiler), as PyTorch's: square_avg = rho*square_avg + (1-rho)*g^2, delta =
    sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g, acc_delta = rho*acc_delta + (1-rho)*delta^2,
    p -= lr*delta (lr=1.0 by default, as PyTorch's MNIST example uses it). weight_decay is L2."""

    state_names = ("square_avg", "acc_delta")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, nonfinite="skip"):
        super().__init__(params, nonfinite, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)

    def _checked(self, hyper):
        hyper = super()._checked(hyper)
        hyper["rho"] = number(hyper["rho"], "rho")
        if not 0.0 <= hyper["rho"] <= 1.0:
            raise ValueError(f"rho must lie in [0, 1], got {hyper['rho']}")
        hyper["eps"] = at_least(hyper["eps"], "eps")
        return hyper

    def update(self, xp, p, g, state, t):
        """Step by g scaled by the ratio of the running roots of past steps' and gradients' squares."""
        if self.weight_decay:
            g = g + self.weight_decay * p
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        square_avg *= self.rho
        square_avg += (1 - self.rho) * g * g
        delta = xp.sqrt(acc_delta + self.eps) / xp.sqrt(square_avg + self.eps) * g
        acc_delta *= self.rho
        acc_delta += (1 - self.rho) * delta * delta
        p -= self.lr * delta


from . import schedules as lr_scheduler  # noqa: E402 (torch's spelling: optim.lr_scheduler.StepLR)
from .schedules import (CosineAnnealingLR, ExponentialLR, LambdaLR, LRScheduler, MultiStepLR,  # noqa: E402
                        ReduceLROnPlateau, StepLR)  # (they take an Optimizer)

__all__ = ["Optimizer", "ParamGroup", "NonFiniteGradientError", "SGD", "Adam", "AdamW", "RMSprop", "Adadelta",
           "LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LambdaLR",
           "ReduceLROnPlateau", "lr_scheduler"]
