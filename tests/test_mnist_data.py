"""Tests for tinygrad_cnn.datasets.mnist: real files, bad files, search order.

Structure checks are tested with tiny crafted IDX files; where a test needs
them to pass the hash check too, CHECKSUMS is patched to the crafted files'
own sizes and digests.  The network is never used: `_fetch` is patched.
"""

import gzip
import hashlib
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from tinygrad_cnn.datasets import mnist

REPO_MNIST = Path(__file__).resolve().parents[1] / "data" / "mnist"
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# --- helpers --------------------------------------------------------------

def idx_images(n, seed=0, magic=mnist.IMAGE_MAGIC, rows=28, cols=28,
               count=None):
    """IDX image bytes; `count` overrides the header's item count."""
    pixels = np.random.default_rng(seed).integers(
        0, 256, size=n * rows * cols, dtype=np.uint8)
    header = struct.pack(">IIII", magic, n if count is None else count,
                         rows, cols)
    return header + pixels.tobytes()


def idx_labels(n, seed=0, magic=mnist.LABEL_MAGIC, count=None):
    labels = np.random.default_rng(seed).integers(0, 10, size=n,
                                                  dtype=np.uint8)
    return struct.pack(">II", magic, n if count is None else count) \
        + labels.tobytes()


def tiny_files(n_train=5, n_test=3, seed=0):
    """Decompressed contents of a tiny but well-formed MNIST set."""
    return {
        mnist.TRAIN_IMAGES: idx_images(n_train, seed),
        mnist.TRAIN_LABELS: idx_labels(n_train, seed),
        mnist.TEST_IMAGES: idx_images(n_test, seed + 1),
        mnist.TEST_LABELS: idx_labels(n_test, seed + 1),
    }


def write_files(folder, files, gz=True):
    """Write `{name: raw bytes}` into `folder` (gzipped if `gz`)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


def table_for(files):
    return {name: (len(data), hashlib.sha256(data).hexdigest())
            for name, data in files.items()}


def names_in(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture(scope="module")
def real():
    return mnist.load_data(REPO_MNIST)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No env var, empty repo dir, empty cache, no network."""
    monkeypatch.delenv(mnist.ENV_VAR, raising=False)
    monkeypatch.setattr(mnist, "REPO_DATA_DIR", tmp_path / "repo")
    monkeypatch.setattr(mnist, "CACHE_DIR", str(tmp_path / "cache"))

    def no_network(url):
        raise AssertionError(f"unexpected download of {url}")
    monkeypatch.setattr(mnist, "_fetch", no_network)
    return tmp_path


@pytest.fixture
def tiny(monkeypatch):
    """A tiny dataset whose own checksums are the expected ones."""
    files = tiny_files()
    monkeypatch.setattr(mnist, "CHECKSUMS", table_for(files))
    return files


# --- real data ------------------------------------------------------------

def test_real_shapes_and_dtypes(real):
    (x_train, y_train), (x_test, y_test) = real
    assert x_train.shape == (60000, 28, 28)
    assert y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28)
    assert y_test.shape == (10000,)
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.uint8
        assert a.flags.writeable and a.flags.c_contiguous


def test_real_label_counts(real):
    (_, y_train), (_, y_test) = real
    assert np.bincount(y_train, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(y_test, minlength=10).tolist() == TEST_COUNTS


def test_real_pixel_statistics(real):
    (x_train, _), _ = real
    # Exact integer sums; avoids a 376 MB float64 temporary.
    n = x_train.size
    total = int(x_train.sum(dtype=np.uint64))
    squares = int(np.square(x_train, dtype=np.uint16).sum(dtype=np.uint64))
    mean = total / n / 255.0
    std = np.sqrt(squares / n - (total / n) ** 2) / 255.0
    assert mean == pytest.approx(0.1307, abs=1e-3)
    assert std == pytest.approx(0.3081, abs=1e-3)


def test_repo_data_dir_points_at_repository():
    assert mnist.REPO_DATA_DIR.resolve() == REPO_MNIST.resolve()
    assert (REPO_MNIST / "README.md").is_file()


def test_to_float_images(real):
    _, (x_test, _) = real
    out = mnist.to_float_images(x_test[:7])
    assert out.shape == (7, 1, 28, 28)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0], x_test[:7] / np.float32(255))
    assert out.min() >= 0.0 and out.max() <= 1.0
    with pytest.raises(ValueError, match="shape"):
        mnist.to_float_images(x_test[0])


def test_info_names_license():
    assert "CC BY-SA 3.0" in mnist.INFO["license"]
    assert "LeCun" in mnist.INFO["authors"]


# --- file formats ---------------------------------------------------------

def test_tiny_gz_loads(tmp_path, tiny):
    (x_train, y_train), (x_test, y_test) = mnist.load_data(
        write_files(tmp_path, tiny))
    assert x_train.shape == (5, 28, 28) and y_train.shape == (5,)
    assert x_test.shape == (3, 28, 28) and y_test.shape == (3,)
    assert x_train.tobytes() == tiny[mnist.TRAIN_IMAGES][16:]
    assert y_test.tobytes() == tiny[mnist.TEST_LABELS][8:]


def test_raw_and_mixed_files_load(tmp_path, tiny):
    raw = {k: v for k, v in tiny.items() if "images" in k}
    gz = {k: v for k, v in tiny.items() if "labels" in k}
    write_files(tmp_path, raw, gz=False)
    write_files(tmp_path, gz, gz=True)
    (x_train, y_train), _ = mnist.load_data(tmp_path)
    assert x_train.tobytes() == tiny[mnist.TRAIN_IMAGES][16:]
    assert y_train.tobytes() == tiny[mnist.TRAIN_LABELS][8:]


# --- bad files ------------------------------------------------------------

def bad_set(tmp_path, name, content, gz=True):
    """Tiny valid set in tmp_path with `name` replaced by `content`."""
    files = tiny_files()
    files.pop(name)
    write_files(tmp_path, files)
    target = tmp_path / (name + (".gz" if gz else ""))
    target.write_bytes(content)
    return target


def test_missing_file(tmp_path, tiny):
    write_files(tmp_path, tiny)
    (tmp_path / (mnist.TEST_LABELS + ".gz")).unlink()
    with pytest.raises(mnist.MNISTNotFoundError,
                       match=rf"not found.*{mnist.TEST_LABELS}") as info:
        mnist.load_data(tmp_path)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, mnist.MNISTError)
    assert str(tmp_path) in str(info.value)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        mnist.load_data(tmp_path / "nowhere")


def test_truncated_gzip(tmp_path, tiny):
    blob = gzip.compress(tiny[mnist.TRAIN_IMAGES])
    target = bad_set(tmp_path, mnist.TRAIN_IMAGES, blob[:len(blob) // 2])
    with pytest.raises(mnist.MNISTError,
                       match=rf"{re.escape(target.name)}.*truncated"):
        mnist.load_data(tmp_path)


def test_garbage_with_gz_name(tmp_path, tiny):
    target = bad_set(tmp_path, mnist.TRAIN_LABELS, b"this is not gzip data")
    with pytest.raises(mnist.MNISTError,
                       match=rf"{re.escape(target.name)}.*not a valid gzip"):
        mnist.load_data(tmp_path)


def test_corrupt_deflate_stream(tmp_path, tiny):
    blob = bytearray(gzip.compress(tiny[mnist.TEST_IMAGES]))
    blob[20:40] = b"\xff" * 20
    target = bad_set(tmp_path, mnist.TEST_IMAGES, bytes(blob))
    with pytest.raises(mnist.MNISTError,
                       match=rf"{re.escape(target.name)}.*gzip"):
        mnist.load_data(tmp_path)


@pytest.mark.parametrize("name, content", [
    (mnist.TRAIN_IMAGES, idx_images(5, magic=mnist.LABEL_MAGIC)),
    (mnist.TRAIN_LABELS, idx_labels(5, magic=0x12345678)),
])
def test_wrong_magic(tmp_path, tiny, name, content):
    target = bad_set(tmp_path, name, gzip.compress(content))
    with pytest.raises(mnist.MNISTError,
                       match=rf"{re.escape(target.name)}.*magic"):
        mnist.load_data(tmp_path)


def test_wrong_image_size(tmp_path, tiny):
    target = bad_set(tmp_path, mnist.TEST_IMAGES,
                     gzip.compress(idx_images(3, rows=27)))
    with pytest.raises(mnist.MNISTError,
                       match=rf"{re.escape(target.name)}.*27x28"):
        mnist.load_data(tmp_path)


def test_header_count_larger_than_payload(tmp_path, tiny):
    target = bad_set(tmp_path, mnist.TRAIN_IMAGES,
                     gzip.compress(idx_images(5, count=6)))
    with pytest.raises(mnist.MNISTError,
                       match=rf"{re.escape(target.name)}.*truncated.*header"):
        mnist.load_data(tmp_path)


def test_payload_larger_than_header(tmp_path, tiny):
    target = bad_set(tmp_path, mnist.TRAIN_LABELS,
                     idx_labels(5, count=4), gz=False)
    with pytest.raises(mnist.MNISTError,
                       match=rf"{re.escape(target.name)}.*wrong size"):
        mnist.load_data(tmp_path)


def test_shorter_than_header(tmp_path, tiny):
    target = bad_set(tmp_path, mnist.TEST_LABELS, b"\x00\x00\x08",
                     gz=False)
    with pytest.raises(mnist.MNISTError,
                       match=rf"{re.escape(target.name)}.*truncated"):
        mnist.load_data(tmp_path)


def test_image_label_count_mismatch(tmp_path, tiny):
    bad_set(tmp_path, mnist.TRAIN_LABELS, gzip.compress(idx_labels(6)))
    with pytest.raises(mnist.MNISTError, match=rf"count mismatch.*"
                       rf"{mnist.TRAIN_IMAGES}.*5 images.*"
                       rf"{mnist.TRAIN_LABELS}.*6 labels"):
        mnist.load_data(tmp_path)


def test_hash_mismatch_tiny(tmp_path, monkeypatch):
    files = tiny_files()
    table = table_for(files)
    size, _ = table[mnist.TEST_IMAGES]
    table[mnist.TEST_IMAGES] = (size, "0" * 64)
    monkeypatch.setattr(mnist, "CHECKSUMS", table)
    write_files(tmp_path, files)
    with pytest.raises(mnist.MNISTError,
                       match=rf"{mnist.TEST_IMAGES}\.gz.*SHA-256 mismatch"):
        mnist.load_data(tmp_path)


def test_hash_mismatch_real_table(tmp_path):
    """Right size, right structure, wrong labels: only the hash sees it."""
    for name in (mnist.TRAIN_IMAGES, mnist.TEST_IMAGES, mnist.TEST_LABELS):
        (tmp_path / (name + ".gz")).symlink_to(REPO_MNIST / (name + ".gz"))
    (tmp_path / mnist.TRAIN_LABELS).write_bytes(
        idx_labels(60000, seed=3))
    with pytest.raises(mnist.MNISTError,
                       match=rf"{mnist.TRAIN_LABELS}.*SHA-256 mismatch"):
        mnist.load_data(tmp_path)


def test_wrong_size_against_table(tmp_path):
    """A well-formed but smaller file is rejected by the size table."""
    write_files(tmp_path, tiny_files())
    with pytest.raises(mnist.MNISTError,
                       match=rf"{mnist.TRAIN_IMAGES}.*wrong size"):
        mnist.load_data(tmp_path)


# --- search order ---------------------------------------------------------

def test_explicit_path_wins(isolated, tiny, monkeypatch):
    write_files(isolated / "explicit", tiny)
    # Different content elsewhere: loading it would fail the patched hashes.
    write_files(isolated / "env", tiny_files(seed=9))
    write_files(mnist.REPO_DATA_DIR, tiny_files(seed=8))
    monkeypatch.setenv(mnist.ENV_VAR, str(isolated / "env"))
    (x_train, _), _ = mnist.load_data(isolated / "explicit")
    assert x_train.tobytes() == tiny[mnist.TRAIN_IMAGES][16:]


def test_explicit_path_does_not_fall_back(isolated, tiny, monkeypatch):
    write_files(isolated / "env", tiny)
    monkeypatch.setenv(mnist.ENV_VAR, str(isolated / "env"))
    write_files(mnist.REPO_DATA_DIR, tiny)
    with pytest.raises(mnist.MNISTNotFoundError, match="explicit"):
        mnist.load_data(isolated / "explicit")


def test_explicit_path_with_mnist_subfolder(isolated, tiny):
    write_files(isolated / "data" / "mnist", tiny)
    (x_train, _), _ = mnist.load_data(str(isolated / "data"))
    assert len(x_train) == 5


@pytest.mark.parametrize("sub", ["", "mnist"])
def test_env_var_used(isolated, tiny, monkeypatch, sub):
    write_files(isolated / "env" / sub, tiny)
    monkeypatch.setenv(mnist.ENV_VAR, str(isolated / "env"))
    (x_train, _), _ = mnist.load_data()
    assert x_train.tobytes() == tiny[mnist.TRAIN_IMAGES][16:]


def test_env_var_beats_repo_dir(isolated, monkeypatch):
    env_files, repo_files = tiny_files(seed=1), tiny_files(seed=2)
    monkeypatch.setattr(mnist, "CHECKSUMS", table_for(env_files))
    write_files(isolated / "env", env_files)
    write_files(mnist.REPO_DATA_DIR, repo_files)
    monkeypatch.setenv(mnist.ENV_VAR, str(isolated / "env"))
    (x_train, _), _ = mnist.load_data()
    assert x_train.tobytes() == env_files[mnist.TRAIN_IMAGES][16:]


def test_repo_dir_then_cache(isolated, tiny, monkeypatch):
    cache = Path(mnist.CACHE_DIR)
    write_files(cache, tiny)
    (x_train, _), _ = mnist.load_data()
    assert len(x_train) == 5          # from the cache
    bigger = tiny_files(n_train=4, seed=4)
    write_files(mnist.REPO_DATA_DIR, bigger, gz=False)
    monkeypatch.setattr(mnist, "CHECKSUMS", table_for(bigger))
    (x_train, _), _ = mnist.load_data()
    assert len(x_train) == 4          # the repo dir comes first


def test_cache_dir_follows_home(isolated, tiny, monkeypatch):
    monkeypatch.setattr(mnist, "CACHE_DIR", "~/.cache/tinygrad_cnn/mnist")
    monkeypatch.setenv("HOME", str(isolated / "home"))
    write_files(isolated / "home" / ".cache" / "tinygrad_cnn" / "mnist", tiny)
    (x_train, _), _ = mnist.load_data()
    assert len(x_train) == 5


# --- download -------------------------------------------------------------

def fake_mirror(blobs, calls, bad_urls=()):
    """A `_fetch` serving `{file name: bytes}`; records every URL."""
    def fetch(url):
        calls.append(url)
        if any(url.startswith(bad) for bad in bad_urls):
            raise OSError("connection refused")
        return blobs[url.rsplit("/", 1)[1]]
    return fetch


def test_download_real_bytes(isolated, monkeypatch, real):
    blobs = {name + ".gz": (REPO_MNIST / (name + ".gz")).read_bytes()
             for name in mnist.FILES}
    calls = []
    monkeypatch.setattr(mnist, "_fetch", fake_mirror(blobs, calls))
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    cache = Path(mnist.CACHE_DIR)
    assert names_in(cache) == sorted(blobs)       # no temp files left
    assert calls == [mnist.MIRRORS[0] + n + ".gz" for n in mnist.FILES]
    for name, blob in blobs.items():
        assert (cache / name).read_bytes() == blob
    (rx_train, ry_train), (rx_test, ry_test) = real
    np.testing.assert_array_equal(x_train, rx_train)
    np.testing.assert_array_equal(y_test, ry_test)


def test_download_falls_back_to_second_mirror(isolated, tiny, monkeypatch):
    blobs = {n + ".gz": gzip.compress(d) for n, d in tiny.items()}
    calls = []
    monkeypatch.setattr(mnist, "_fetch", fake_mirror(
        blobs, calls, bad_urls=[mnist.MIRRORS[0]]))
    (x_train, _), _ = mnist.load_data()
    assert len(x_train) == 5
    assert calls[:2] == [m + mnist.TRAIN_IMAGES + ".gz"
                         for m in mnist.MIRRORS]
    assert names_in(Path(mnist.CACHE_DIR)) == sorted(blobs)


def test_download_only_missing_files(isolated, tiny, monkeypatch):
    cache = Path(mnist.CACHE_DIR)
    write_files(cache, {mnist.TRAIN_IMAGES: tiny[mnist.TRAIN_IMAGES]})
    blobs = {n + ".gz": gzip.compress(d) for n, d in tiny.items()}
    calls = []
    monkeypatch.setattr(mnist, "_fetch", fake_mirror(blobs, calls))
    mnist.load_data()
    assert len(calls) == 3 and all(mnist.TRAIN_IMAGES not in c
                                   for c in calls)


def test_corrupt_download_leaves_nothing(isolated, tiny, monkeypatch):
    blobs = {n + ".gz": gzip.compress(d) for n, d in tiny.items()}
    blobs[mnist.TRAIN_IMAGES + ".gz"] = gzip.compress(
        idx_images(5, seed=42))                  # valid IDX, wrong hash
    calls = []
    monkeypatch.setattr(mnist, "_fetch", fake_mirror(blobs, calls))
    with pytest.raises(mnist.MNISTError,
                       match=rf"{mnist.TRAIN_IMAGES}.*SHA-256 mismatch"):
        mnist.load_data()
    assert len(calls) == len(mnist.MIRRORS)      # every mirror was tried
    assert names_in(Path(mnist.CACHE_DIR)) == []


def test_garbage_download_is_not_written(isolated, tiny, monkeypatch):
    monkeypatch.setattr(mnist, "_fetch", lambda url: b"<html>oops</html>")
    with pytest.raises(mnist.MNISTError, match="not a valid gzip"):
        mnist.load_data()
    assert names_in(Path(mnist.CACHE_DIR)) == []


def test_offline_raises_not_found(isolated, tiny, monkeypatch):
    def offline(url):
        raise OSError("network is unreachable")
    monkeypatch.setattr(mnist, "_fetch", offline)
    with pytest.raises(mnist.MNISTNotFoundError,
                       match=r"not found.*download failed.*unreachable"):
        mnist.load_data()
    assert names_in(Path(mnist.CACHE_DIR)) == []


def test_failed_write_removes_temp_file(isolated, tiny, monkeypatch):
    blobs = {n + ".gz": gzip.compress(d) for n, d in tiny.items()}
    monkeypatch.setattr(mnist, "_fetch", fake_mirror(blobs, []))

    def broken_replace(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(mnist.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        mnist.load_data()
    assert names_in(Path(mnist.CACHE_DIR)) == []

