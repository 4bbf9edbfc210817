"""Write names.json: the names, and where they can be read, the parameters, that real CuPy has.

The CuPy emulation (tests/cupy_emulation) exposes only these names and accepts only these keywords.
Run it with a Python that has CuPy installed; no GPU is needed (CuPy imports and introspects
without one). Keep CuPy out of the Python the tests run with, or the emulation is not used:

    python -m venv /tmp/cupy-venv && /tmp/cupy-venv/bin/pip install numpy cupy-cuda12x
    /tmp/cupy-venv/bin/python tests/cupy_emulation/make_names.py
"""
import inspect
import json
import os
import re

import cupy
import cupy.lib.stride_tricks
import cupy._core.flags

HERE = os.path.dirname(os.path.abspath(__file__))


def parameters(obj):
    """Parameter names of a callable (None when they cannot be read), with '**' for **kwargs and
    '*' for *args: from its signature, else from the first line of a Cython docstring."""
    try:
        sig = inspect.signature(obj)
        names = []
        for p in sig.parameters.values():
            if p.kind is p.VAR_KEYWORD:
                names.append("**")
            elif p.kind is p.VAR_POSITIONAL:
                names.append("*")
            elif p.name != "self":
                names.append(p.name)
        return names
    except (TypeError, ValueError):
        pass
    doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    match = re.match(r"^[\w.]*\((.*)\)", doc[0]) if doc else None
    if not match:
        return None
    names = []
    for part in match.group(1).replace("\\*", "*").split(","):
        part = part.strip().split("=")[0].strip()
        if part in ("", "/", "self"):
            continue
        if part == "*":
            continue
        names.append("**" if part.startswith("**") else "*" if part.startswith("*") else part)
    return names


def kind(obj):
    if isinstance(obj, cupy.ufunc):
        return "ufunc"
    if inspect.isclass(obj):
        return "class"
    if inspect.ismodule(obj):
        return "module"
    if callable(obj):
        return "function"
    return "value"


def describe(module_or_class, public_only=True):
    out = {}
    for name in sorted(dir(module_or_class)):
        if name.startswith("_") and public_only:
            continue
        try:
            obj = getattr(module_or_class, name)
        except Exception:  # noqa: BLE001 (a lazily loaded submodule that needs CUDA)
            out[name] = {"kind": "unavailable", "params": None}
            continue
        entry = {"kind": kind(obj), "params": parameters(obj) if callable(obj) and not inspect.isclass(obj) else None}
        if inspect.isclass(obj):
            entry["params"] = parameters(obj)
        out[name] = entry
    return out


def main():
    names = {
        "cupy_version": cupy.__version__,
        "cupy": describe(cupy),
        "cupy.lib.stride_tricks": describe(cupy.lib.stride_tricks),
        "cupy.cuda": describe(cupy.cuda),
        "cupy.cuda.runtime": sorted(n for n in dir(cupy.cuda.runtime) if not n.startswith("_")),
        "cupy.cuda.Device": describe(cupy.cuda.Device),
        "cupy.cuda.Stream": describe(cupy.cuda.Stream),
        "cupy.ndarray": describe(cupy.ndarray),
        "cupy.ndarray.dunder": sorted(n for n in dir(cupy.ndarray) if n.startswith("__")),
        "cupy.ufunc": describe(cupy.ufunc),
        "flags": sorted(n for n in dir(cupy._core.flags.Flags) if not n.startswith("_")),
        "ufunc.at.params": parameters(cupy.add.at),
    }
    path = os.path.join(HERE, "names.json")
    with open(path, "w") as f:
        json.dump(names, f, indent=0, sort_keys=True)
        f.write("\n")
    print(f"wrote {path}: {len(names['cupy'])} names in cupy, {len(names['cupy.ndarray'])} ndarray attributes "
          f"(CuPy {cupy.__version__})")


if __name__ == "__main__":
    main()
