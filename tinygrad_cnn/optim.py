"""Optimizers (SGD, Adam, AdamW) that update parameters in place, and per-epoch learning-rate schedules.

Updates run on the raw arrays with each parameter's own array module (NumPy or CuPy), outside
the graph: at the first step the parameters are laid end to end in one buffer per device and dtype,
their state and gathered gradients beside them, so that a step is a few fused kernels (device.fuse)
over all of them, not a dozen per parameter (each a launch on a GPU). Hyper-parameters are passed
to the kernels as NumPy scalars of the parameters' (or state's) dtype, computed on the host, so
float32 parameters and their state stay float32 under NumPy's rules and both CuPy versions' (_typed).

A step whose gradients hold a NaN or an infinity is never applied: by default it is skipped and
counted in `skipped_steps` (one bad batch cannot destroy a model); `nonfinite="raise"` raises
NonFiniteGradientError instead. On a GPU the check stays on the device (no sync). float16
parameters keep their optimizer state in float32."""
import functools
import math
import sys
import warnings
from collections.abc import Mapping

import numpy

from .device import fuse, to_device, to_device_together, to_numpy, use_device
from .parallel import over_chunks
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


# ---------------------------------------------------------------- the fused update kernels

def _adam_moments(xp, g, m, v, one_minus_b1, b2, one_minus_b2, lr_c, eps_c):
    """Update Adam's moments m and v in place; return the step to subtract from the parameter.

    NOTE: PyTorch's lerp form m + (1-b1)(g-m); and lr/c1 * m / (sqrt(v)/c2 + eps), with c1, c2 =
    1 - b1**t, sqrt(1 - b2**t), written as lr*c2/c1 * m / (sqrt(v) + eps*c2) to save a pass. On NumPy
    the operations run in the order the earlier per-parameter code had: the same bits."""
    m += (g - m) * one_minus_b1
    v *= b2
    v += g * one_minus_b2 * g
    return m / (xp.sqrt(v) + eps_c) * lr_c


def _typed(dtype, *values):
    """Hyper-parameters as NumPy scalars of `dtype`, computed on the host in double precision.

    NOTE: a fused kernel never sees a Python number where precision matters: inside cupy.fuse a
    Python scalar is typed by CuPy's own rules, not NumPy's. CuPy 14 computes an operation on
    Python scalars alone in the first loop that fits them, float16 ('ee->e': 1 - 0.999 became
    0.00097656, and AdamW's decay 1 - lr*wd rounded to 1), and CuPy 13 promotes an array with a
    Python float argument to float64. A NumPy scalar has one dtype under NumPy and both CuPy
    versions (tests/test_cupy_real.py traces every kernel through real CuPy)."""
    kind = numpy.dtype(dtype).type
    return tuple(kind(v) for v in values)


@functools.lru_cache(maxsize=None)
def _adam_kernel(l2, decoupled, eps_hat, on_device):
    """Adam's update of (slices of) flat arrays p, g, m, v in one fused kernel, for these options.

    on_device=False: the host has checked the gradients and gives the bias corrections (lr_c =
    lr*c2/c1, eps_c = eps*c2). on_device=True: `ok` (every gradient finite) and the step count `t`
    may be device arrays: the corrections are computed in the kernel (in float64, from the float64
    scalars b1_64, b2_64, lr_64 and eps_64), and where not ok nothing changes (the gradient is 0
    before any arithmetic, the betas 1, the step 0). Every other scalar comes typed (see _typed):
    weight_decay and decay in the parameter's dtype, the rest (with `one` and `zero`) in the
    state's. eps_hat: eps is added unscaled by c2 (Keras' placement, see Adam)."""
    if not on_device:
        def adam_step(xp, p, g, m, v, lr_c, eps_c, one_minus_b1, b2, one_minus_b2, weight_decay, decay):
            if decoupled:
                p *= decay
            if l2:
                g = g + weight_decay * p
            p -= _adam_moments(xp, g, m, v, one_minus_b1, b2, one_minus_b2, lr_c, eps_c)
    else:
        def adam_step(xp, p, g, m, v, ok, t, lr_64, eps_64, b1_64, b2_64, eps, one_minus_b1, b2, one_minus_b2,
                      zero, one, weight_decay, decay, param_one):
            t = xp.maximum(t, 1)  # a skip at the first step leaves t at 0: those corrections go unused
            c1, c2 = 1 - b1_64 ** t, xp.sqrt(1 - b2_64 ** t)
            if decoupled:
                p *= xp.where(ok, decay, param_one)
            g = xp.where(ok, g + weight_decay * p if l2 else g, zero)
            step = _adam_moments(xp, g, m, v, xp.where(ok, one_minus_b1, zero), xp.where(ok, b2, one),
                                 xp.where(ok, one_minus_b2, zero), lr_64 * c2 / c1, eps if eps_hat else eps_64 * c2)
            p -= xp.where(ok, step, 0)
    adam_step.__name__ = ("adam" + "_l2" * l2 + "_decoupled" * decoupled + "_eps_hat" * eps_hat
                          + "_masked" * on_device)
    return fuse(adam_step)


@functools.lru_cache(maxsize=None)
def _sgd_kernel(l2, momentum, nesterov, on_device):
    """SGD's update of (slices of) flat arrays p, g and the momentum buffer in one fused kernel;
    on_device as for _adam_kernel (lr, mu, one, zero typed in the state's dtype, weight_decay in
    the parameter's)."""
    if not on_device:
        def sgd_step(xp, p, g, buf, lr, mu, weight_decay):
            if l2:
                g = g + weight_decay * p
            if momentum:
                buf *= mu
                buf += g
                g = g + mu * buf if nesterov else buf
            p -= lr * g
    else:
        def sgd_step(xp, p, g, buf, ok, lr, mu, weight_decay, zero, one):
            g = xp.where(ok, g + weight_decay * p if l2 else g, zero)
            if momentum:
                buf *= xp.where(ok, mu, one)
                buf += g
                g = g + mu * buf if nesterov else buf
            p -= xp.where(ok, lr * g, zero)
    sgd_step.__name__ = "sgd" + "_l2" * l2 + "_momentum" * momentum + "_nesterov" * nesterov + "_masked" * on_device
    return fuse(sgd_step)


@fuse
def _count_step(xp, ledger, on_apply, on_skip, ok):
    """Advance a ledger: where ok, the step counts of the parameters in `on_apply`; else the skip count."""
    ledger += xp.where(ok, on_apply, on_skip)


# ---------------------------------------------------------------- parameters laid end to end

# NOTE: on the CPU the fused kernel is the plain function, whose every operation makes a temporary:
# over the tutorial's 421,642 parameters at once that was 1.4x slower than the earlier code's
# scratch buffer; in blocks of 32,768 elements (128 KiB of float32, in cache) it is as fast.
_BLOCK = 1 << 15

class _Flat:
    """One device's parameters of one dtype, end to end in `data` (each parameter's .data becomes a
    view of it), with a buffer their gradients are gathered into, the optimizer's state buffers (in
    the state dtype) and a ledger: each parameter's step count, then the steps skipped (int64, kept
    where the parameters live, so that counting needs no sync on a GPU)."""

    def __init__(self, indices, params, state_names):
        self.indices, self.params = indices, params
        self.device, self.xp = params[0].device, params[0].xp
        self.bounds, total = [], 0
        for p in params:
            self.bounds.append((total, total + p.size))
            total += p.size
        dtype = _state_dtype(params[0])
        with use_device(self.device):
            self.data = self.xp.concatenate([p.data.reshape(-1) for p in params])
            self.views = [self.data[lo:hi].reshape(p.shape) for p, (lo, hi) in zip(params, self.bounds)]
            for p, view in zip(params, self.views):
                p.data = view
            self.grad = self.xp.empty(total, dtype=dtype)
            # each parameter's gradient home: ops write its gradient there (Function.grad_home), so
            # that gather() has nothing to copy (state in another dtype than the parameter's: none)
            self.homes = [self.grad[lo:hi].reshape(p.shape) if p.dtype == dtype else None
                          for p, (lo, hi) in zip(params, self.bounds)]
            # NOTE: and what holds the buffer now (itself and the homes, which view it): a view of it taken
            # later (of a gradient a user keeps) adds to that, and the homes are then not handed out
            home_refs = sys.getrefcount(self.grad)
            for p, home in zip(params, self.homes):
                p._grad_home = None if home is None else (home, home_refs, self.device)
            self.buffers = {name: self.xp.zeros(total, dtype=dtype) for name in state_names}
            self.ledger = self.xp.zeros(len(params) + 1, dtype=numpy.int64)
        self.uniform = True  # every parameter has the same step count (so one kernel may update them all)
        self._masks = {}

    def state_views(self, k):
        """Parameter k's state buffers, in its shape (views: what Optimizer.state holds)."""
        lo, hi = self.bounds[k]
        return {name: buf[lo:hi].reshape(self.params[k].shape) for name, buf in self.buffers.items()}

    def gather(self, members):
        """The members' gradients end to end (cast to the state dtype), and where each lies: the
        gradient buffer as it is when every parameter's gradient is its home there (see __init__),
        else one copy."""
        grads = [self.params[k].grad.data for k in members]
        if len(members) == len(self.params) and all(g is self.homes[k] for k, g in zip(members, grads)):
            return self.grad, list(self.bounds)
        spans, total = [], 0
        for k in members:
            spans.append((total, total + self.params[k].size))
            total += self.params[k].size
        # NOTE: not into the buffer when some gradient lives in it (a home): the copy could overwrite it first
        homed = any(g is self.grad or getattr(g, "base", None) is self.grad for g in grads)
        flat = [g.reshape(-1) for g in grads]
        if homed:
            return self.xp.concatenate(flat, dtype=self.grad.dtype), spans
        out = self.grad if total == self.grad.size else self.grad[:total]
        self.xp.concatenate(flat, out=out)
        return out, spans

    def masks(self, members, counts_skips):
        """The ledger increments (on_apply, on_skip) of a step with these members, on the device.

        NOTE: made once per pattern and cached. The usual one, every parameter, is made on the
        device (a few launches, once); another costs one host-to-device copy."""
        key = (tuple(members), counts_skips)
        found = self._masks.get(key)
        if found is None and len(members) == len(self.params):
            slots = self.xp.arange(len(self.params) + 1)
            found = self._masks[key] = (slots < len(self.params), slots >= (len(self.params) if counts_skips
                                                                            else len(self.params) + 1))
        if found is None:
            on_apply = numpy.zeros(len(self.params) + 1, dtype=bool)
            on_apply[list(members)] = True
            on_skip = numpy.zeros(len(self.params) + 1, dtype=bool)
            on_skip[-1] = counts_skips
            if len(self._masks) >= 8:
                self._masks.clear()
            found = self._masks[key] = tuple(to_device_together([on_apply, on_skip], self.device))
        return found


class Optimizer:
    """Holds a fixed list of parameters and per-parameter state; step() updates every parameter
    that has a gradient and skips the others (their state does not advance either).

    At the first step the parameters are laid end to end, one flat buffer per device and dtype
    (each parameter's .data becomes a view of it; a .data replaced later is copied back in), so
    that a step is a few kernels over all of them. `state[i]` holds views of parameter i's buffers
    once it has had a gradient; the step counts live with the buffers (see state_dict).

    nonfinite: what step() does when any gradient holds a NaN or an infinity: "skip" (default)
    leaves every parameter and all state untouched and adds one to `skipped_steps`; "raise"
    raises NonFiniteGradientError naming the parameters. NOTE: on the CPU the check runs on the
    host and a skipped step warns (RuntimeWarning). On a GPU it stays on the device: no sync, no
    warning; the update is masked and the count kept there until `skipped_steps` is read. "raise",
    and parameters on several devices, read the check on the host (one sync per device and dtype)."""

    state_names = ()
    counts_steps = False  # whether state_dict saves each parameter's step count ("state.<i>.step")

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
        self._groups = None  # the _Flat groups, made at the first step
        self._host_skipped = 0  # skipped steps counted on the host (the rest are in the groups' ledgers)
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

    @property
    def skipped_steps(self):
        """How many steps were skipped for a non-finite gradient. NOTE: on a GPU the count is kept on
        the device; reading it waits for the GPU (one sync per device and dtype of parameters)."""
        return self._host_skipped + sum(int(to_numpy(group.ledger)[-1]) for group in self._groups or ())

    @skipped_steps.setter
    def skipped_steps(self, value):
        self._host_skipped = int(value)
        for group in self._groups or ():
            with use_device(group.device):
                group.ledger[-1:] = 0

    def zero_grad(self):
        """Clear `.grad` of every parameter (set it to None); call it before each backward()."""
        for p in self.params:
            p.grad = None

    def step(self):
        """Update every parameter that has a gradient, in place; those without one are skipped.

        NOTE: per device and dtype of parameters, a few kernels whatever their number: the gradients
        gathered into one buffer (a copy), checked (on a GPU two reductions, no sync), the step counts
        advanced (one) and one fused update (device.fuse), which the CPU splits over its cores."""
        batches = self._gather()
        if not batches:
            return
        ok = self._verdict(batches)
        if ok is False:
            return
        for n, (group, members, grads, spans) in enumerate(batches):
            for k in members:
                group.params[k]._version[0] += 1  # about to change: saved graphs that used it are stale
            with use_device(group.device):
                on_apply, on_skip = group.masks(members, counts_skips=n == 0 and ok is not True)
                _count_step(group.ledger, on_apply, on_skip, ok)
                self._apply(group, members, grads, spans, ok)

    def _gather(self):
        """(group, members, gradients, spans) for each group in which some parameter has a gradient:
        `members` index group.params, their gradients lie end to end in `gradients`, at `spans`."""
        for i, p in enumerate(self.params):
            if p.grad is not None:
                if p.grad.shape != p.shape:
                    raise ValueError(f"{type(self).__name__}: gradient shape {p.grad.shape} does not match "
                                     f"parameter shape {p.shape}")
                if p.grad.device != p.device:
                    raise ValueError(f"{type(self).__name__}: parameter {i} (shape {p.shape}) is on {p.device}, "
                                     f"its gradient on {p.grad.device}")
        self._layout()
        batches = []
        for group in self._groups:
            members = [k for k, p in enumerate(group.params) if p.grad is not None]
            if not members:
                continue
            for k in members:
                state = self.state[group.indices[k]]
                if not state:
                    state.update(group.state_views(k))
            with use_device(group.device):
                grads, spans = group.gather(members)
            batches.append((group, members, grads, spans))
        return batches

    def _verdict(self, batches):
        """Whether every gradient is finite: True or False when the host checked, else the device's
        0-d bool array. False means the step was counted as skipped (with a warning) or raised.

        NOTE: on the host, one sum per group: a sum is finite whenever all its terms are (NaN and inf
        propagate), so only a non-finite sum, which may also be an overflow of large finite values,
        is checked element by element."""
        devices = {group.device for group, _, _, _ in batches}
        if self.nonfinite == "skip" and len(devices) == 1 and "cpu" not in devices:
            with use_device(batches[0][0].device):
                flags = [group.xp.isfinite(grads).all() for group, _, grads, _ in batches]
                ok = flags[0]
                for flag in flags[1:]:
                    ok = ok & flag
            return ok
        with numpy.errstate(over="ignore", invalid="ignore"):  # an overflow here is checked just below
            finite = all(bool(group.xp.isfinite(grads.sum())) for group, _, grads, _ in batches)
        if finite:
            return True
        bad = sorted(group.indices[k] for group, members, grads, spans in batches
                     for k, (lo, hi) in zip(members, spans) if not bool(group.xp.isfinite(grads[lo:hi]).all()))
        if not bad:
            return True
        names = [f"parameter {i} (shape {self.params[i].shape})" for i in bad]
        message = (f"{type(self).__name__}.step: non-finite gradient (NaN or inf) in {', '.join(names[:4])}"
                   f"{' and more' if len(names) > 4 else ''}")
        if self.nonfinite == "raise":
            raise NonFiniteGradientError(message)
        self._host_skipped += 1
        warnings.warn(f"{message}: step skipped, parameters unchanged ({self.skipped_steps} skipped so far)",
                      RuntimeWarning, stacklevel=3)
        return False

    def _apply(self, group, members, grads, spans, ok):
        """The update of one group: one kernel over all of it when every parameter takes part (and,
        where the step count matters, all have the same), else one per parameter."""
        if len(members) < len(group.params):
            group.uniform = False
        whole = len(members) == len(group.params) and (group.uniform or not self.counts_steps)
        pieces = ([(group.data, grads, list(group.buffers.values()), 0)] if whole else
                  [(group.data[lo:hi], grads[glo:ghi], [b[lo:hi] for b in group.buffers.values()], k)
                   for k, (glo, ghi) in zip(members, spans) for lo, hi in [group.bounds[k]]])
        for p, g, buffers, slot in pieces:
            if group.device != "cpu":
                self._update_device(p, g, buffers, group.ledger[slot:slot + 1], ok)
                continue
            t = int(group.ledger[slot])

            def work(blocks, p=p, g=g, buffers=buffers, t=t):
                for _, block in blocks:
                    self._update_host(p[block], g[block], [b[block] for b in buffers], t)
            over_chunks(group.xp, [slice(lo, lo + _BLOCK) for lo in range(0, p.size, _BLOCK)], p.size, work)

    def _update_host(self, p, g, buffers, t):
        """Update flat arrays (or slices) whose gradients the host has checked; t: the step count."""
        raise NotImplementedError

    def _update_device(self, p, g, buffers, t, ok):
        """Update flat arrays on a GPU; t: the step count and ok: the check (device arrays or Python)."""
        raise NotImplementedError

    # ------------------------------------------------------------ layout

    def _layout(self):
        """Make the flat groups at the first step. A parameter whose .data was replaced since (a
        model's load_state_dict, p.data = ...) is copied back into its place (one copy); if its
        device, dtype or shape changed (model.to(...)), everything is laid out again, the state
        kept through the host."""
        if self._groups is None:
            self._groups = self._build()
            return
        moved = False
        for group in self._groups:
            for k, p in enumerate(group.params):
                view = group.views[k]
                if p.data is view:
                    continue
                if p.device == group.device and p.data.dtype == view.dtype and p.shape == view.shape:
                    with use_device(group.device):
                        view[...] = p.data
                    p.data = view
                else:
                    moved = True
        if moved:
            saved, skipped = self._export(), self.skipped_steps
            self._groups = self._build()
            self._host_skipped = skipped
            self._import(saved)

    def _build(self):
        groups = {}
        for i, p in enumerate(self.params):
            groups.setdefault((p.device, p.dtype), []).append(i)
        for state in self.state:
            state.clear()
        return [_Flat(indices, [self.params[i] for i in indices], self.state_names) for indices in groups.values()]

    def _saved_names(self):
        """The state buffers state_dict saves."""
        return self.state_names

    def _export(self):
        """Per parameter: (its step count, {name: NumPy copy of each saved buffer}), (0, {}) before its
        first applied step. One copy from the device per buffer."""
        result = [(0, {}) for _ in self.params]
        for group in self._groups or ():
            ledger = to_numpy(group.ledger)
            hosts = {name: to_numpy(group.buffers[name]) for name in self._saved_names()}
            for k, i in enumerate(group.indices):
                if ledger[k]:
                    lo, hi = group.bounds[k]
                    shape = self.params[i].shape
                    result[i] = (int(ledger[k]), {name: numpy.array(h[lo:hi].reshape(shape), copy=True)
                                                  for name, h in hosts.items()})
            group.uniform = bool((ledger[:-1] == ledger[0]).all())
        return result

    def _import(self, saved):
        """Set every parameter's step count and buffers from `saved` (as _export gives, or with a
        "step" and buffers by name in a dict); what is missing starts from zero."""
        if self._groups is None:
            self._groups = self._build()
        for group in self._groups:
            counts = numpy.zeros(len(group.params), dtype=numpy.int64)
            for name, buf in group.buffers.items():
                host = numpy.zeros(buf.size, dtype=buf.dtype)
                for k, i in enumerate(group.indices):
                    array = saved[i][1].get(name)
                    lo, hi = group.bounds[k]
                    if array is not None and numpy.size(array) == hi - lo:
                        host[lo:hi] = numpy.asarray(array).reshape(-1)
                        counts[k] = max(counts[k], 1)
                with use_device(group.device):
                    buf[...] = to_device(host, group.device)
            for k, i in enumerate(group.indices):
                counts[k] = max(counts[k], saved[i][0])
                self.state[i].clear()
                if counts[k]:
                    self.state[i].update(group.state_views(k))
            with use_device(group.device):
                group.ledger[:-1] = to_device(counts, group.device)
            group.uniform = bool((counts == counts[0]).all())

    # ------------------------------------------------------------ checkpoints

    def state_dict(self):
        """A flat dict of NumPy arrays and Python scalars (np.savez-able): the hyper-parameters,
        "param_count", and "state.<i>.<name>" for each parameter's buffers and step count (once it
        has had an applied step). NOTE: on a GPU this copies the state to the host (a few syncs)."""
        out = {name: getattr(self, name) for name in self._hyper_names}
        out["param_count"] = len(self.params)
        for i, (count, arrays) in enumerate(self._export()):
            for name, value in arrays.items():
                out[f"state.{i}.{name}"] = value
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
        if self._groups is not None:
            self._layout()  # parameters replaced since the last step first find their places
        self._import([(loaded.pop("step", 0), loaded) for loaded in per_param])

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

    def _saved_names(self):
        """NOTE: the buffer starts at zero (momentum*0 + g is g, PyTorch's first step); without
        momentum it is not used, and not saved."""
        return self.state_names if self.momentum else ()

    def _kernel(self, on_device):
        return _sgd_kernel(bool(self.weight_decay), bool(self.momentum), self.nesterov, on_device)

    def _update_host(self, p, g, buffers, t):
        self._kernel(False)(p, g, buffers[0], *_typed(g.dtype, self.lr, self.momentum),
                            *_typed(p.dtype, self.weight_decay))

    def _update_device(self, p, g, buffers, t, ok):
        self._kernel(True)(p, g, buffers[0], ok, *_typed(g.dtype, self.lr, self.momentum),
                           *_typed(p.dtype, self.weight_decay), *_typed(g.dtype, 0, 1))


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
        betas = tuple(_number(b, "betas") for b in betas)
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        hyper["betas"] = betas
        hyper["eps"] = _at_least(hyper["eps"], "eps")
        return hyper

    def _kernel(self, on_device):
        decay = bool(self.weight_decay)
        return _adam_kernel(decay and not self.decoupled, decay and self.decoupled, self.eps_hat, on_device)

    def _update_host(self, p, g, buffers, t):
        """NOTE: the bias corrections are computed on the host in double precision and passed in
        the state's dtype (as every coefficient: see _typed), so float32 state stays float32."""
        beta1, beta2 = self.betas
        c1, c2 = 1 - beta1 ** t, math.sqrt(1 - beta2 ** t)
        eps_c = self.eps if self.eps_hat else self.eps * c2
        self._kernel(False)(p, g, *buffers, *_typed(g.dtype, self.lr * c2 / c1, eps_c, 1 - beta1, beta2, 1 - beta2),
                            *_typed(p.dtype, self.weight_decay, 1 - self.lr * self.weight_decay))

    def _update_device(self, p, g, buffers, t, ok):
        """NOTE: the bias corrections come from the device's step count, so a skipped step does not
        advance them; they are computed in float64 in the kernel."""
        beta1, beta2 = self.betas
        self._kernel(True)(p, g, *buffers, ok, t, *_typed(numpy.float64, self.lr, self.eps, beta1, beta2),
                           *_typed(g.dtype, self.eps, 1 - beta1, beta2, 1 - beta2, 0, 1),
                           *_typed(p.dtype, self.weight_decay, 1 - self.lr * self.weight_decay, 1))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr*weight_decay before the
    Adam step, so decay is not scaled down for parameters with large gradients."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, nonfinite="skip",
                 eps_hat=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, nonfinite=nonfinite,
                         eps_hat=eps_hat)


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
