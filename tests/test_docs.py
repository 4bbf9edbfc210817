"""The docs stay true. Every ```python block of docs/*.md (and README.md) runs, in order, one shared
namespace per file like a notebook, from the repository root. When a statement prints, the comment
at the end of its last line, the comment lines right under it, or both, are its expected output:

    print(x.shape)          # (2, 3)
    print(x.numpy())
    # [[1. 2. 3.]
    #  [4. 5. 6.]]
    print(len(x))           # 2: the batch axis   <- a one-line output may go on with ": why" or " = why"

compared as doctest does (whitespace normalised, `...` matches anything). A statement that prints
with no comment is not checked. Figures, links, the API reference and the custom-Function example
are checked against their sources too."""
import ast
import contextlib
import doctest
import importlib.util
import io
import json
import os
import re
import sys
import tokenize
import traceback
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARKDOWN = sorted(DOCS.glob("*.md")) + ([ROOT / "README.md"] if (ROOT / "README.md").exists() else [])
FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)")
MAX_FIGURE_BYTES = 300 * 1024
CHECKER, CHECK_FLAGS = doctest.OutputChecker(), doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def code_blocks(path, language="python"):
    """[(line number of the block's first code line, code)] for each fenced block in `language`."""
    blocks, lines, inside, indent, start, body = [], path.read_text(encoding="utf-8").splitlines(), None, "", 0, []
    for number, line in enumerate(lines, start=1):
        match = FENCE.match(line)
        if inside is None and match:
            inside, indent, start, body = match.group(2).lower(), match.group(1), number + 1, []
        elif inside is not None and line.strip() == "```":
            if inside in (language, "py" if language == "python" else language):
                blocks.append((start, "\n".join(body)))
            inside = None
        elif inside is not None:
            body.append(line[len(indent):] if line.startswith(indent) else line)
    if inside is not None:
        raise AssertionError(f"{path.name}:{start - 1}: code block is never closed")
    return blocks


def _comments(source):
    """{line: comment text without '#'} and the set of lines that hold nothing but a comment."""
    comments, only = {}, set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string[1:]
            comments[tok.start[0]] = text[1:] if text.startswith(" ") else text
            if not tok.line[:tok.start[1]].strip():
                only.add(tok.start[0])
    return comments, only


def _expected_outputs(stmt, comments, only):
    """What the comments may say the statement prints: the comment at the end of its last line,
    the comment-only lines right after it, or both (either one may instead be an explanation)."""
    line = stmt.end_lineno
    trailing = [comments[line]] if line in comments and line not in only else []
    below = []
    while line + 1 in only:
        line += 1
        below.append(comments[line])
    candidates = [trailing + below, trailing, below]
    return ["\n".join(c) for c in candidates if c]


def output_matches(want, got):
    """doctest's comparison, or a one-line output followed by an explanation (": why" or " = why")."""
    if CHECKER.check_output(want + "\n", got, CHECK_FLAGS):
        return True
    want, got = " ".join(want.split()), " ".join(got.split())
    return "\n" not in got.strip() and any(want.startswith(got + sep) for sep in (": ", " = "))


def run_markdown(path):
    """Execute the python blocks of one file in one namespace, checking printed output against comments."""
    name = str(path.relative_to(ROOT))
    module = types.ModuleType(f"docs_{path.stem}")  # a real module, so classes defined in a block can pickle
    namespace = module.__dict__
    sys.modules[module.__name__] = module
    try:
        for start, code in code_blocks(path):
            source = "\n" * (start - 1) + code  # line numbers in errors are the markdown file's
            try:
                tree = ast.parse(source, filename=name)
            except SyntaxError as e:
                pytest.fail(f"{name}:{e.lineno}: syntax error in the block starting at line {start}: {e.msg}")
            comments, only = _comments(source)
            for stmt in tree.body:
                out = io.StringIO()
                try:
                    with contextlib.redirect_stdout(out):
                        exec(compile(ast.Module([stmt], type_ignores=[]), name, "exec"), namespace)
                except Exception:
                    pytest.fail(f"{name}:{stmt.lineno}: the block starting at line {start} raised\n"
                                f"{traceback.format_exc(limit=-6)}", pytrace=False)
                wants, got = _expected_outputs(stmt, comments, only), out.getvalue()
                if got and wants and not any(output_matches(want, got) for want in wants):
                    want = wants[0]
                    pytest.fail(f"{name}:{stmt.lineno}: printed output differs from the comment under it\n"
                                f"--- the comment says:\n{want}\n--- the code printed:\n{got}", pytrace=False)
    finally:
        sys.modules.pop(module.__name__, None)


@pytest.mark.kernels  # the docs print the default path (kernel names, a kernel's -0)
@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: p.name)
def test_python_blocks_run_and_print_what_the_docs_say(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    run_markdown(path)


def test_the_checker_catches_a_wrong_comment_and_a_failing_block(tmp_path):
    good = tmp_path / "good.md"
    good.write_text("```python\nx = 2\nprint(x + 1)  # 3\nprint([x] * 40)\n# [2, 2, ...]\n```\n")
    run_markdown_at(good, tmp_path)
    explained = tmp_path / "explained.md"
    explained.write_text("```python\nprint(12.0)  # 12.0 = 4 * 3\nprint(True)\n# True: it holds\n```\n")
    run_markdown_at(explained, tmp_path)
    with pytest.raises(pytest.fail.Exception, match="explained.md:3: printed output differs"):
        explained.write_text("```python\nprint(1.0)\nprint(12)  # 12.0 = 4 * 3\n```\n")
        run_markdown_at(explained, tmp_path)
    wrong = tmp_path / "wrong.md"
    wrong.write_text("text\n\n```python\nx = 2\nprint(x + 1)\n# 4\n```\n")
    with pytest.raises(pytest.fail.Exception, match=r"wrong.md:5: printed output differs"):
        run_markdown_at(wrong, tmp_path)
    broken = tmp_path / "broken.md"
    broken.write_text("```bash\nnot python\n```\n\n```python\ny = 1\n1 / 0\n```\n")
    with pytest.raises(pytest.fail.Exception, match=r"broken.md:7: the block starting at line 6 raised"):
        run_markdown_at(broken, tmp_path)


def run_markdown_at(path, root):
    """run_markdown for a file outside the repository (names are relative to `root`)."""
    global ROOT
    saved, ROOT = ROOT, root
    try:
        run_markdown(path)
    finally:
        ROOT = saved


# ---------------------------------------------------------------- figures and links

def _links(path):
    return re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8"))


def test_relative_links_resolve():
    for path in DOCS.glob("*.md"):
        for link in _links(path):
            if "://" in link or link.startswith("mailto:"):
                continue
            assert (path.parent / link).exists(), f"{path.name}: link to {link} points nowhere"


def test_figures_are_referenced_and_small():
    figures = sorted((DOCS / "figures").glob("*.png"))
    assert figures, "docs/figures/ holds no PNG: run python docs/make_figures.py"
    referenced = {Path(link).name for path in MARKDOWN for link in _links(path) if link.endswith(".png")}
    for figure in figures:
        assert figure.name in referenced, f"{figure.name} is not shown by any page"
        assert figure.stat().st_size < MAX_FIGURE_BYTES, f"{figure.name} is {figure.stat().st_size} bytes"


def test_tutorial_quotes_the_run_that_drew_the_figures():
    run = json.loads((DOCS / "figures" / "run.json").read_text())
    text = (DOCS / "tutorial.md").read_text(encoding="utf-8")
    assert f"{run['test_accuracy']:.2%}" in text, "tutorial.md must quote the accuracy in figures/run.json"
    assert f"{run['epochs']} epoch" in text
    for figure in run["figures"]:
        assert f"figures/{figure}" in text, f"tutorial.md does not show figures/{figure}"


def test_figures_draw_the_tutorials_worked_examples():
    spec = importlib.util.spec_from_file_location("make_figures", DOCS / "make_figures.py")
    figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figures)  # matplotlib is imported only when drawing
    import numpy as np
    tutorial = DOCS / "tutorial.md"
    defining = next(code for _, code in code_blocks(tutorial) if "kernel = np.array" in code)
    names = {"np": np}
    exec(defining, names)
    np.testing.assert_array_equal(names["image"], figures.IMAGE)
    np.testing.assert_array_equal(names["kernel"], figures.KERNEL)
    pooling = next(code for _, code in code_blocks(tutorial) if "image8 =" in code)
    assert f"default_rng({figures.POOL_SEED})" in pooling, "tutorial.md and make_figures.py pool different images"


def test_index_links_every_page():
    links = set(_links(DOCS / "index.md"))
    for page in DOCS.glob("*.md"):
        if page.name != "index.md":
            assert page.name in links, f"docs/index.md does not link {page.name}"


# ---------------------------------------------------------------- the custom-Function example

def test_testing_md_shows_the_custom_function_example_of_the_tests():
    source = (ROOT / "tests" / "test_custom_function.py").read_text(encoding="utf-8")
    match = re.search(r"# -+ EXAMPLE: a custom Function\n(.*?)\n# -+ end of EXAMPLE", source, re.S)
    assert match, "the EXAMPLE markers are gone from tests/test_custom_function.py"
    example = match.group(1).strip()
    blocks = [code.strip() for _, code in code_blocks(DOCS / "testing.md")]
    assert example in blocks, "docs/testing.md must show the EXAMPLE block of tests/test_custom_function.py as is"


# ---------------------------------------------------------------- the API reference

def _make_api():
    spec = importlib.util.spec_from_file_location("make_api", DOCS / "make_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_md_is_what_make_api_writes():
    expected = _make_api().render()
    actual = (DOCS / "api.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/api.md is stale: run python docs/make_api.py"


def test_api_md_names_every_public_name():
    import tinygrad_cnn
    from tinygrad_cnn import data, nn, optim
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^#{2,4} .*?`([\w.]+)", text, re.M))
    make_api = _make_api()
    modules, public_names = make_api.MODULES, make_api.public_names  # one definition of "public"
    for module_name in ["tinygrad_cnn", "tinygrad_cnn.device", "tinygrad_cnn.nn", "tinygrad_cnn.nn.functional",
                        "tinygrad_cnn.nn.init", "tinygrad_cnn.optim", "tinygrad_cnn.data",
                        "tinygrad_cnn.datasets.mnist", "tinygrad_cnn.checkpoint", "tinygrad_cnn.testing",
                        "tinygrad_cnn.testing.strategies"]:
        assert module_name in modules, f"make_api.py leaves out {module_name}"
    missing = []
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in public_names(module):
            if f"{module_name}.{name}" not in headings:
                missing.append(f"{module_name}.{name}")
    classes = [tinygrad_cnn.Tensor, tinygrad_cnn.Function, nn.Module, nn.Layer, nn.Sequential, nn.Conv2D, nn.Dense,
               optim.Optimizer, optim.LRScheduler, data.DataLoader]
    for cls in classes:
        for name in vars(cls):
            if not name.startswith("_"):
                qualified = f"{cls.__name__}.{name}"
                if not any(h.endswith(qualified) for h in headings):
                    missing.append(qualified)
    assert not missing, f"docs/api.md does not document: {', '.join(missing)}"


if __name__ == "__main__":  # python tests/test_docs.py docs/tutorial.md: run one page without pytest
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    for arg in sys.argv[1:]:
        run_markdown(Path(arg).resolve())
        print(f"{arg}: ok")
