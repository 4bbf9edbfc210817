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
    with pytest.raises(Exception, match="missing.safetensors"):
        predict.main(["--checkpoint", str(tmp_path / "missing.safetensors"), "--index", "0"])
