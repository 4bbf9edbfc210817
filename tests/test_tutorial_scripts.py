"""Real users' scripts (issue 26): TensorFlow's beginner quickstart and Keras' simple MNIST convnet run with
only their import lines changed, and the classic PyTorch MNIST example with its imports changed and three
marked edits (examples/keras_quickstart.py, keras_mnist_convnet.py, pytorch_mnist.py). Run here on a few
hundred MNIST images (load_data patched) so that they take seconds; the code run is the scripts' own."""
import os
import re
import runpy
import sys

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import optim
from tinygrad_cnn.datasets import mnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = "# ---------------------------------------------------------------- the tutorial's code from here on"


@pytest.fixture
def few_images(monkeypatch):
    full = mnist.load_data

    def few():
        (x, y), (xt, yt) = full()
        return (x[:256], y[:256]), (xt[:200], yt[:200])
    monkeypatch.setattr(mnist, "load_data", few)


def run(name, monkeypatch, *argv):
    path = os.path.join(ROOT, "examples", name)
    monkeypatch.setattr(sys, "argv", [path, *argv])
    tg.manual_seed(0)
    return runpy.run_path(path, run_name="__main__")


def tutorial_part(name):
    with open(os.path.join(ROOT, "examples", name)) as f:
        text = f.read()
    head, body = text.split(MARK)
    return head, body


@pytest.mark.parametrize("name", ["keras_quickstart.py", "keras_mnist_convnet.py"])
def test_keras_tutorials_change_only_their_imports(name):
    head, body = tutorial_part(name)
    assert "tinygrad_cnn" not in body and "manual_seed" not in body  # nothing added to the tutorial's code
    imports = [line for line in head.splitlines() if re.match(r"(import|from) ", line)]
    assert all("(was: " in line for line in imports if "tinygrad_cnn" in line)


def test_tensorflow_beginner_quickstart_runs(few_images, monkeypatch, capsys):
    scope = run("keras_quickstart.py", monkeypatch)
    out = capsys.readouterr().out
    assert "Epoch 5/5" in out
    probabilities = scope["probability_model"](scope["x_test"][:5]).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    loss, accuracy = scope["model"].evaluate(scope["x_test"], scope["y_test"], verbose=0)
    assert accuracy > 0.6  # 256 images, 5 epochs: far above chance (0.1)


def test_keras_simple_mnist_convnet_runs(few_images, monkeypatch, capsys):
    run("keras_mnist_convnet.py", monkeypatch)
    out = capsys.readouterr().out
    assert "Epoch 15/15" in out and "val_accuracy" in out and "Total params: 34,826" in out
    accuracy = float(re.search(r"Test accuracy: ([0-9.]+)", out).group(1))
    assert accuracy > 0.5


def test_classic_pytorch_mnist_runs_with_three_edits(few_images, monkeypatch, capsys):
    with open(os.path.join(ROOT, "examples", "pytorch_mnist.py")) as f:
        text = f.read()
    code = text.split('"""', 2)[2]
    assert len(re.findall(r"# EDIT \d", code)) == 3
    outside_imports = [line for line in code.splitlines() if "tinygrad_cnn" in line and
                       not re.match(r"(import|from) ", line) and "sys.path" not in line]
    assert outside_imports == []
    run("pytorch_mnist.py", monkeypatch, "--epochs", "1", "--log-interval", "2", "--no-cuda")  # CPU: repeatable
    out = capsys.readouterr().out
    assert "Train Epoch: 1 [128/256 (50%)]" in out
    correct = int(re.search(r"Accuracy: (\d+)/200", out).group(1))
    assert correct > 60  # one epoch of 4 batches with Adadelta at lr 1.0: well above chance (20)


def adadelta_reference(p, grads, lr, rho, eps, weight_decay):
    v, u = np.zeros_like(p), np.zeros_like(p)
    for g in grads:
        g = g + weight_decay * p
        v = rho * v + (1 - rho) * g * g
        delta = np.sqrt(u + eps) / np.sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta * delta
        p = p - lr * delta
    return p


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu, id="cuda")])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adadelta_matches_its_formula(device, weight_decay):
    rng = np.random.default_rng(0)
    start, grads = rng.standard_normal(6), [rng.standard_normal(6) for _ in range(4)]
    p = tg.Tensor(start.copy(), device=device, requires_grad=True)
    opt = optim.Adadelta([p], lr=0.5, rho=0.8, eps=1e-4, weight_decay=weight_decay)
    for g in grads:
        p.grad = tg.Tensor(g, device=device)
        opt.step()
    np.testing.assert_allclose(p.numpy(), adadelta_reference(start, grads, 0.5, 0.8, 1e-4, weight_decay),
                               rtol=1e-12)


def test_adadelta_and_torch_layers_match_torch():
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
    rng = np.random.default_rng(1)
    start, grads = rng.standard_normal(5), [rng.standard_normal(5) for _ in range(3)]
    theirs = torch.tensor(start.copy(), requires_grad=True)
    topt = torch.optim.Adadelta([theirs], lr=1.0)
    ours = tg.Tensor(start.copy(), requires_grad=True)
    opt = optim.Adadelta([ours], lr=1.0)
    for g in grads:
        theirs.grad, ours.grad = torch.tensor(g), tg.Tensor(g)
        topt.step()
        opt.step()
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-12)
    conv, dense = tg.torch_nn.Conv2d(2, 3, 3, stride=2, padding=1), tg.torch_nn.Linear(4, 5)
    tconv, tdense = torch.nn.Conv2d(2, 3, 3, stride=2, padding=1), torch.nn.Linear(4, 5)
    for a, b in ((conv, tconv), (dense, tdense)):
        assert a.weight.shape == tuple(b.weight.shape)  # PyTorch's order and layout, made at once
        bound = 1 / np.sqrt(b.weight[0].numel())  # PyTorch's default initialisation range
        assert np.abs(a.weight.numpy()).max() <= bound and np.abs(a.weight.numpy()).max() > bound / 2
        b.weight.data, b.bias.data = torch.from_numpy(a.weight.numpy()), torch.from_numpy(a.bias.numpy())
    x = rng.standard_normal((2, 2, 7, 7)).astype("float32")
    np.testing.assert_allclose(conv(x).numpy(), tconv(torch.from_numpy(x)).detach().numpy(), atol=1e-5)
    v = rng.standard_normal((3, 4)).astype("float32")
    np.testing.assert_allclose(dense(v).numpy(), tdense(torch.from_numpy(v)).detach().numpy(), atol=1e-5)
