"""Snippets a PyTorch user writes, run here and in real torch (skipped without it): where tinygrad_cnn
claims PyTorch's spelling, it gives PyTorch's answer, or a clear error naming what is not offered."""
import copy
import pickle

import warnings

import numpy as np
import pytest

import tinygrad_cnn as tg
import tinygrad_cnn.torch_nn as nn
from tinygrad_cnn import optim
from tinygrad_cnn.nn import functional as F

try:
    import torch
except ImportError:  # NOTE: each test skips with the reason (counted as needing PyTorch), not the module
    torch = None
pytestmark = pytest.mark.skipif(torch is None, reason="torch is not installed (pip install torch==2.13.0)")


def _data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def test_transpose_of_two_dims_swaps_them_as_torch_does():
    a2, a3 = _data(4, 5), _data(2, 3, 4)
    # before: x.transpose(0, 1) of a 2-D tensor was NumPy's identity permutation, silently not transposed
    assert tg.Tensor(a2).transpose(0, 1).shape == tuple(torch.tensor(a2).transpose(0, 1).shape) == (5, 4)
    np.testing.assert_array_equal(tg.Tensor(a2).transpose(0, 1).numpy(), a2.T)
    # before: an error ("not a permutation") where torch swaps two of three dims
    np.testing.assert_array_equal(tg.Tensor(a3).transpose(0, 1).numpy(), torch.tensor(a3).transpose(0, 1).numpy())
    np.testing.assert_array_equal(tg.Tensor(a3).transpose(-1, 0).numpy(), torch.tensor(a3).transpose(-1, 0).numpy())
    # permute is a full permutation, as torch's: permute(0, 1) of a 2-D tensor changes nothing
    np.testing.assert_array_equal(tg.Tensor(a2).permute(0, 1).numpy(), torch.tensor(a2).permute(0, 1).numpy())
    np.testing.assert_array_equal(tg.Tensor(a3).permute(2, 0, 1).numpy(), torch.tensor(a3).permute(2, 0, 1).numpy())
    np.testing.assert_array_equal(tg.Tensor(a3).transpose((1, 0, 2)).numpy(), a3.transpose(1, 0, 2))  # NumPy's tuple
    x = tg.Tensor(a3, requires_grad=True)
    g = _data(3, 2, 4, seed=1)
    x.transpose(0, 1).backward(tg.Tensor(g))
    np.testing.assert_array_equal(x.grad.numpy(), g.transpose(1, 0, 2))


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_and_min_with_dim_give_values_and_indices_as_torch(name, keepdim):
    a = _data(5, 4)
    a[1, 2] = a[1, 0]  # a tie in row 1 (torch and NumPy both report... compared below only for max of rows)
    x, xt = tg.Tensor(a, requires_grad=True), torch.tensor(a)
    # before: a Tensor of values, so `values, indices = x.max(dim=1)` unpacked rows, and x.max(dim=1)[0] was row 0
    values, indices = getattr(x, name)(dim=1, keepdim=keepdim)
    theirs = getattr(xt, name)(dim=1, keepdim=keepdim)
    np.testing.assert_array_equal(values.numpy(), theirs.values.numpy())
    np.testing.assert_array_equal(indices.numpy(), theirs.indices.numpy())
    out = getattr(x, name)(dim=1, keepdim=keepdim)
    assert out.values is out[0] and out.indices is out[1]
    out.values.sum().backward()  # the values carry the gradient
    assert x.grad.shape == a.shape and x.grad.numpy().sum() == pytest.approx(5.0)
    # NumPy's spelling keeps NumPy's answer: the values alone
    assert isinstance(getattr(tg.Tensor(a), name)(axis=1), tg.Tensor)
    assert isinstance(getattr(tg.Tensor(a), name)(), tg.Tensor)


def test_zero_grad_takes_set_to_none_as_torch():
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = tg.Tensor(_data(4, 3))
    for zero_grad in (opt.zero_grad, model.zero_grad):
        model(x).sum().backward()
        zero_grad(set_to_none=False)  # before: TypeError (unexpected keyword argument 'set_to_none')
        for p in model.parameters():
            assert p.grad is not None and p.grad.shape == p.shape and not p.grad.numpy().any()
        zero_grad(set_to_none=True)
        assert all(p.grad is None for p in model.parameters())
        zero_grad()
        assert all(p.grad is None for p in model.parameters())
    # zeroed gradients accumulate the next backward() as fresh ones do, and the step matches torch's
    theirs = torch.nn.Linear(3, 2)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(model.weight.numpy()))
        theirs.bias.copy_(torch.tensor(model.bias.numpy()))
    their_opt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(3):
        opt.zero_grad(set_to_none=False)
        their_opt.zero_grad(set_to_none=False)
        (model(x) ** 2).mean().backward()
        (theirs(torch.tensor(x.numpy())) ** 2).mean().backward()
        opt.step()
        their_opt.step()
    np.testing.assert_allclose(model.weight.numpy(), theirs.weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_load_state_dict_into_a_sequential_with_weightless_layers():
    ours = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 3))
    before = ours.state_dict()
    # before: "Sequential, layers.1, layers.2 not built yet": ReLU and Dropout have no weights to build
    ours.load_state_dict({k: v * 2 for k, v in before.items()})
    for k, v in ours.state_dict().items():
        np.testing.assert_array_equal(v, before[k] * 2)
    missing, unexpected = ours.load_state_dict({"0.weight": before["0.weight"]}, strict=False)
    assert sorted(missing) == ["0.bias", "3.bias", "3.weight"] and unexpected == []
    with pytest.raises(ValueError, match="missing key '3.bias'"):
        ours.load_state_dict({k: v for k, v in before.items() if k != "3.bias"})
    ours.eval()
    x = _data(2, 5)
    assert ours(tg.Tensor(x)).shape == (2, 3)
    # a layer whose weights come from its first input is still refused before it is built
    with pytest.raises(ValueError, match="not built yet"):
        tg.nn.Sequential(tg.nn.Dense(3), tg.nn.ReLU()).load_state_dict({})


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
def test_cross_entropy_loss_module_and_label_smoothing_match_torch(reduction, label_smoothing):
    logits, targets = _data(6, 3), np.array([0, 1, 2, 0, 1, 2])
    x = tg.Tensor(logits, requires_grad=True)
    xt = torch.tensor(logits, requires_grad=True)
    # before: no nn.CrossEntropyLoss; F.cross_entropy(label_smoothing=...) a TypeError
    ours = nn.CrossEntropyLoss(reduction=reduction, label_smoothing=label_smoothing)(x, tg.Tensor(targets))
    theirs = torch.nn.CrossEntropyLoss(reduction=reduction, label_smoothing=label_smoothing)(xt, torch.tensor(targets))
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-5, atol=1e-6)
    functional = F.cross_entropy(x, tg.Tensor(targets), reduction=reduction, label_smoothing=label_smoothing)
    np.testing.assert_allclose(functional.numpy(), ours.numpy(), rtol=1e-6)
    g = _data(*ours.shape, seed=2)
    ours.backward(tg.Tensor(g))
    theirs.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_nll_and_mse_loss_modules_match_torch():
    a, b, targets = _data(6, 3), _data(6, 3, seed=1), np.array([0, 1, 2, 0, 1, 2])
    logp = F.log_softmax(tg.Tensor(a), dim=1)
    theirs_logp = torch.log_softmax(torch.tensor(a), dim=1)
    for reduction in ("mean", "sum", "none"):
        np.testing.assert_allclose(nn.NLLLoss(reduction=reduction)(logp, tg.Tensor(targets)).numpy(),
                                   torch.nn.NLLLoss(reduction=reduction)(theirs_logp, torch.tensor(targets)).numpy(),
                                   rtol=1e-6)
        np.testing.assert_allclose(nn.MSELoss(reduction=reduction)(tg.Tensor(a), tg.Tensor(b)).numpy(),
                                   torch.nn.MSELoss(reduction=reduction)(torch.tensor(a), torch.tensor(b)).numpy(),
                                   rtol=1e-6)


def test_what_cross_entropy_does_not_offer_is_named():
    x, t = tg.Tensor(_data(4, 3)), tg.Tensor(np.array([0, 1, 2, 0]))
    with pytest.raises(NotImplementedError, match="weight"):
        nn.CrossEntropyLoss(weight=tg.ones(3))
    with pytest.raises(NotImplementedError, match="ignore_index"):
        nn.CrossEntropyLoss(ignore_index=0)
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, t, label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction"):
        nn.CrossEntropyLoss(reduction="avg")


@pytest.mark.parametrize("max_norm, norm_type", [(0.5, 2.0), (100.0, 2), (0.1, float("inf")), (0.5, 1)])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    a = _data(4, 3)
    ours, theirs = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.numpy()))
        theirs.bias.copy_(torch.tensor(ours.bias.numpy()))
    (ours(tg.Tensor(a)) ** 2).sum().backward()
    (theirs(torch.tensor(a)) ** 2).sum().backward()
    # before: no nn.utils (AttributeError), so no clip_grad_norm_
    total = nn.utils.clip_grad_norm_(ours.parameters(), max_norm=max_norm, norm_type=norm_type)
    their_total = torch.nn.utils.clip_grad_norm_(theirs.parameters(), max_norm=max_norm, norm_type=norm_type)
    assert isinstance(total, tg.Tensor) and total.shape == ()
    np.testing.assert_allclose(total.item(), their_total.item(), rtol=1e-5)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-7)
    from tinygrad_cnn.torch_nn.utils import clip_grad_norm_  # torch's `from torch.nn.utils import ...`
    assert clip_grad_norm_ is nn.utils.clip_grad_norm_


def test_clip_grad_norm_refuses_what_it_cannot_do():
    model = nn.Linear(3, 2)
    assert nn.utils.clip_grad_norm_(model.parameters(), 1.0).item() == 0.0  # no gradients yet: norm 0, as torch
    model(tg.Tensor(_data(2, 3))).sum().backward()
    model.weight.grad.data[0, 0] = np.nan
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(model.parameters(), 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="norm_type"):
        nn.utils.clip_grad_norm_(model.parameters(), 1.0, norm_type="fro")


def test_dropout_takes_torch_p():
    # before: nn.Dropout(p=0.2) a TypeError (Keras' rate), nn.Dropout() one too (torch's default is p=0.5)
    assert nn.Dropout(p=0.2).rate == 0.2 and nn.Dropout().rate == 0.5 and nn.Dropout(0.3).rate == 0.3
    assert repr(torch.nn.Dropout()) == "Dropout(p=0.5, inplace=False)"
    drop = nn.Dropout(p=0.5).eval()
    np.testing.assert_array_equal(drop(tg.ones(3, 4)).numpy(), np.ones((3, 4)))
    with pytest.raises(NotImplementedError, match="inplace"):
        nn.Dropout(0.5, inplace=True)


def test_a_typical_training_loop_matches_torch():
    """Found equal, kept so it stays so: Conv2d + Linear, Adam with weight decay, StepLR, train()/eval(),
    no_grad(), argmax(dim=1), named_parameters and state_dict names, item()."""
    a, labels = _data(8, 1, 8, 8), np.arange(8) % 4

    def build(lib, functional):
        class Net(lib.Module):
            def __init__(self):
                super().__init__()
                self.conv = lib.Conv2d(1, 3, 3, padding=1)
                self.fc = lib.Linear(3 * 4 * 4, 4)

            def forward(self, x):
                return self.fc(functional.max_pool2d(functional.relu(self.conv(x)), 2).flatten(1))
        return Net()

    tg.manual_seed(0)
    ours, theirs = build(nn, F), build(torch.nn, torch.nn.functional)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    opt, their_opt = optim.Adam(ours.parameters(), lr=0.01, weight_decay=0.01), \
        torch.optim.Adam(theirs.parameters(), lr=0.01, weight_decay=0.01)
    sched, their_sched = optim.StepLR(opt, step_size=2, gamma=0.5), \
        torch.optim.lr_scheduler.StepLR(their_opt, step_size=2, gamma=0.5)
    for epoch in range(5):
        ours.train(), theirs.train()
        opt.zero_grad(set_to_none=True), their_opt.zero_grad(set_to_none=True)
        loss = nn.CrossEntropyLoss()(ours(tg.Tensor(a)), tg.Tensor(labels))
        their_loss = torch.nn.CrossEntropyLoss()(theirs(torch.tensor(a)), torch.tensor(labels))
        loss.backward(), their_loss.backward()
        opt.step(), their_opt.step()
        sched.step(), their_sched.step()
        assert sched.get_last_lr() == pytest.approx(their_sched.get_last_lr())
        assert isinstance(loss.item(), float) and loss.item() == pytest.approx(their_loss.item(), rel=1e-5)
    for k, v in ours.state_dict().items():
        np.testing.assert_allclose(v, theirs.state_dict()[k].numpy(), rtol=1e-4, atol=1e-6)
    ours.eval(), theirs.eval()
    with tg.no_grad(), torch.no_grad():
        out, their_out = ours(tg.Tensor(a)), theirs(torch.tensor(a))
        assert not out.requires_grad
        np.testing.assert_array_equal(out.argmax(dim=1).numpy(), their_out.argmax(dim=1).numpy())
        correct = out.argmax(dim=1).eq(tg.Tensor(labels)).sum().item()
        assert type(correct) is int and correct == their_out.argmax(dim=1).eq(torch.tensor(labels)).sum().item()


def test_manual_seed_makes_weights_and_dropout_repeat():
    """Found equal in kind (not in bits: the generators differ from torch's): same seed, same draws."""
    draws = []
    for _ in range(2):
        tg.manual_seed(7)
        draws.append((nn.Linear(4, 3).weight.numpy(), F.dropout(tg.ones(20), p=0.5).numpy()))
    np.testing.assert_array_equal(draws[0][0], draws[1][0])
    np.testing.assert_array_equal(draws[0][1], draws[1][1])


def test_a_frozen_weight_stays_a_parameter_and_in_the_state_dict(tmp_path):
    ours = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    theirs.load_state_dict({k.replace("layers.", ""): torch.tensor(v) for k, v in ours.state_dict().items()})
    for p in ours[0].parameters():
        p.requires_grad_(False)  # fine-tuning: freeze the first layer
    for p in theirs[0].parameters():
        p.requires_grad_(False)
    # before: the frozen weight and bias left named_parameters() AND state_dict(), so save() silently dropped them
    assert [n.replace("layers.", "") for n in ours.state_dict()] == list(theirs.state_dict())
    assert [n.replace("layers.", "") for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [p.requires_grad for p in ours.parameters()] == [p.requires_grad for p in theirs.parameters()]
    assert ours.count_params() == 4 * 2 + 2  # Keras' count: the trainable scalars only
    frozen = ours[0].weight.numpy().copy()
    opt = optim.SGD([p for p in ours.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    their_opt = torch.optim.SGD([p for p in theirs.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    a = _data(5, 3)
    for _ in range(3):
        opt.zero_grad(), their_opt.zero_grad()
        (ours(tg.Tensor(a)) ** 2).mean().backward()
        (theirs(torch.tensor(a)) ** 2).mean().backward()
        opt.step(), their_opt.step()
    np.testing.assert_array_equal(ours[0].weight.numpy(), frozen)
    for k, v in ours.state_dict().items():
        np.testing.assert_allclose(v, theirs.state_dict()[k.replace("layers.", "")].numpy(), rtol=1e-5, atol=1e-6)
    ours.save(tmp_path / "m.safetensors")
    fresh = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    fresh.load(tmp_path / "m.safetensors")  # strict: every weight is in the file
    np.testing.assert_array_equal(fresh[0].weight.numpy(), frozen)
    # an optimizer given every parameter, frozen ones too (as torch allows), leaves those alone
    opt = optim.Adam(ours.parameters(), lr=0.1)
    (ours(tg.Tensor(a)) ** 2).mean().backward()
    opt.step()
    np.testing.assert_array_equal(ours[0].weight.numpy(), frozen)
    # freeze everything, then unfreeze the head through its parameters(), the usual torch idiom
    for p in ours.parameters():
        p.requires_grad_(False)
    for p in ours[2].parameters():
        p.requires_grad_(True)
    assert [p.requires_grad for p in ours.parameters()] == [False, False, True, True]


def _linear_pair(seed=0):
    """A torch_nn.Linear and a torch.nn.Linear with the same weights."""
    tg.manual_seed(seed)
    ours, theirs = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    return ours, theirs


@pytest.mark.parametrize("make", [
    lambda lib, ps: lib.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    lambda lib, ps: lib.Adam(ps, lr=0.05, betas=(0.8, 0.99), eps=1e-7),
    lambda lib, ps: lib.Adadelta(ps, lr=1.0)])
def test_param_groups_as_torch_and_a_manual_lr_schedule(make):
    ours, theirs = _linear_pair()
    opt, their_opt = make(optim, ours.parameters()), make(torch.optim, theirs.parameters())
    # before: AttributeError ('SGD' object has no attribute 'param_groups')
    assert len(opt.param_groups) == len(their_opt.param_groups) == 1
    group, their_group = opt.param_groups[0], their_opt.param_groups[0]
    assert set(group) <= set(their_group) and {"params", "lr", "weight_decay"} <= set(group)
    for key in group:
        if key == "params":
            assert len(group[key]) == 2 and all(p is q for p, q in zip(group[key], ours.parameters()))
        else:
            assert group[key] == pytest.approx(their_group[key]), key
    x, a = tg.Tensor(_data(4, 3)), torch.tensor(_data(4, 3))
    for step in range(6):
        if step in (2, 4):  # the usual manual schedule, in both
            for g in opt.param_groups:
                g["lr"] *= 0.1
            for g in their_opt.param_groups:
                g["lr"] *= 0.1
            assert opt.lr == pytest.approx(their_opt.param_groups[0]["lr"], rel=1e-12)
        opt.zero_grad(), their_opt.zero_grad()
        (ours(x) ** 2).sum().backward()
        (theirs(a) ** 2).sum().backward()
        opt.step(), their_opt.step()
        for p, q in zip(ours.parameters(), theirs.parameters()):
            np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6)
    # a written value is checked as optimizer.lr = ... is, and an unknown key is named, not kept silently
    with pytest.raises(ValueError, match="lr must be >= 0"):
        group["lr"] = -1.0
    with pytest.raises(KeyError, match="'dampening'.*has only 'params', 'lr'"):
        group["dampening"] = 0.5
    with pytest.raises(KeyError, match="'initial_lr'"):
        group["initial_lr"]
    with pytest.raises(TypeError, match="fixed"):
        group["params"] = []
    with pytest.raises(NotImplementedError, match="one parameter group"):
        opt.add_param_group({"params": []})
    with pytest.raises(TypeError, match="parameter 0 is a dict: torch's per-group options are not offered"):
        make(optim, [{"params": ours.parameters()}])  # before: 'parameter 0 is a dict, not a Tensor'
    # the optimizer's state_dict and a schedule see the same lr as the group
    saved = opt.state_dict()
    assert saved["lr"] == group["lr"]
    group["lr"] = 0.5
    opt.load_state_dict(saved)
    assert group["lr"] == saved["lr"] and opt.param_groups[0] is group
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    sched.step()
    assert [group["lr"]] == sched.get_last_lr() == [pytest.approx(saved["lr"] * 0.5)]


def test_size_is_numpy_count_and_torch_method():
    a = _data(4, 5, 2)
    x, xt = tg.Tensor(a), torch.tensor(a)
    # before: TypeError ('int' object is not callable)
    assert x.size() == xt.size() == (4, 5, 2) and isinstance(x.size(), tuple)
    assert [x.size(d) for d in (0, 1, 2, -1, -3)] == [xt.size(d) for d in (0, 1, 2, -1, -3)]
    assert x.size(dim=1) == xt.size(dim=1) == 5
    with pytest.raises(IndexError, match="out of range"):
        x.size(3)
    with pytest.raises(TypeError, match="must be an int"):
        x.size(1.0)
    # NumPy's attribute stays: an int, as in every use the package makes of it
    assert x.size == 40 == xt.numel() == x.numel() and isinstance(x.size, int) and x.size + 1 == 41 and bool(tg.Tensor([]).size) is False
    assert repr(x.size) == "40" and f"{x.size}" == "40" and type(pickle.loads(pickle.dumps(x.size))) is int
    assert tg.Tensor(3.0).size() == tuple(torch.tensor(3.0).size()) == ()


def test_to_takes_a_dtype_as_torch():
    a = _data(2, 3)
    x = tg.Tensor(a, requires_grad=True)
    # before: TypeError (device must be a string) for a dtype, and unexpected keyword for dtype=
    for ours, theirs in [(x.to(tg.float64), torch.tensor(a).to(torch.float64)),
                         (x.to("cpu", np.float64), torch.tensor(a).to("cpu", torch.float64)),
                         (x.to(dtype=np.int64), torch.tensor(a).to(dtype=torch.int64)),
                         (x.to(device="cpu", dtype="float64"), torch.tensor(a).to(device="cpu", dtype=torch.float64)),
                         (x.to(tg.Tensor(np.zeros(1, np.int32))), torch.tensor(a).to(torch.zeros(1, dtype=torch.int32)))]:
        assert ours.dtype.name == str(theirs.dtype).replace("torch.", "") and ours.device == "cpu"
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert x.to("cpu") is x and x.to(tg.float32) is x and x.to(tg.float32, copy=True) is not x
    assert x.to("cpu", non_blocking=True) is x
    x.to(tg.float64).sum().backward()  # a float cast stays differentiable
    assert x.grad.dtype == np.float32 and x.grad.numpy().sum() == 6.0
    with pytest.raises(TypeError, match="the device comes first"):
        x.to(tg.float64, "cpu")
    with pytest.raises(TypeError, match="neither a device .* nor a dtype"):
        x.to(3)
    with pytest.raises(TypeError, match="dtype must be a dtype"):
        x.to(dtype="cpu")
    with pytest.raises(TypeError, match="not complex64"):
        x.to(np.complex64)
    with pytest.raises(ValueError, match="unknown device 'banana'"):
        x.to("banana")
    with pytest.raises(TypeError, match="device twice"):
        x.to("cpu", device="cpu")


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_with_keepdim_gives_values_and_indices_as_torch(name):
    a = _data(6, 4)
    x, xt = tg.Tensor(a), torch.tensor(a)
    # before: the values alone, so the classic example's output.max(1, keepdim=True)[1] was row 1's maximum
    for ours, theirs in [(getattr(x, name)(1, keepdim=True), getattr(xt, name)(1, keepdim=True)),
                         (getattr(x, name)(0, keepdim=False), getattr(xt, name)(0, keepdim=False)),
                         (getattr(x, name)(axis=-1, keepdim=True), getattr(xt, name)(-1, keepdim=True))]:
        np.testing.assert_array_equal(ours[0].numpy(), theirs[0].numpy())
        np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
    labels = np.arange(6) % 4
    pred, their_pred = x.max(1, keepdim=True)[1], xt.max(1, keepdim=True)[1]
    assert pred.eq(tg.Tensor(labels).view_as(pred)).sum().item() == \
        their_pred.eq(torch.tensor(labels).view_as(their_pred)).sum().item()
    # NumPy's spellings keep NumPy's answer, the values alone (a bare positional axis says so: see below)
    with pytest.warns(UserWarning, match="values alone"):
        for values in (getattr(x, name)(1), getattr(x, name)(1, True), getattr(x, name)(1, keepdims=True)):
            assert isinstance(values, tg.Tensor)
        np.testing.assert_array_equal(getattr(x, name)(1).numpy(), getattr(a, name)(1))


@pytest.mark.parametrize("name", ["max", "min"])
def test_a_bare_positional_axis_warns_that_it_is_numpys(name):
    """x.max(1)[1], torch's indices, is the second row's maximum here (NumPy's axis=1): said once per call
    site by a warning that names dim= and axis=; the spellings that say which one was meant stay quiet."""
    x = tg.Tensor(_data(6, 4))
    with pytest.warns(UserWarning, match=rf"x\.{name}\(1\) returns the values alone .* x\.{name}\(dim=1\)"):
        getattr(x, name)(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        getattr(x, name)(axis=1)
        getattr(x, name)(dim=1)
        getattr(x, name)(1, keepdim=True)
        getattr(x, name)()
        x.min(axis=0)  # (min calls max inside, by keyword)


def test_deepcopy_and_pickle_of_tensors_as_torch():
    a = _data(3, 2)
    x, xt = tg.Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    (x * x).sum().backward()
    (xt * xt).sum().backward()
    # before: TypeError "cannot pickle 'module' object" for every deepcopy or pickle of a Tensor
    for ours, theirs in [(copy.deepcopy(x), copy.deepcopy(xt)), (pickle.loads(pickle.dumps(x)), pickle.loads(pickle.dumps(xt)))]:
        assert (ours.requires_grad, ours.is_leaf, ours.grad is None) == (theirs.requires_grad, theirs.is_leaf, theirs.grad is None)
        np.testing.assert_array_equal(ours.numpy(), theirs.detach().numpy())
        if theirs.grad is not None:
            np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())
    with pytest.raises(RuntimeError, match="graph leaves") as ours_error:
        copy.deepcopy(x * 2)
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(xt * 2)
    assert "deep-copy t.detach()" in str(ours_error.value)
    # an optimizer copied with its model holds the copied parameters in both; copied alone, copies of them
    ours, theirs = _linear_pair()
    opt, their_opt = optim.SGD(ours.parameters(), lr=0.1), torch.optim.SGD(theirs.parameters(), lr=0.1)
    ours2, opt2 = copy.deepcopy((ours, opt))
    theirs2, their_opt2 = copy.deepcopy((theirs, their_opt))
    assert [p is q for p, q in zip(opt2.param_groups[0]["params"], ours2.parameters())] == \
        [p is q for p, q in zip(their_opt2.param_groups[0]["params"], theirs2.parameters())] == [True, True]
    assert [p is q for p, q in zip(copy.deepcopy(opt).params, ours.parameters())] == \
        [p is q for p, q in zip(copy.deepcopy(their_opt).param_groups[0]["params"], theirs.parameters())] == [False, False]


def test_tensor_methods_under_torch_names_match_torch():
    a, b = _data(3, 4), _data(3, 4, seed=1)
    x, y = tg.Tensor(a, requires_grad=True), tg.Tensor(b, requires_grad=True)
    xt, yt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    # before: AttributeError for each ('Tensor' object has no attribute 'dim', 'pow', 'clamp', 'long', ...)
    assert x.dim() == xt.dim() == x.ndimension() == 2 and x.is_cuda is xt.is_cuda is False
    assert x.contiguous() is x and x.t().shape == tuple(xt.t().shape) == (4, 3)
    pairs = [(x.pow(2), xt.pow(2)), (x.add(y, alpha=0.5), xt.add(yt, alpha=0.5)), (x.sub(y, alpha=2), xt.sub(yt, alpha=2)),
             (x.mul(y), xt.mul(yt)), (x.div(2.0), xt.div(2.0)), (x.clamp(min=-0.5, max=0.5), xt.clamp(min=-0.5, max=0.5)),
             (x.clamp(min=0), xt.clamp(min=0)), (x.clamp(-0.1, 0.2), xt.clamp(-0.1, 0.2)), (x.t(), xt.t()),
             (x.matmul(y.t()), xt.matmul(yt.t())), (x.mm(y.t()), xt.mm(yt.t()))]
    total, their_total = 0, 0
    for k, (ours, theirs) in enumerate(pairs):  # values, then gradients against a random upstream gradient each
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-6, atol=1e-7)
        g = _data(*ours.shape, seed=10 + k)
        total, their_total = total + (ours * tg.Tensor(g)).sum(), their_total + (theirs * torch.tensor(g)).sum()
    total.backward()
    their_total.backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y.grad.numpy(), yt.grad.numpy(), rtol=1e-5, atol=1e-6)
    for name in ("long", "int", "bool", "float", "double"):
        ours, theirs = getattr(x, name)(), getattr(xt, name)()
        assert ours.dtype.name == str(theirs.dtype).replace("torch.", "") and ours.requires_grad == theirs.requires_grad
        np.testing.assert_array_equal(ours.numpy(), theirs.detach().numpy())
    np.testing.assert_array_equal(x.ne(y).numpy(), xt.ne(yt).numpy())
    with pytest.raises(RuntimeError, match="<= 2 dimensions"):
        tg.Tensor(_data(2, 2, 2)).t()
    with pytest.raises(RuntimeError, match="<= 2 dimensions"):
        torch.tensor(_data(2, 2, 2)).t()
    with pytest.raises(RuntimeError, match="2-D"):
        tg.Tensor(_data(2, 2, 2)).mm(x)


def test_top_level_functions_match_torch():
    a = _data(3, 4)
    x, xt = tg.Tensor(a), torch.tensor(a)
    # before: AttributeError (no tg.cat, tg.max, tg.sum, tg.long, ...), and "'module' object is not callable"
    # for tg.tensor(...) and tg.device(...): those names are the package's submodules
    assert tg.cat([x, x], 1).shape == tuple(torch.cat([xt, xt], 1).shape) == (3, 8)
    np.testing.assert_array_equal(tg.cat((x, x), dim=0).numpy(), torch.cat((xt, xt), dim=0).numpy())
    for data in ([1.0, 2.0], [1, 2], [True, False], 3.5, 7, np.ones(2), np.ones(2, "float32"), np.arange(3)):
        assert tg.tensor(data).dtype.name == str(torch.tensor(data).dtype).replace("torch.", ""), data
    source = np.zeros(3, "float32")
    copied, shared = tg.tensor(source), tg.from_numpy(source)
    their_copied, their_shared = torch.tensor(source), torch.from_numpy(source)
    source[0] = 5.0
    assert copied.numpy()[0] == their_copied[0].item() == 0.0 and shared.numpy()[0] == their_shared[0].item() == 5.0
    assert tg.tensor([1.0], requires_grad=True).requires_grad and tg.tensor(x).data is not x.data
    ours, theirs = tg.max(x, 1), torch.max(xt, 1)  # the CIFAR tutorial's `_, predicted = torch.max(outputs, 1)`
    np.testing.assert_array_equal(ours[1].numpy(), theirs[1].numpy())
    np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
    np.testing.assert_array_equal(tg.min(x, dim=0, keepdim=True).indices.numpy(), torch.min(xt, dim=0, keepdim=True).indices.numpy())
    assert tg.max(x).item() == torch.max(xt).item() and tg.min(x).item() == torch.min(xt).item()
    np.testing.assert_array_equal(tg.max(x, tg.zeros(3, 4)).numpy(), torch.max(xt, torch.zeros(3, 4)).numpy())
    for name, args in [("sum", ()), ("sum", (1,)), ("mean", (0,)), ("exp", ()), ("abs", ()), ("softmax", (1,)),
                       ("log_softmax", (1,)), ("sigmoid", ()), ("tanh", ()), ("relu", ()), ("t", ())]:
        np.testing.assert_allclose(getattr(tg, name)(x, *args).numpy(), getattr(torch, name)(xt, *args).numpy(),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    # before: tg.argmax(x) without a dim was the last axis' (keras.ops.argmax here), silently not torch's flat index
    for args, kwargs in [((), {}), ((1,), {}), ((), {"dim": 0, "keepdim": True})]:
        for name in ("argmax", "argmin"):
            assert getattr(tg, name)(x, *args, **kwargs).numpy().tolist() == getattr(torch, name)(xt, *args, **kwargs).tolist()
    np.testing.assert_allclose(tg.clamp(x, min=0).numpy(), torch.clamp(xt, min=0).numpy())
    np.testing.assert_allclose(tg.mm(x, x.t()).numpy(), torch.mm(xt, xt.t()).numpy(), rtol=1e-6)
    assert tg.is_tensor(x) and not tg.is_tensor(a) and tg.numel(x) == torch.numel(xt) == 12
    for name in ("float", "double", "long", "int", "int64", "int32", "float32", "float64", "half", "uint8", "bool"):
        theirs = str(getattr(torch, name)).replace("torch.", "")
        assert getattr(tg, name) == np.dtype(theirs), name
        assert x.to(getattr(tg, name)).dtype.name == str(xt.to(getattr(torch, name)).dtype).replace("torch.", "")
    assert tg.device("cpu") == str(torch.device("cpu")) == "cpu" and x.to(tg.device("cpu")) is x
    assert tg.device("cuda", 1) == str(torch.device("cuda", 1)) == "cuda:1" and tg.device("cuda") == "cuda:0"
    assert tg.device.canonical_device("gpu") == "cuda:0"  # still the module it was
    from tinygrad_cnn.tensor import Tensor  # and its imports are unchanged
    assert Tensor is tg.Tensor
    with pytest.raises(TypeError, match="from_numpy: expected a numpy.ndarray"):
        tg.from_numpy([1.0])


def test_set_grad_enabled_and_inference_mode_as_torch():
    x, xt = tg.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    for phase in ("train", "val"):  # the transfer-learning tutorial's loop
        with tg.set_grad_enabled(phase == "train"), torch.set_grad_enabled(phase == "train"):
            assert (x * 2).requires_grad == (xt * 2).requires_grad == (phase == "train")
        assert tg.is_grad_enabled() and torch.is_grad_enabled()
    tg.set_grad_enabled(False), torch.set_grad_enabled(False)  # a plain call switches for good, in both
    try:
        assert not tg.is_grad_enabled() and not torch.is_grad_enabled()
    finally:
        tg.set_grad_enabled(True), torch.set_grad_enabled(True)
    with tg.inference_mode(), torch.inference_mode():
        assert not (x * 2).requires_grad and not (xt * 2).requires_grad

    @tg.inference_mode()
    def predict(t):
        return t * 2
    assert not predict(x).requires_grad and tg.is_grad_enabled()
    with pytest.raises(TypeError, match="mode must be True or False"):
        tg.set_grad_enabled("yes")


def test_module_children_and_requires_grad_as_torch():
    ours = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    # before: AttributeError ('Sequential' object has no attribute 'children' / 'requires_grad_')
    assert [type(m).__name__ for m in ours.children()] == [type(m).__name__ for m in theirs.children()]
    assert ours.requires_grad_(False) is ours and theirs.requires_grad_(False) is theirs
    assert [p.requires_grad for p in ours.parameters()] == [p.requires_grad for p in theirs.parameters()] == [False] * 4
    ours.children()[2].requires_grad_(), list(theirs.children())[2].requires_grad_()
    assert [p.requires_grad for p in ours.parameters()] == [p.requires_grad for p in theirs.parameters()]
    assert len(ours.parameters()) == 4 and ours.count_params() == 4 * 2 + 2


def test_an_ema_of_the_weights_matches_torch():
    """The EMA habit: ema = copy.deepcopy(model), then ema_p.mul_(d).add_(p, alpha=1 - d) under no_grad."""
    ours, theirs = _linear_pair()
    ema, their_ema = copy.deepcopy(ours), copy.deepcopy(theirs)
    opt, their_opt = optim.SGD(ours.parameters(), lr=0.1), torch.optim.SGD(theirs.parameters(), lr=0.1)
    x = _data(4, 3)
    for _ in range(3):
        opt.zero_grad(), their_opt.zero_grad()
        (ours(tg.Tensor(x)) ** 2).mean().backward()
        (theirs(torch.tensor(x)) ** 2).mean().backward()
        opt.step(), their_opt.step()
        with tg.no_grad(), torch.no_grad():  # before: TypeError (add_() got an unexpected keyword argument 'alpha')
            for e, p in zip(ema.parameters(), ours.parameters()):
                e.mul_(0.9).add_(p, alpha=0.1)
            for e, p in zip(their_ema.parameters(), theirs.parameters()):
                e.mul_(0.9).add_(p, alpha=0.1)
            for e, p in zip(ema.parameters(), ours.parameters()):
                e.sub_(p, alpha=0.0)
    for e, f in zip(ema.parameters(), their_ema.parameters()):
        np.testing.assert_allclose(e.numpy(), f.detach().numpy(), rtol=1e-6, atol=1e-7)
    with pytest.raises(TypeError, match="alpha must be a number"):
        ema.weight.add_(ours.weight, alpha="0.1")


def test_torch_layers_of_a_cnn_match_torch():
    """nn.MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm2d/1d (torch's momentum, eps and unbiased running
    variance), ReLU(inplace=True), LogSoftmax(dim), Flatten, Identity, ModuleList under torch's names."""
    def build(lib):
        class Net(lib.Module):
            def __init__(self):
                super().__init__()
                self.features = lib.Sequential(lib.Conv2d(2, 4, 3, padding=1), lib.BatchNorm2d(4, momentum=0.2),
                                               lib.ReLU(inplace=True), lib.MaxPool2d(2, 2), lib.Conv2d(4, 4, 3, padding=1),
                                               lib.AvgPool2d(kernel_size=2), lib.AdaptiveAvgPool2d((1, 1)))
                self.heads = lib.ModuleList([lib.Linear(4, 6), lib.Identity(), lib.BatchNorm1d(6)])
                self.out = lib.Sequential(lib.Flatten(), lib.Linear(6, 3), lib.LogSoftmax(dim=1))

            def forward(self, x):
                x = lib.Flatten()(self.features(x))
                for head in self.heads:
                    x = head(x)
                return self.out(x)
        return Net()

    tg.manual_seed(0)
    # before: AttributeError (torch_nn had no MaxPool2d, BatchNorm2d, ...), TypeError for ReLU(inplace=True)
    ours, theirs = build(nn), build(torch.nn)
    keras_names = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}

    def theirs_name(name):
        *head, last = name.replace("layers.", "").split(".")
        return ".".join(head + [keras_names.get(last, last)])
    their_state = theirs.state_dict()
    theirs.load_state_dict({**their_state, **{theirs_name(k): torch.tensor(v) for k, v in ours.state_dict().items()}})
    assert sorted(theirs_name(n) for n, _ in ours.named_parameters()) == sorted(n for n, _ in theirs.named_parameters())
    opt, their_opt = optim.SGD(ours.parameters(), lr=0.1), torch.optim.SGD(theirs.parameters(), lr=0.1)
    x, labels = _data(5, 2, 8, 8), np.arange(5) % 3
    for _ in range(3):
        ours.train(), theirs.train()
        opt.zero_grad(), their_opt.zero_grad()
        loss = F.nll_loss(ours(tg.Tensor(x)), tg.Tensor(labels))
        their_loss = torch.nn.functional.nll_loss(theirs(torch.tensor(x)), torch.tensor(labels))
        loss.backward(), their_loss.backward()
        opt.step(), their_opt.step()
        assert loss.item() == pytest.approx(their_loss.item(), rel=1e-5)
    their_state = theirs.state_dict()
    for name, value in ours.state_dict().items():
        np.testing.assert_allclose(value, their_state[theirs_name(name)].numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
    ours.eval(), theirs.eval()
    with tg.no_grad(), torch.no_grad():
        np.testing.assert_allclose(ours(tg.Tensor(x)).numpy(), theirs(torch.tensor(x)).numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(NotImplementedError, match="ceil_mode=True is not offered"):
        nn.AvgPool2d(2, ceil_mode=True)  # pooling's padding is offered (tests/test_torch_review.py)
    with pytest.raises(TypeError, match="give dim="):
        nn.Softmax()
    with pytest.raises(ValueError, match="expects 4-D input"):
        nn.BatchNorm2d(3)(tg.Tensor(_data(2, 3)))
    with pytest.raises(NotImplementedError, match="output_size=2"):
        nn.AdaptiveAvgPool2d(2)
    assert not hasattr(nn, "MaxPool2D") and not hasattr(nn, "AvgPool2D")  # no two names a letter's case apart


def test_init_functions_and_apply_as_torch():
    order, their_order = [], []
    ours = nn.Sequential(nn.Conv2d(3, 64, 3), nn.ReLU(), nn.Linear(256, 128))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3), torch.nn.ReLU(), torch.nn.Linear(256, 128))

    def init_weights(m, lib, log):  # the usual weight-initialisation function
        log.append(type(m).__name__)
        if isinstance(m, lib.Conv2d):
            lib.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            lib.init.zeros_(m.bias)
        elif isinstance(m, lib.Linear):
            lib.init.xavier_uniform_(m.weight, gain=lib.init.calculate_gain("tanh"))
            lib.init.constant_(m.bias, 0.5)
    # before: AttributeError ('Sequential' object has no attribute 'apply'; no init.kaiming_normal_, ...)
    assert ours.apply(lambda m: init_weights(m, nn, order)) is ours
    theirs.apply(lambda m: init_weights(m, torch.nn, their_order))
    assert order == their_order == ["Conv2d", "ReLU", "Linear", "Sequential"]
    conv, linear = ours[0], ours[2]
    assert not conv.bias.numpy().any() and (linear.bias.numpy() == 0.5).all() and conv.weight.requires_grad
    # the same distributions (not the same draws): kaiming's std, xavier's bound
    assert conv.weight.numpy().std() == pytest.approx(theirs[0].weight.detach().numpy().std(), rel=0.06)
    bound = 5 / 3 * np.sqrt(6 / (256 + 128))
    assert np.abs(linear.weight.numpy()).max() <= bound and np.abs(theirs[2].weight.detach().numpy()).max() <= bound
    assert np.abs(linear.weight.numpy()).max() > 0.99 * bound
    for args in [("relu",), ("leaky_relu", 0.2), ("tanh",), ("sigmoid",), ("linear",), ("selu",)]:
        assert nn.init.calculate_gain(*args) == pytest.approx(torch.nn.init.calculate_gain(*args))
    for fn, args in [("uniform_", (-0.1, 0.2)), ("normal_", (1.0, 0.1)), ("kaiming_uniform_", ()), ("ones_", ())]:
        w = getattr(nn.init, fn)(tg.zeros(400, 300), *args)
        their_w = getattr(torch.nn.init, fn)(torch.zeros(400, 300), *args)
        assert w.numpy().mean() == pytest.approx(their_w.mean().item(), abs=0.01)
        assert w.numpy().std() == pytest.approx(their_w.std().item(), rel=0.02, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        nn.init.xavier_uniform_(tg.zeros(3))
    with pytest.raises(AttributeError, match="init.normal_"):
        tg.zeros(3).normal_(0, 1)
    assert optim.SGD(ours.parameters()).lr == torch.optim.SGD(theirs.parameters()).defaults["lr"]  # before: TypeError


def test_next_of_parameters_and_init_of_weight_data_as_torch():
    ours = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(8, 2))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Linear(8, 2))
    # before: TypeError ('list' object is not an iterator) for the habit next(model.parameters()).device
    first, their_first = next(ours.parameters()), next(theirs.parameters())
    assert first.shape == tuple(their_first.shape) and first.device == str(their_first.device) == "cpu"
    params, their_params = ours.parameters(), theirs.parameters()
    assert [next(params).shape for _ in range(2)] == [tuple(next(their_params).shape) for _ in range(2)]
    assert next(ours.named_parameters())[0].replace("layers.", "") == next(theirs.named_parameters())[0]
    assert len(ours.parameters()) == len(list(theirs.parameters())) == 6  # still a list here

    def weights_init(m, lib):  # the DCGAN tutorial's, on the weight's .data
        if isinstance(m, lib.Conv2d):
            lib.init.normal_(m.weight.data, 0.0, 0.02)
        elif isinstance(m, lib.BatchNorm2d):
            lib.init.normal_((m.gamma if lib is nn else m.weight).data, 1.0, 0.02)
            lib.init.constant_((m.beta if lib is nn else m.bias).data, 0)
    # before: TypeError (expected a Tensor, got ndarray): .data is the array here
    ours.apply(lambda m: weights_init(m, nn))
    theirs.apply(lambda m: weights_init(m, torch.nn))
    assert ours[0].weight.numpy().std() == pytest.approx(theirs[0].weight.detach().std().item(), rel=0.15)
    assert abs(ours[0].weight.numpy().mean()) < 0.01 and not ours[1].beta.numpy().any()
    assert ours[1].gamma.numpy().mean() == pytest.approx(1.0, abs=0.03)


def test_parameter_register_and_clip_grad_value_as_torch():
    def build(lib, t):
        class Scale(lib.Module):  # a custom module with its own weights, as torch users write one
            def __init__(self):
                super().__init__()
                self.w = lib.Parameter(t.tensor(_data(3, 2)))
                self.frozen = lib.Parameter(t.zeros(2), requires_grad=False)
                self.register_parameter("b", lib.Parameter(t.ones(2)))
                self.add_module("head", lib.Linear(2, 2))
                self.register_buffer("count", t.zeros(1))

            def forward(self, x):
                return self.head(x @ self.w + self.b + self.frozen)
        return Scale()
    tg.manual_seed(0)
    # before: AttributeError (no nn.Parameter, register_parameter, add_module, buffers, clip_grad_value_)
    ours, theirs = build(nn, tg), build(torch.nn, torch)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()] == \
        ["w", "frozen", "b", "head.weight", "head.bias"]
    assert [p.requires_grad for p in ours.parameters()] == [p.requires_grad for p in theirs.parameters()]
    assert len(ours.buffers()) == len(list(theirs.buffers())) == 1
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = _data(4, 3, seed=3)
    (ours(tg.Tensor(x)) ** 2).sum().backward()
    (theirs(torch.tensor(x)) ** 2).sum().backward()
    nn.utils.clip_grad_value_(ours.parameters(), 0.5)
    torch.nn.utils.clip_grad_value_(theirs.parameters(), 0.5)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert (p.grad is None) == (q.grad is None)
        if p.grad is not None:
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-6)
    source = tg.zeros(2)
    shared = nn.Parameter(source)  # torch's Parameter shares the tensor's memory
    with tg.no_grad():
        shared.add_(1.0)
    assert source.numpy().tolist() == [1.0, 1.0] and shared.is_leaf and shared.requires_grad
    with pytest.raises(TypeError, match="must be a Module"):
        ours.add_module("bad", 3)
    with pytest.raises(ValueError, match="clip_value"):
        nn.utils.clip_grad_value_(ours.parameters(), -1)


def _a_users_script(torch_, nn_, F_, optim_, init_state, path):
    """One training script, written once as a PyTorch user writes it, run on torch and on tinygrad_cnn:
    torch.device, torch.tensor, nn.Module with Conv2d/ReLU(inplace)/MaxPool2d/Dropout/Linear, SGD with momentum,
    StepLR, clip_grad_norm_, train()/eval(), no_grad, argmax(dim, keepdim), eq/view_as, torch.max(x, 1),
    torch.cat, tolist, copy.deepcopy of the best model, torch.save/torch.load of its state_dict."""
    device = torch_.device("cpu")

    class Net(nn_.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn_.Conv2d(1, 4, 3, 1)
            self.conv2 = nn_.Conv2d(4, 8, 3, 1)
            self.pool = nn_.MaxPool2d(2)
            self.relu = nn_.ReLU(inplace=True)
            self.dropout = nn_.Dropout(0.0)
            self.fc1 = nn_.Linear(8 * 4 * 4, 16)
            self.fc2 = nn_.Linear(16, 10)

        def forward(self, x):
            x = self.relu(self.conv1(x))
            x = self.pool(self.relu(self.conv2(x)))
            x = torch_.flatten(self.dropout(x), 1)
            return F_.log_softmax(self.fc2(F_.relu(self.fc1(x))), dim=1)

    model = Net().to(device)
    model.load_state_dict({k: torch_.tensor(v) for k, v in init_state.items()})
    optimizer = optim_.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = optim_.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    data = torch_.tensor(_data(12, 1, 12, 12, seed=5))
    target = torch_.tensor(np.arange(12) % 10)
    best_acc, best_model, history = -1.0, None, []
    for epoch in range(3):
        model.train()
        for i in range(0, len(data), 4):
            x, y = data[i:i + 4].to(device), target[i:i + 4].to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = F_.nll_loss(model(x), y)
            loss.backward()
            nn_.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
        scheduler.step()
        model.eval()
        correct, test_loss, preds = 0, 0.0, []
        with torch_.no_grad():
            output = model(data)
            test_loss += F_.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
            preds.append(torch_.max(output, 1)[1])
        accuracy = correct / len(data)
        if accuracy > best_acc:
            best_acc, best_model = accuracy, copy.deepcopy(model)
        history.append((test_loss, correct, torch_.cat(preds).tolist(), scheduler.get_last_lr()[0]))
    torch_.save(best_model.state_dict(), path)
    reloaded = Net()
    reloaded.load_state_dict(torch_.load(path))
    state = {k: np.asarray(v.cpu().numpy() if hasattr(v, "cpu") else v) for k, v in reloaded.state_dict().items()}
    return history, state, best_acc


def test_a_users_whole_training_script_runs_unchanged_and_matches_torch(tmp_path):
    tg.manual_seed(0)
    init_state = dict(nn.Sequential(nn.Conv2d(1, 4, 3, 1), nn.Conv2d(4, 8, 3, 1), nn.Linear(128, 16),
                                    nn.Linear(16, 10)).state_dict())
    init_state = {["conv1", "conv2", "fc1", "fc2"][int(name[0])] + name[1:]: value for name, value in init_state.items()}
    # before: 'module' object is not callable (torch.device, torch.tensor), then no MaxPool2d, ReLU(inplace),
    # torch.max(x, 1), torch.cat, copy.deepcopy, torch.save/load, ...
    ours = _a_users_script(tg, nn, F, optim, init_state, tmp_path / "best.safetensors")
    theirs = _a_users_script(torch, torch.nn, torch.nn.functional, torch.optim, init_state, tmp_path / "best.pt")
    for (loss, correct, preds, lr), (their_loss, their_correct, their_preds, their_lr) in zip(ours[0], theirs[0]):
        assert loss == pytest.approx(their_loss, rel=1e-4) and lr == pytest.approx(their_lr, rel=1e-12)
        assert correct == their_correct and preds == their_preds
    assert ours[2] == theirs[2] and sorted(ours[1]) == sorted(theirs[1])
    for k, v in ours[1].items():
        np.testing.assert_allclose(v, theirs[1][k], rtol=1e-4, atol=1e-6, err_msg=k)


def test_module_double_float_and_to_dtype_as_torch():
    tg.manual_seed(0)
    ours = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(18, 3))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU(), torch.nn.Flatten(),
                                 torch.nn.Linear(18, 3))
    names = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
    theirs.load_state_dict({**theirs.state_dict(), **{k.replace("layers.", "").rsplit(".", 1)[0] + "." +
                            names.get(k.rsplit(".", 1)[1], k.rsplit(".", 1)[1]): torch.tensor(v)
                            for k, v in ours.state_dict().items()}})
    opt = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    x = _data(4, 1, 5, 5).astype("float64")
    (ours(tg.Tensor(x.astype("float32"))) ** 2).mean().backward()
    opt.step()  # the optimizer has laid the float32 weights out in its buffers
    with torch.no_grad():
        for p, q in zip(ours.parameters(), theirs.parameters()):
            q.copy_(torch.tensor(p.numpy()))
    # before: AttributeError ('Sequential' object has no attribute 'double'), and to(float64) a TypeError
    assert ours.double() is ours and theirs.double() is theirs
    assert {t.dtype.name for _, t in ours.named_parameters()} == {"float64"} == \
        {str(t.dtype).replace("torch.", "") for t in theirs.parameters()}
    ours.train(), theirs.train()
    out, their_out = ours(tg.Tensor(x)), theirs(torch.tensor(x))
    assert out.dtype == np.float64 and their_out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), their_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    opt.zero_grad()
    (out ** 2).mean().backward()
    opt.step()  # the optimizer lays the float64 weights out again
    assert ours[0].weight.dtype == np.float64 and ours[0].weight.grad.dtype == np.float64
    assert ours.to(tg.float32) is ours and ours[4].weight.dtype == np.float32 and ours(tg.Tensor(x)).dtype == np.float32
    assert ours.to("cpu", tg.float64)[4].bias.dtype == np.float64 and ours.float()[1].moving_mean.dtype == np.float32
    with pytest.raises(TypeError, match="floating-point"):
        ours.to(tg.long)


def test_torch_keys_of_an_optimizer_state_dict_say_where_they_are():
    ours, theirs = _linear_pair()
    opt, their_opt = optim.Adam(ours.parameters(), lr=0.01), torch.optim.Adam(theirs.parameters(), lr=0.01)
    assert their_opt.state_dict()["param_groups"][0]["lr"] == 0.01
    # before: KeyError: 'param_groups', naming nothing else
    with pytest.raises(KeyError, match=r"state_dict\(\) here is flat.*state_dict\(\)\['lr'\]"):
        opt.state_dict()["param_groups"]
    assert opt.state_dict()["lr"] == opt.param_groups[0]["lr"] == 0.01 and opt.state_dict().get("state") is None
    with pytest.raises(KeyError, match="^'nope'$"):
        opt.state_dict()["nope"]


@pytest.mark.parametrize("drop_last", [False, True])
def test_torch_utils_data_batches_as_torch(drop_last):
    from tinygrad_cnn.utils.data import DataLoader, Dataset, TensorDataset  # torch's import path, before: no module
    x, y = _data(7, 2, 3), np.arange(7) % 3

    def pairs(lib, loader_cls, dataset):
        return [tuple(np.asarray(t.numpy() if hasattr(t, "numpy") else t) for t in batch)
                for batch in loader_cls(dataset, batch_size=3, drop_last=drop_last)]

    def make_dataset(base, to_sample):
        class Pairs(base):  # a user's Dataset: a NumPy image and a Python int label per sample
            def __len__(self):
                return len(x)

            def __getitem__(self, i):
                return to_sample(x[i]), int(y[i]), 0.5 * i
        return Pairs()
    for ours_ds, theirs_ds in [(TensorDataset(tg.tensor(x), tg.tensor(y)), torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y))),
                               (make_dataset(Dataset, np.asarray), make_dataset(torch.utils.data.Dataset, np.asarray)),
                               (make_dataset(Dataset, tg.tensor), make_dataset(torch.utils.data.Dataset, torch.tensor))]:
        ours, theirs = pairs(tg, DataLoader, ours_ds), pairs(torch, torch.utils.data.DataLoader, theirs_ds)
        assert len(ours) == len(theirs) == len(DataLoader(ours_ds, batch_size=3, drop_last=drop_last))
        for batch, their_batch in zip(ours, theirs):
            for a, b in zip(batch, their_batch):
                assert a.dtype == b.dtype and a.shape == b.shape
                np.testing.assert_array_equal(a, b)
    # shuffled: each epoch a permutation, repeated by the same manual_seed (as torch.manual_seed repeats torch's)
    loader = DataLoader(TensorDataset(tg.tensor(y)), batch_size=2, shuffle=True)
    tg.manual_seed(3)
    first = [b[0].tolist() for b in loader]
    tg.manual_seed(3)
    assert [b[0].tolist() for b in loader] == first and sorted(sum(first, [])) == sorted(y.tolist())
    assert len(loader.dataset) == 7
    with pytest.raises(TypeError, match=r"tinygrad_cnn\.data\.DataLoader\(x, y"):
        DataLoader(np.zeros((3, 2)).tolist().__iter__())
    with pytest.raises(ValueError, match="one first size"):
        TensorDataset(tg.zeros(3), tg.zeros(4))
