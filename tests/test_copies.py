"""copy.deepcopy and pickle of tensors, models and optimizers, as a PyTorch user's code takes them: the
"best_model = copy.deepcopy(model)" snapshot, an EMA copy, copying a model with its optimizer. The copies
are independent of the originals, and a copied optimizer steps its copied model as the original would."""
import copy
import pickle

import numpy as np
import pytest

import tinygrad_cnn as tg
import tinygrad_cnn.torch_nn as nn
from tinygrad_cnn import optim
from tinygrad_cnn.nn import functional as F
from conftest import DEVICES

pytestmark = pytest.mark.usefixtures("kernel_mode")  # the optimizers' flat buffers (kernels) and the reference loop


def _data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


class Net(nn.Module):  # at module level, so that pickle finds the class
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 3 * 3, 3)
        self.drop = nn.Dropout(0.0)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        return F.log_softmax(self.fc(self.drop(tg.flatten(x, 1))), dim=1)


def _train(model, opt, steps, seed=1):
    x, y = tg.Tensor(_data(4, 1, 6, 6, seed=seed)), tg.Tensor(np.arange(4) % 3)
    x, y = x.to(model.fc.weight.device), y.to(model.fc.weight.device)
    for _ in range(steps):
        opt.zero_grad()
        F.nll_loss(model(x), y).backward()
        opt.step()


def _weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("device", DEVICES)
def test_deepcopy_of_a_leaf_is_independent_and_keeps_grad_and_device(device):
    x = tg.Tensor(_data(3, 4), device=device, requires_grad=True)
    (x * x).sum().backward()
    # before: TypeError "cannot pickle 'module' object"
    y = copy.deepcopy(x)
    assert y is not x and y.is_leaf and y.requires_grad and y.device == x.device == tg.device.canonical_device(device)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    np.testing.assert_array_equal(y.grad.numpy(), x.grad.numpy())
    before = x.numpy().copy()
    with tg.no_grad():
        y.add_(1.0)
        y.grad.mul_(0.0)
    np.testing.assert_array_equal(x.numpy(), before)  # own memory, own gradient
    assert x.grad.numpy().any()
    a, b = copy.deepcopy([x, x])  # one object copied once (the memo), as shared weights need
    assert a is b
    plain = copy.deepcopy(tg.Tensor(np.arange(3)))  # an integer tensor, never requiring grad
    assert plain.dtype == np.arange(3).dtype and not plain.requires_grad and plain.grad is None


def test_deepcopy_of_an_ops_result_is_refused_as_torch_refuses_it():
    x = tg.Tensor(_data(2, 2), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"graph leaves.*made by Mul.*t\.detach\(\)"):
        copy.deepcopy(x * 2)
    np.testing.assert_array_equal(copy.deepcopy((x * 2).detach()).numpy(), x.numpy() * 2)
    with tg.no_grad():
        assert not copy.deepcopy(x * 2).requires_grad  # made under no_grad: a leaf, copied


def test_best_model_snapshot_survives_more_training():
    tg.manual_seed(0)
    model = Net()
    opt = optim.Adam(model.parameters(), lr=0.05)
    _train(model, opt, 3)  # the optimizer's first step makes the weights views of its flat buffer
    best, snapshot = copy.deepcopy(model), _weights(model)
    assert type(best) is Net and best.fc is not model.fc and best.training == model.training
    _train(model, opt, 3)
    for k, v in best.state_dict().items():
        np.testing.assert_array_equal(v, snapshot[k])  # before the fix: no copy at all
        assert not np.array_equal(v, model.state_dict()[k])
    # the copy trains on its own, and the original does not move
    trained = _weights(model)
    _train(best, optim.SGD(best.parameters(), lr=0.1), 2)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, trained[k])
    assert [n for n, _ in best.named_parameters()] == [n for n, _ in model.named_parameters()]


def test_deepcopy_keeps_tied_weights_tied_and_frozen_weights_frozen():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    model[1].weight = model[0].weight  # tied
    model[0].bias.requires_grad_(False)
    twin = copy.deepcopy(model)
    assert twin[1].weight is twin[0].weight and twin[0].weight is not model[0].weight
    assert [n for n, _ in twin.named_parameters()] == [n for n, _ in model.named_parameters()]
    assert [p.requires_grad for p in twin.parameters()] == [p.requires_grad for p in model.parameters()]


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps, lr=0.05, weight_decay=0.01),
                                  lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True)])
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_model_and_optimizer_go_on_as_the_originals(make, how):
    tg.manual_seed(0)
    model = Net()
    opt = make(model.parameters())
    _train(model, opt, 2)
    copier = copy.deepcopy if how == "deepcopy" else lambda o: pickle.loads(pickle.dumps(o))
    # before: TypeError "cannot pickle 'module' object" (a tensor's array module, the optimizer's flat buffers)
    model2, opt2 = copier((model, opt))
    assert all(p is q for p, q in zip(opt2.params, model2.parameters()))
    assert all(p is not q for p, q in zip(opt2.params, model.parameters()))
    assert opt2.lr == opt.lr and type(opt2) is type(opt)
    _train(model, opt, 2, seed=2)
    _train(model2, opt2, 2, seed=2)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(model2.state_dict()[k], v)  # the momentum/moments came along
    saved, saved2 = opt.state_dict(), opt2.state_dict()
    assert saved.keys() == saved2.keys()
    for k in saved:
        np.testing.assert_array_equal(saved2[k], saved[k])


def test_a_copied_optimizer_alone_holds_copies_of_the_parameters_as_torch():
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(tg.Tensor(_data(2, 3))).sum().backward()
    opt.step()
    twin = copy.deepcopy(opt)
    assert all(p is not q for p, q in zip(twin.params, model.parameters()))
    twin.param_groups[0]["lr"] = 0.5
    assert opt.lr == 0.1 and twin.lr == 0.5 and twin.param_groups[0]["lr"] == 0.5
    np.testing.assert_array_equal(twin.state_dict()["state.0.momentum_buffer"],
                                  opt.state_dict()["state.0.momentum_buffer"])


@pytest.mark.parametrize("device", DEVICES)
def test_pickle_keeps_values_device_and_requires_grad_not_the_graph(device):
    x = tg.Tensor(_data(3, 2), device=device, requires_grad=True)
    (x * 3).sum().backward()
    y = pickle.loads(pickle.dumps(x))
    assert y.device == x.device and y.requires_grad and y.is_leaf and y.grad is None  # torch drops .grad too
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    z = pickle.loads(pickle.dumps(x * 2))  # torch pickles an op's result too: a leaf that requires grad
    assert z.is_leaf and z.requires_grad
    np.testing.assert_array_equal(z.numpy(), x.numpy() * 2)


def test_a_pickled_model_gives_the_same_outputs():
    tg.manual_seed(0)
    model = Net().eval()
    # before: "Can't pickle local object '_torch_uniform.<locals>.draw'" (Conv2d's and Linear's initialiser)
    again = pickle.loads(pickle.dumps(model))
    x = tg.Tensor(_data(2, 1, 6, 6))
    np.testing.assert_array_equal(again(x).numpy(), model(x).numpy())
    assert not again.training and again.conv.weight is not model.conv.weight
