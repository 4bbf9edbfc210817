"""A sweep of the code PyTorch's beginner material writes for a small CNN (the Quickstart, Tensors, Autograd,
Build the Neural Network, Optimizing Model Parameters and Save and Load pages, "What is torch.nn really?", the
mnist example): each habit that failed or differed here, as the user writes it. Values are asserted directly
(the tests run without torch); the side-by-side parts skip without torch."""
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_cnn as torch
import tinygrad_cnn.torch_nn as nn
from tinygrad_cnn.nn import functional as F
from tinygrad_cnn.testing import gradcheck
from tinygrad_cnn.testing.strategies import arrays, away_from

# ---------------------------------------------------------------- Tensors page


def test_type_casts_as_the_quickstart_counts_correct_predictions():
    pred = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    y = torch.tensor([1, 1, 1])
    correct = (pred.argmax(1) == y).type(torch.float).sum().item()
    assert correct == 2.0 and isinstance(correct, float)
    assert y.type() == "torch.LongTensor" and pred.type() == "torch.FloatTensor"
    assert y.type(torch.float64).dtype == np.float64
    assert y.type("torch.FloatTensor").dtype == np.float32
    with pytest.raises(TypeError, match="torch.FloatTensor"):
        y.type("torch.NoSuchTensor")
    w = torch.ones(2, requires_grad=True)
    (w.type(torch.float64) * 3).sum().backward()  # a cast in the graph, as torch's
    assert w.grad.tolist() == [3.0, 3.0]


def test_half_is_floating_point_and_reshape_as():
    x = torch.tensor([1, 2, 3, 4])
    assert x.half().dtype == np.float16 and x.half().tolist() == [1.0, 2.0, 3.0, 4.0]
    assert not x.is_floating_point() and x.float().is_floating_point() and torch.is_floating_point(x.half())
    assert x.reshape_as(torch.zeros(2, 2)).tolist() == [[1, 2], [3, 4]]


def test_the_like_factories_the_tensors_page_uses():
    x = torch.tensor([[1, 2], [3, 4]])
    torch.manual_seed(0)
    r = torch.rand_like(x, dtype=torch.float)
    assert r.shape == (2, 2) and r.dtype == np.float32 and 0 <= r.min().item() and r.max().item() < 1
    torch.manual_seed(0)
    assert torch.rand_like(x, dtype=torch.float).tolist() == r.tolist()  # the global generator, seeded
    with pytest.raises(TypeError, match="dtype=torch.float"):
        torch.rand_like(x)  # torch refuses an integer tensor's rand_like too
    assert torch.randn_like(r).shape == (2, 2) and torch.randn_like(r.double()).dtype == np.float64
    assert torch.full_like(r, 3).tolist() == [[3.0, 3.0], [3.0, 3.0]] and torch.full_like(x, 7).dtype == np.int64
    assert torch.empty(2, 3).shape == (2, 3) and torch.empty((4,)).dtype == np.float32
    assert torch.empty_like(x).shape == (2, 2) and torch.empty_like(x).dtype == np.int64


def test_full_takes_its_dtype_from_the_value_as_torch():
    assert torch.full((2, 2), 7).dtype == np.int64 and torch.full((2, 2), 7).tolist() == [[7, 7], [7, 7]]
    assert torch.full((2,), 7.0).dtype == np.float32 and torch.full((2,), True).dtype == np.bool_
    assert torch.full((2,), 7, dtype=torch.float).dtype == np.float32
    labels = torch.full((3,), 2)  # integer labels a loss takes, as torch's
    assert F.cross_entropy(torch.zeros(3, 4), labels).item() == pytest.approx(math.log(4))


def test_randint_randperm_linspace():
    torch.manual_seed(3)
    idx = torch.randint(10, size=(1,)).item()  # the Datasets page's sample index
    assert isinstance(idx, int) and 0 <= idx < 10
    r = torch.randint(2, 5, (200,))
    assert r.dtype == np.int64 and r.shape == (200,) and set(r.tolist()) == {2, 3, 4}
    assert torch.randint(3, (2, 2)).shape == (2, 2) and torch.randint(0, 3, size=(4,)).shape == (4,)
    torch.manual_seed(1)
    a = torch.randint(100, (5,)).tolist()
    torch.manual_seed(1)
    assert torch.randint(100, (5,)).tolist() == a
    with pytest.raises(TypeError, match=r"randint\(low, high, size\)"):
        torch.randint(5)
    with pytest.raises(ValueError, match="greater than low"):
        torch.randint(5, 5, (2,))
    p = torch.randperm(6)
    assert p.dtype == np.int64 and sorted(p.tolist()) == list(range(6))
    x = torch.arange(6.0)
    assert sorted(x[torch.randperm(6)].tolist()) == x.tolist()  # a manual shuffle
    assert torch.linspace(0, 1, 5).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert torch.linspace(0, 1, 5).dtype == np.float32 and torch.linspace(-1, 1, 3, dtype=torch.float64).dtype == np.float64


def test_out_arguments_and_top_level_names_of_the_tensors_page():
    t = torch.arange(4.0).reshape(2, 2)
    y3 = torch.rand_like(t)
    assert torch.matmul(t, t.T, out=y3) is y3 and y3.tolist() == [[1.0, 3.0], [3.0, 13.0]]
    z3 = torch.rand_like(t)
    torch.mul(t, t, out=z3)
    assert z3.tolist() == [[0.0, 1.0], [4.0, 9.0]] and torch.mul(t, 2).tolist() == [[0.0, 2.0], [4.0, 6.0]]
    with pytest.raises(ValueError, match="out must be a Tensor of the result's shape"):
        torch.mul(t, t, out=torch.zeros(3))
    assert torch.clip(torch.tensor([-1.0, 2.0]), 0, 1).tolist() == [0.0, 1.0]
    assert torch.add(t, t).tolist() == [[0.0, 2.0], [4.0, 6.0]]


def test_torch_all_and_any_give_bool_tensors():
    x = torch.tensor([[1.0, 0.0], [2.0, 3.0]])
    assert torch.all(x >= 0).item() is True and torch.any(x < 0).item() is False
    assert torch.all(x > 0, dim=1).tolist() == [False, True] and torch.any(x > 2, 0, keepdim=True).shape == (1, 2)
    assert torch.all(x > 0).dtype == np.bool_


def test_expand_minus_one_keeps_an_axis():
    x = torch.tensor([[1], [2]])
    assert x.expand(-1, 3).tolist() == [[1, 1, 1], [2, 2, 2]]
    assert x.expand(4, -1, 3).shape == (4, 2, 3)
    with pytest.raises(ValueError, match="cannot broadcast"):
        x.expand(-1, 2, 3)  # -1 for an axis x has not (torch refuses it too)


# ---------------------------------------------------------------- devices


def test_a_device_reads_type_and_index_as_torchs():
    x = torch.ones(2)
    assert x.device == "cpu" and x.device.type == "cpu" and x.device.index is None
    assert (x * 2).device.type == "cpu" and x.to("cpu").device.type == "cpu"
    d = torch.device("cuda", 1)
    assert d == "cuda:1" and d.type == "cuda" and d.index == 1 and torch.device("cpu").type == "cpu"
    assert type(pickle.loads(pickle.dumps(x.device))) is str  # saved, it is a plain name
    device = torch.accelerator.current_accelerator().type if torch.accelerator.is_available() else "cpu"
    assert device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert torch.accelerator.device_count() == torch.cuda.device_count() >= int(torch.cuda.is_available())
    if torch.cuda.is_available():  # the CuPy emulation in the tests, or a GPU
        g = torch.ones(2, device="cuda")
        assert g.device.type == "cuda" and g.device.index == 0 and (g * 2).device.type == "cuda"
        assert torch.Tensor(g.data).device.type == "cuda" and torch.accelerator.current_accelerator() == "cuda:0"


# ---------------------------------------------------------------- nn.Module patterns


class Lambda(nn.Module):
    """"What is torch.nn really?"'s wrapper of a function as a module."""

    def __init__(self, func):
        super().__init__()
        self.func = func

    def forward(self, x):
        return self.func(x)


def test_sequential_takes_a_lambda_module_as_the_tutorial_writes():
    torch.manual_seed(0)
    model = nn.Sequential(
        Lambda(lambda x: x.view(-1, 1, 28, 28)),
        nn.Conv2d(1, 4, kernel_size=3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(4, 10, kernel_size=3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        Lambda(lambda x: x.view(x.size(0), -1)))
    xb = torch.rand(3, 784)
    out = model(xb)
    assert out.shape == (3, 10)
    assert list(model.state_dict()) == ["1.weight", "1.bias", "3.weight", "3.bias"]
    loss = F.cross_entropy(out, torch.tensor([0, 1, 2]))
    loss.backward()
    assert model[1].weight.grad.shape == (4, 1, 3, 3)
    # the layers after the Lambda compute as they do alone
    manual = model[5](model[4](model[3](model[2](model[1](xb.view(-1, 1, 28, 28))))))
    assert np.allclose(out.numpy(), manual.numpy().reshape(3, -1))
    # nested in another Sequential, it is still one step of it
    outer = nn.Sequential(model, nn.Linear(10, 2))
    assert outer(xb).shape == (3, 2) and list(outer.state_dict())[-1] == "1.bias"


def test_add_module_fills_an_empty_sequential():
    seq = nn.Sequential()
    seq.add_module("fc", nn.Linear(4, 3))
    seq.add_module("act", nn.ReLU())
    seq.append(nn.Linear(3, 2))
    assert list(seq.state_dict()) == ["fc.weight", "fc.bias", "2.weight", "2.bias"]
    assert seq.fc is seq[0] and len(seq) == 3
    x = torch.rand(5, 4)
    assert np.allclose(seq(x).numpy(), seq[2](seq[0](x).relu()).numpy())  # it was the input, unchanged
    with pytest.raises(KeyError, match="already"):
        seq.add_module("fc", nn.ReLU())


def test_load_state_dict_answers_missing_and_unexpected_keys_by_name():
    fc = nn.Linear(2, 2)
    result = fc.load_state_dict({"weight": np.zeros((2, 2), np.float32), "extra": np.zeros(1)}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["extra"]
    missing, unexpected = result
    assert missing == ["bias"]


# ---------------------------------------------------------------- losses

Z = np.array([[0.5, -1.0, 2.0], [-3.0, 0.25, 1.5]])
T = np.array([[1.0, 0.0, 1.0], [0.0, 0.5, 1.0]])


def _loss_cases(nn_, tensor):
    w = tensor(np.array([1.0, 2.0, 0.5]))
    return [("L1Loss", nn_.L1Loss(), "plain"), ("L1Loss sum", nn_.L1Loss(reduction="sum"), "plain"),
            ("SmoothL1Loss", nn_.SmoothL1Loss(), "plain"), ("SmoothL1Loss beta", nn_.SmoothL1Loss(beta=0.5), "plain"),
            ("SmoothL1Loss beta 0", nn_.SmoothL1Loss(beta=0.0), "plain"),
            ("HuberLoss", nn_.HuberLoss(delta=0.7, reduction="none"), "plain"),
            ("BCELoss", nn_.BCELoss(), "probs"), ("BCELoss weight", nn_.BCELoss(weight=w, reduction="sum"), "probs"),
            ("BCEWithLogitsLoss", nn_.BCEWithLogitsLoss(), "logits"),
            ("BCEWithLogitsLoss pos_weight", nn_.BCEWithLogitsLoss(pos_weight=tensor(np.array([2.0, 1.0, 0.5]))), "logits"),
            ("BCEWithLogitsLoss both", nn_.BCEWithLogitsLoss(weight=w, pos_weight=tensor(np.array([3.0])),
                                                             reduction="none"), "logits")]


def _inputs(kind, z):
    return 1 / (1 + np.exp(-z)) if kind == "probs" else z


def test_regression_and_binary_losses_by_their_formulas():
    d = np.abs(Z - T)
    sig = 1 / (1 + np.exp(-Z))
    expected = {"L1Loss": d.mean(), "L1Loss sum": d.sum(),
                "SmoothL1Loss": np.where(d < 1, 0.5 * d ** 2, d - 0.5).mean(),
                "SmoothL1Loss beta": np.where(d < 0.5, d ** 2, d - 0.25).mean(), "SmoothL1Loss beta 0": d.mean(),
                "HuberLoss": np.where(d < 0.7, 0.5 * d ** 2, 0.7 * (d - 0.35)),
                "BCELoss": -(T * np.log(sig) + (1 - T) * np.log(1 - sig)).mean(),
                "BCELoss weight": (-(T * np.log(sig) + (1 - T) * np.log(1 - sig)) * [1.0, 2.0, 0.5]).sum(),
                "BCEWithLogitsLoss": -(T * np.log(sig) + (1 - T) * np.log(1 - sig)).mean(),
                "BCEWithLogitsLoss pos_weight": -([2.0, 1.0, 0.5] * T * np.log(sig) + (1 - T) * np.log(1 - sig)).mean(),
                "BCEWithLogitsLoss both": -(3.0 * T * np.log(sig) + (1 - T) * np.log(1 - sig)) * [1.0, 2.0, 0.5]}
    for name, loss, kind in _loss_cases(nn, lambda a: torch.tensor(a)):
        got = loss(torch.tensor(_inputs(kind, Z)), torch.tensor(T))
        assert np.allclose(got.numpy(), expected[name], rtol=1e-12, atol=1e-12), name


def test_losses_match_torch_values_and_gradients():
    real = pytest.importorskip("torch")
    for (name, ours, kind), (_, theirs, _) in zip(_loss_cases(nn, torch.tensor), _loss_cases(real.nn, real.tensor)):
        a = torch.tensor(_inputs(kind, Z), requires_grad=True)
        b = real.tensor(_inputs(kind, Z), requires_grad=True)
        up = np.arange(1.0, 1.0 + Z.size).reshape(Z.shape) / Z.size
        la, lb = ours(a, torch.tensor(T)), theirs(b, real.tensor(T))
        assert np.allclose(la.numpy(), lb.detach().numpy(), rtol=1e-10, atol=1e-12), name
        (la * torch.tensor(up if la.ndim else 1.0)).sum().backward()
        (lb * real.tensor(up if lb.ndim else 1.0)).sum().backward()
        assert np.allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12), name


@settings(max_examples=25, deadline=None)
@given(z=away_from(arrays((3, 4)), kinks=(-0.7, 0.0, 0.7), margin=0.05), t=arrays((3, 4), min_value=0.0, max_value=1.0),
       which=st.sampled_from(["l1", "smooth", "huber", "bce_logits_pw"]))
def test_new_losses_gradcheck(z, t, which):
    """Central differences in float64 with a random upstream gradient, on each new loss' reduction='none'
    (the input kept off each loss' kinks: |z - t| = 0 or beta/delta, where targets t are 0 so d = |z|)."""
    target = torch.tensor(np.zeros_like(t) if which != "bce_logits_pw" else t)
    fns = {"l1": lambda a: F.l1_loss(a, target, "none"),
           "smooth": lambda a: F.smooth_l1_loss(a, target, "none", beta=0.7),
           "huber": lambda a: F.huber_loss(a, target, "none", delta=0.7),
           "bce_logits_pw": lambda a: F.binary_cross_entropy_with_logits(
               a, target, "none", weight=torch.tensor(np.array([1.0, 2.0, 0.5, 1.5])),
               pos_weight=torch.tensor(np.array([3.0, 1.0, 0.5, 2.0])))}
    assert gradcheck(fns[which], [torch.tensor(z, requires_grad=True)])


def test_cross_entropy_takes_class_probabilities_as_torchs():
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    p = np.array([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]])
    log_sm = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    for eps in (0.0, 0.1):
        q = p * (1 - eps) + eps / 3
        got = nn.CrossEntropyLoss(label_smoothing=eps, reduction="none")(torch.tensor(logits), torch.tensor(p))
        assert np.allclose(got.numpy(), -(q * log_sm).sum(1), rtol=1e-12)
    assert gradcheck(lambda a: F.cross_entropy(a, torch.tensor(p), "none", label_smoothing=0.1),
                     [torch.tensor(logits, requires_grad=True)])
    with pytest.raises(TypeError, match="integer class indices"):
        F.cross_entropy(torch.tensor(logits), torch.tensor([0.0, 1.0]))  # float class indices, as torch refuses


def test_cross_entropy_probabilities_match_torch():
    real = pytest.importorskip("torch")
    logits = np.random.default_rng(0).normal(size=(4, 5))
    p = np.random.default_rng(1).dirichlet(np.ones(5), size=4)
    a, b = torch.tensor(logits, requires_grad=True), real.tensor(logits, requires_grad=True)
    la = nn.CrossEntropyLoss(label_smoothing=0.2)(a, torch.tensor(p))
    lb = real.nn.CrossEntropyLoss(label_smoothing=0.2)(b, real.tensor(p))
    la.backward()
    lb.backward()
    assert np.isclose(la.item(), lb.item(), rtol=1e-12) and np.allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10)


# ---------------------------------------------------------------- more of the Tensors page


def test_a_one_element_tensor_formats_as_its_number():
    loss = torch.tensor(0.123456)
    assert f"loss: {loss:>7f}" == "loss: 0.123456" and f"{loss:.2f}" == "0.12" and f"{torch.tensor([2.5]):.1f}" == "2.5"
    assert f"{torch.tensor([1.0, 2.0])}" == str(torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="one-element tensors"):
        f"{torch.tensor([1.0, 2.0]):.2f}"


def test_tensor_of_a_list_of_tensors():
    losses = [torch.tensor(1.5), torch.tensor(2.5)]
    t = torch.tensor(losses)
    assert t.tolist() == [1.5, 2.5] and t.dtype == np.float32
    assert torch.tensor([[torch.tensor(1), 2], [3, torch.tensor(4)]]).tolist() == [[1, 2], [3, 4]]


def test_std_and_var_are_torchs_unbiased_ones():
    x = np.array([[1.0, 2.0, 4.0], [3.0, 7.0, 0.5]])
    t = torch.tensor(x)
    assert t.std().item() == pytest.approx(x.std(ddof=1)) and t.var().item() == pytest.approx(x.var(ddof=1))
    assert np.allclose(t.std(dim=1).numpy(), x.std(axis=1, ddof=1))
    assert t.var(0, keepdim=True).shape == (1, 3) and np.allclose(t.var(0, keepdim=True).numpy(), x.var(0, ddof=1, keepdims=True))
    assert t.std(unbiased=False).item() == pytest.approx(x.std()) and t.var(False).item() == pytest.approx(x.var())
    assert np.allclose(t.var(dim=1, correction=0).numpy(), x.var(axis=1))
    normalised = (t - t.mean()) / t.std()  # the data-normalisation habit
    assert normalised.std().item() == pytest.approx(1.0)
    assert gradcheck(lambda a: a.std(dim=1), [torch.tensor(x, requires_grad=True)])
    assert gradcheck(lambda a: a.var(), [torch.tensor(x, requires_grad=True)])


def test_std_matches_torch():
    real = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(3, 4))
    for kw in ({}, {"dim": 1}, {"dim": (0, 1), "keepdim": True}, {"unbiased": False}, {"dim": 0, "correction": 0}):
        a, b = torch.tensor(x, requires_grad=True), real.tensor(x, requires_grad=True)
        la, lb = a.std(**kw), b.std(**kw)
        assert la.shape == tuple(lb.shape) and np.allclose(la.numpy(), lb.detach().numpy(), rtol=1e-12), kw
        la.sum().backward()
        lb.sum().backward()
        assert np.allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10), kw


def test_floor_division_and_remainder_as_torchs():
    x = torch.tensor([7, -7, 6])
    assert (x // 2).tolist() == [3, -4, 3] and (x % 3).tolist() == [1, 2, 0] and (x // 2).dtype == np.int64
    assert (20 // torch.tensor([3, 6])).tolist() == [6, 3] and (10 % torch.tensor([3, 4])).tolist() == [1, 2]
    assert (torch.tensor([7.5]) // 2).tolist() == [3.0]


def test_leaky_relu_and_one_hot():
    x = torch.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    y = nn.LeakyReLU(0.1)(x)
    assert np.allclose(y.numpy(), [-0.2, 0.0, 3.0])
    y.sum().backward()
    assert np.allclose(x.grad.numpy(), [0.1, 0.1, 1.0])  # torch's slope at 0 is negative_slope
    assert np.allclose(F.leaky_relu(torch.tensor([-1.0]), 0.2).numpy(), [-0.2])
    assert gradcheck(lambda a: F.leaky_relu(a, 0.3), [torch.tensor(np.array([-1.5, 0.7, 2.0]), requires_grad=True)])
    oh = F.one_hot(torch.tensor([0, 2]), num_classes=3)
    assert oh.tolist() == [[1, 0, 0], [0, 0, 1]] and oh.dtype == np.int64
    assert F.one_hot(torch.tensor([[1], [3]])).shape == (2, 1, 4)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        F.one_hot(torch.tensor([3]), num_classes=3)
    with pytest.raises(TypeError, match="integer class indices"):
        F.one_hot(torch.tensor([1.0]))


# ---------------------------------------------------------------- the CIFAR tutorial and print(model)


def test_a_one_element_int_tensor_indexes_python_sequences():
    classes = ("plane", "car", "bird")
    labels = torch.tensor([2, 0, 1])
    assert " ".join(f"{classes[labels[j]]:5s}" for j in range(3)) == "bird  plane car  "
    assert list(range(torch.tensor(3))) == [0, 1, 2] and [10, 20, 30][torch.tensor([1])] == 20
    with pytest.raises(TypeError, match="only integer tensors of a single element"):
        classes[torch.tensor(1.0)]
    with pytest.raises(TypeError, match="only integer tensors of a single element"):
        classes[labels]


def test_print_model_shows_torchs_text():
    class NeuralNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.flatten = nn.Flatten()
            self.stack = nn.Sequential(nn.Linear(784, 16), nn.ReLU(), nn.Dropout(0.25), nn.Linear(16, 10, bias=False))

        def forward(self, x):
            return self.stack(self.flatten(x))

    assert repr(NeuralNetwork()) == (
        "NeuralNetwork(\n  (flatten): Flatten(start_dim=1, end_dim=-1)\n  (stack): Sequential(\n"
        "    (0): Linear(in_features=784, out_features=16, bias=True)\n    (1): ReLU()\n"
        "    (2): Dropout(p=0.25, inplace=False)\n    (3): Linear(in_features=16, out_features=10, bias=False)\n  )\n)")
    assert repr(nn.Conv2d(1, 8, 3, padding=1)) == "Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    assert repr(nn.Conv2d(3, 6, 5, bias=False)) == "Conv2d(3, 6, kernel_size=(5, 5), stride=(1, 1), bias=False)"
    assert repr(nn.MaxPool2d(2, 2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"
    assert repr(nn.AvgPool2d(3, 1, padding=1)) == "AvgPool2d(kernel_size=3, stride=1, padding=1)"
    assert repr(nn.LogSoftmax(dim=1)) == "LogSoftmax(dim=1)" and repr(nn.Sequential()) == "Sequential()"


def test_print_model_matches_torch():
    real = pytest.importorskip("torch")

    def build(n):
        return n.Sequential(n.Conv2d(1, 8, 3, padding=1), n.ReLU(), n.MaxPool2d(2), n.Conv2d(8, 4, 3, 2, bias=False),
                            n.AvgPool2d(2), n.Dropout(0.25), n.Flatten(), n.Linear(8, 10), n.LogSoftmax(dim=1),
                            n.Softmax(dim=1))
    assert repr(build(nn)) == repr(build(real.nn))


def test_no_grad_and_inference_mode_decorate_without_parentheses():
    w = torch.ones(2, requires_grad=True)

    @torch.no_grad
    def evaluate(x):
        return x * 2

    @torch.inference_mode
    def predict(x):
        return x * 3

    @torch.enable_grad
    def train_step(x):
        return x * 4

    assert not evaluate(w).requires_grad and not predict(w).requires_grad and evaluate(w).tolist() == [2.0, 2.0]
    with torch.no_grad():
        assert train_step(w).requires_grad and not (w * 2).requires_grad
    assert (w * 2).requires_grad  # the mode is back after each
    with pytest.raises(TypeError, match="without parentheses"):
        torch.no_grad(3)


def test_moving_to_a_gpu_that_cannot_answer_names_it():
    """x.cuda() / model.to("cuda") on a machine whose GPU does not answer: before, CUDA's own error from deep
    inside the copy (cudaErrorInsufficientDriver with CuPy but no usable GPU); now the DeviceError that
    tinygrad_cnn.zeros(device=...) gives. cuda:99 is such a GPU here, emulated or real."""
    with pytest.raises(torch.DeviceError, match="'cuda:99'.*CUDA GPU"):
        torch.ones(2).to("cuda:99")
    with pytest.raises(torch.DeviceError, match="'cuda:99'.*CUDA GPU"):
        nn.Linear(2, 2).to("cuda:99")
    with pytest.raises(TypeError, match=r"tinygrad_cnn.zeros\(2, 3\)"):
        torch.Tensor(2, 3)  # torch's legacy size constructor


def test_as_tensor_eq_and_the_legacy_constructors_named():
    n = np.array([1.0, 2.0])
    t = torch.as_tensor(n)
    n[0] = 5.0
    assert t.tolist() == [5.0, 2.0] and t.dtype == np.float64  # shared, as torch's
    assert torch.as_tensor([1, 2]).dtype == np.int64 and torch.as_tensor(t) is t
    assert torch.as_tensor(n, dtype=torch.float).dtype == np.float32
    a, b = torch.tensor([1, 2]), torch.tensor([1, 3])
    assert torch.eq(a, b).tolist() == [True, False] and torch.ne(a, b).tolist() == [False, True]
    assert torch.sum(a == b).item() == 1
    with pytest.raises(AttributeError, match=r"tensor\(data, dtype=tinygrad_cnn.float\)"):
        torch.FloatTensor([1, 2])
    with pytest.raises(AttributeError, match=r"numpy.argwhere"):
        a.nonzero()


def test_dropout2d_drops_whole_channels():
    drop = nn.Dropout2d(0.5, generator=np.random.default_rng(0))
    x = torch.ones(8, 16, 3, 3, requires_grad=True)
    y = drop(x)
    per_channel = y.numpy().reshape(8, 16, 9)
    assert set(np.unique(per_channel)) <= {0.0, 2.0} and (per_channel.min(2) == per_channel.max(2)).all()
    assert 0.25 < (per_channel[:, :, 0] == 0).mean() < 0.75
    y.sum().backward()
    assert np.array_equal(x.grad.numpy(), y.numpy())  # the gradient is the mask
    drop.eval()
    assert drop(x) is x and repr(drop) == "Dropout2d(p=0.5, inplace=False)"
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Dropout2d(0.25), nn.Flatten())
    assert model(torch.ones(2, 1, 5, 5)).shape == (2, 36) and model.eval()[1].training is False
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        nn.Dropout2d()(torch.ones(3, 4))


def test_remainder_of_floats_has_torchs_gradient():
    x = torch.tensor([3.5, -2.25], requires_grad=True)
    y = torch.tensor([2.0, 1.5], requires_grad=True)
    r = x % y
    assert r.tolist() == [1.5, 0.75]
    (r * torch.tensor([1.0, 2.0])).sum().backward()
    assert x.grad.tolist() == [1.0, 2.0] and y.grad.tolist() == [-1.0, 4.0]  # -floor(x / y) times upstream
    assert (torch.tensor([5.0]) % 3).tolist() == [2.0] and (7.5 % torch.tensor([2.0])).tolist() == [1.5]
    real = pytest.importorskip("torch")
    a, b = real.tensor([3.5, -2.25], requires_grad=True), real.tensor([2.0, 1.5], requires_grad=True)
    ((a % b) * real.tensor([1.0, 2.0])).sum().backward()
    assert a.grad.tolist() == x.grad.tolist() and b.grad.tolist() == y.grad.tolist()


def test_step_functions_have_torchs_zero_gradient():
    x = torch.tensor([1.5, -2.5, 0.4, -0.0], dtype=torch.float64, requires_grad=True)
    assert x.round().tolist() == [2.0, -2.0, 0.0, -0.0] and torch.round(x).tolist() == [2.0, -2.0, 0.0, -0.0]
    assert x.floor().tolist() == [1.0, -3.0, 0.0, -0.0] and x.ceil().tolist() == [2.0, -2.0, 1.0, -0.0]
    assert x.trunc().tolist() == [1.0, -2.0, 0.0, -0.0] and torch.sign(x).tolist() == [1.0, -1.0, 1.0, 0.0]
    assert abs(torch.tensor([1.26]).round(1).item() - 1.3) < 1e-6 and x.neg().tolist() == [-1.5, 2.5, -0.4, 0.0]
    loss = (x.round() + x.floor() + x.ceil() + x.trunc() + x.sign() + x * 2).sum()
    loss.backward()
    assert x.grad.tolist() == [2.0, 2.0, 2.0, 2.0]  # only x * 2 counts, as torch's
    y = torch.tensor([np.inf], requires_grad=True)
    assert y.floor().tolist() == [np.inf]  # the values exactly, infinities included
    assert torch.tensor([3, -2]).sign().tolist() == [1, -1]
    with pytest.raises(TypeError, match="bool"):
        torch.tensor([True]).round()


def test_integer_division_is_float32_as_in_torch():
    """uint8 images / 255 (torch's tutorials' first line of preprocessing) is float32 as in torch, not NumPy's
    float64, which silently doubled the memory and the time of a model fed with it."""
    images = torch.Tensor(np.arange(12, dtype=np.uint8).reshape(3, 4))
    scaled = images / 255
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled.numpy(), np.arange(12).reshape(3, 4) / 255, rtol=1e-6)
    labels = torch.Tensor(np.array([1, 2, 4]))
    assert (labels / labels).dtype == np.float32 and (2 / labels).dtype == np.float32
    assert (torch.Tensor(np.array([True, False])) / 2).dtype == np.float32
    assert (images.astype("float64") / 2).dtype == np.float64  # a float keeps its own width
    assert (images // 2).dtype.kind in "iu"  # floor division stays integer
    real_torch = pytest.importorskip("torch")
    real = real_torch.tensor(np.arange(12, dtype=np.uint8).reshape(3, 4))
    assert str((real / 255).dtype) == "torch.float32" and str((2 / real_torch.tensor([1, 2, 4])).dtype) == "torch.float32"


def test_any_and_all_are_bool_tensors_as_in_torch():
    """x.any()/x.all() are bool tensors as torch's: `.item()` works (it failed on a Python bool), `if` reads them,
    and dim/keepdim reduce one axis."""
    x = torch.Tensor(np.array([[0.0, 2.0], [0.0, 0.0]]))
    assert (x > 1).any().item() is True and (x >= 0).all().item() is True and x.all().item() is False
    assert bool(x.any()) and not x.all()
    np.testing.assert_array_equal(x.any(dim=1).numpy(), [True, False])
    assert x.all(dim=0, keepdim=True).shape == (1, 2)
    real_torch = pytest.importorskip("torch")
    real = real_torch.tensor([[0.0, 2.0], [0.0, 0.0]])
    assert real.any().item() is True and real.any(dim=1).tolist() == x.any(dim=1).numpy().tolist()
