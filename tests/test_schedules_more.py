"""MultiStepLR, ExponentialLR, LambdaLR and ReduceLROnPlateau as a PyTorch user drives them, compared
step by step with real torch.optim.lr_scheduler where torch is installed (those tests skip without it);
the errors and the resume checks run anywhere."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn import optim

try:
    import torch
except ImportError:  # NOTE: each test skips with the reason (counted as needing PyTorch), not the module
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed (pip install torch==2.13.0)")


def _ours(lr=0.1):
    return optim.SGD([tg.Tensor(np.zeros(2), requires_grad=True)], lr=lr)


def _theirs(lr=0.1):
    return torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=lr)


def _rates(sched, steps, changes=None, metrics=None):
    """The optimizer's rate after each step; changes[i] multiplies it by hand before step i."""
    opt, seen = sched.optimizer, []
    for i in range(steps):
        if changes and i in changes:
            opt.param_groups[0]["lr"] *= changes[i]
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[i])
        seen.append(opt.param_groups[0]["lr"])
        assert sched.get_last_lr() == [opt.param_groups[0]["lr"]]
    return seen


@needs_torch
@pytest.mark.parametrize("name, kwargs", [
    ("MultiStepLR", {"milestones": [2, 5, 5, 9], "gamma": 0.5}),
    ("MultiStepLR", {"milestones": [1], "gamma": 0.1}),
    ("ExponentialLR", {"gamma": 0.9}),
    ("LambdaLR", {"lr_lambda": lambda epoch: 1 / (1 + epoch)}),
    ("LambdaLR", {"lr_lambda": [lambda epoch: 0.95 ** epoch]})])
@pytest.mark.parametrize("manual", [False, True])
def test_epoch_schedules_match_torch(name, kwargs, manual):
    changes = {3: 0.1, 7: 4.0} if manual else None
    ours = _rates(getattr(optim.lr_scheduler, name)(_ours(), **kwargs), 12, changes)
    theirs = _rates(getattr(torch.optim.lr_scheduler, name)(_theirs(), **kwargs), 12, changes)
    assert ours == pytest.approx(theirs, rel=1e-12)


@needs_torch
@settings(max_examples=40, deadline=None)
@given(metrics=st.lists(st.sampled_from([1.0, 0.9, 0.8999, 0.95, 0.5, 0.7, 2.0]), min_size=1, max_size=30),
       mode=st.sampled_from(["min", "max"]), threshold_mode=st.sampled_from(["rel", "abs"]),
       patience=st.integers(0, 3), cooldown=st.integers(0, 2), factor=st.sampled_from([0.1, 0.5]),
       min_lr=st.sampled_from([0.0, 0.004]), threshold=st.sampled_from([1e-4, 0.05]))
def test_reduce_on_plateau_matches_torch(metrics, mode, threshold_mode, patience, cooldown, factor, min_lr, threshold):
    kwargs = dict(mode=mode, factor=factor, patience=patience, threshold=threshold, threshold_mode=threshold_mode,
                  cooldown=cooldown, min_lr=min_lr)
    ours = optim.lr_scheduler.ReduceLROnPlateau(_ours(), **kwargs)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(_theirs(), **kwargs)
    assert _rates(ours, len(metrics), metrics=metrics) == pytest.approx(
        _rates(theirs, len(metrics), metrics=metrics), rel=1e-12)
    assert ours.num_bad_epochs == theirs.num_bad_epochs and ours.best == theirs.best
    assert ours.cooldown_counter == theirs.cooldown_counter and ours.last_epoch == theirs.last_epoch


def test_reduce_on_plateau_takes_a_tensor_and_divides_after_patience():
    opt = _ours(0.1)
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    for loss in [1.0, 1.0, 1.0]:  # better, then two epochs without: the second exceeds patience 1
        sched.step(tg.Tensor(np.array(loss)))
    assert opt.lr == pytest.approx(0.05)
    with pytest.raises(TypeError, match="metric's value"):
        sched.step("low")


@pytest.mark.parametrize("name, kwargs", [
    ("MultiStepLR", {"milestones": [2, 4], "gamma": 0.5}), ("ExponentialLR", {"gamma": 0.8})])
def test_resuming_gives_the_uninterrupted_rates(name, kwargs, tmp_path):
    kind = getattr(optim.lr_scheduler, name)
    straight = _rates(kind(_ours(), **kwargs), 8, {5: 0.5})
    opt = _ours()
    sched = kind(opt, **kwargs)
    first = _rates(sched, 4)
    np.savez(tmp_path / "s.npz", **sched.state_dict())
    opt2 = _ours()
    again = kind(opt2, **kwargs)
    again.load_state_dict(dict(np.load(tmp_path / "s.npz")))
    rest = []
    for i in range(4, 8):
        if i == 5:
            opt2.lr = opt2.lr * 0.5
        again.step()
        rest.append(opt2.lr)
    assert first + rest == pytest.approx(straight, rel=1e-12)


def test_reduce_on_plateau_resumes_its_counters():
    metrics = [1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.6, 0.7, 0.8]
    straight = _rates(optim.lr_scheduler.ReduceLROnPlateau(_ours(), patience=1, cooldown=1), 9, metrics=metrics)
    opt = _ours()
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, cooldown=1)
    first = _rates(sched, 4, metrics=metrics)
    state = sched.state_dict()
    opt2 = _ours(opt.lr)
    again = optim.lr_scheduler.ReduceLROnPlateau(opt2, patience=1, cooldown=1)
    again.load_state_dict(state)
    rest = _rates(again, 5, metrics=metrics[4:])
    assert first + rest == pytest.approx(straight)


@pytest.mark.parametrize("make, error, match", [
    (lambda o: optim.lr_scheduler.MultiStepLR(o, milestones=3), TypeError, "milestones must be a list"),
    (lambda o: optim.lr_scheduler.MultiStepLR(o, milestones=[0, 2]), ValueError, "each milestone"),
    (lambda o: optim.lr_scheduler.MultiStepLR(o, milestones=[2], gamma=0), ValueError, "gamma must be > 0"),
    (lambda o: optim.lr_scheduler.ExponentialLR(o, gamma=-1), ValueError, "gamma must be > 0"),
    (lambda o: optim.lr_scheduler.LambdaLR(o, lr_lambda=0.5), TypeError, "function of the epoch"),
    (lambda o: optim.lr_scheduler.LambdaLR(o, lr_lambda=[abs, abs]), ValueError, "one function per parameter group"),
    (lambda o: optim.lr_scheduler.LambdaLR(o, lr_lambda=lambda e: "x"), TypeError, "must return a number"),
    (lambda o: optim.lr_scheduler.ReduceLROnPlateau(o, mode="lowest"), ValueError, "mode must be 'min' or 'max'"),
    (lambda o: optim.lr_scheduler.ReduceLROnPlateau(o, factor=1.0), ValueError, "factor must be between 0 and 1"),
    (lambda o: optim.lr_scheduler.ReduceLROnPlateau(o, threshold_mode="pct"), ValueError, "threshold_mode"),
    (lambda o: optim.lr_scheduler.ReduceLROnPlateau(o, patience=-1), ValueError, "patience"),
    (lambda o: optim.lr_scheduler.ReduceLROnPlateau("adam"), TypeError, "needs an Optimizer"),
])
def test_bad_arguments_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make(_ours())


def test_torch_schedulers_not_offered_name_the_ones_that_are():
    with pytest.raises(AttributeError, match="offered are StepLR, MultiStepLR"):
        optim.lr_scheduler.OneCycleLR
