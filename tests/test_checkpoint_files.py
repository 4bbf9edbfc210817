"""Checkpoint files on disk: oversized headers, temporaries left by kill -9, permissions, extensions,
and loading the model part of the example's training checkpoint (issue 12 item 7, issue 15)."""
import io
import os
import signal
import stat
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from tinygrad_cnn import nn
from tinygrad_cnn.checkpoint import CheckpointError, load_arrays, save_arrays

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_model():
    return nn.Sequential([nn.Conv2D(2, 3, activation="relu"), nn.Flatten(), nn.Dense(3)], input_shape=(1, 5, 5))


def test_a_header_claiming_ten_trillion_elements_is_refused_before_allocating(tmp_path):
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 13,)})
    npy.write(b"\0" * 64)
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("w.npy", npy.getvalue())
    with pytest.raises(CheckpointError, match=r"huge.npz.*'w'.*\(10000000000000,\)"):
        load_arrays(path)


def test_a_header_claiming_fewer_bytes_than_held_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    save_arrays(path, {"w": np.zeros(4, np.float32)})
    with zipfile.ZipFile(path) as z:
        data = z.read("w.npy")
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, {"descr": "<f4", "fortran_order": False, "shape": (2,)})
    npy.write(data[-16:])
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("w.npy", npy.getvalue())
    with pytest.raises(CheckpointError, match="claims shape"):
        load_arrays(path)


@pytest.mark.parametrize("name", ["m.h5", "m.pt", "m", "m.npz.bak"])
def test_save_refuses_an_extension_it_does_not_write(tmp_path, name):
    with pytest.raises(CheckpointError, match="npz"):
        small_model().save(tmp_path / name)
    assert os.listdir(tmp_path) == []


def test_saved_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        save_arrays(tmp_path / "a.npz", {"w": np.zeros(2)})
        os.umask(0o077)
        save_arrays(tmp_path / "b.npz", {"w": np.zeros(2)})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.npz").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "b.npz").st_mode) == 0o600



@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_saving_over_a_file_keeps_its_permissions(tmp_path):
    """A checkpoint made private stays private when saved over (the rename of a fresh temporary file
    gave it the umask's 0644); a new file still follows the umask."""
    old = os.umask(0o022)
    try:
        save_arrays(tmp_path / "private.npz", {"w": np.zeros(2)})
        os.chmod(tmp_path / "private.npz", 0o600)
        small_model().save(tmp_path / "private.npz")
        save_arrays(tmp_path / "shared.safetensors", {"w": np.zeros(2)})
        os.chmod(tmp_path / "shared.safetensors", 0o664)
        save_arrays(tmp_path / "shared.safetensors", {"w": np.ones(2)})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "private.npz").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "shared.safetensors").st_mode) == 0o664
    np.testing.assert_array_equal(load_arrays(tmp_path / "shared.safetensors")["w"], np.ones(2))

WRITER = """
import sys, numpy as np
sys.path.insert(0, {root!r})
from tinygrad_cnn.checkpoint import save_arrays
path, i = sys.argv[1], 0
save_arrays(path, {{"w": np.full(2_000_000, 0.0), "step": np.array(0)}})
print("ready", flush=True)
while True:
    i += 1
    save_arrays(path, {{"w": np.full(2_000_000, float(i)), "step": np.array(i)}})
"""


def test_kill_9_during_saves_leaves_a_loadable_file_and_no_pile_of_temporaries(tmp_path):
    path = tmp_path / "ckpt.npz"
    script = WRITER.format(root=ROOT)
    rng = np.random.default_rng(0)
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        arrays = load_arrays(path)                      # old or new state, never mixed
        assert np.all(arrays["w"] == float(arrays["step"]))
        temporaries = [e for e in os.listdir(tmp_path) if e.startswith(".tmp-")]
        assert len(temporaries) <= 1, temporaries      # at most the one the killed writer had open
    save_arrays(path, {"w": np.zeros(1), "step": np.array(0)})
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def test_module_load_takes_the_model_part_of_the_examples_checkpoint(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        import mnist as example
    finally:
        sys.path.remove(os.path.join(ROOT, "examples"))
    from tinygrad_cnn import optim
    trained = example.build_model()
    opt = optim.Adam(trained.parameters(), lr=1e-3)
    path = tmp_path / "mnist.npz"
    example.save_checkpoint(str(path), trained, opt, 1, [{"epoch": 1}])
    fresh = example.build_model()
    fresh.load(path)
    for (name, a), (_, b) in zip(trained.named_parameters(), fresh.named_parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
