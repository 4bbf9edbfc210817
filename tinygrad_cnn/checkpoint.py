"""Checkpoints: dicts of arrays saved as .safetensors (or .npz when asked), never pickled, written atomically.

NOTE: the safetensors format (https://github.com/huggingface/safetensors) is written and read by the small
NumPy code below rather than by the `safetensors` package: numpy stays the only dependency, and the reader
is ours to make strict (it can only ever build numeric arrays, and checks every header field against the
file's size before allocating). tests/test_safetensors.py checks files both ways against the real package."""
import errno
import json
import os
import secrets
import stat
import struct
import zipfile

import numpy
from numpy.lib import format as npy_format

from .device import to_numpy

_SUFFIXES = (".safetensors", ".npz")
_NPZ_METADATA = "__metadata__/"  # NOTE: an .npz keeps the string metadata as 0-d str arrays under this prefix

# safetensors' dtype names; BF16 and the FP8 types have no NumPy dtype and are refused by name
_DTYPES = {"BOOL": "|b1", "U8": "|u1", "I8": "|i1", "U16": "<u2", "I16": "<i2", "F16": "<f2", "U32": "<u4",
           "I32": "<i4", "F32": "<f4", "U64": "<u8", "I64": "<i8", "F64": "<f8"}
_NAMES = {numpy.dtype(code).newbyteorder("<") if numpy.dtype(code).itemsize > 1 else numpy.dtype(code): name
          for name, code in _DTYPES.items()}
_MAX_HEADER_BYTES = 100_000_000  # NOTE: the `safetensors` package's own limit


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt, malformed (header, offsets, dtypes), or has an
    extension other than .safetensors / .npz."""


def path_argument(path, who, argument="path"):
    """`path` as a str, or TypeError naming the argument (os.fspath would say 'expected str, bytes or
    os.PathLike object, not NoneType' without saying which)."""
    if isinstance(path, str):
        return path
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
        if isinstance(path, str):
            return path
    raise TypeError(f"{who}: {argument} must be a file name (str or pathlib.Path), got {path!r}")


def _link_problem(path):
    """Why a symbolic link at `path` leads nowhere (a loop, or a missing target); None if it is no such link."""
    if not os.path.islink(path):
        return None
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a symbolic link loop (following it never reaches a file)"
        return f"is a symbolic link to {os.readlink(path)!r}, which does not exist"
    return None


def _readable_file(path, who):
    """Refuse, naming the path, what cannot be read as a file: missing, a directory, a broken link."""
    problem = _link_problem(path)
    if problem:
        raise CheckpointError(f"{who}: {path!r} {problem}")
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    if os.path.isdir(path):
        raise CheckpointError(f"{who}: {path!r} is a directory, not a checkpoint file")


def _writable_target(path, who):
    """The file to write for `path` (a symbolic link is written through, to the file it names), after
    refusing, naming the path, a directory, a broken link or a parent that is a regular file."""
    problem = _link_problem(path)
    if problem:
        raise CheckpointError(f"{who}: cannot write {path!r}: it {problem}")
    if os.path.isdir(path):
        raise CheckpointError(f"{who}: cannot write {path!r}: it is a directory; give a file name inside it")
    if os.path.islink(path):
        path = os.path.realpath(path)  # NOTE: replacing the link itself would leave its target stale
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise CheckpointError(f"{who}: cannot write {path!r}: {parent!r} is a regular file, not a folder")
    return path


def check_writable(path, who="save", suffix=True):
    """Refuse early, before hours of training, a path a later save() could not write: not a file name (None,
    a number), a directory, a broken symbolic link, a folder that is a regular file, or (with `suffix`) an
    extension other than .safetensors / .npz. Returns the path as a str; CheckpointError or TypeError naming
    `who` (e.g. a command-line flag) otherwise. Permissions are left to the save itself."""
    path = path_argument(path, who)
    _writable_target(path, who)
    if suffix:
        check_suffix(path)
    return path


def check_suffix(path):
    """Refuse a file name whose extension is not one this project writes (.safetensors or .npz)."""
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


def _check_metadata(metadata):
    if metadata is None:
        return {}
    if not hasattr(metadata, "items"):
        raise TypeError(f"checkpoint metadata must be a dict of str -> str, got {type(metadata).__name__}")
    bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise TypeError(f"checkpoint metadata must map str to str (use json.dumps for other values); "
                        f"{bad[0]!r} does not")
    return dict(metadata)


def _as_array(name, value):
    array = to_numpy(value)  # NOTE: not numpy.asarray: CuPy arrays refuse implicit conversion
    little = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
    if little not in _NAMES:
        raise TypeError(f"checkpoint array {name!r} has dtype {array.dtype}: only booleans, ints, uints and "
                        f"float16/32/64 are saved (put strings in metadata)")
    return array


def _write_safetensors(f, arrays, metadata):
    """8-byte little-endian header length, the JSON header (padded with spaces to 8 bytes), then each
    array's little-endian C-order bytes back to back, in the order given."""
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = metadata
    for name, array in arrays.items():
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved by the safetensors format; it cannot name an array")
        little = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
        blob = numpy.ascontiguousarray(array, dtype=little)
        header[name] = {"dtype": _NAMES[little], "shape": list(array.shape),
                        "data_offsets": [offset, offset + blob.nbytes]}
        offset += blob.nbytes
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # NOTE: the data then start 8-byte aligned, as the package writes them
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for blob in blobs:
        if blob.size:
            f.write(memoryview(blob.reshape(-1)).cast("B"))


def save_arrays(path, arrays, metadata=None):
    """Write {name: array} to `path`: .safetensors, or .npz when the name ends so; `metadata` is a
    {str: str} dict (safetensors' `__metadata__`). Atomic, as atomic_write."""
    path = path_argument(path, "save")
    _writable_target(path, "save")  # NOTE: before the extension: a directory's name has none
    check_suffix(path)
    if not hasattr(arrays, "items"):
        raise TypeError(f"save: arrays must be a dict of name -> array, got {type(arrays).__name__}")
    metadata = _check_metadata(metadata)
    arrays = {name: _as_array(name, value) for name, value in arrays.items()}

    def write(f):
        if path.lower().endswith(".npz"):
            extra = {_NPZ_METADATA + k: numpy.array(v) for k, v in metadata.items()}
            numpy.savez(f, **arrays, **extra)
        else:
            _write_safetensors(f, arrays, metadata)
    atomic_write(path, write)


def atomic_write(path, write, who="save"):
    """Call write(f) on a temporary file in the folder of `path`, which is renamed over `path` only once
    complete and synced, so a crash never leaves a broken file; temporaries left by writers that were killed
    are removed by the next save to the same name. A new file gets the permissions of any new file (0666 less
    the umask); a file saved over keeps its own, so a checkpoint made private (chmod 600) stays private.
    A symbolic link is written through (its target is replaced, the link kept); a path that cannot be a file
    (a directory, a broken link, under a regular file) raises CheckpointError, and one the system refuses
    (not writable, disk full) the system's OSError with a message naming the path."""
    path = _writable_target(path_argument(path, who), who)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        _atomic_write(path, folder, write)
    except OSError as e:
        if e.filename is None or e.errno is None:  # an error of write() itself, not of the file system
            raise
        raise type(e)(e.errno, f"{who}: cannot write {path!r} ({e.strerror})") from None


def _atomic_write(path, folder, write):
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    _remove_stale_temporaries(folder, base)
    try:
        kept_mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        kept_mode = None
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{secrets.token_hex(4)}.{base}")
    # NOTE: os.open with mode 0o666 lets the umask decide, as open() does (mkstemp would force 0600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if kept_mode is not None:  # NOTE: the rename would otherwise give an overwritten file the umask's mode
            os.chmod(tmp, kept_mode)
        with os.fdopen(fd, "wb") as f:
            write(f)
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


def _load_npz(path):
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise CheckpointError(f"checkpoint {path!r} cannot be read ({e})") from None
    if not head.startswith((b"PK", b"\x93NUMPY")):  # NOTE: numpy.load would take it for a pickle and say so
        raise CheckpointError(f"checkpoint {path!r} is not an .npz file: an .npz is a zip archive, and this "
                              f"file begins with {head!r}")
    try:
        archive = numpy.load(path, allow_pickle=False)
        if not hasattr(archive, "files"):  # NOTE: a lone .npy array loads without error; it is no checkpoint
            raise ValueError(f"it holds a single array of shape {archive.shape}, not an .npz archive")
        with archive:
            _check_member_sizes(path)
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path!r} is truncated or not a valid .npz file ({e})") from None
    metadata = {k[len(_NPZ_METADATA):]: str(arrays.pop(k)) for k in list(arrays) if k.startswith(_NPZ_METADATA)}
    return arrays, metadata


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the header names {key!r} twice")
        out[key] = value
    return out


def _parse_header(raw, buffer_bytes):
    """Check the JSON header against the spec and the bytes present: [(name, dtype, shape, begin, end)]
    sorted by offset, and the metadata. Raises ValueError saying what is wrong."""
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as e:
        raise ValueError(f"the header is not UTF-8 ({e})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"the header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"the header is a JSON {type(header).__name__}, not an object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("__metadata__ must be an object of strings")
    entries = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"tensor {name!r}: an entry needs exactly dtype, shape and data_offsets, got {info!r}")
        if info["dtype"] not in _DTYPES:
            raise ValueError(f"tensor {name!r}: dtype {info['dtype']!r} is not one this reader knows "
                             f"({', '.join(_DTYPES)})")
        shape, offsets = info["shape"], info["data_offsets"]
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise ValueError(f"tensor {name!r}: shape {shape!r} is not a list of non-negative ints")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets) \
                or not 0 <= offsets[0] <= offsets[1]:
            raise ValueError(f"tensor {name!r}: data_offsets {offsets!r} is not [begin, end] with 0 <= begin <= end")
        if offsets[1] > buffer_bytes:
            raise ValueError(f"tensor {name!r}: data_offsets {offsets} run past the {buffer_bytes:,} data bytes "
                             f"the file holds")
        dtype = numpy.dtype(_DTYPES[info["dtype"]])
        claimed = int(numpy.prod(shape, dtype=object)) * dtype.itemsize
        if claimed != offsets[1] - offsets[0]:
            raise ValueError(f"tensor {name!r}: shape {tuple(shape)} of {info['dtype']} is {claimed:,} bytes but "
                             f"data_offsets {offsets} span {offsets[1] - offsets[0]:,}")
        entries.append((name, dtype, tuple(shape), offsets[0], offsets[1]))
    entries.sort(key=lambda e: (e[3], e[4]))
    end = 0
    for name, _, _, begin, stop in entries:
        if begin < end:
            raise ValueError(f"tensor {name!r}: data_offsets [{begin}, {stop}] overlap the previous tensor's "
                             f"(which ends at {end})")
        if begin > end:
            raise ValueError(f"tensor {name!r}: data_offsets start at {begin}, leaving a hole after byte {end}")
        end = stop
    if end != buffer_bytes:
        raise ValueError(f"the tensors cover {end:,} data bytes but the file holds {buffer_bytes:,}")
    return entries, metadata


def _load_safetensors(path):
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            if size < 8:
                raise ValueError(f"the file is {size} bytes, shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", f.read(8))
            if n > min(_MAX_HEADER_BYTES, size - 8):
                raise ValueError(f"the header length {n:,} exceeds "
                                 + (f"the {_MAX_HEADER_BYTES:,}-byte limit" if n > _MAX_HEADER_BYTES
                                    else f"the {size - 8:,} bytes after it"))
            entries, metadata = _parse_header(f.read(n), size - 8 - n)
            arrays = {}
            for name, dtype, shape, begin, stop in entries:
                # NOTE: sizes were checked against the file above, so this allocation is bounded by it
                array = numpy.empty(shape, dtype=dtype)
                f.seek(8 + n + begin)
                if stop > begin and f.readinto(memoryview(array.reshape(-1)).cast("B")) != stop - begin:
                    raise ValueError(f"tensor {name!r}: the file ended inside its data")
                arrays[name] = array.astype(dtype.newbyteorder("="), copy=False)
    except (OSError, ValueError, struct.error) as e:
        raise CheckpointError(f"checkpoint {path!r} is not a valid .safetensors file: {e}") from None
    return arrays, metadata


def load_file(path):
    """(arrays, metadata) from a .safetensors or .npz file: {name: numpy array} and {str: str}. Never
    executes code or unpickles; every header is checked against the bytes present before anything is read."""
    path = path_argument(path, "load")
    _readable_file(path, "load")
    check_suffix(path)
    return _load_npz(path) if path.lower().endswith(".npz") else _load_safetensors(path)


def load_arrays(path):
    """The arrays of load_file(path) alone: {name: numpy array}."""
    return load_file(path)[0]
