"""The size of the reading path (issue 24): code lines per file, the longest functions, the places
where the core branches on the device, and the kernel table.

    python benchmarks/size.py            # print the report
    python benchmarks/size.py --json     # also write benchmarks/results/size.json
    python benchmarks/size.py --check    # exit 1 when a target is missed

Code lines are lines holding code: not blank, not only a comment, not part of a docstring."""
import argparse
import ast
import io
import json
import os
import re
import subprocess
import sys
import tokenize

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PACKAGE = os.path.join(ROOT, "tinygrad_cnn")
sys.path.insert(0, ROOT)

READING_PATH = ["device.py", "autograd.py", "tensor.py", "ops.py", "conv.py"]
TARGETS = {"reading path": 1500, "optim.py": 250, "longest function": 60, "second derivatives": 200}
# NOTE: the argument checks of tensor.py's methods and functions (shapes, axes, dtypes, devices, indices)
# live off the path in checks.py, which tensor.py calls in one line per check; counted apart here
CHECKS = "checks.py"
# NOTE: the reading path is the first-order framework; what only gradients of gradients run (issue 28) is
# counted apart: each op's backward_graph (beside its backward), graph_forward, `constant`, and the ops
# that only backward_graph applies. The walk that runs them lives off the path, in higher_order.py.
SECOND_ORDER = {"backward_graph", "graph_forward", "constant", "Scatter", "Im2Col", "Col2Im"}
# what may not appear in the reading path outside device.py: a branch on the device or the array module,
# threads, chunks
FORBIDDEN = re.compile(r'== "cpu"|!= "cpu"|is numpy|is not numpy|__name__ != "numpy"|__name__ == "numpy"'
                       r'|ThreadPool|over_batch|over_chunks|concurrently|_chunks\(|CHUNK_BYTES|from \.+kernels|import kernels')


def _docstring_lines(tree):
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def code_lines(source):
    """The numbers of the lines that hold code (not blank, comment or docstring)."""
    docstrings = _docstring_lines(ast.parse(source))
    lines = set()
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip:
            lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return lines


def functions(source):
    """(qualified name, code lines) of every function and method."""
    tree, counted = ast.parse(source), code_lines(source)
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                span = range(child.lineno, child.end_lineno + 1)
                found.append((prefix + child.name, sum(1 for n in span if n in counted)))
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
    visit(tree, "")
    return found


def second_order_lines(source):
    """The numbers of the code lines inside the definitions named in SECOND_ORDER."""
    tree, counted, lines = ast.parse(source), code_lines(source), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in SECOND_ORDER:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])  # @staticmethod too
            lines.update(n for n in range(start, node.end_lineno + 1) if n in counted)
    return lines


def report():
    files = {}
    for dirpath, _, names in os.walk(PACKAGE):
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8") as f:
                    files[os.path.relpath(path, PACKAGE).replace(os.sep, "/")] = f.read()
    lines = {name: len(code_lines(source)) for name, source in files.items()}
    second = {name: len(second_order_lines(files[name])) for name in READING_PATH if name in files}
    reading = {name: lines[name] - second[name] for name in READING_PATH if name in lines}
    longest = max(((f"{name}: {fn}", n) for name in READING_PATH if name in files
                   for fn, n in functions(files[name])), key=lambda item: item[1])
    branches = [f"{name}:{number}: {line.strip()}" for name in READING_PATH if name in files and name != "device.py"
                for number, line in enumerate(files[name].splitlines(), start=1) if FORBIDDEN.search(line)]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {
        "commit": commit,
        "reading_path": reading,
        "reading_path_total": sum(reading.values()),
        "second_derivatives": second,
        "second_derivatives_total": sum(second.values()),
        "optim.py": lines.get("optim.py"),
        "checks.py": lines.get(CHECKS),
        "kernels": sum(n for name, n in lines.items() if name.startswith("kernels/")),
        "package": sum(lines.values()),
        "longest_function": {"name": longest[0], "lines": longest[1]},
        "device_branches_in_reading_path": branches,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="write benchmarks/results/size.json")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    result = report()
    print(f"code lines at {result['commit']} (not blank, comment or docstring)\n")
    print("reading path                 lines")
    for name, n in result["reading_path"].items():
        print(f"  tinygrad_cnn/{name:<15} {n:>6}")
    print(f"  {'total':<28} {result['reading_path_total']:>6}   (target <= {TARGETS['reading path']})")
    print(f"  {'second derivatives':<28} {result['second_derivatives_total']:>6}   (target <= "
          f"{TARGETS['second derivatives']}; backward_graph and its ops, not in the total: "
          f"{', '.join(f'{k} {v}' for k, v in result['second_derivatives'].items() if v)})")
    print(f"  {'optim.py':<28} {result['optim.py']:>6}   (target <= {TARGETS['optim.py']})")
    print(f"  {'checks.py':<28} {result['checks.py']:>6}   (argument checks, off the path: tensor.py calls them)")
    print(f"  {'kernels/':<28} {result['kernels']:>6}")
    print(f"  {'package':<28} {result['package']:>6}")
    print(f"\nlongest function on the reading path: {result['longest_function']['name']} "
          f"({result['longest_function']['lines']} lines; target <= {TARGETS['longest function']})")
    print(f"device branches, threads or chunks on the reading path outside device.py: "
          f"{len(result['device_branches_in_reading_path'])}")
    for line in result["device_branches_in_reading_path"]:
        print("  " + line)
    import tinygrad_cnn
    print("\nkernels.TABLE: reference -> kernel, devices, why\n" + tinygrad_cnn.kernels.table())
    if args.json:
        path = os.path.join(ROOT, "benchmarks", "results", "size.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        print(f"\nwrote {os.path.relpath(path, ROOT)}")
    missed = (result["reading_path_total"] > TARGETS["reading path"] or (result["optim.py"] or 0) > TARGETS["optim.py"]
              or result["longest_function"]["lines"] > TARGETS["longest function"]
              or result["second_derivatives_total"] > TARGETS["second derivatives"]
              or result["device_branches_in_reading_path"])
    if args.check and missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
