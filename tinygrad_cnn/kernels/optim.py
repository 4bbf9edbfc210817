"""The flat-buffer optimizer step: what replaces optim.Optimizer's per-parameter loop (kernels.TABLE).

At the first step the parameters are laid end to end in one buffer per device and dtype, their state
and gathered gradients beside them, so that a step is a few fused kernels (kernels.fusion.fuse) over all
of them, not a dozen per parameter (each a launch on a GPU). On a GPU the non-finite check stays on the
device (no sync): the update is masked and the skip counted there until `skipped_steps` is read.
Hyper-parameters reach the kernels as NumPy scalars of the parameters' (or state's) dtype, computed on
the host (_typed), so float32 parameters and their state stay float32 under NumPy's rules and CuPy's.
Dense and convolution kernels write the gradients straight into the flat buffer (kernels/homes.py)."""
import functools
import math
import sys
import warnings

import numpy

from .. import optim
from ..device import to_device, to_device_together, to_numpy, use_device
from .fusion import fuse
from .parallel import over_chunks

_state_dtype = optim.state_dtype
NonFiniteGradientError = optim.NonFiniteGradientError


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


@functools.lru_cache(maxsize=None)
def _rmsprop_kernel(l2, momentum, centered, eps_inside, on_device):
    """RMSprop's update of (slices of) flat arrays p, g and its buffers (square average, momentum,
    gradient average) in one fused kernel; on_device as for _adam_kernel (where not ok, the gradient
    is 0, the decay 1 and the step 0, so nothing changes)."""
    def rmsprop_step(xp, p, g, square_avg, momentum_buffer, grad_avg, ok, lr, alpha, one_minus_alpha, eps, mu,
                     weight_decay, zero, one):
        if on_device:
            g = xp.where(ok, g + weight_decay * p if l2 else g, zero)
            keep, take = xp.where(ok, alpha, one), xp.where(ok, one_minus_alpha, zero)
        else:
            g = g + weight_decay * p if l2 else g
            keep, take = alpha, one_minus_alpha
        square_avg *= keep
        square_avg += take * g * g
        denominator = square_avg
        if centered:
            grad_avg *= keep
            grad_avg += take * g
            denominator = square_avg - grad_avg * grad_avg
        denominator = xp.sqrt(denominator + eps) if eps_inside else xp.sqrt(denominator) + eps
        if momentum:
            momentum_buffer *= xp.where(ok, mu, one) if on_device else mu
            momentum_buffer += g / denominator
            step = lr * momentum_buffer
        else:
            step = lr * g / denominator
        p -= xp.where(ok, step, zero) if on_device else step
    rmsprop_step.__name__ = ("rmsprop" + "_l2" * l2 + "_momentum" * momentum + "_centered" * centered
                             + "_eps_inside" * eps_inside + "_masked" * on_device)
    return fuse(rmsprop_step)


@functools.lru_cache(maxsize=None)
def _adadelta_kernel(l2, on_device):
    """Adadelta's update of (slices of) flat arrays p, g, square_avg and acc_delta in one fused kernel;
    on_device as for _adam_kernel."""
    def adadelta_step(xp, p, g, square_avg, acc_delta, ok, lr, rho, one_minus_rho, eps, weight_decay, zero, one):
        if on_device:
            g = xp.where(ok, g + weight_decay * p if l2 else g, zero)
            keep, take = xp.where(ok, rho, one), xp.where(ok, one_minus_rho, zero)
        else:
            g = g + weight_decay * p if l2 else g
            keep, take = rho, one_minus_rho
        square_avg *= keep
        square_avg += take * g * g
        delta = xp.sqrt(acc_delta + eps) / xp.sqrt(square_avg + eps) * g
        acc_delta *= keep
        acc_delta += take * delta * delta
        p -= xp.where(ok, lr * delta, zero) if on_device else lr * delta
    adadelta_step.__name__ = "adadelta" + "_l2" * l2 + "_masked" * on_device
    return fuse(adadelta_step)


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
            # each parameter's gradient home: kernels write its gradient there (kernels/homes.py), so
            # that gather() has nothing to copy (state in another dtype than the parameter's: none)
            self.homes = [self.grad[lo:hi].reshape(p.shape) if p.dtype == dtype else None
                          for p, (lo, hi) in zip(params, self.bounds)]
            # NOTE: and what holds the buffer now (itself and the homes, which view it): a view of it taken
            # later (of a gradient a user keeps) adds to that, and the homes are then not handed out
            home_refs = sys.getrefcount(self.grad)
            for p, home in zip(params, self.homes):
                p.grad_home = None if home is None else (home, home_refs, self.device)
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


class FlatEngine:
    """Runs an optimizer's steps over its parameters laid end to end (see the module docstring); the
    optimizer keeps its hyper-parameters, `state[i]` (views of the flat buffers) and checkpoints."""

    def __init__(self, opt):
        self.opt, self.params = opt, opt.params
        self._groups = None  # the _Flat groups, made at the first step
        self.host_skipped = 0  # skipped steps counted on the host (the rest are in the groups' ledgers)

    @property
    def _groups(self):
        """The _Flat groups, kept on the optimizer (as `_groups`, where tests/test_gpu_budget.py reads them)."""
        return self.opt.__dict__.get("_groups")

    @_groups.setter
    def _groups(self, groups):
        self.opt._groups = groups

    def skipped(self):
        """Steps skipped since this engine took over. NOTE: on a GPU the count is kept on the device;
        reading it waits for the GPU (one sync per device and dtype of parameters)."""
        return self.host_skipped + sum(int(to_numpy(group.ledger)[-1]) for group in self._groups or ())

    def reset_skipped(self):
        self.host_skipped = 0
        for group in self._groups or ():
            with use_device(group.device):
                group.ledger[-1:] = 0

    def export(self):
        """Per parameter: (step count, {name: NumPy copy of each saved buffer}), as Optimizer._export."""
        return self._export()

    def load(self, saved):
        """Take the step counts and buffers of Optimizer._export."""
        if self._groups is not None:
            self._layout()  # parameters replaced since the last step first find their places
        self._import(saved)

    def update_host(self, p, g, buffers, t):
        """Update flat arrays (or slices) whose gradients the host has checked; t: the step count.
        NOTE: Adam's bias corrections are computed on the host in double precision and passed in the
        state's dtype (as every coefficient: see _typed), so float32 state stays float32."""
        opt = self.opt
        if isinstance(opt, optim.Adam):
            beta1, beta2 = opt.betas
            c1, c2 = 1 - beta1 ** t, math.sqrt(1 - beta2 ** t)
            eps_c = opt.eps if opt.eps_hat else opt.eps * c2
            return self._kernel(False)(p, g, *buffers,
                                       *_typed(g.dtype, opt.lr * c2 / c1, eps_c, 1 - beta1, beta2, 1 - beta2),
                                       *_typed(p.dtype, opt.weight_decay, 1 - opt.lr * opt.weight_decay))
        if isinstance(opt, (optim.RMSprop, optim.Adadelta)):
            return self._kernel(False)(p, g, *buffers, True, *self._coefficients(p, g))
        self._kernel(False)(p, g, buffers[0], *_typed(g.dtype, opt.lr, opt.momentum), *_typed(p.dtype, opt.weight_decay))

    def update_device(self, p, g, buffers, t, ok):
        """Update flat arrays on a GPU; t: the step count and ok: the check (device arrays or Python).
        NOTE: Adam's bias corrections come from the device's step count, so a skipped step does not
        advance them; they are computed in float64 in the kernel."""
        opt = self.opt
        if isinstance(opt, optim.Adam):
            beta1, beta2 = opt.betas
            return self._kernel(True)(p, g, *buffers, ok, t, *_typed(numpy.float64, opt.lr, opt.eps, beta1, beta2),
                                      *_typed(g.dtype, opt.eps, 1 - beta1, beta2, 1 - beta2, 0, 1),
                                      *_typed(p.dtype, opt.weight_decay, 1 - opt.lr * opt.weight_decay, 1))
        if isinstance(opt, (optim.RMSprop, optim.Adadelta)):
            return self._kernel(True)(p, g, *buffers, ok, *self._coefficients(p, g))
        self._kernel(True)(p, g, buffers[0], ok, *_typed(g.dtype, opt.lr, opt.momentum),
                           *_typed(p.dtype, opt.weight_decay), *_typed(g.dtype, 0, 1))

    def _coefficients(self, p, g):
        """RMSprop's lr, alpha, 1 - alpha, eps, momentum (Adadelta's lr, rho, 1 - rho, eps) in the state's
        dtype, weight decay in the parameter's, then 0 and 1 (typed, as every kernel scalar: see _typed)."""
        opt = self.opt
        if isinstance(opt, optim.RMSprop):
            head = _typed(g.dtype, opt.lr, opt.alpha, 1 - opt.alpha, opt.eps, opt.momentum)
        else:
            head = _typed(g.dtype, opt.lr, opt.rho, 1 - opt.rho, opt.eps)
        return (*head, *_typed(p.dtype, opt.weight_decay), *_typed(g.dtype, 0, 1))

    def _kernel(self, on_device):
        opt = self.opt
        decay = bool(opt.weight_decay)
        if isinstance(opt, optim.Adam):
            return _adam_kernel(decay and not opt.decoupled, decay and opt.decoupled, opt.eps_hat, on_device)
        if isinstance(opt, optim.RMSprop):
            return _rmsprop_kernel(decay, bool(opt.momentum), opt.centered, opt.eps_inside, on_device)
        if isinstance(opt, optim.Adadelta):
            return _adadelta_kernel(decay, on_device)
        return _sgd_kernel(decay, bool(opt.momentum), opt.nesterov, on_device)

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
                group.params[k].version_counter[0] += 1  # about to change: saved graphs that used it are stale
            with use_device(group.device):
                on_apply, on_skip = group.masks(members, counts_skips=n == 0 and ok is not True)
                _count_step(group.ledger, on_apply, on_skip, ok)
                self._apply(group, members, grads, spans, ok)

    def _gather(self):
        """(group, members, gradients, spans) for each group in which some parameter has a gradient:
        `members` index group.params, their gradients lie end to end in `gradients`, at `spans`."""
        self._layout()
        batches = []
        for group in self._groups:
            members = [k for k, p in enumerate(group.params) if p.grad is not None]
            if not members:
                continue
            for k in members:
                state = self.opt.state[group.indices[k]]
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
        if self.opt.nonfinite == "skip" and len(devices) == 1 and "cpu" not in devices:
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
        message = (f"{type(self.opt).__name__}.step: non-finite gradient (NaN or inf) in {', '.join(names[:4])}"
                   f"{' and more' if len(names) > 4 else ''}")
        if self.opt.nonfinite == "raise":
            raise NonFiniteGradientError(message)
        self.host_skipped += 1
        warnings.warn(f"{message}: step skipped, parameters unchanged ({self.opt.skipped_steps} skipped so far)",
                      RuntimeWarning, stacklevel=4)
        return False

    def _apply(self, group, members, grads, spans, ok):
        """The update of one group: one kernel over all of it when every parameter takes part (and,
        where the step count matters, all have the same), else one per parameter."""
        if len(members) < len(group.params):
            group.uniform = False
        whole = len(members) == len(group.params) and (group.uniform or not self.opt.counts_steps)
        pieces = ([(group.data, grads, list(group.buffers.values()), 0)] if whole else
                  [(group.data[lo:hi], grads[glo:ghi], [b[lo:hi] for b in group.buffers.values()], k)
                   for k, (glo, ghi) in zip(members, spans) for lo, hi in [group.bounds[k]]])
        for p, g, buffers, slot in pieces:
            if group.device != "cpu":
                self.update_device(p, g, buffers, group.ledger[slot:slot + 1], ok)
                continue
            t = int(group.ledger[slot])

            def work(blocks, p=p, g=g, buffers=buffers, t=t):
                for _, block in blocks:
                    self.update_host(p[block], g[block], [b[block] for b in buffers], t)
            over_chunks(group.xp, [slice(lo, lo + _BLOCK) for lo in range(0, p.size, _BLOCK)], p.size, work)


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
            saved, skipped = self._export(), self.skipped()
            self._groups = self._build()
            self.host_skipped = skipped
            self._import(saved)

    def _build(self):
        groups = {}
        for i, p in enumerate(self.params):
            groups.setdefault((p.device, p.dtype), []).append(i)
        for state in self.opt.state:
            state.clear()
        return [_Flat(indices, [self.params[i] for i in indices], self.opt.state_names) for indices in groups.values()]


    def _export(self):
        """Per parameter: (its step count, {name: NumPy copy of each saved buffer}), (0, {}) before its
        first applied step. One copy from the device per buffer."""
        result = [(0, {}) for _ in self.params]
        for group in self._groups or ():
            ledger = to_numpy(group.ledger)
            hosts = {name: to_numpy(group.buffers[name]) for name in self.opt._saved_names()}
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
                self.opt.state[i].clear()
                if counts[k]:
                    self.opt.state[i].update(group.state_views(k))
            with use_device(group.device):
                group.ledger[:-1] = to_device(counts, group.device)
            group.uniform = bool((counts == counts[0]).all())
