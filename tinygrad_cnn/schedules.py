"""Per-epoch learning-rate schedules, as torch.optim.lr_scheduler's (optim re-exports them).

step() is PyTorch's chainable form: it updates the optimizer's *current* rate, so a change made by hand
between steps (`opt.param_groups[0]['lr'] *= 0.1`, `opt.lr = ...`) carries on, as it does in torch;
lr_at(epoch) is the closed form from base_lr. One optimizer holds one parameter group here, so the
lists torch keeps per group (base_lrs, get_last_lr()) have one entry."""
import math
import sys
import warnings
from collections.abc import Mapping

import numpy

from .optim import Optimizer
from .optim_state import at_least, number

# torch's import path, `from torch.optim.lr_scheduler import StepLR`: optim.py is a module, not a package
sys.modules.setdefault(__name__.rsplit(".", 1)[0] + ".optim.lr_scheduler", sys.modules[__name__])

# a torch scheduler's state_dict() also holds its own bookkeeping: let it through, unused
_TORCH_BOOKKEEPING = ("_step_count", "_get_lr_called_within_step", "_is_initial", "verbose")

# torch.optim.lr_scheduler's other classes: asked for here, they raise an AttributeError saying what is offered
_TORCH_ONLY = ("MultiplicativeLR", "ConstantLR", "LinearLR", "SequentialLR", "PolynomialLR", "ChainedScheduler",
               "CyclicLR", "CosineAnnealingWarmRestarts", "OneCycleLR")


def __getattr__(name):
    """optim.lr_scheduler.MultiStepLR and torch's other schedulers: an error naming what is offered instead."""
    if name in _TORCH_ONLY:
        raise AttributeError(f"optim.lr_scheduler has no {name} (torch's): offered are StepLR, MultiStepLR, "
                             f"ExponentialLR, CosineAnnealingLR, LambdaLR, ReduceLROnPlateau, and LRScheduler to subclass with get_lr() (torch's chainable rule) or lr_at(epoch); "
                             f"several schedulers on one optimizer chain as in torch")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _epoch(value, name):
    """An epoch count (an int >= 0); TypeError for a non-int, ValueError for a negative."""
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)):
        raise TypeError(f"{name} must be an int >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return int(value)


def _one_rate(values, name):
    """[rate] from a list or tuple of one number (one parameter group); ValueError otherwise."""
    rates = list(values) if isinstance(values, (list, tuple, numpy.ndarray)) else None
    if rates is None or len(rates) != 1:
        raise ValueError(f"{name} must be a list of one rate (one parameter group), got {values!r}")
    return [at_least(rates[0], name)]


def _check_optimizer(owner, optimizer):
    """TypeError naming what was passed instead of an Optimizer: a torch or Keras optimizer by its module,
    since both are also called Adam or SGD."""
    if isinstance(optimizer, Optimizer):
        return
    kind = type(optimizer)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    if kind.__module__.split(".")[0] == "torch":
        hint = ("PyTorch's; make it with tinygrad_cnn.optim (same names and arguments), or give it to "
                "torch.optim.lr_scheduler")
    elif ".keras." in f".{kind.__module__}.":
        hint = ("a Keras optimizer; set its rate per epoch with keras.callbacks.LearningRateScheduler, or "
                "give these schedules a tinygrad_cnn.optim optimizer")
    else:
        hint = "give it the tinygrad_cnn.optim optimizer (SGD, Adam, ...) whose lr it sets"
    raise TypeError(f"{owner} needs an Optimizer, got {name}: {hint}")


class LRScheduler:
    """Sets optimizer.lr once per epoch; call step() after the epoch's updates, as in torch.

    A subclass gives get_lr() (torch's: the next rate, computed from the current one, a list of one)
    and/or lr_at(epoch) (the closed form from base_lr); without a get_lr() of its own, step() uses lr_at.
    last_epoch: -1 (torch's default: a new schedule); to resume, use load_state_dict()."""

    _settings = ()  # the constructor's arguments that state_dict() saves and load_state_dict() restores

    def __init__(self, optimizer, last_epoch=-1):
        _check_optimizer(type(self).__name__, optimizer)
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, (int, numpy.integer)):
            raise TypeError(f"last_epoch must be an int, got {last_epoch!r}")
        if last_epoch != -1:
            raise ValueError(
                f"{type(self).__name__}(last_epoch={last_epoch}): resuming through last_epoch is not offered "
                f"(torch reads the starting rate from the optimizer's 'initial_lr', which this optimizer does not "
                f"keep); make the scheduler with last_epoch=-1 (the default) and call "
                f"scheduler.load_state_dict(saved)")
        self.optimizer = optimizer
        self.base_lrs = [float(optimizer.lr)]
        self.last_epoch, self._in_step = -1, False
        self.step()  # epoch 0, as torch's constructor does: a torch-style get_lr() may set the first rate

    @property
    def base_lr(self):
        """The rate the closed form starts from (base_lrs[0]): the optimizer's rate when the schedule was made."""
        return _one_rate(self.base_lrs, "base_lrs")[0]

    @base_lr.setter
    def base_lr(self, value):
        self.base_lrs = [at_least(value, "base_lr")]

    def __setattr__(self, name, value):
        """base_lrs is checked when set (a list of one rate), as torch users assign it for a restart."""
        if name == "base_lrs":
            value = _one_rate(value, "base_lrs")
        object.__setattr__(self, name, value)

    def lr_at(self, epoch):
        """The closed form: the rate after `epoch` epochs from base_lr, with no manual change (torch's
        _get_closed_form_lr); each schedule defines it."""
        raise NotImplementedError(f"{type(self).__name__} has no lr_at(epoch) (the closed form, which step(epoch) "
                                  f"uses) and no get_lr() of its own (the next rate from the current one, as "
                                  f"torch's, which step() uses)")

    def _get_closed_form_lr(self):
        """[lr_at(last_epoch)], torch's name (step(epoch) uses it)."""
        return [self.lr_at(self.last_epoch)]

    def get_lr(self):
        """The rate for epoch last_epoch, a list of one; step() calls it (to read the rate, use
        get_last_lr()). This default is the closed form; StepLR and CosineAnnealingLR chain from the
        optimizer's current rate instead."""
        self._warn_outside_step()
        return self._get_closed_form_lr()

    def _warn_outside_step(self):
        if not self._in_step:  # as torch: get_lr() computes the *next* rate, at a boundary not the current one
            warnings.warn(f"{type(self).__name__}.get_lr() computes the rate step() sets next; to read the rate "
                          f"in use, call get_last_lr()", UserWarning, stacklevel=3)

    def step(self, epoch=None):
        """Count one more epoch and set optimizer.lr from its current value (call once per epoch, after
        its updates). step(epoch), deprecated in torch too, jumps to `epoch` and sets the closed form."""
        previous = self.last_epoch
        if epoch is not None:
            epoch = _epoch(epoch, "epoch")
            warnings.warn(f"{type(self).__name__}.step(epoch) is deprecated, as in torch: it sets the closed-form "
                          f"rate lr_at(epoch) and drops a change made by hand; call step() once per epoch",
                          UserWarning, stacklevel=2)
        self._in_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                rates = self.get_lr()
            else:
                self.last_epoch = epoch
                rates = self._get_closed_form_lr()
            self._set(rates, f"{type(self).__name__}.get_lr()")
        except BaseException:  # nothing changes: the optimizer's rate is set last
            self.last_epoch = previous
            raise
        finally:
            self._in_step = False

    def _set(self, rates, source):
        if not isinstance(rates, (list, tuple)) or len(rates) != 1:
            raise ValueError(f"{source} must return one rate per parameter group (one), got {rates!r}")
        self.optimizer.lr = rates[0]  # checked as optimizer.lr = ... is
        self._last_lr = [float(self.optimizer.lr)]

    def get_last_lr(self):
        """The rates set by the last step() (the initial one before any step): a list of one, as torch's
        (one entry per parameter group). A copy: changing it changes nothing."""
        return list(self._last_lr)

    def state_dict(self):
        """{'last_epoch', 'base_lrs', '_last_lr' (torch's keys), 'lr' (the optimizer's rate now, manual
        changes included), and the settings (step_size, gamma / T_max, eta_min)}: np.savez-able."""
        state = {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs), "_last_lr": list(self._last_lr),
                 "lr": float(self.optimizer.lr)}
        state.update({name: getattr(self, name) for name in self._settings})
        return state

    def load_state_dict(self, state):
        """Restore what state_dict() returned (or torch's, or an older {'base_lr', 'last_epoch'}), settings
        included as torch does; everything is checked first, and a problem raises one ValueError naming it.
        NOTE: unlike torch, this also sets optimizer.lr when the state holds 'lr' (an older state: the
        closed form at last_epoch), so a checkpoint of the schedule alone resumes the same rates."""
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict needs a mapping, got {type(state).__name__}")
        state = {key: _plain(value) for key, value in state.items()}
        known = ("last_epoch", "base_lrs", "base_lr", "_last_lr", "lr") + self._settings + _TORCH_BOOKKEEPING
        problems = [f"unexpected key {key!r}" for key in state if key not in known]
        problems += [f"missing key {key!r}" for key in ("last_epoch",) if key not in state]
        if "base_lrs" not in state and "base_lr" not in state:
            problems.append("missing key 'base_lrs'")
        loaded = {}
        if not problems:
            try:
                loaded = self._checked_state(state)
            except (TypeError, ValueError) as e:
                problems.append(str(e))
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state does not fit:\n  " +
                             "\n  ".join(problems))
        lr = loaded.pop("lr")
        for name, value in loaded.items():
            object.__setattr__(self, name, value)
        if "_last_lr" not in loaded:  # an older state: the rate it had set was the closed form at last_epoch
            self._last_lr = [float(self.lr_at(self.last_epoch))]
            lr = self._last_lr[0] if lr is None else lr
        if lr is not None:  # torch's own state leaves the rate to its optimizer's state
            self.optimizer.lr = lr

    def _checked_state(self, state):
        """The attributes load_state_dict() sets, and 'lr', checked (TypeError/ValueError naming the key)."""
        rates = state["base_lrs"] if "base_lrs" in state else [state["base_lr"]]
        if isinstance(rates, (list, tuple)) and len(rates) > 1:
            raise ValueError(f"base_lrs: {len(rates)} rates (parameter groups), this optimizer has one")
        out = {"base_lrs": _one_rate(rates, "base_lrs"), "last_epoch": _epoch(state["last_epoch"], "last_epoch")}
        out.update(self._checked_settings({name: state.get(name, getattr(self, name)) for name in self._settings}))
        if "_last_lr" in state:
            out["_last_lr"] = _one_rate(state["_last_lr"], "_last_lr")
        out["lr"] = at_least(state["lr"], "lr") if "lr" in state else None
        return out

    def _checked_settings(self, settings):
        """The settings, checked as the constructor checks them (each subclass)."""
        return settings

    def _take_settings(self, settings):
        """Check the constructor's settings (_checked_settings) and set them as attributes."""
        for name, value in self._checked_settings(settings).items():
            setattr(self, name, value)


def _plain(value):
    """A 0-d array back to a Python scalar, a 1-d one to a list (as np.load returns them)."""
    if isinstance(value, (numpy.ndarray, numpy.generic)):
        array = numpy.asarray(value)
        return array.item() if array.ndim == 0 else array.tolist()
    return value


def _positive_factor(value, name):
    factor = number(value, name)
    if factor <= 0:
        raise ValueError(f"{name} must be > 0, got {factor}")
    return factor


class StepLR(LRScheduler):
    """Multiplies the rate by gamma every step_size epochs (torch's StepLR): a manual change carries on.
    Closed form (lr_at): base_lr * gamma ** (epoch // step_size)."""

    _settings = ("step_size", "gamma")

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self._take_settings({"step_size": step_size, "gamma": gamma})
        super().__init__(optimizer, last_epoch)

    def _checked_settings(self, settings):
        return {"step_size": _positive_int(settings["step_size"], "step_size"),
                "gamma": _positive_factor(settings["gamma"], "gamma")}

    def get_lr(self):
        """The current rate, times gamma when last_epoch is a multiple of step_size."""
        self._warn_outside_step()
        lr = self.optimizer.lr
        if self.last_epoch == 0 or self.last_epoch % self.step_size:
            return [lr]
        return [lr * self.gamma]

    def lr_at(self, epoch):
        """base_lr * gamma ** (epoch // step_size)."""
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """From base_lr down to eta_min at epoch T_max along a cosine, and back up after (torch's
    CosineAnnealingLR, no restarts). step() moves the current rate along the cosine (torch's recursive
    form), so a manual change carries on; lr_at is the closed form
    eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2."""

    _settings = ("T_max", "eta_min")

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):  # noqa: N803 (PyTorch's argument name)
        self._take_settings({"T_max": T_max, "eta_min": eta_min})
        super().__init__(optimizer, last_epoch)

    def _checked_settings(self, settings):
        return {"T_max": _positive_int(settings["T_max"], "T_max"), "eta_min": at_least(settings["eta_min"], "eta_min")}

    def get_lr(self):
        """The current rate moved from the cosine at last_epoch - 1 to the one at last_epoch (its distance
        to eta_min scaled by their ratio); at the trough, where that ratio is 0/0, the cosine's first step
        back up from base_lr is added instead. NOTE: the rate stops at 0 where torch's goes below it
        (after T_max, a rate below eta_min, set by hand or as base_lr, moves away from it; or rounding):
        a negative rate would climb the loss, and optimizer.lr refuses one."""
        self._warn_outside_step()
        lr, epoch, period = self.optimizer.lr, self.last_epoch, self.T_max
        if epoch == 0:
            return [lr]
        if (epoch - 1 - period) % (2 * period) == 0:
            rate = lr + (self.base_lr - self.eta_min) * (1 - math.cos(math.pi / period)) / 2
        else:
            ratio = (1 + math.cos(math.pi * epoch / period)) / (1 + math.cos(math.pi * (epoch - 1) / period))
            rate = ratio * (lr - self.eta_min) + self.eta_min
        return [max(rate, 0.0)]

    def lr_at(self, epoch):
        """eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2."""
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


class MultiStepLR(LRScheduler):
    """Multiplies the rate by gamma at each milestone epoch (torch's MultiStepLR; a milestone listed twice
    counts twice): a manual change carries on. Closed form: base_lr * gamma ** (milestones passed)."""

    _settings = ("milestones", "gamma")

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self._take_settings({"milestones": milestones, "gamma": gamma})
        super().__init__(optimizer, last_epoch)

    def _checked_settings(self, settings):
        milestones = settings["milestones"]
        if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
            raise TypeError(f"milestones must be a list of epochs (ints >= 1), got {milestones!r}")
        return {"milestones": sorted(_positive_int(m, "each milestone") for m in milestones),
                "gamma": _positive_factor(settings["gamma"], "gamma")}

    def get_lr(self):
        """The current rate, times gamma for each time last_epoch is listed in milestones."""
        self._warn_outside_step()
        return [self.optimizer.lr * self.gamma ** self.milestones.count(self.last_epoch)]

    def lr_at(self, epoch):
        """base_lr * gamma ** (the number of milestones <= epoch)."""
        return self.base_lr * self.gamma ** sum(m <= epoch for m in self.milestones)


class ExponentialLR(LRScheduler):
    """Multiplies the rate by gamma every epoch (torch's ExponentialLR): a manual change carries on.
    Closed form: base_lr * gamma ** epoch."""

    _settings = ("gamma",)

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self._take_settings({"gamma": gamma})
        super().__init__(optimizer, last_epoch)

    def _checked_settings(self, settings):
        return {"gamma": _positive_factor(settings["gamma"], "gamma")}

    def get_lr(self):
        """The current rate times gamma (from epoch 1 on)."""
        self._warn_outside_step()
        return [self.optimizer.lr * (self.gamma if self.last_epoch > 0 else 1.0)]

    def lr_at(self, epoch):
        """base_lr * gamma ** epoch."""
        return self.base_lr * self.gamma ** epoch


class LambdaLR(LRScheduler):
    """The rate base_lr * lr_lambda(epoch) (torch's LambdaLR): not chainable, as in torch, so a manual
    change lasts until the next step(). lr_lambda is not saved by state_dict() (torch saves only callable
    objects): give the same function to the new scheduler before load_state_dict()."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != 1:
                raise ValueError(f"lr_lambda: one function per parameter group (one here), got {len(lr_lambda)}")
            lr_lambda = lr_lambda[0]
        if not callable(lr_lambda):
            raise TypeError(f"lr_lambda must be a function of the epoch, got {lr_lambda!r}")
        self.lr_lambda = lr_lambda
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch):
        """base_lr * lr_lambda(epoch), checked to be a number."""
        factor = self.lr_lambda(epoch)
        try:
            return self.base_lr * float(factor)
        except (TypeError, ValueError):
            raise TypeError(f"LambdaLR: lr_lambda({epoch}) must return a number, got {factor!r}") from None


class ReduceLROnPlateau:
    """Divides the rate when a metric stops improving (torch's ReduceLROnPlateau): call step(metric) once
    per epoch with the validation loss (mode='min') or accuracy (mode='max'). After `patience` epochs
    without an improvement (beyond `threshold`, relative or absolute), the rate is multiplied by `factor`
    (not below min_lr; a change smaller than eps is skipped), then `cooldown` epochs pass before counting
    again. A manual change of the rate carries on."""

    _settings = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps")
    _state = ("best", "num_bad_epochs", "cooldown_counter", "last_epoch", "_last_lr")

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0.0, eps=1e-8):
        _check_optimizer(type(self).__name__, optimizer)
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        factor = number(factor, "factor")
        if not 0 < factor < 1:
            raise ValueError(f"factor must be between 0 and 1 (the rate is multiplied by it), got {factor}")
        self.optimizer, self.mode, self.factor, self.threshold_mode = optimizer, mode, factor, threshold_mode
        self.patience = _epoch(patience, "patience")
        self.cooldown = _epoch(cooldown, "cooldown")
        self.threshold, self.min_lr, self.eps = (at_least(v, name) for v, name in
                                                 ((threshold, "threshold"), (min_lr, "min_lr"), (eps, "eps")))
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = self.cooldown_counter = self.last_epoch = 0
        self._last_lr = [float(optimizer.lr)]

    def _better(self, value):
        if self.mode == "min":
            bound = self.best * (1 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold
            return value < bound
        bound = self.best * (1 + self.threshold) if self.threshold_mode == "rel" else self.best + self.threshold
        return value > bound

    def step(self, metrics):
        """Count one more epoch with this value of the watched metric (a number, or a 0-d array or Tensor)."""
        try:
            value = float(metrics.item() if hasattr(metrics, "item") else metrics)
        except (TypeError, ValueError):
            raise TypeError(f"ReduceLROnPlateau.step needs the metric's value (a number), got {metrics!r}") from None
        self.last_epoch += 1
        if self._better(value):
            self.best, self.num_bad_epochs = value, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = self.optimizer.lr
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = [float(self.optimizer.lr)]

    def get_last_lr(self):
        """The rate after the last step(), a list of one (torch's form)."""
        return list(self._last_lr)

    def state_dict(self):
        """The settings and the counters (best, num_bad_epochs, cooldown_counter, last_epoch, _last_lr)."""
        return {name: getattr(self, name) for name in self._settings + self._state}

    def load_state_dict(self, state):
        """Restore what state_dict() returned (torch's too; its other bookkeeping keys are ignored)."""
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict needs a mapping, got {type(state).__name__}")
        state = {key: _plain(value) for key, value in state.items()}
        missing = [name for name in ("best", "num_bad_epochs", "last_epoch") if name not in state]
        if missing:
            raise ValueError(f"ReduceLROnPlateau.load_state_dict: missing {', '.join(missing)}")
        for name in self._settings + self._state:
            if name in state:
                setattr(self, name, list(state[name]) if name == "_last_lr" else state[name])
