"""What crosses a file border is a public name of that file (issue 24): no module of the package imports
another's private name (`from .x import _y`) or reads one through the module (`x._y`), and Tensor's
internals that other files use have public names (grad_fn, version_counter, grad_home)."""
import ast
import os
import re

PACKAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tinygrad_cnn")


def _sources():
    for dirpath, _, names in os.walk(PACKAGE):
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8") as f:
                    yield os.path.relpath(path, PACKAGE), f.read()


def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def crossings(source):
    """(line, text) of each private name taken from another module of the package."""
    tree, found, modules = ast.parse(source), [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("tinygrad_cnn")):
            for alias in node.names:
                if _private(alias.name):
                    found.append((node.lineno, f"from {'.' * node.level}{node.module or ''} import {alias.name}"))
                else:
                    modules.add(alias.asname or alias.name)  # maybe a module: `from . import autograd`
        elif isinstance(node, ast.Import):
            modules.update((a.asname or a.name).split(".")[0] for a in node.names if a.name.startswith("tinygrad_cnn"))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and _private(node.attr)):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return found


def test_no_private_name_crosses_a_file_border():
    found = [f"{name}:{line}: {text}" for name, source in _sources() for line, text in crossings(source)]
    assert not found, "\n".join(found)


def test_tensor_internals_are_read_by_their_public_names():
    old = re.compile(r"\._(ctx|version|grad_home)\b")
    found = [f"{name}: {line.strip()}" for name, source in _sources() for line in source.splitlines() if old.search(line)]
    assert not found, "\n".join(found)


def test_the_crossing_finder_sees_both_forms():
    source = "from . import autograd\nfrom .checkpoint import _fspath, atomic_write\nx = autograd._SUBSTITUTIONS\n"
    assert crossings(source) == [(2, "from .checkpoint import _fspath"), (3, "autograd._SUBSTITUTIONS")]
