"""The optimizers' state_dict format (one flat dict of NumPy arrays and Python scalars, np.savez-able),
their torch-style param_groups view, and the checks of their hyper-parameters."""
import math
from collections.abc import Mapping, MutableMapping

import numpy

from .device import to_numpy


def number(value, name):
    """`value` as a finite float; a TypeError or ValueError naming `name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, numpy.integer, numpy.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def at_least(value, name, low=0.0):
    """number(value, name), refused below `low`."""
    value = number(value, name)
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


class FlatState(dict):
    """An optimizer's state_dict(): a plain dict, whose missing torch keys ("param_groups", "state") say
    where their contents are here, where a dict's KeyError would name the key alone."""

    def __missing__(self, key):
        if key in ("param_groups", "state"):
            raise KeyError(f"{key!r}: an optimizer's state_dict() here is flat, not torch's {{'state', "
                           f"'param_groups'}}: the hyper-parameters are its keys (state_dict()['lr']), each "
                           f"parameter's buffers 'state.<i>.<name>'; optimizer.param_groups[0]['lr'] is torch's "
                           f"group view")
        raise KeyError(key)


# what an optimizer makes again when unpickled or deep-copied (see StateDict.__getstate__)
_REMADE = ("engine", "_groups", "_param_groups", "state", "steps", "_skipped")


class StateDict:
    """An Optimizer's param_groups (torch's view of its settings) and state_dict()/load_state_dict(): the
    hyper-parameters, "param_count", and "state.<i>.<name>" per parameter (its buffers, and its step count
    where counts_steps), all checked before anything changes. The optimizer gives _export() and _import()
    (its per-parameter state)."""

    def state_dict(self):
        """A flat dict of NumPy arrays and Python scalars (np.savez-able): the hyper-parameters,
        "param_count", and "state.<i>.<name>" for each parameter's buffers and step count (once it
        has had an applied step). NOTE: on a GPU this copies the state to the host (a few syncs)."""
        out = FlatState({name: getattr(self, name) for name in self._hyper_names})
        out["param_count"] = len(self.params)
        for i, (count, arrays) in enumerate(self._export()):
            out.update({f"state.{i}.{name}": value for name, value in arrays.items()})
            if count and self.counts_steps:
                out[f"state.{i}.step"] = count
        return out

    def __getstate__(self):
        """pickle and copy.deepcopy (best = copy.deepcopy(optimizer)): the settings, the parameters and their
        state as _export gives it (NumPy copies), not the kernel engine or its flat buffers, which the
        parameters' arrays may be views of (kernels/optim.py): the copy lays its own out at its next step.
        NOTE: deep-copy a model and its optimizer in one call, copy.deepcopy((model, optimizer)), for the
        copied optimizer to hold the copied model's parameters (torch's rule too)."""
        kept = {k: v for k, v in self.__dict__.items() if k not in _REMADE}
        return {**kept, "_saved": self._export(), "_skipped": self.skipped_steps}

    def __setstate__(self, state):
        state = dict(state)
        saved = state.pop("_saved")
        self.__dict__.update(state)
        self.__dict__.update(engine=None, state=[{} for _ in self.params], steps=[0] * len(self.params))
        self._import(saved)

    @property
    def param_groups(self):
        """torch's `optimizer.param_groups`: a list of one group, a dict-like view of 'params' and the
        hyper-parameters; `for g in opt.param_groups: g['lr'] *= 0.1` sets opt.lr (checked as that is).
        NOTE: a view, not a copy: the step keeps reading opt.lr, so a group costs the step nothing."""
        groups = self.__dict__.get("_param_groups")
        if groups is None:
            groups = self.__dict__["_param_groups"] = [ParamGroup(self)]
        return groups

    def add_param_group(self, group):
        """Refused: one optimizer holds one group here (its hyper-parameters are the optimizer's)."""
        raise NotImplementedError(f"{type(self).__name__}.add_param_group: an optimizer here has one parameter "
                                  f"group; make a second optimizer for parameters that need other settings")

    def load_state_dict(self, state):
        """Restore what state_dict() returned (arrays may come back 0-d from np.load). Everything is
        checked first; a wrong parameter count, shape or key raises one ValueError listing each problem
        and changes nothing."""
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict needs a mapping, got {type(state).__name__}")
        problems, per_param = [], [{} for _ in self.params]
        problems += [f"missing key {k!r}" for k in self._hyper_names + ("param_count",) if k not in state]
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
        self._import([(loaded.pop("step", 0), loaded) for loaded in per_param])


def _plain(value):
    """A 0-d array back to a Python scalar, a 1-d one to a tuple (as np.load returns them)."""
    array = numpy.asarray(value)
    if array.ndim == 0:
        return array.item()
    return tuple(array.tolist())


class ParamGroup(MutableMapping):
    """One entry of Optimizer.param_groups, as torch's dict: 'params' (the optimizer's list) and each
    hyper-parameter (opt.lr, ...), read from and written to the optimizer itself. Writing a key the
    optimizer has not (torch's 'dampening', 'amsgrad', a typo) raises KeyError naming it, where a dict
    would keep a value nothing reads."""

    def __init__(self, optimizer):
        self._optimizer = optimizer

    def _names(self):
        return ("params",) + self._optimizer._hyper_names

    def __getitem__(self, key):
        if key == "params":
            return self._optimizer.params
        if key in self._optimizer._hyper_names:
            return getattr(self._optimizer, key)
        raise KeyError(self._unknown(key))

    def __setitem__(self, key, value):
        if key == "params":
            raise TypeError(f"{type(self._optimizer).__name__}: the parameters of an optimizer are fixed "
                            f"when it is made; make a new optimizer for other parameters")
        if key not in self._optimizer._hyper_names:
            raise KeyError(self._unknown(key))
        setattr(self._optimizer, key, value)  # checked as optimizer.lr = ... is

    def __delitem__(self, key):
        raise TypeError(f"{type(self._optimizer).__name__}: a parameter group's keys cannot be deleted ({key!r})")

    def _unknown(self, key):
        return (f"{key!r}: {type(self._optimizer).__name__}'s parameter group has only "
                f"{', '.join(map(repr, self._names()))}")

    def __iter__(self):
        return iter(self._names())

    def __len__(self):
        return len(self._names())

    def __repr__(self):
        shown = {k: f"<{len(self['params'])} parameters>" if k == "params" else self[k] for k in self._names()}
        return "{" + ", ".join(f"{k!r}: {v if k == 'params' else repr(v)}" for k, v in shown.items()) + "}"
