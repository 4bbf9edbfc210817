"""Checkpoints: dicts of arrays saved as .npz without pickle, written atomically."""
import os
import tempfile
import zipfile

import numpy


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt or not an .npz archive."""


def save_arrays(path, arrays):
    """Write {name: array} to `path` as .npz. The data go to a temporary file in the same folder,
    which is renamed over `path` only once complete, so a crash never leaves a broken checkpoint."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            numpy.savez(f, **{k: numpy.asarray(v) for k, v in arrays.items()})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_arrays(path):
    """Read an .npz written by save_arrays into {name: numpy array}; never unpickles."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    try:
        archive = numpy.load(path, allow_pickle=False)
        if not hasattr(archive, "files"):  # NOTE: a lone .npy array loads without error; it is no checkpoint
            raise ValueError(f"it holds a single array of shape {archive.shape}, not an .npz archive")
        with archive:
            return {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path!r} is truncated or not a valid .npz file ({e})") from None
