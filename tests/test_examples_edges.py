"""The examples from a user's side (issue 27): predict.py run from another directory says where it looked
for the checkpoint and how to make one, and keras_mnist.py takes mnist.py's --epochs/--limit-* flags."""
import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"edges_{name}", os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_predict_from_another_directory_names_the_checkpoint_path_and_how_to_make_one(tmp_path):
    run = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "predict.py"), "--checkpoint",
                          "runs/mine.safetensors", "--index", "0"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert str(tmp_path / "runs" / "mine.safetensors") in run.stderr      # the path it looked at
    assert "examples/mnist.py" in run.stderr and "--checkpoint PATH" in run.stderr  # and how to make one


def test_predict_default_checkpoint_is_looked_for_here_and_in_the_clone(tmp_path, monkeypatch):
    predict = load_example("predict")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(predict, "HERE", str(tmp_path / "clone" / "examples"))
    with pytest.raises(SystemExit) as info:
        predict.main(["--index", "0"])
    message = str(info.value.code)
    assert str(tmp_path / "runs" / "mnist.safetensors") in message
    assert str(tmp_path / "clone" / "runs" / "mnist.safetensors") in message
    # the clone's checkpoint is found from elsewhere
    (tmp_path / "clone" / "runs").mkdir(parents=True)
    load_example("mnist").build_model().save(tmp_path / "clone" / "runs" / "mnist.safetensors")
    assert predict.checkpoint_path(predict.CHECKPOINT) == str(tmp_path / "clone" / "runs" / "mnist.safetensors")


def test_keras_mnist_takes_epochs_and_limits():
    example = load_example("keras_mnist")
    assert vars(example.parse_args([])) == {"epochs": 5, "limit_train": None, "limit_test": None}  # the tutorial's
    history, (loss, accuracy) = example.main(["--epochs", "1", "--limit-train", "256", "--limit-test", "64"])
    assert history.epoch == [0] and 0 <= accuracy <= 1 and loss > 0
    assert history.params["steps"] == 256 // 32
