"""The example scripts run end to end on a small slice of real MNIST: flags, checkpoint, metrics, resume."""
import importlib.util
import json
import os

import numpy as np
import pytest

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


def test_mnist_rejects_bad_flags(mnist_example):
    for bad in (["--epochs", "0"], ["--lr", "-1"], ["--batch-size", "0"]):
        with pytest.raises(SystemExit):
            mnist_example.parse_args(bad)


def test_mnist_resume_from_a_corrupt_checkpoint_names_the_file(mnist_example, tmp_path):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip archive")
    with pytest.raises(Exception, match="broken.npz"):
        mnist_example.main(["--epochs", "1", "--limit-train", "64", "--limit-test", "64", "--resume", str(broken),
                            "--save", "", "--metrics", "", "--no-progress"])


def test_binary_example_one_sigmoid_neuron():
    binary = load_example("binary")
    model = binary.build_model()
    assert model.layers[-1].units == 1
    out = model(__import__("tinygrad_cnn").rand(2, 1, 28, 28)).numpy()
    assert out.shape == (2, 1) and np.all((out > 0) & (out < 1))
    accuracy = binary.main(["--limit-train", "1200", "--batch-size", "32"])
    assert accuracy > 0.9   # 3 vs 8; chance is about 0.5
