"""The .safetensors weights format (issue 15 item 1): round trips, files read and written by the real
`safetensors` package both ways, malformed headers refused with CheckpointError, atomic saves under kill -9,
and the example's checkpoint (model, optimizer, metadata) loading with Module.load."""
import json
import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinygrad_cnn import nn, optim
from tinygrad_cnn.checkpoint import CheckpointError, load_arrays, load_file, save_arrays

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DTYPES = ["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "uint16", "uint32",
          "uint64", "bool"]


def small_model():
    return nn.Sequential([nn.Conv2D(2, 3, activation="relu"), nn.Flatten(), nn.Dense(3)], input_shape=(1, 5, 5))


def raw_file(path, header, data=b"", length=None):
    """A .safetensors file written by hand: header (a dict, or bytes as they are) and data."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text) if length is None else length))
        f.write(text)
        f.write(data)
    return path


arrays_strategy = st.dictionaries(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8).filter(
        lambda s: s != "__metadata__"),
    st.tuples(st.sampled_from(DTYPES), st.lists(st.integers(0, 4), max_size=3)), max_size=5)


@settings(max_examples=25, deadline=None)
@given(spec=arrays_strategy, metadata=st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=3))
def test_round_trip_keeps_names_dtypes_shapes_values_and_metadata(tmp_path_factory, spec, metadata):
    rng = np.random.default_rng(0)
    arrays = {name: (rng.standard_normal(shape) * 100).astype(dtype) for name, (dtype, shape) in spec.items()}
    path = tmp_path_factory.mktemp("rt") / "a.safetensors"
    save_arrays(path, arrays, metadata=metadata)
    back, meta = load_file(path)
    assert meta == metadata
    assert set(back) == set(arrays)
    for name, a in arrays.items():
        assert back[name].dtype == a.dtype and back[name].shape == a.shape, name
        np.testing.assert_array_equal(back[name], a, err_msg=name)
        assert back[name].flags.writeable


def test_big_endian_and_non_contiguous_arrays_are_written_as_little_endian_c_order(tmp_path):
    a = np.arange(12, dtype=">f8").reshape(3, 4)[:, ::2]
    save_arrays(tmp_path / "a.safetensors", {"a": a})
    np.testing.assert_array_equal(load_arrays(tmp_path / "a.safetensors")["a"], a)


def test_strings_and_objects_are_refused_with_a_hint(tmp_path):
    with pytest.raises(TypeError, match="'h'.*metadata"):
        save_arrays(tmp_path / "a.safetensors", {"h": np.array("text")})
    with pytest.raises(TypeError, match="str to str"):
        save_arrays(tmp_path / "a.safetensors", {"w": np.zeros(1)}, metadata={"epoch": 3})
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- the real package, both ways

def test_the_safetensors_package_reads_our_files(tmp_path):
    stn = pytest.importorskip("safetensors.numpy", reason="the safetensors package is not installed (test extra)")
    from safetensors import safe_open
    model = small_model()
    path = tmp_path / "m.safetensors"
    model.save(path)
    theirs = stn.load_file(str(path))
    assert set(theirs) == set(model.state_dict())
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(theirs[name], value)
    save_arrays(tmp_path / "meta.safetensors", {"x": np.arange(3)}, metadata={"epoch": "2", "note": "é"})
    with safe_open(str(tmp_path / "meta.safetensors"), "np") as f:
        assert f.metadata() == {"epoch": "2", "note": "é"}


def test_we_read_files_the_safetensors_package_wrote(tmp_path):
    stn = pytest.importorskip("safetensors.numpy", reason="the safetensors package is not installed (test extra)")
    rng = np.random.default_rng(1)
    arrays = {f"t{i}": (rng.standard_normal((i, 3)) * 50).astype(d) for i, d in enumerate(DTYPES)}
    arrays["scalar"] = np.array(7, np.int64)
    path = tmp_path / "theirs.safetensors"
    stn.save_file(arrays, str(path), metadata={"format": "np"})
    back, meta = load_file(path)
    assert meta == {"format": "np"}
    for name, a in arrays.items():
        assert back[name].dtype == a.dtype, name
        np.testing.assert_array_equal(back[name], a, err_msg=name)
    model = small_model()
    stn.save_file({k: v * 2 for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    fresh = small_model()
    fresh.load(tmp_path / "w.safetensors")
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[name], value * 2)


# ---------------------------------------------------------------- malformed files

GOOD = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


@pytest.mark.parametrize("case, make, message", [
    ("empty", lambda p: p.write_bytes(b""), "shorter than the 8-byte header length"),
    ("truncated length", lambda p: p.write_bytes(b"\x10\0\0"), "shorter than the 8-byte"),
    ("huge length", lambda p: raw_file(p, GOOD, b"\0" * 8, length=2 ** 63), "header length .* exceeds"),
    ("length past the end", lambda p: raw_file(p, GOOD, b"", length=10_000), "exceeds the .* bytes after it"),
    ("bad JSON", lambda p: raw_file(p, b'{"w": {"dtype": "F32",', b"\0" * 8), "not valid JSON"),
    ("not UTF-8", lambda p: raw_file(p, b'{"\xff": 1}', b""), "not UTF-8"),
    ("a list", lambda p: raw_file(p, b"[1, 2]"), "not an object"),
    ("duplicate name", lambda p: raw_file(p, b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
                                             b'"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}',
                                          b"\0" * 8), "names 'w' twice"),
    ("wrong dtype", lambda p: raw_file(p, {"w": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}},
                                       b"\0" * 8), "dtype 'F33'"),
    ("bfloat16", lambda p: raw_file(p, {"w": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}},
                                    b"\0" * 8), "dtype 'BF16'"),
    ("negative shape", lambda p: raw_file(p, {"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}},
                                          b"\0" * 8), "shape"),
    ("missing field", lambda p: raw_file(p, {"w": {"dtype": "F32", "shape": [2]}}, b"\0" * 8), "exactly dtype"),
    ("offsets beyond the file", lambda p: raw_file(p, {"w": {"dtype": "F32", "shape": [2],
                                                             "data_offsets": [0, 8]}}, b"\0" * 4), "run past"),
    ("huge shape", lambda p: raw_file(p, {"w": {"dtype": "F32", "shape": [10 ** 13],
                                                "data_offsets": [0, 8]}}, b"\0" * 8), "10000000000000"),
    ("shape and offsets disagree", lambda p: raw_file(p, {"w": {"dtype": "F32", "shape": [3],
                                                                "data_offsets": [0, 8]}}, b"\0" * 8), "span 8"),
    ("overlapping", lambda p: raw_file(p, {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                           "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
                                       b"\0" * 12), "overlap"),
    ("hole", lambda p: raw_file(p, {"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8),
     "hole"),
    ("trailing bytes", lambda p: raw_file(p, GOOD, b"\0" * 12), "cover 8 data bytes but the file holds 12"),
    ("metadata not strings", lambda p: raw_file(p, {"__metadata__": {"epoch": 3}}), "__metadata__"),
])
def test_malformed_files_raise_checkpoint_error_naming_file_and_problem(tmp_path, case, make, message):
    path = tmp_path / "bad.safetensors"
    make(path)
    with pytest.raises(CheckpointError, match=r"bad\.safetensors.*" + message):
        load_arrays(path)
    with pytest.raises(CheckpointError, match=message):
        small_model().load(path)


def test_a_well_formed_hand_written_file_loads(tmp_path):
    """The malformed cases above differ from this one in one field each."""
    path = raw_file(tmp_path / "ok.safetensors", GOOD, np.array([1.5, -2], "<f4").tobytes())
    np.testing.assert_array_equal(load_arrays(path)["w"], [1.5, -2])


def test_other_extensions_are_refused_on_load_and_save(tmp_path):
    save_arrays(tmp_path / "a.safetensors", {"w": np.zeros(2)})
    os.rename(tmp_path / "a.safetensors", tmp_path / "a.bin")
    with pytest.raises(CheckpointError, match=r"\.bin.*\.safetensors, \.npz"):
        load_arrays(tmp_path / "a.bin")
    with pytest.raises(CheckpointError, match=r"\.pt.*\.safetensors"):
        small_model().save(tmp_path / "m.pt")


def test_npz_is_still_written_when_asked_and_read(tmp_path):
    model = small_model()
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        assert set(f.files) == set(model.state_dict())
    save_arrays(tmp_path / "c.npz", {"w": np.ones(2)}, metadata={"epoch": "4"})
    arrays, meta = load_file(tmp_path / "c.npz")
    assert meta == {"epoch": "4"} and list(arrays) == ["w"]


# ---------------------------------------------------------------- atomic writes

WRITER = """
import sys, numpy as np
sys.path.insert(0, {root!r})
from tinygrad_cnn.checkpoint import save_arrays
path, i = sys.argv[1], 0
save_arrays(path, {{"w": np.full(2_000_000, 0.0), "step": np.array(0)}}, metadata={{"step": "0"}})
print("ready", flush=True)
while True:
    i += 1
    save_arrays(path, {{"w": np.full(2_000_000, float(i)), "step": np.array(i)}}, metadata={{"step": str(i)}})
"""


def test_kill_9_during_safetensors_saves_leaves_a_loadable_consistent_file(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    rng = np.random.default_rng(0)
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", WRITER.format(root=ROOT), str(path)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        arrays, meta = load_file(path)                      # old or new state, never mixed
        assert np.all(arrays["w"] == float(arrays["step"])) and meta["step"] == str(int(arrays["step"]))
        assert len([e for e in os.listdir(tmp_path) if e.startswith(".tmp-")]) <= 1
    save_arrays(path, {"w": np.zeros(1)})
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


# ---------------------------------------------------------------- the example's checkpoint

def example():
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        import mnist
    finally:
        sys.path.remove(os.path.join(ROOT, "examples"))
    return mnist


def test_the_examples_default_checkpoint_is_safetensors_with_model_optimizer_and_metadata(tmp_path):
    ex = example()
    assert ex.SAVE.endswith(".safetensors")
    trained = ex.build_model()
    opt = optim.Adam(trained.parameters(), lr=1e-3)
    path = tmp_path / "mnist.safetensors"
    ex.save_checkpoint(str(path), trained, opt, 2, [{"epoch": 1}, {"epoch": 2}], {"lr": 1e-3})
    arrays, meta = load_file(path)
    assert json.loads(meta["history"]) == [{"epoch": 1}, {"epoch": 2}] and meta["epoch"] == "2"
    assert json.loads(meta["config"]) == {"lr": 1e-3}
    assert any(k.startswith("optim/") for k in arrays)
    fresh = ex.build_model()
    fresh.load(path)                                        # the model part, directly
    for (name, a), (_, b) in zip(trained.named_parameters(), fresh.named_parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    model2 = ex.build_model()
    opt2 = optim.Adam(model2.parameters(), lr=1e-3)
    epoch, history = ex.load_checkpoint(str(path), model2, opt2)
    assert epoch == 2 and history == [{"epoch": 1}, {"epoch": 2}]
