"""Per-epoch learning-rate schedules: each sets optimizer.lr from the epoch count (optim re-exports them)."""
import math

import numpy

from .optim import Optimizer
from .optim_state import at_least, number


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
        self.gamma = number(gamma, "gamma")
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
        self.eta_min = at_least(eta_min, "eta_min")
        super().__init__(optimizer)

    def lr_at(self, epoch):
        """eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2."""
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2
