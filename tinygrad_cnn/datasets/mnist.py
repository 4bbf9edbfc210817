"""MNIST handwritten digits, loaded from the four standard IDX files.

The MNIST database is by Yann LeCun, Corinna Cortes and Christopher J.C.
Burges and is distributed under the Creative Commons Attribution-Share Alike
3.0 license (CC BY-SA 3.0); see `data/mnist/README.md` for the attribution
that travels with the files.

`load_data()` mirrors `keras.datasets.mnist.load_data()`: it returns
`((x_train, y_train), (x_test, y_test))` as uint8 NumPy arrays.  Every file
is checked (IDX header, payload length, decompressed size and SHA-256) so a
truncated or corrupt copy fails loudly with an `MNISTError` naming the file,
instead of training silently on bad data.

Where the files are looked for, in order:

1. the `path` argument (if given, nothing else is tried);
2. `$TINYGRAD_CNN_DATA` (the folder itself, or a folder holding `mnist/`);
3. the files bundled with the package: `data/mnist/` in a clone, or
   `tinygrad_cnn/datasets/mnist_files/` in an installed wheel (pyproject.toml
   copies them there), so a `pip install .` needs no network;
4. the user cache `~/.cache/tinygrad_cnn/mnist`;
5. otherwise the files are downloaded from `MIRRORS` into the cache.
"""

import gzip
import hashlib
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from ..device import module_of

__all__ = ["INFO", "MNISTError", "MNISTNotFoundError", "load_data",
           "to_float_images"]

INFO = {
    "name": "MNIST",
    "authors": "Yann LeCun, Corinna Cortes, Christopher J.C. Burges",
    "license": "CC BY-SA 3.0",
}

ENV_VAR = "TINYGRAD_CNN_DATA"
# Located from the package file so it works from any working directory: inside
# the package in an installed wheel, else the clone's data/mnist/.
_WHEEL_DATA_DIR = Path(__file__).resolve().parent / "mnist_files"
REPO_DATA_DIR = (_WHEEL_DATA_DIR if _WHEEL_DATA_DIR.is_dir()
                 else Path(__file__).resolve().parents[2] / "data" / "mnist")
# Expanded at call time so that a changed $HOME (e.g. in tests) is honoured.
CACHE_DIR = "~/.cache/tinygrad_cnn/mnist"
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# Size and SHA-256 of the DECOMPRESSED files: the .gz bytes differ between
# copies (recompression), the IDX contents do not.
CHECKSUMS = {
    TRAIN_IMAGES: (47040016, "ba891046e6505d7aadcbbe25680a0738"
                             "ad16aec93bde7f9b65e87a2fc25776db"),
    TRAIN_LABELS: (60008, "65a50cbbf4e906d70832878ad85ccda5"
                          "333a97f0f4c3dd2ef09a8a9eef7101c5"),
    TEST_IMAGES: (7840016, "0fa7898d509279e482958e8ce81c8e77"
                           "db3f2f8254e26661ceb7762c4d494ce7"),
    TEST_LABELS: (10008, "ff7bcfd416de33731a308c3f266cc351"
                         "222c34898ecbeaf847f06e48f7ec33f2"),
}

IMAGE_MAGIC = 0x00000803
LABEL_MAGIC = 0x00000801
ROWS = COLS = 28


class MNISTError(ValueError):
    """A MNIST file is unusable (corrupt, truncated, wrong content)."""


class MNISTNotFoundError(MNISTError, FileNotFoundError):
    """A MNIST file is missing and could not be obtained."""


def load_data(path=None):
    """Return `((x_train, y_train), (x_test, y_test))` as uint8 arrays.

    Shapes are (60000, 28, 28), (60000,), (10000, 28, 28), (10000,), as in
    Keras.  `path` names a folder holding the four IDX files (`.gz` or
    raw); when given, missing files there raise instead of falling back.
    """
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"load_data: path must be a folder name (str or pathlib.Path) or None, got {path!r}")
        if os.path.isfile(path):
            raise MNISTNotFoundError(f"load_data: path {os.fspath(path)!r} is a file; give the folder that "
                                     f"holds the four MNIST files")
    folder = _locate(path)
    x_train, y_train = _load_pair(folder, TRAIN_IMAGES, TRAIN_LABELS)
    x_test, y_test = _load_pair(folder, TEST_IMAGES, TEST_LABELS)
    return (x_train, y_train), (x_test, y_test)


def to_float_images(x):
    """Scale uint8 images (N, 28, 28) to float32 (N, 1, 28, 28) in [0, 1].

    Convolutions in this project take NCHW input, hence the channel axis. A CuPy array is
    scaled on its GPU (DataLoader(..., on_device=True) sends the uint8 images, 4x fewer bytes).
    """
    xp = module_of(x) if hasattr(x, "__cuda_array_interface__") else np
    x = xp.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"to_float_images: images must be numeric (uint8 0-255), got dtype {x.dtype}")
    if x.ndim != 3:
        raise ValueError(f"expected images of shape (N, H, W), got {x.shape}")
    out = x.astype(np.float32)[:, None, :, :]
    out /= np.float32(255.0)
    return out


# --- locating the files ---------------------------------------------------

def _find_file(folder, name):
    """Return the existing path for `name` (raw preferred over .gz)."""
    for candidate in (folder / name, folder / (name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _complete(folder):
    """True if `folder` holds all four files in either form."""
    return all(_find_file(folder, name) is not None for name in FILES)


def _with_subfolder(folder):
    """A data folder may be the MNIST folder itself or hold `mnist/`."""
    folder = Path(folder).expanduser()
    return [folder, folder / "mnist"]


def _locate(path):
    """Return the folder to load from, downloading into the cache if needed."""
    if path is not None:
        candidates = _with_subfolder(path)
        for folder in candidates:
            if _complete(folder):
                return folder
        # Report against the subfolder only if the user clearly meant it.
        folder = candidates[1] if candidates[1].is_dir() else candidates[0]
        missing = [str(folder / name) + "[.gz]" for name in FILES
                   if _find_file(folder, name) is None]
        raise MNISTNotFoundError(
            f"MNIST file(s) not found: {', '.join(missing)}")

    searched = []
    env = os.environ.get(ENV_VAR)
    if env:
        searched += _with_subfolder(env)
    searched.append(REPO_DATA_DIR)
    for folder in searched:
        if _complete(folder):
            return folder

    cache = Path(CACHE_DIR).expanduser()
    for name in FILES:
        if _find_file(cache, name) is None:
            _download(name, cache, searched)
    return cache


# --- downloading ----------------------------------------------------------

def _fetch(url):
    """Return the bytes at `url`; tests replace this to stay offline."""
    import urllib.request  # here, so `import tinygrad_cnn` does not load the HTTP and SSL modules

    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def _download(name, cache, searched):
    """Fetch `name`.gz from the first mirror that serves a verified copy."""
    problems = []
    corrupt = False
    for mirror in MIRRORS:
        url = mirror + name + ".gz"
        try:
            blob = _fetch(url)
        except Exception as exc:  # network errors come in many types
            problems.append(f"{url}: {exc}")
            continue
        try:
            _verify(_decompress(blob, url), name, url)
        except MNISTError as exc:
            corrupt = True
            problems.append(str(exc))
            continue
        _atomic_write(cache / (name + ".gz"), blob)
        return
    where = ", ".join(str(folder) for folder in searched + [cache])
    message = (f"MNIST file {name} not found in {where} and download "
               f"failed: {'; '.join(problems) or 'no mirrors configured'}")
    raise (MNISTError if corrupt else MNISTNotFoundError)(message)


def _atomic_write(dest, blob):
    """Write via a temp file in the same folder so readers never see a part."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.",
                               suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# --- reading and checking -------------------------------------------------

def _decompress(blob, label):
    """Gunzip `blob`, turning every gzip failure into an MNISTError."""
    try:
        return gzip.decompress(blob)
    except EOFError:
        raise MNISTError(f"{label}: truncated gzip data") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise MNISTError(
            f"{label}: not a valid gzip file ({exc})") from None


def _read(folder, name):
    """Return the decompressed bytes and the path they came from."""
    path = _find_file(folder, name)
    if path is None:
        raise MNISTNotFoundError(
            f"MNIST file not found: {folder / name}[.gz]")
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise MNISTError(f"{path}: cannot read file ({exc})") from None
    if path.suffix == ".gz":
        blob = _decompress(blob, path)
    return blob, path


def _parse(data, path, images):
    """Check an IDX header against its payload and return the array."""
    kind = "images" if images else "labels"
    header = 16 if images else 8
    if len(data) < header:
        raise MNISTError(f"{path}: truncated file: {len(data)} bytes is "
                         f"shorter than the {header}-byte IDX header")
    magic, count = struct.unpack(">II", data[:8])
    expected_magic = IMAGE_MAGIC if images else LABEL_MAGIC
    if magic != expected_magic:
        raise MNISTError(f"{path}: bad magic number 0x{magic:08x}, expected "
                         f"0x{expected_magic:08x} for an IDX {kind} file")
    shape = (count,)
    if images:
        rows, cols = struct.unpack(">II", data[8:16])
        if (rows, cols) != (ROWS, COLS):
            raise MNISTError(f"{path}: images are {rows}x{cols}, "
                             f"expected {ROWS}x{COLS}")
        shape = (count, rows, cols)
    payload = len(data) - header
    expected = int(np.prod(shape))
    if payload != expected:
        state = "truncated" if payload < expected else "wrong size"
        raise MNISTError(f"{path}: {state}: header declares {count} {kind} "
                         f"({expected} bytes) but the payload has "
                         f"{payload} bytes")
    # Copy so callers get a writable array, as Keras returns.
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape).copy()


def _verify(data, name, label):
    """Compare decompressed size and SHA-256 with the CHECKSUMS table."""
    size, digest = CHECKSUMS[name]
    if len(data) != size:
        raise MNISTError(f"{label}: wrong size: {len(data)} bytes once "
                         f"decompressed, expected {size}")
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise MNISTError(f"{label}: SHA-256 mismatch: got {actual}, "
                         f"expected {digest} (corrupt or altered file)")


def _load_pair(folder, images_name, labels_name):
    """Load and check one images/labels pair."""
    images, images_path = _read(folder, images_name)
    labels, labels_path = _read(folder, labels_name)
    x = _parse(images, images_path, images=True)
    y = _parse(labels, labels_path, images=False)
    if len(x) != len(y):
        raise MNISTError(f"count mismatch: {images_path} has {len(x)} images "
                         f"but {labels_path} has {len(y)} labels")
    # Structure first, so a mangled header gets a precise message; then the
    # hash, which catches any remaining damage to the contents.
    _verify(images, images_name, images_path)
    _verify(labels, labels_name, labels_path)
    return x, y
