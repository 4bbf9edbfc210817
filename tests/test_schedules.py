"""StepLR and CosineAnnealingLR as a PyTorch user drives them: the chainable step() (a manual change of the
rate between steps carries on), get_last_lr() a list, state_dict() enough to resume the same sequence,
and clear errors. Compared step by step with real torch.optim.lr_scheduler where torch is installed (those
tests skip without it, each with the reason); the rest run anywhere."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn import optim

try:
    import torch
except ImportError:  # NOTE: each test skips with the reason (counted as needing PyTorch), not the module
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed (pip install torch==2.13.0)")

KINDS = {"step": (optim.StepLR, "StepLR"), "cosine": (optim.CosineAnnealingLR, "CosineAnnealingLR")}


def _ours(lr=0.1):
    return optim.SGD([tg.Tensor(np.zeros(2), requires_grad=True)], lr=lr)


def _theirs(lr=0.1):
    return torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=lr)


def _pair(kind, lr, **settings):
    """(our scheduler, torch's), each on a fresh SGD at `lr`."""
    ours, name = KINDS[kind]
    return ours(_ours(lr), **settings), getattr(torch.optim.lr_scheduler, name)(_theirs(lr), **settings)


def _drive(sched, steps, changes, torch_side=False, manual_via_attr=False):
    """The rate after each of `steps` epochs; changes[i] multiplies the rate by hand before step i+1."""
    opt, seen = sched.optimizer, []
    for i in range(steps):
        if i in changes:
            if manual_via_attr and not torch_side:
                opt.lr = opt.lr * changes[i]
            else:
                opt.param_groups[0]["lr"] *= changes[i]
        opt.step()  # no gradients: changes nothing (torch's wants it before scheduler.step())
        sched.step()
        seen.append((sched.get_last_lr(), sched.last_epoch, opt.param_groups[0]["lr"]))
    return seen


def _same(ours, theirs):
    assert len(ours) == len(theirs)
    for i, ((lr, epoch, group), (their_lr, their_epoch, their_group)) in enumerate(zip(ours, theirs)):
        if their_group < 0:  # torch's cosine goes below 0 (after T_max, from a rate set below eta_min): 0 here
            assert lr == [0.0] and group == 0.0, (i, lr, their_lr)
            return  # from there on the two differ by design
        assert isinstance(lr, list) and len(lr) == len(their_lr) == 1, (i, lr)
        assert lr[0] == pytest.approx(their_lr[0], rel=1e-12, abs=1e-15), (i, lr, their_lr)
        assert group == pytest.approx(their_group, rel=1e-12, abs=1e-15) and group == lr[0], i
        assert epoch == their_epoch, i


# ---------------------------------------------------------------- 1. a manual change carries on (chainable form)

@needs_torch
@pytest.mark.parametrize("via_attr", [False, True])
@pytest.mark.parametrize("kind, settings", [
    ("step", {"step_size": 3, "gamma": 0.5}),
    ("step", {"step_size": 1, "gamma": 0.7}),
    ("cosine", {"T_max": 5, "eta_min": 0.001}),
    ("cosine", {"T_max": 4}),
    ("cosine", {"T_max": 1, "eta_min": 0.01})])
def test_a_manual_change_between_steps_carries_on_as_in_torch(kind, settings, via_attr):
    # before: step() recomputed the rate from base_lr and dropped the change (StepLR: 0.05 at step 5, not 0.005)
    ours, theirs = _pair(kind, 0.1, **settings)
    span = 3 * settings.get("step_size", settings.get("T_max"))  # past T_max: torch's cosine goes back up
    changes = {1: 0.1, span // 2 + 1: 3.0}
    _same(_drive(ours, span + 2, changes, manual_via_attr=via_attr), _drive(theirs, span + 2, changes, torch_side=True))


@needs_torch
@given(kind=st.sampled_from(["step", "cosine"]), period=st.integers(1, 6), gamma=st.floats(0.05, 2.0),
       eta_min=st.sampled_from([0.0, 1e-4, 0.02]), lr=st.floats(1e-4, 2.0),
       changes=st.dictionaries(st.integers(0, 20), st.floats(0.01, 10.0), max_size=3))
def test_random_schedules_and_manual_changes_match_torch(kind, period, gamma, eta_min, lr, changes):
    settings = {"step_size": period, "gamma": gamma} if kind == "step" else {"T_max": period, "eta_min": eta_min}
    ours, theirs = _pair(kind, lr, **settings)
    _same(_drive(ours, 3 * period + 3, changes), _drive(theirs, 3 * period + 3, changes, torch_side=True))


@given(step_size=st.integers(1, 5), gamma=st.floats(0.05, 2.0), lr=st.floats(1e-4, 2.0),
       changes=st.dictionaries(st.integers(0, 15), st.floats(0.01, 10.0), max_size=3))
def test_step_lr_is_the_closed_form_times_each_change_made_by_hand(step_size, gamma, lr, changes):
    """Without torch too: StepLR's chain multiplies, so the rate is lr_at(epoch) times every factor so far."""
    sched, factor = optim.StepLR(_ours(lr), step_size, gamma), 1.0
    for i, (got, epoch, _) in enumerate(_drive(sched, 16, changes)):
        factor *= changes.get(i, 1.0)
        assert got[0] == pytest.approx(sched.lr_at(epoch) * factor, rel=1e-9)


@given(period=st.integers(2, 8), eta_min=st.sampled_from([0.0, 1e-3]), lr=st.floats(0.01, 2.0),
       changes=st.dictionaries(st.integers(0, 6), st.floats(0.5, 4.0), max_size=2))
def test_cosine_keeps_the_ratio_a_change_by_hand_made_until_t_max(period, eta_min, lr, changes):
    """Without torch too: the recursive step keeps (rate - eta_min) / (closed form - eta_min) between
    changes, so the rate follows the cosine scaled by the change, and reaches eta_min at T_max."""
    sched, ratio, rate = optim.CosineAnnealingLR(_ours(lr), period, eta_min), 1.0, lr
    for i, (got, epoch, _) in enumerate(_drive(sched, period, changes)):
        if i in changes:  # the change was made to the rate after epoch i, before this step
            ratio = (rate * changes[i] - eta_min) / (sched.lr_at(i) - eta_min)
        rate = got[0]
        assert rate == pytest.approx(eta_min + ratio * (sched.lr_at(epoch) - eta_min), rel=1e-9, abs=1e-12)
    assert rate == pytest.approx(eta_min, abs=1e-12)


@needs_torch
def test_cosine_stops_at_zero_where_torchs_recursion_goes_below_it():
    # found by the test above: after T_max a rate set by hand below eta_min moves away from eta_min
    ours, theirs = _pair("cosine", 0.1, T_max=2, eta_min=0.05)
    changes = {3: 0.1}
    mine, torch_side = _drive(ours, 6, changes), _drive(theirs, 6, changes, torch_side=True)
    assert any(group < 0 for _, _, group in torch_side)
    assert all(group >= 0 for _, _, group in mine)
    _same(mine, torch_side)
    # and at the trough's step back up, from a base_lr below eta_min (found by the same test)
    ours, theirs = _pair("cosine", 0.015625, T_max=2, eta_min=0.02)
    mine, torch_side = _drive(ours, 4, {2: 0.0625}), _drive(theirs, 4, {2: 0.0625}, torch_side=True)
    assert torch_side[2][2] < 0 and mine[2][2] == 0.0
    _same(mine, torch_side)


@needs_torch
@pytest.mark.parametrize("kind, settings", [("step", {"step_size": 2, "gamma": 0.3}),
                                            ("cosine", {"T_max": 3, "eta_min": 0.01})])
def test_closed_form_is_lr_at_and_torchs_closed_form(kind, settings):
    ours, theirs = _pair(kind, 0.2, **settings)
    for epoch in range(10):
        ours.step(), theirs.optimizer.step(), theirs.step()
        their_closed = theirs._get_closed_form_lr()
        assert ours._get_closed_form_lr() == pytest.approx(their_closed, rel=1e-12)
        assert ours.lr_at(epoch + 1) == pytest.approx(their_closed[0], rel=1e-12)


@needs_torch
def test_step_with_an_epoch_is_torchs_deprecated_closed_form():
    ours, theirs = _pair("step", 0.1, step_size=2, gamma=0.5)
    ours.optimizer.lr = 0.05  # a manual change that step(epoch) drops, in torch too
    theirs.optimizer.param_groups[0]["lr"] = 0.05
    theirs.optimizer.step()
    with pytest.warns(UserWarning, match="epoch"):
        theirs.step(5)
    with pytest.warns(UserWarning, match=r"step\(epoch\)"):
        ours.step(5)
    assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12) and ours.last_epoch == 5
    with pytest.raises(ValueError, match="epoch must be an int >= 0, got -1"):
        ours.step(-1)
    with pytest.raises(TypeError, match=r"epoch must be an int >= 0, got 2\.5"):
        ours.step(2.5)


@needs_torch
def test_a_torch_style_subclass_with_get_lr_runs_as_in_torch():
    def halving(base):
        class Halve(base):
            def get_lr(self):
                return [g["lr"] * 0.5 if self.last_epoch % 2 == 0 else g["lr"] for g in self.optimizer.param_groups]
        return Halve
    ours, theirs = halving(optim.LRScheduler)(_ours(0.8)), halving(torch.optim.lr_scheduler.LRScheduler)(_theirs(0.8))
    _same(_drive(ours, 6, {3: 0.1}), _drive(theirs, 6, {3: 0.1}, torch_side=True))
    assert ours.base_lrs == theirs.base_lrs == [0.8]


@needs_torch
def test_two_schedulers_on_one_optimizer_chain_as_in_torch():
    ours, theirs = _ours(0.1), _theirs(0.1)
    mine = [optim.lr_scheduler.StepLR(ours, 2, 0.5), optim.lr_scheduler.CosineAnnealingLR(ours, 5)]
    torchs = [torch.optim.lr_scheduler.StepLR(theirs, 2, 0.5), torch.optim.lr_scheduler.CosineAnnealingLR(theirs, 5)]
    for epoch in range(12):
        ours.step(), theirs.step()
        for a, b in zip(mine, torchs):
            a.step(), b.step()
        # before: each recomputed from base_lr, so the last one stepped won and the StepLR did nothing
        assert ours.lr == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-12, abs=1e-15), epoch


def test_torchs_other_schedulers_are_named_as_not_offered():
    from tinygrad_cnn.optim import lr_scheduler
    assert lr_scheduler.StepLR is optim.StepLR and lr_scheduler.LRScheduler is optim.LRScheduler
    with pytest.raises(AttributeError, match="no OneCycleLR \\(torch's\\): offered are StepLR, MultiStepLR"):
        lr_scheduler.OneCycleLR
    assert not hasattr(lr_scheduler, "CyclicLR") and not hasattr(lr_scheduler, "no_such_name")


# ---------------------------------------------------------------- 2. get_last_lr() and the attributes torch has

@needs_torch
@pytest.mark.parametrize("kind, settings", [("step", {"step_size": 2}), ("cosine", {"T_max": 3})])
def test_attributes_as_torch(kind, settings):
    ours, theirs = _pair(kind, 0.3, **settings)
    # before: get_last_lr() was a float (torch: one entry per parameter group)
    assert ours.get_last_lr() == theirs.get_last_lr() == [0.3]
    assert ours.base_lrs == theirs.base_lrs == [0.3] and ours.base_lr == 0.3
    assert ours.last_epoch == theirs.last_epoch == 0
    assert ours.optimizer is ours.optimizer and isinstance(ours.optimizer, optim.SGD)
    for name, value in settings.items():
        assert getattr(ours, name) == getattr(theirs, name) == value
    ours.get_last_lr().append(1.0)  # a copy: the scheduler's own list is not changed through it
    assert ours.get_last_lr() == [0.3]
    # torch warns that get_lr() is step()'s, not a reader of the rate; so does this one
    with pytest.warns(UserWarning, match="get_last_lr"):
        theirs.get_lr()
    with pytest.warns(UserWarning, match="get_last_lr"):
        ours.get_lr()


# ---------------------------------------------------------------- 3. state_dict: resume, torch's keys, old files

@pytest.mark.parametrize("kind, settings", [("step", {"step_size": 2, "gamma": 0.5}),
                                            ("cosine", {"T_max": 4, "eta_min": 0.001})])
@pytest.mark.parametrize("with_optimizer_state", [True, False])
def test_resuming_from_a_checkpoint_gives_the_uninterrupted_sequence(kind, settings, with_optimizer_state, tmp_path):
    make = KINDS[kind][0]
    changes = {2: 0.5, 7: 4.0}  # by hand, before the checkpoint and after it
    whole = _drive(make(_ours(0.1), **settings), 12, changes)
    first = make(_ours(0.1), **settings)
    before = _drive(first, 5, changes)
    first.optimizer.lr = first.optimizer.lr * 0.9  # and once after the last step before saving (kept by both)
    saved = {f"sched.{k}": v for k, v in first.state_dict().items()}
    if with_optimizer_state:
        saved.update({f"opt.{k}": v for k, v in first.optimizer.state_dict().items()})
    np.savez(tmp_path / "ckpt.npz", **saved)
    loaded = dict(np.load(tmp_path / "ckpt.npz"))  # 0-d and 1-d arrays, as a file gives them back
    opt = _ours(0.1)
    if with_optimizer_state:
        opt.load_state_dict({k[4:]: v for k, v in loaded.items() if k.startswith("opt.")})
    second = make(opt, **settings)
    second.load_state_dict({k[6:]: v for k, v in loaded.items() if k.startswith("sched.")})
    assert second.optimizer.lr == first.optimizer.lr and second.get_last_lr() == first.get_last_lr()
    whole_changed = _drive(make(_ours(0.1), **settings), 12, {**changes, 5: 0.9})
    after = _drive(second, 7, {k - 5: v for k, v in changes.items() if k > 5})
    assert [s[0] for s in before + after] == [s[0] for s in whole_changed]
    assert [s[1] for s in before + after] == list(range(1, 13))
    assert [s[0] for s in whole][:5] == [s[0] for s in before]


def test_state_dict_holds_what_the_chainable_form_needs():
    sched = optim.StepLR(_ours(0.2), step_size=3, gamma=0.25)
    sched.step()
    sched.optimizer.lr = 0.1
    state = sched.state_dict()
    # before: only {'base_lr', 'last_epoch'}: the settings and the current rate were not saved
    assert state["last_epoch"] == 1 and state["base_lrs"] == [0.2] and state["_last_lr"] == [0.2]
    assert state["step_size"] == 3 and state["gamma"] == 0.25 and state["lr"] == 0.1
    cosine = optim.CosineAnnealingLR(_ours(0.2), T_max=5, eta_min=0.01).state_dict()
    assert cosine["T_max"] == 5 and cosine["eta_min"] == 0.01 and "step_size" not in cosine
    # the settings come back with the state, as torch's load_state_dict restores them
    other = optim.StepLR(_ours(0.2), step_size=7)
    other.load_state_dict(state)
    assert (other.step_size, other.gamma, other.last_epoch, other.optimizer.lr) == (3, 0.25, 1, 0.1)


@pytest.mark.parametrize("kind, settings", [("step", {"step_size": 2, "gamma": 0.5}),
                                            ("cosine", {"T_max": 4, "eta_min": 0.001})])
def test_an_older_checkpoint_with_base_lr_and_last_epoch_still_loads(kind, settings):
    make = KINDS[kind][0]
    old = {"base_lr": np.asarray(0.1), "last_epoch": np.asarray(3)}  # what state_dict() wrote before
    sched = make(_ours(0.5), **settings)
    sched.load_state_dict(old)
    # as before: the rate after 3 epochs (the closed form, which is what the old schedules had set)
    assert sched.optimizer.lr == pytest.approx(sched.lr_at(3), rel=1e-12) and sched.last_epoch == 3
    assert sched.base_lrs == [0.1] and sched.get_last_lr() == [sched.optimizer.lr]
    for epoch in range(4, 10):  # and on from there as the uninterrupted schedule
        sched.step()
        assert sched.get_last_lr()[0] == pytest.approx(sched.lr_at(epoch), rel=1e-9, abs=1e-15)


@needs_torch
@pytest.mark.parametrize("kind, settings", [("step", {"step_size": 2, "gamma": 0.5}),
                                            ("cosine", {"T_max": 4, "eta_min": 0.001})])
def test_a_torch_schedulers_state_dict_loads_and_goes_on_the_same(kind, settings):
    ours, theirs = _pair(kind, 0.1, **settings)
    _drive(theirs, 5, {1: 0.5}, torch_side=True)
    state = theirs.state_dict()
    assert {"last_epoch", "base_lrs", "_last_lr", *settings} <= set(state)
    ours.optimizer.lr = theirs.optimizer.param_groups[0]["lr"]  # torch's rate lives in the optimizer's state
    ours.load_state_dict(state)  # its bookkeeping keys (_step_count, ...) are not ours, and are let through
    assert ours.last_epoch == 5 and ours.get_last_lr() == theirs.get_last_lr()
    _same(_drive(ours, 7, {2: 3.0}), _drive(theirs, 7, {2: 3.0}, torch_side=True))


def test_load_state_dict_checks_everything_first_and_names_the_problem():
    sched = optim.StepLR(_ours(0.1), step_size=2)
    sched.step()
    good = sched.state_dict()
    cases = [
        ({**good, "T_max": 3}, r"unexpected key 'T_max'"),
        ({k: v for k, v in good.items() if k != "last_epoch"}, r"missing key 'last_epoch'"),
        ({k: v for k, v in good.items() if k not in ("base_lrs",)}, r"missing key 'base_lrs'"),
        ({**good, "base_lrs": [0.1, 0.2]}, r"base_lrs: 2 rates \(parameter groups\), this optimizer has one"),
        ({**good, "step_size": 0}, r"step_size must be a positive int, got 0"),
        ({**good, "last_epoch": -3}, r"last_epoch must be an int >= 0, got -3"),
        ({**good, "lr": -1.0}, r"lr must be >= 0"),
    ]
    for state, match in cases:
        fresh = optim.StepLR(_ours(0.5), step_size=5)
        with pytest.raises(ValueError, match=match):
            fresh.load_state_dict(state)
        assert (fresh.step_size, fresh.last_epoch, fresh.base_lrs, fresh.optimizer.lr) == (5, 0, [0.5], 0.5)
    cosine = optim.CosineAnnealingLR(_ours(0.1), T_max=3)
    with pytest.raises(ValueError, match=r"unexpected key 'step_size'\n  unexpected key 'gamma'"):
        cosine.load_state_dict(good)  # a StepLR's state in a CosineAnnealingLR
    with pytest.raises(TypeError, match="load_state_dict needs a mapping, got list"):
        cosine.load_state_dict([1, 2])


# ---------------------------------------------------------------- 4. arguments a torch user passes

@needs_torch
def test_a_torch_optimizer_or_a_keras_one_is_named_in_the_error():
    from tinygrad_cnn import keras
    with pytest.raises(TypeError, match=r"StepLR needs an Optimizer, got torch\.optim\.\w+\.SGD.*PyTorch's"):
        optim.StepLR(_theirs(), step_size=2)
    with pytest.raises(TypeError, match=r"CosineAnnealingLR needs an Optimizer, got tinygrad_cnn\.keras\.\w+\.Adam"
                                        r".*LearningRateScheduler"):
        optim.CosineAnnealingLR(keras.optimizers.Adam(), T_max=3)
    with pytest.raises(TypeError, match="StepLR needs an Optimizer, got NoneType"):
        optim.StepLR(None, step_size=2)


@needs_torch
def test_verbose_is_refused_as_torch_2_13_refuses_it():
    with pytest.raises(TypeError, match="verbose"):
        torch.optim.lr_scheduler.StepLR(_theirs(), step_size=2, verbose=True)
    with pytest.raises(TypeError, match="verbose"):
        optim.StepLR(_ours(), step_size=2, verbose=True)
    with pytest.raises(TypeError, match="verbose"):
        optim.CosineAnnealingLR(_ours(), T_max=2, verbose=False)


def test_last_epoch_argument():
    # -1 is torch's default and means a fresh schedule; given positionally too, as torch's signature allows
    assert optim.StepLR(_ours(), 2, 0.5, -1).last_epoch == 0
    assert optim.CosineAnnealingLR(_ours(), 3, 0.0, last_epoch=-1).last_epoch == 0
    with pytest.raises(ValueError, match=r"last_epoch=4.*initial_lr.*load_state_dict"):
        optim.StepLR(_ours(), step_size=2, last_epoch=4)
    with pytest.raises(TypeError, match="last_epoch must be an int, got True"):
        optim.StepLR(_ours(), step_size=2, last_epoch=True)
    with pytest.raises(TypeError, match="last_epoch must be an int, got '3'"):
        optim.CosineAnnealingLR(_ours(), T_max=2, last_epoch="3")


@needs_torch
def test_a_schedule_made_after_the_rate_changed_starts_from_that_rate():
    """A documented difference: torch's base_lrs come from the group's 'initial_lr', set by the first
    schedule on the optimizer; this optimizer keeps none, so each schedule starts from the rate it found."""
    ours, theirs = _ours(0.1), _theirs(0.1)
    first, their_first = optim.StepLR(ours, 1, 0.5), torch.optim.lr_scheduler.StepLR(theirs, 1, 0.5)
    ours.step(), theirs.step(), first.step(), their_first.step()
    mine, torchs = optim.CosineAnnealingLR(ours, 4), torch.optim.lr_scheduler.CosineAnnealingLR(theirs, 4)
    assert mine.base_lrs == [0.05] and torchs.base_lrs == [0.1]
    for _ in range(4):  # up to T_max the chain runs from the current rate in both
        ours.step(), theirs.step(), mine.step(), torchs.step()
        assert mine.get_last_lr() == pytest.approx(torchs.get_last_lr(), rel=1e-12, abs=1e-15)


def test_base_lrs_is_writable_as_torchs_list():
    sched = optim.CosineAnnealingLR(_ours(0.1), T_max=4)
    sched.base_lrs = [0.4]  # a warm restart at a new peak, as torch users write it
    assert sched.base_lr == 0.4 and sched.lr_at(0) == 0.4
    sched.base_lr = 0.2
    assert sched.base_lrs == [0.2]
    with pytest.raises(ValueError, match=r"base_lrs must be a list of one rate \(one parameter group\), got \[0\.1, 0\.2\]"):
        sched.base_lrs = [0.1, 0.2]
    with pytest.raises(ValueError, match="base_lr must be >= 0"):
        sched.base_lr = -1.0


def test_a_rate_a_subclass_returns_is_checked():
    class Bad(optim.LRScheduler):
        def get_lr(self):
            return [0.1, 0.2]

    class Negative(optim.LRScheduler):
        def lr_at(self, epoch):
            return -1.0

    # as torch's, the constructor sets the rate of epoch 0 through get_lr(), so a wrong one is refused there
    opt = _ours(0.1)
    with pytest.raises(ValueError, match=r"Bad.get_lr\(\) must return one rate per parameter group \(one\), got \[0\.1, 0\.2\]"):
        Bad(opt)
    assert opt.lr == 0.1  # nothing changed
    with pytest.raises(ValueError, match="lr must be >= 0"):
        Negative(_ours(0.1))
    with pytest.raises(NotImplementedError, match="get_lr"):
        optim.LRScheduler(_ours(0.1))

    class Halving(optim.LRScheduler):
        def get_lr(self):
            return [self.optimizer.lr * 0.5]

    halving = Halving(_ours(0.4))  # the constructor's step at epoch 0 halves it, as torch's does
    assert halving.get_last_lr() == [0.2] and halving.last_epoch == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # step(epoch)'s deprecation
        with pytest.raises(NotImplementedError, match=r"Halving has no lr_at\(epoch\)"):
            halving.step(3)  # the closed form is lr_at's: a failed step changes nothing
    assert halving.last_epoch == 0 and halving.optimizer.lr == 0.2 and halving.get_last_lr() == [0.2]


def test_schedules_still_warn_nothing_in_ordinary_use():
    sched = optim.CosineAnnealingLR(_ours(0.1), T_max=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(5):
            sched.step()
    assert math.isfinite(sched.get_last_lr()[0])
