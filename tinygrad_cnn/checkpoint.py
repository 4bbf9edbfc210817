"""Checkpoints: dicts of arrays saved as .npz without pickle, written atomically."""
import os
import secrets
import zipfile

import numpy
from numpy.lib import format as npy_format

_SUFFIXES = (".npz",)


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt, not an .npz archive, or has an unknown extension."""


def _check_suffix(path):
    if not path.lower().endswith(_SUFFIXES):
        ext = os.path.splitext(path)[1] or "no extension"
        raise CheckpointError(f"checkpoint {path!r}: {ext} is not a format this project writes; "
                              f"name it with one of {', '.join(_SUFFIXES)}")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # NOTE: someone else's live process (or we cannot tell): leave its file alone
    return True


def _remove_stale_temporaries(folder, base):
    """Delete `.tmp-<pid>-<token>.<base>` files whose writer died (kill -9 mid-save), so they never pile up;
    a temporary of a live writer (another thread or process saving the same name) is left alone."""
    for entry in os.listdir(folder):
        if not (entry.startswith(".tmp-") and entry.endswith("." + base)):
            continue
        pid = entry[len(".tmp-"):].split("-", 1)[0]
        if pid.isdigit() and (int(pid) != os.getpid()) and not _pid_alive(int(pid)):
            try:
                os.remove(os.path.join(folder, entry))
            except FileNotFoundError:
                pass


def save_arrays(path, arrays):
    """Write {name: array} to `path` as .npz. The data go to a temporary file in the same folder,
    which is renamed over `path` only once complete, so a crash never leaves a broken checkpoint;
    temporaries left by writers that were killed are removed by the next save to the same name.
    The file gets the permissions of any new file (0666 less the umask)."""
    path = os.fspath(path)
    _check_suffix(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    _remove_stale_temporaries(folder, base)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{secrets.token_hex(4)}.{base}")
    # NOTE: os.open with mode 0o666 lets the umask decide, as open() does (mkstemp would force 0600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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


def _check_member_sizes(path):
    """Compare each array's header (shape x itemsize) with the bytes the archive holds for it, so a
    header claiming 10^13 elements is refused before anything is allocated."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as f:
                version = npy_format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = npy_format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = npy_format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"array {info.filename[:-4]!r} has .npy format version {version}")
                if dtype.hasobject:
                    raise ValueError(f"array {info.filename[:-4]!r} holds Python objects (pickle), refused")
                claimed = int(numpy.prod(shape, dtype=object)) * dtype.itemsize
                held = info.file_size - f.tell()
                if claimed != held:
                    raise ValueError(f"array {info.filename[:-4]!r}: its header claims shape {shape} of {dtype} "
                                     f"({claimed:,} bytes) but the archive holds {held:,} bytes")


def load_arrays(path):
    """Read an .npz written by save_arrays into {name: numpy array}; never unpickles, and checks every
    array's header against the bytes present before reading it."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    try:
        archive = numpy.load(path, allow_pickle=False)
        if not hasattr(archive, "files"):  # NOTE: a lone .npy array loads without error; it is no checkpoint
            raise ValueError(f"it holds a single array of shape {archive.shape}, not an .npz archive")
        with archive:
            _check_member_sizes(path)
            return {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path!r} is truncated or not a valid .npz file ({e})") from None
