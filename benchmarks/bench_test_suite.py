"""Run the test suite as a fresh clone with only the `test` extra would, and record what it reports.

    python benchmarks/bench_test_suite.py --json benchmarks/results/test_suite.json

The figures the README gives about the suite (how many tests, how many skip and why, the counts in its
Reliability section) come from this file. NOTE: packages that some tests use but that no extra of the
`test` command installs (PyTorch, mpi4py, Keras) are hidden from the run, also from its subprocesses, so
the counts are those of `pip install -e ".[test]" && python -m pytest -q` on any machine, whatever else is
installed here; --without '' hides nothing.

NOTE: tests/test_readme_figures.py checks the README against this very file, so it cannot run inside the
run that writes it: the suite runs without it, the file records how many tests it holds
(`readme_figure_tests`, counted as passing in the README's totals), and it runs last, against the new file;
when it fails (a README figure no longer matches), this script says so and exits 1.
"""
import argparse
import collections
import datetime
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

from common import ROOT, machine, print_table, write_json

# Imported by some tests, installed by no extra that the README's test command names.
NOT_IN_THE_TEST_EXTRA = ("torch", "mpi4py", "keras", "tensorflow", "cupy", "cupy_backends")
FIGURES = "tests/test_readme_figures.py"

BLOCKER = '''
import sys
class _Hiding:
    """A finder of sys.meta_path that finds nothing of the hidden packages, so that they look absent (an
    ImportError on import, None from importlib.util.find_spec), as after `pip install -e ".[test]"`."""
    NAMES = {names!r}
    def __init__(self, inner):
        self.inner = inner
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.NAMES or not hasattr(self.inner, "find_spec"):
            return None
        return self.inner.find_spec(name, path, target)
    def __getattr__(self, attr):
        return getattr(self.inner, attr)
sys.meta_path[:] = [_Hiding(finder) for finder in sys.meta_path]
'''


def commit():
    """HEAD's hash, with '+changes' when the work tree differs from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "HEAD")
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def run_suite(hidden, extra_args):
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ)
        if hidden:
            with open(os.path.join(scratch, "sitecustomize.py"), "w") as f:
                f.write(BLOCKER.format(names=tuple(hidden)))
            env["PYTHONPATH"] = os.pathsep.join([scratch, ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
        report = os.path.join(scratch, "junit.xml")
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                              *extra_args], cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        tree = ET.parse(report)
    return run, seconds, tree


def summarize(tree):
    outcomes, per_file, reasons = collections.Counter(), collections.Counter(), collections.Counter()
    failures = []
    for case in tree.iter("testcase"):
        path = case.get("classname", "").replace(".", "/").split("/")
        name = "/".join(path[:2]) + ".py" if path and path[0] == "tests" else case.get("file", "?")
        per_file[name] += 1
        skipped = case.find("skipped")
        if skipped is not None:
            outcomes["skipped"] += 1
            reasons[(skipped.get("message") or "").removeprefix("Skipped: ")] += 1
        elif case.find("failure") is not None or case.find("error") is not None:
            outcomes["failed"] += 1
            failures.append(f"{case.get('classname')}::{case.get('name')}")
        else:
            outcomes["passed"] += 1
    return outcomes, per_file, reasons, failures


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--without", nargs="*", default=list(NOT_IN_THE_TEST_EXTRA),
                   help="top-level packages hidden from the run (default: those outside the test extra)")
    p.add_argument("--json", default=None)
    p.add_argument("pytest_args", nargs="*", help="passed on to pytest (e.g. a test file), after --")
    args = p.parse_args(argv)
    hidden = [name for name in args.without if name]
    run, seconds, tree = run_suite(hidden, [f"--ignore={FIGURES}"] + args.pytest_args)
    outcomes, per_file, reasons, failures = summarize(tree)
    collected = subprocess.run([sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider",
                                FIGURES], cwd=ROOT, capture_output=True, text=True).stdout
    figure_tests = sum(1 for line in collected.splitlines() if "::" in line)
    print(run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-2000:])
    print_table(["skip reason", "tests"], sorted(reasons.items(), key=lambda kv: -kv[1]))
    write_json(args.json, dict(
        benchmark="bench_test_suite", date=datetime.date.today().isoformat(), commit=commit(), machine=machine(),
        hypothesis_profile=os.environ.get("HYPOTHESIS_PROFILE", "ci (the default)"), hidden_packages=hidden,
        command="python -m pytest -q", seconds=round(seconds, 1), tests=sum(outcomes.values()),
        passed=outcomes["passed"], skipped=outcomes["skipped"], failed=outcomes["failed"], failures=failures,
        readme_figure_tests=figure_tests, readme_figure_tests_note=f"{FIGURES}, run after this file is written",
        skip_reasons=dict(sorted(reasons.items(), key=lambda kv: -kv[1])), tests_per_file=dict(sorted(per_file.items()))))
    if args.json:
        figures = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", FIGURES], cwd=ROOT,
                                 capture_output=True, text=True)
        print(f"{FIGURES}: " + (figures.stdout.strip().splitlines() or ["?"])[-1])
        if figures.returncode:
            print("the README's figures disagree with the results files: update README.md from them")
            return 1
    return 0 if run.returncode in (0, 5) and not outcomes["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
