"""The example scripts run end to end on a small slice of real MNIST: flags, checkpoint, metrics, resume."""
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor, optim
from tinygrad_cnn.checkpoint import load_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mnist_example():
    return load_example("mnist")


def test_tutorial_model_has_421642_parameters(mnist_example):
    model = mnist_example.build_model()
    assert sum(p.size for p in model.parameters()) == 421_642


def test_mnist_trains_saves_and_resumes(mnist_example, tmp_path):
    ckpt, metrics = str(tmp_path / "m.npz"), str(tmp_path / "m.json")
    common = ["--limit-train", "1024", "--limit-test", "500", "--batch-size", "64", "--save", ckpt,
              "--metrics", metrics, "--no-progress"]
    first = mnist_example.main(["--epochs", "1"] + common)
    assert len(first) == 1 and first[0]["test_acc"] > 0.5  # chance is 0.1
    saved = json.load(open(metrics))
    assert saved["epochs"][0]["test_acc"] == first[0]["test_acc"]

    resumed = mnist_example.main(["--epochs", "2", "--resume", ckpt] + common)
    assert [h["epoch"] for h in resumed] == [1, 2]       # history carried over, one more epoch trained
    assert resumed[0] == first[0]
    assert resumed[1]["train_loss"] < first[0]["train_loss"]


def test_mnist_check_grads_passes(mnist_example, tmp_path, capsys):
    mnist_example.main(["--epochs", "1", "--limit-train", "128", "--limit-test", "100", "--check-grads",
                        "--save", "", "--metrics", "", "--no-progress"])
    assert "gradient check passed" in capsys.readouterr().out


BAD_MNIST_FLAGS = [
    (["--epochs", "0"], "--epochs: must be at least 1, got 0"),
    (["--epochs", "-2"], "--epochs: must be at least 1, got -2"),
    (["--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
    (["--batch-size", "-64"], "--batch-size: must be at least 1"),
    (["--limit-train", "0"], "--limit-train: must be at least 1, got 0"),
    (["--limit-test", "-1"], "--limit-test: must be at least 1, got -1"),
    (["--limit-train", "2.5"], "--limit-train: must be a whole number, got '2.5'"),
    (["--lr", "-1"], "--lr: must be a finite number above 0, got -1"),
    (["--lr", "0"], "--lr: must be a finite number above 0, got 0"),
    (["--lr", "nan"], "--lr: must be a finite number above 0, got nan"),
    (["--lr", "inf"], "--lr: must be a finite number above 0, got inf"),
    (["--lr=-inf"], "--lr: must be a finite number above 0, got -inf"),
    (["--lr", "fast"], "--lr: must be a number, got 'fast'"),
    (["--nonfinite", "ignore"], "--nonfinite: invalid choice: 'ignore'"),
]


@pytest.mark.parametrize("flags, message", BAD_MNIST_FLAGS, ids=[" ".join(f) for f, _ in BAD_MNIST_FLAGS])
def test_mnist_rejects_bad_flags_with_a_usage_error(mnist_example, capsys, flags, message):
    with pytest.raises(SystemExit) as info:
        mnist_example.parse_args(flags)
    assert info.value.code == 2     # argparse's usage error, not a traceback from Adam
    assert message in capsys.readouterr().err


def test_mnist_lr_nan_from_the_command_line_has_no_traceback():
    run = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "mnist.py"), "--lr", "nan"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "--lr: must be a finite number above 0, got nan" in run.stderr


# ---------------------------------------------------------------- --nonfinite, and no checkpoint with NaN in it

TINY = ["--limit-train", "96", "--limit-test", "32", "--batch-size", "32", "--metrics", "", "--no-progress"]


def nan_in_training_batch(example, monkeypatch, batch, epoch=None):
    """Make one training batch (0-based, in the given epoch or in every one) hold a NaN image,
    through the example's DataLoader: the rest of the data is the real MNIST slice."""
    real = example.DataLoader
    epochs = iter(range(10**6))

    class WithNaN:
        def __init__(self, *args, **kwargs):
            self.inner, self.training = real(*args, **kwargs), kwargs.get("shuffle", False)
            self.epoch = next(epochs) if self.training else None

        def __len__(self):
            return len(self.inner)

        def __iter__(self):
            for i, (xb, yb) in enumerate(self.inner):
                if self.training and i == batch and epoch in (None, self.epoch):
                    x = xb.numpy().copy()
                    x[0] = np.nan
                    xb = Tensor(x, device=xb.device)
                yield xb, yb

    monkeypatch.setattr(example, "DataLoader", WithNaN)


def finite_checkpoint(path):
    arrays, _ = load_file(path)
    return all(np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f")


def test_mnist_nonfinite_skip_skips_the_step_says_so_and_saves_finite_weights(mnist_example, monkeypatch,
                                                                                tmp_path, capsys):
    ckpt = str(tmp_path / "m.safetensors")
    nan_in_training_batch(mnist_example, monkeypatch, batch=1)
    history = mnist_example.main(["--epochs", "1", "--save", ckpt] + TINY)   # skip is the default
    out = capsys.readouterr().out
    assert "epoch 1: 1 of 3 steps skipped: their gradient held NaN or inf" in out
    assert history[0]["skipped_steps"] == 1 and np.isfinite(history[0]["train_loss"])  # the NaN batch left out
    assert "checkpoint: " + ckpt in out and finite_checkpoint(ckpt)


def test_mnist_nonfinite_stop_exits_with_a_message_and_keeps_the_checkpoint(mnist_example, monkeypatch, tmp_path):
    ckpt = tmp_path / "m.safetensors"
    mnist_example.main(["--epochs", "1", "--save", str(ckpt)] + TINY)
    good = ckpt.read_bytes()
    nan_in_training_batch(mnist_example, monkeypatch, batch=2)
    with pytest.raises(SystemExit) as info:
        mnist_example.main(["--epochs", "2", "--resume", str(ckpt), "--save", str(ckpt), "--nonfinite", "stop"]
                           + TINY)
    message = info.value.code
    assert isinstance(message, str) and info.value.__cause__ is None and info.value.__suppress_context__
    assert message.startswith("epoch 2, batch 3: Adam.step: non-finite gradient")
    assert "training stopped (--nonfinite stop)" in message and f"{ckpt} is left as it was" in message
    assert ckpt.read_bytes() == good


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_mnist_never_overwrites_a_checkpoint_with_nonfinite_weights(mnist_example, tmp_path):
    """A finite gradient can still blow the weights up (here an absurd rate overflows float32 in
    the first step): the check before saving refuses and the good file stays. With --nonfinite
    stop the NaN gradient of the next batch stops it first."""
    ckpt = tmp_path / "m.safetensors"
    mnist_example.main(["--epochs", "1", "--save", str(ckpt)] + TINY)
    good = ckpt.read_bytes()
    for mode, pattern in (("skip", r"epoch 1: NaN or inf in model/\S+"),
                          ("stop", r"epoch 1, batch 2: Adam.step: non-finite gradient")):
        with pytest.raises(SystemExit) as info:
            mnist_example.main(["--epochs", "1", "--lr", "1e40", "--save", str(ckpt), "--nonfinite", mode] + TINY)
        assert re.match(pattern, info.value.code), info.value.code
        assert info.value.code.endswith(f"{ckpt} is left as it was")
        assert ckpt.read_bytes() == good


def test_mnist_save_checkpoint_itself_refuses_nonfinite_arrays(mnist_example, tmp_path):
    path = tmp_path / "m.safetensors"
    model = mnist_example.build_model()
    opt = optim.Adam(model.parameters())
    mnist_example.save_checkpoint(str(path), model, opt, 1, [])
    good = path.read_bytes()
    model.parameters()[3].data[5] = np.inf
    with pytest.raises(ValueError, match=r"not saving .*m.safetensors: NaN or inf in model/\S+"):
        mnist_example.save_checkpoint(str(path), model, opt, 2, [])
    assert path.read_bytes() == good


# ---------------------------------------------------------------- --resume

def test_mnist_resume_of_a_finished_run_says_there_is_nothing_to_do(mnist_example, tmp_path, capsys):
    ckpt, metrics = tmp_path / "m.safetensors", tmp_path / "m.json"
    first = mnist_example.main(["--epochs", "1", "--save", str(ckpt)] + TINY[:-3] + ["--metrics", str(metrics),
                                                                                      "--no-progress"])
    capsys.readouterr()
    before = ckpt.read_bytes(), metrics.read_bytes(), os.stat(metrics).st_mtime_ns
    history = mnist_example.main(["--epochs", "1", "--resume", str(ckpt), "--save", str(ckpt)] + TINY[:-3] +
                                 ["--metrics", str(metrics), "--no-progress"])
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"checkpoint {ckpt} already trained 1 of 1 epochs; nothing to do, pass --epochs 2 or more to train more",
        f"stored final test accuracy: {first[0]['test_acc']:.4f} (epoch 1, from the checkpoint)"]
    assert history == first
    assert (ckpt.read_bytes(), metrics.read_bytes(), os.stat(metrics).st_mtime_ns) == before
    mnist_example.main(["--epochs", "1", "--resume", str(ckpt), "--save", ""] + TINY)   # fewer than trained
    assert "already trained 1 of 1 epochs" in capsys.readouterr().out


def recorded_rates(example, monkeypatch):
    """The rate of every optimizer step the example takes, seen by the optimizer itself."""
    rates = []

    class RecordingAdam(optim.Adam):
        def step(self):
            rates.append(self.lr)
            super().step()

    monkeypatch.setattr(example, "optim", types.SimpleNamespace(**{**vars(optim), "Adam": RecordingAdam}))
    return rates


def per_epoch(rates, steps_per_epoch=3):
    assert len(rates) % steps_per_epoch == 0 and all(len(set(rates[i:i + steps_per_epoch])) == 1
                                                     for i in range(0, len(rates), steps_per_epoch))
    return rates[::steps_per_epoch]


def test_mnist_resume_with_more_epochs_never_raises_the_rate(mnist_example, monkeypatch, tmp_path):
    ckpt = str(tmp_path / "m.safetensors")
    rates = recorded_rates(mnist_example, monkeypatch)
    mnist_example.main(["--epochs", "4", "--save", ckpt] + TINY)
    first = per_epoch(rates)
    np.testing.assert_allclose(first, [1e-3 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(4)], rtol=1e-12)
    rates.clear()
    history = mnist_example.main(["--epochs", "6", "--resume", ckpt, "--save", ckpt] + TINY)
    more = per_epoch(rates)
    # the epochs left: a cosine from epoch 4's rate down to 0 at epoch 6 (redrawing the cosine over 6
    # epochs would give epoch 5 0.25e-3, above epoch 4's 0.146e-3)
    np.testing.assert_allclose(more, [first[-1] * (1 + math.cos(math.pi * k / 3)) / 2 for k in (1, 2)], rtol=1e-12)
    assert all(b < a for a, b in zip(first + more, (first + more)[1:])) and more[-1] > 0
    assert [h["lr"] for h in history] == first + more
    rates.clear()
    mnist_example.main(["--epochs", "7", "--resume", ckpt, "--save", ""] + TINY)   # and again, from the new plan
    assert 0 < per_epoch(rates)[0] < more[-1]


def test_mnist_resume_with_the_same_epochs_continues_the_schedule(mnist_example, monkeypatch, tmp_path):
    ckpt = str(tmp_path / "m.safetensors")
    rates = recorded_rates(mnist_example, monkeypatch)
    save = mnist_example.save_checkpoint

    def save_then_stop(*args, **kwargs):
        save(*args, **kwargs)
        raise KeyboardInterrupt  # killed after the first epoch's checkpoint

    monkeypatch.setattr(mnist_example, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        mnist_example.main(["--epochs", "3", "--save", ckpt] + TINY)
    monkeypatch.setattr(mnist_example, "save_checkpoint", save)
    mnist_example.main(["--epochs", "3", "--resume", ckpt, "--save", ckpt] + TINY)
    np.testing.assert_allclose(per_epoch(rates), [1e-3, 0.75e-3, 0.25e-3], rtol=1e-12)


NOT_CHECKPOINTS = [("notes.npz", b"hello, these are my notes\n", "is not an .npz file"),
                   ("notes.safetensors", b"hello, these are my notes\n", "is not a valid .safetensors file"),
                   ("notes.txt", b"hello\n", ".txt is not a format this project writes"),
                   ("broken.npz", b"PK\x03\x04 but truncated", "truncated or not a valid .npz file")]


@pytest.mark.parametrize("name, content, reason", NOT_CHECKPOINTS, ids=[n for n, _, _ in NOT_CHECKPOINTS])
def test_mnist_resume_of_a_file_that_is_no_checkpoint_names_it(mnist_example, tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SystemExit) as info:
        mnist_example.main(["--epochs", "1", "--resume", str(path), "--save", ""] + TINY)
    message = info.value.code
    assert message.startswith(f"--resume {path}: not a checkpoint (") and reason in message, message
    assert "pickle" not in message and info.value.__cause__ is None


def test_mnist_resume_of_a_weights_file_says_it_cannot_resume(mnist_example, tmp_path):
    weights = str(tmp_path / "w.safetensors")
    mnist_example.build_model().save(weights)
    with pytest.raises(SystemExit, match=r"not a checkpoint written by examples/mnist.py \(no epoch"):
        mnist_example.main(["--epochs", "1", "--resume", weights, "--save", ""] + TINY)


# ---------------------------------------------------------------- --device

def test_mnist_device_cuda_without_cupy_says_how_to_install_before_loading_mnist(mnist_example, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)   # `import cupy` fails, as on a machine without it

    def no_mnist(*args, **kwargs):
        raise AssertionError("MNIST was loaded before the device was checked")

    monkeypatch.setattr(mnist_example.mnist, "load_data", no_mnist)
    with pytest.raises(SystemExit) as info:
        mnist_example.main(["--device", "cuda", "--save", "", "--metrics", ""])
    message = info.value.code
    assert message.startswith("--device cuda: device 'cuda' needs CuPy, which is not installed")
    assert 'pip install -e ".[cuda12]"' in message and info.value.__cause__ is None
    assert info.value.__suppress_context__   # no "The above exception was the direct cause" chain


def test_cupy_hint_is_the_readme_install_command():
    readme = open(os.path.join(ROOT, "README.md")).read()
    commands = re.findall(r'pip install -e "\.\[cuda1\d\]"|"\.\[cuda1\d\]"', readme)
    assert 'pip install -e ".[cuda12]"' in commands and '".[cuda13]"' in commands, commands
    hint = tc.device._CUPY_HINT
    assert 'pip install -e ".[cuda12]"' in hint and 'pip install -e ".[cuda13]"' in hint
    assert "tinygrad_cnn[" not in hint   # the package is installed from a clone, not by name


def test_binary_example_one_sigmoid_neuron():
    binary = load_example("binary")
    model = binary.build_model()
    assert model.layers[-1].units == 1
    out = model(__import__("tinygrad_cnn").rand(2, 1, 28, 28)).numpy()
    assert out.shape == (2, 1) and np.all((out > 0) & (out < 1))
    accuracy = binary.main(["--limit-train", "1200", "--batch-size", "32"])
    assert accuracy > 0.9   # 3 vs 8; chance is about 0.5


BAD_BINARY_FLAGS = [(["--epochs", "0"], "--epochs: must be at least 1, got 0"),
                    (["--epochs", "-2"], "--epochs: must be at least 1, got -2"),
                    (["--limit-train", "0"], "--limit-train: must be at least 1, got 0"),   # was ZeroDivisionError
                    (["--limit-train", "-5"], "--limit-train: must be at least 1, got -5"),
                    (["--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
                    (["--lr", "nan"], "--lr: must be a finite number above 0, got nan"),
                    (["--lr", "0"], "--lr: must be a finite number above 0, got 0"),
                    (["--digits", "3", "3"], "--digits needs two different digits")]


@pytest.mark.parametrize("flags, message", BAD_BINARY_FLAGS, ids=[" ".join(f) for f, _ in BAD_BINARY_FLAGS])
def test_binary_rejects_bad_flags_with_a_usage_error(capsys, flags, message):
    binary = load_example("binary")
    with pytest.raises(SystemExit) as info:
        binary.main(flags)
    assert info.value.code == 2 and message in capsys.readouterr().err


# ---------------------------------------------------------------- examples/predict.py (issue 15 item 4)

def test_predict_classifies_test_images_and_pngs_from_a_training_checkpoint(mnist_example, tmp_path, capsys):
    ckpt = str(tmp_path / "m.safetensors")
    mnist_example.main(["--epochs", "1", "--limit-train", "1024", "--limit-test", "100", "--batch-size", "64",
                        "--save", ckpt, "--metrics", "", "--no-progress"])
    capsys.readouterr()
    predict = load_example("predict")
    by_index = predict.main(["--checkpoint", ckpt, "--index", "0", "1", "2"])
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and out[0].startswith("test image 0 (label 7): ") and out[0].count("%") == 3
    for top in by_index:
        probs = [p for _, p in top]
        assert len(top) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert sum(top[0][0] == label for top, label in zip(by_index, [7, 2, 1])) >= 2  # chance is 0.1 each

    Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed (PNG input is optional)")
    from tinygrad_cnn.datasets import mnist
    (_, _), (x_test, _) = mnist.load_data()
    paths = [str(tmp_path / "light.png"), str(tmp_path / "ink.png")]
    Image.fromarray(x_test[0]).save(paths[0])
    Image.fromarray(255 - x_test[1]).save(paths[1])       # dark on light: inverted back on reading
    by_file = predict.main(["--checkpoint", ckpt] + paths)
    assert [[c for c, _ in t] for t in by_file] == [[c for c, _ in t] for t in by_index[:2]]
    np.testing.assert_allclose([[p for _, p in t] for t in by_file], [[p for _, p in t] for t in by_index[:2]],
                               atol=1e-6)


def test_predict_names_bad_input(tmp_path):
    predict = load_example("predict")
    with pytest.raises(SystemExit):
        predict.parse_args([])
    with pytest.raises(SystemExit, match="missing.safetensors"):   # a message, not a traceback (issue 27)
        predict.main(["--checkpoint", str(tmp_path / "missing.safetensors"), "--index", "0"])
