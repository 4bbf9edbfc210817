"""The optimizers' state_dict format (one flat dict of NumPy arrays and Python scalars, np.savez-able) and
the checks of their hyper-parameters."""
import math
from collections.abc import Mapping

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


class StateDict:
    """state_dict()/load_state_dict() of an Optimizer: the hyper-parameters, "param_count", and
    "state.<i>.<name>" per parameter (its buffers, and its step count where counts_steps), all checked
    before anything changes. The optimizer gives _export() and _import() (its per-parameter state)."""

    def state_dict(self):
        """A flat dict of NumPy arrays and Python scalars (np.savez-able): the hyper-parameters,
        "param_count", and "state.<i>.<name>" for each parameter's buffers and step count (once it
        has had an applied step). NOTE: on a GPU this copies the state to the host (a few syncs)."""
        out = {name: getattr(self, name) for name in self._hyper_names}
        out["param_count"] = len(self.params)
        for i, (count, arrays) in enumerate(self._export()):
            out.update({f"state.{i}.{name}": value for name, value in arrays.items()})
            if count and self.counts_steps:
                out[f"state.{i}.step"] = count
        return out

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
