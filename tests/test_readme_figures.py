"""The README's figures against the results files the benchmarks write (issue 27): each figure below is
read from README.md and compared with the file it cites, so a figure that disagrees with its file, or a
file re-run without updating the README, fails here. Figures that have no results file must say so
next to them ("no results file")."""
import json
import os
import re
import sys
from decimal import ROUND_HALF_UP, Decimal

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")


def readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def results(name):
    with open(os.path.join(RESULTS, name), encoding="utf-8") as f:
        return json.load(f)


def fixed(value, places):
    """`value` rounded half up at `places` decimals, as a person writes it (99.005 -> '99.01')."""
    return str(Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def sci(value):
    """One significant decimal in scientific notation, as the README writes it: 1.2e-6, not 1.2e-06."""
    return re.sub(r"e([-+])0*(\d)", r"e\1\2", f"{value:.1e}").replace("e+", "e")


def grouped(n):
    return f"{n:,}"


def one_match(pattern):
    """The groups of the one place in README.md that `pattern` matches (whitespace-insensitive)."""
    text = re.sub(r"\s+", " ", readme())
    found = re.findall(pattern, text)
    assert len(found) == 1, f"README.md should hold {pattern!r} exactly once, found {len(found)}"
    return found[0] if isinstance(found[0], tuple) else (found[0],)


# ---------------------------------------------------------------- the figures, each with its file

def epoch():
    r = results("epoch_cpu.json")["results"]
    ours, torch = r["ours"], r["torch"]
    return {"ours_s": fixed(ours["epoch_seconds"], 1), "torch_s": fixed(torch["epoch_seconds"], 1),
            "ratio": fixed(ours["epoch_seconds"] / torch["epoch_seconds"], 2),
            "memory": fixed(ours["peak_rss_mb"] / torch["peak_rss_mb"], 2),
            "inference": ours["inference_images_per_second"] / torch["inference_images_per_second"],
            "epoch1": fixed(100 * ours["test_accuracy"], 2)}


def suite():
    return results("test_suite.json")


def skips_by_need(data):
    need = {"torch": 0, "mpi": 0, "keras": 0, "other": 0}
    for reason, count in data["skip_reasons"].items():
        key = ("torch" if "torch" in reason.lower() else "mpi" if "mpi" in reason.lower()
               else "keras" if "keras" in reason.lower() or reason == "collection skipped" else "other")
        need[key] += count
    return need


def bad_input_table(module):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    try:
        return __import__(module)
    finally:
        sys.path.remove(os.path.join(ROOT, "tests"))


KERAS_ROWS = [  # (the row's label in README.md, results file, summary key)
    ("tinygrad_cnn, its own init and shuffle (seeds 0-5)", "keras_seeds.json", "base_batched"),
    ("Keras 3.15.1, torch backend, its own init and shuffle (seeds 0-5)", "keras_seeds.json", "keras_plain"),
    ("Keras 3.15.1, `from_logits=True` (seeds 0-4)", "keras_seeds.json", "keras_logits"),
    ("**paired**: Keras' initial weights, the same NumPy batch order: tinygrad_cnn (seeds 0-5)", "keras_paired.json",
     "ours_numpy_order"),
    ("**paired**: the same weights and batches: Keras (seeds 0-5)", "keras_paired.json", "keras_numpy_order"),
    ("Keras' initial weights, Keras' own shuffle: Keras (seeds 0-5)", "keras_paired.json", "keras_own_shuffle"),
    ("Keras' initial weights, a `torch.randperm` order: tinygrad_cnn (seeds 0-5)", "keras_paired.json",
     "ours_torch_order"),
]


@pytest.mark.parametrize("label, name, key", KERAS_ROWS, ids=[k for _, _, k in KERAS_ROWS])
def test_keras_table_rows_match_their_results(label, name, key):
    runs, mean, sd, at_least = one_match(re.escape(f"| {label} | ") + r"(\d+) \| ([\d.]+)% \| ([\d.]+) \| (\d+) \|")
    summary = results(name)["summary"][key]
    assert (runs, mean, sd, at_least) == (str(summary["runs"]), fixed(summary["mean"], 2), fixed(summary["sd"], 2),
                                          str(summary["at_least_99"]))


def test_keras_seed_0_accuracy_and_time_match_keras_seeds():
    accuracy, seconds = one_match(r"seed 0 ended at \*\*([\d.]+)%\*\* on the 10,000 test images in "
                                  r"`benchmarks/bench_keras_seeds.py`'s run of it \(`benchmarks/results/keras_seeds.json`, "
                                  r"[\d-]+, (\d+) s\)")
    run = next(r for r in results("keras_seeds.json")["runs"] if r["variant"] == "base_batched" and r["seed"] == 0)
    assert accuracy == fixed(100 * run["val_accuracy"][-1], 2) and seconds == fixed(run["seconds"], 0)


def test_paired_first_epoch_losses_match_keras_paired():
    ours, keras = one_match(r"first-epoch training losses agree to 4e-4 seed by seed \(([\d.]+) against ([\d.]+) for seed 0\)")
    runs = results("keras_paired.json")["runs"]
    loss = {r["variant"]: r["loss"][0] for r in runs if r["seed"] == 0}
    assert (ours, keras) == (fixed(loss["ours_numpy_order"], 4), fixed(loss["keras_numpy_order"], 4))
    paired = results("keras_paired.json")["summary"]
    assert one_match(r"end at the same accuracy \(([\d.]+)% against ([\d.]+)%\)") == (
        fixed(paired["ours_numpy_order"]["mean"], 2), fixed(paired["keras_numpy_order"]["mean"], 2))


def test_epoch_against_pytorch_matches_epoch_cpu():
    e = epoch()
    assert one_match(r"\(([\d.]+) s against ([\d.]+) s, ([\d.]+)x, `benchmarks/results/epoch_cpu.json`") == (
        e["ours_s"], e["torch_s"], e["ratio"])
    memory, low, high = one_match(r"with ([\d.]+)x the peak memory and ([\d.]+)-([\d.]+)x the inference throughput")
    assert memory == e["memory"] and float(low) <= e["inference"] <= float(high)


# ---------------------------------------------------------------- the examples' own runs (bench_examples.py)

def example_run(name, command):
    """A results file of benchmarks/bench_examples.py, checked to be a run of `command` (the defaults)."""
    data = results(name)
    assert data["date"] and data["commit"] and data["command"].startswith("python benchmarks/bench_examples.py")
    assert data["example_command"] == command, f"{name} is not a run with the defaults: {data['example_command']}"
    return data


def test_the_mnist_table_matches_mnist_run():
    run = example_run("mnist_run.json", "python examples/mnist.py")
    epochs = run["epochs"]
    cells = " \\| ".join([r"\**([\d.]+)%\**"] * len(epochs))
    assert one_match(r"\| test accuracy \| " + cells + r" \|") == tuple(fixed(100 * e["test_acc"], 2) for e in epochs)
    cells = " \\| ".join([r"([\d.]+)"] * len(epochs))
    assert one_match(r"\| seconds \(training\) \| " + cells + r" \|") == tuple(fixed(e["epoch_seconds"], 1) for e in epochs)
    assert one_match(r"with its defaults \(.*?\), on a 2-core CPU with NumPy [\d.]+, measured ([\d-]+) "
                     r"\(`benchmarks/results/mnist_run.json`") == (run["date"],)
    rates = [e["images_per_second"] for e in epochs]
    minutes, low, high = one_match(r"About ([\d.]+) minutes in all \(([\d,]+)-([\d,]+) training images/s; "
                                   r"`mnist_run.json`\)")
    assert (minutes, low, high) == (fixed(run["seconds"] / 60, 1), grouped(round(min(rates))), grouped(round(max(rates))))
    assert one_match(r"is the recipe that reaches ([\d.]+)% \(`mnist_run.json`\)") == (fixed(100 * run["final_test_accuracy"], 2),)


def test_the_tutorial_figure_matches_mnist_run():
    run = example_run("mnist_run.json", "python examples/mnist.py")
    assert doc_match("tutorial.md", r"and reached ([\d.]+)% test accuracy in \S+ run of it \(`benchmarks/results/mnist_run.json`, "
                                    r"([\d-]+), ([\d.]+) minutes") == (
        fixed(100 * run["final_test_accuracy"], 2), run["date"], fixed(run["seconds"] / 60, 1))
    with open(os.path.join(ROOT, "benchmarks", "README.md"), encoding="utf-8") as f:
        found = re.findall(r"`examples/mnist.py` reaches ([\d.]+)% after its default 6 epochs \(`results/mnist_run.json`, ([\d-]+)\)",
                           re.sub(r"\s+", " ", f.read()))
    assert found == [(fixed(100 * run["final_test_accuracy"], 2), run["date"])]


def test_the_keras_example_run_matches_keras_mnist_run():
    run = example_run("keras_mnist_run.json", "python examples/keras_mnist.py")
    assert one_match(r"`examples/keras_mnist.py` itself ended at ([\d.]+)% \(`benchmarks/results/keras_mnist_run.json`, "
                     r"([\d-]+), (\d+) s\)") == (fixed(100 * run["final_test_accuracy"], 2), run["date"],
                                                fixed(run["seconds"], 0))


def test_the_torch_and_onnx_agreement_matches_agreement_json():
    data = results("agreement.json")
    assert data["date"] and data["commit"] and data["checkpoint_from"] == "python examples/mnist.py --epochs 1"
    ours, torch, ort = data["ours"], data["peers"]["torch"], data["peers"]["onnxruntime"]
    accuracy = fixed(100 * ours["test_accuracy"], 2)
    assert torch["test_accuracy"] == ort["test_accuracy"] == ours["test_accuracy"]   # "the same" accuracy
    found = one_match(r"Measured ([\d-]+) \(`benchmarks/results/agreement.json`\) on the 1-epoch checkpoint \(([\d.]+)% test "
                      r"accuracy\) over the 10,000 test images: torch (\S+) \(CPU\) and onnxruntime (\S+) give probabilities "
                      r"within ([\d.e-]+) and ([\d.e-]+) of ours and the same ([\d.]+)%; `predict.py` printed `([^`]+)`")
    assert found == (data["date"], accuracy, torch["version"].split("+")[0], ort["version"],
                     sci(torch["max_abs_difference"]), sci(ort["max_abs_difference"]), accuracy,
                     data["predict_index_0"])
    assert doc_match("interop.md", r"Measured ([\d-]+) \(`benchmarks/results/agreement.json`\) on the 1-epoch checkpoint of "
                                   r"`examples/mnist.py` \(([\d.]+)% test accuracy\): over the 10,000 MNIST test images "
                                   r"onnxruntime (\S+)'s probabilities differ from ours by at most ([\d.e-]+) and torch's "
                                   r"\(with `to_torch_state_dict`\) by at most ([\d.e-]+); all three give ([\d.]+)%. "
                                   r"The file is ([\d.]+) MB") == (
        data["date"], accuracy, ort["version"], sci(ort["max_abs_difference"]), sci(torch["max_abs_difference"]),
        accuracy, fixed(ort["onnx_bytes"] / 1e6, 2))


def test_gpu_launch_budget_matches_gpu_budget_emulated():
    launches, = one_match(r"one training step of the tutorial model is (\d+) kernel launches and no blocking sync")
    total = results("gpu_budget_emulated.json")["total"]
    assert int(launches) == total["launches"] and total["syncs"] == 0


def test_threads_ratio_matches_threads_json():
    assert one_match(r"in ([\d.]+)x their time \(was 13-55x; `benchmarks/results/threads.json`\)") == (
        fixed(results("threads.json")["ratio"], 2),)


def test_the_test_command_counts_match_test_suite_json():
    data = suite()
    assert data["failed"] == 0 and data["hidden_packages"] and data["date"] and data["commit"]
    passed, skipped, total, date = one_match(r"With the `test` extra alone the command reports 0 failed, ([\d,]+) passed "
                                             r"and ([\d,]+) skipped \(([\d,]+) tests, ([\d-]+), `benchmarks/results/test_suite.json`")
    # NOTE: this file's own tests run after the file is written (see bench_test_suite.py): they pass when this does
    own = data["readme_figure_tests"]
    assert (passed, skipped, total, date) == (grouped(data["passed"] + own), grouped(data["skipped"]),
                                              grouped(data["tests"] + own), data["date"])
    need = skips_by_need(data)
    assert one_match(r"\): (\d+) need PyTorch .* (\d+) the `distributed` extra .* (\d+) Keras \(the peer tests, one "
                     r"module skipped whole\), and (\d+) other cases") == tuple(str(need[k]) for k in ("torch", "mpi", "keras",
                                                                                              "other"))
    assert one_match(r"The test suite: ([\d,]+) tests \(([\d,]+) passed, ([\d,]+) skipped, as above\) in ([\d.]+) s") == (
        grouped(data["tests"] + own), grouped(data["passed"] + own), grouped(data["skipped"]), fixed(data["seconds"], 0))


RELIABILITY = [  # (README pattern with one count, test file)
    (r"(\d+) bad-input cases for the core \(`tests/test_bad_inputs.py`\)", "tests/test_bad_inputs.py"),
    (r"(\d+) at the edges \(`tests/test_bad_inputs_edges.py`", "tests/test_bad_inputs_edges.py"),
    (r"(\d+) error-message tests \(`tests/test_errors.py`\)", "tests/test_errors.py"),
    (r"\((\d+) tests, `tests/test_axis_errors.py`\)", "tests/test_axis_errors.py"),
    (r"each fail (\d+) tests \(`tests/test_planted_bugs.py`\)", "tests/test_planted_bugs.py"),
    (r"(\d+) cases \(`tests/test_edge_values.py`\)", "tests/test_edge_values.py"),
    (r"(\d+) cases \(`tests/test_empty_batch.py`", "tests/test_empty_batch.py"),
    (r"\((\d+) tests, `tests/test_nonfinite.py`\)", "tests/test_nonfinite.py"),
    (r"\((\d+), `tests/test_float16.py`\)", "tests/test_float16.py"),
    (r"(\d+) tests \(`tests/test_anomaly.py`\)", "tests/test_anomaly.py"),
    (r"(\d+) cases \(`tests/test_inplace.py`\)", "tests/test_inplace.py"),
    (r"(\d+) checkpoint and \d+ safetensors tests", "tests/test_checkpoint_files.py"),
    (r"\d+ checkpoint and (\d+) safetensors tests", "tests/test_safetensors.py"),
    (r"(\d+) tests \(`tests/test_threads.py`\)", "tests/test_threads.py"),
    (r"\((\d+) tests, `tests/test_gradcheck_kinks.py`\)", "tests/test_gradcheck_kinks.py"),
]


@pytest.mark.parametrize("pattern, path", RELIABILITY, ids=[p for _, p in RELIABILITY])
def test_reliability_counts_match_test_suite_json(pattern, path):
    assert one_match(pattern) == (str(suite()["tests_per_file"][path]),)


def test_the_edge_table_rows_match_the_module():
    table = bad_input_table("test_bad_inputs_edges")
    assert one_match(r"(\d+) bad inputs and (\d+) right answers to data") == (
        str(len(table.BAD_INPUTS)), str(len(table.RIGHT_ANSWERS)))


NO_RESULTS_FILE = [  # figures measured by hand before results files were kept: each must say so
    r"0\.96x to 0\.98x in five runs, no results file",
    r"Re-measured 2026-12-03 on a slower day of the same VM \(no results file\)",
]


@pytest.mark.parametrize("pattern", NO_RESULTS_FILE)
def test_figures_without_a_results_file_say_so(pattern):
    one_match(pattern)


# Results files written before the benchmarks stamped date and commit (common.write_json does since issue 27);
# each gets them when its script next runs, and then leaves this list (the test below says when).
LEGACY = {"ab_refactor_vs_main.json", "ab_reference_vs_kernels.json", "ab_threads_control_main_main.json",
          "ab_threads_same_bits.json", "ab_threads_same_bits_rerun.json", "anomaly_cpu.json", "distributed_cpu.json",
          "epoch_cpu.json", "gpu_budget_emulated.json", "ops_cpu.json", "threads.json", "size.json",
          "ab_gradgrad_vs_refactor.json", "keras_paired.json", "keras_seeds.json"}


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(RESULTS) if n.endswith(".json")))
def test_every_results_file_says_when_and_at_which_commit_unless_legacy(name):
    data = results(name)
    stamped = isinstance(data, dict) and bool(data.get("date")) and bool(data.get("commit"))
    if name in LEGACY:
        assert not stamped, f"{name} now has a date and a commit: take it off LEGACY"
    else:
        assert stamped, f"{name} has no date or commit: write it with common.write_json (or add them)"


def test_every_results_file_the_readme_cites_exists_and_every_file_is_cited():
    cited = set(re.findall(r"`(?:benchmarks/results/)?(\w+\.json)`", readme()))
    present = {name for name in os.listdir(RESULTS) if name.endswith(".json")}
    assert cited <= present, cited - present
    with open(os.path.join(ROOT, "benchmarks", "README.md"), encoding="utf-8") as f:
        benchmarks_readme = f.read()
    # NOTE: results that only benchmarks/README.md cites (the per-layer and separate-process tables) count
    # too; distributed_cpu.json, anomaly_cpu.json and ops_cpu.json back docs/ and benchmarks/README.md
    cited_there = set(re.findall(r"`(?:benchmarks/)?results/(\w+\.json)`", benchmarks_readme))
    assert cited_there <= present, cited_there - present
    assert present - cited - cited_there <= {"distributed_cpu.json", "anomaly_cpu.json", "ops_cpu.json",
                                                   "ab_openblas_fallback.json", "winograd_cpu.json", "conv1_cpu.json",
                                                   "conv1_cpu_thread_time.json", "ab_keep_freed_before.json", "ab_control_before.json",
                                                   "ab_example_vs_users_loop.json", "ab_keep_freed_after.json",
                                                   "ab_keep_freed_after_rerun.json", "ab_control_after.json"}, \
        present - cited - cited_there


def test_the_gradcheck_snippet_runs_as_written():
    snippet = re.search(r"Checking a gradient, including one of your own ops:\s*```python\n(.*?)```", readme(), re.S)
    exec(compile(snippet.group(1), "README.md", "exec"), {})   # a NameError if it used tg without importing it


# ---------------------------------------------------------------- docs/ figures that cite a results file

def doc_match(name, pattern):
    with open(os.path.join(ROOT, "docs", name), encoding="utf-8") as f:
        text = re.sub(r"\s+", " ", f.read())
    found = re.findall(pattern, text)
    assert len(found) == 1, f"docs/{name} should hold {pattern!r} exactly once, found {len(found)}"
    return found[0] if isinstance(found[0], tuple) else (found[0],)


def test_docs_anomaly_costs_match_anomaly_cpu():
    data = results("anomaly_cpu.json")
    work = {w["workload"]: w for w in data["workloads"]}
    ns, share, op_us = doc_match("how-it-works.md", r"one flag test took about (\d+) ns: ([\d.]+)% of the smallest op "
                                                    r"\(a 4-element multiply, ([\d.]+) us\)")
    small = work["mul (4,) forward"]
    assert (ns, share, op_us) == (fixed(data["flag_test_ns"], 0), fixed(100 * small["off_cost"], 2), fixed(small["off_us"], 1))
    ratios = doc_match("how-it-works.md", r"the 4-element multiply took ([\d.]+)x as long \(the stack walk\), forward\+backward "
                                          r"of the first convolution \(batch 128\) ([\d.]+)x, of the dense 3136->128 layer "
                                          r"([\d.]+)x, and of ReLU on \(128, 32, 28, 28\) ([\d.]+)x")
    assert ratios == (fixed(small["on_over_off"], 1), fixed(work["conv1 1->32 (128,1,28,28) fwd+bwd"]["on_over_off"], 1),
                      fixed(work["dense 3136->128 batch 128 fwd+bwd"]["on_over_off"], 2),
                      fixed(work["relu (128,32,28,28) fwd+bwd"]["on_over_off"], 1))


def test_docs_gpu_budget_matches_gpu_budget_emulated():
    data = results("gpu_budget_emulated.json")
    phases = {name: str(p["launches"]) for name, p in data["phases"].items()}
    assert doc_match("how-it-works.md", r"(\d+) launches and no blocking sync for the whole step") == (str(data["total"]["launches"]),)
    assert doc_match("how-it-works.md", r"forward (\d+), loss (\d+), backward (\d+), Adam (\d+) \(were") == (
        phases["forward"], phases["loss"], phases["backward"], phases["adam"])


def test_docs_distributed_table_matches_distributed_cpu():
    data = results("distributed_cpu.json")
    one, two = data["one_rank"], data["two_ranks"]
    assert doc_match("distributed.md", r"\| 1 rank x 2 threads \| ([\d.]+) \| ([\d.]+) \| - \| - \|") == (
        fixed(1000 * one["step_s"], 1), fixed(one["epoch_s_estimate"], 1))
    assert doc_match("distributed.md", r"\| 2 ranks x 1 thread \| ([\d.]+) \(([\d.]+)x\) \| ([\d.]+) \| ([\d.]+) \| ([\d,]+) \|") == (
        fixed(1000 * two["step_s"], 1), fixed(two["step_s"] / one["step_s"], 2), fixed(two["epoch_s_estimate"], 1),
        fixed(1000 * two["allreduce_in_step_s"], 2), grouped(two["bytes_per_step"]))


def test_readme_reading_path_lines_match_size_json():
    """The README's count of the reading path's code lines is benchmarks/size.py's (results/size.json)."""
    stated = int(re.search(r"read five files\*\*, ([\d,]+) lines of code \(`size\.json`", readme()).group(1).replace(",", ""))
    assert stated == results("size.json")["reading_path_total"]
    checks = int(re.search(r"calls into `checks\.py` \(([\d,]+) lines, off the path\)", readme()).group(1).replace(",", ""))
    assert checks == results("size.json")["checks.py"]


def test_bench_examples_writes_date_commit_command_and_the_runs_figures(tmp_path):
    """The pipeline behind mnist_run.json, on a tiny run: what a re-run after a kernel change writes."""
    import subprocess
    out = tmp_path / "run.json"
    done = subprocess.run([sys.executable, "benchmarks/bench_examples.py", "mnist", "--out", str(out), "--",
                           "--epochs", "1", "--limit-train", "256", "--limit-test", "128", "--batch-size", "64"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(out.read_text())
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", data["date"]) and re.match(r"[0-9a-f]{40}", data["commit"])
    assert data["command"].startswith("python benchmarks/bench_examples.py mnist --out ")
    assert data["example_command"] == "python examples/mnist.py --epochs 1 --limit-train 256 --limit-test 128 --batch-size 64"
    assert len(data["epochs"]) == 1 and 0 <= data["final_test_accuracy"] <= 1 and data["config"]["limit_train"] == 256


def test_the_two_rank_figures_match_mnist_2ranks():
    run = example_run("mnist_2ranks.json", "mpirun -n 2 python examples/mnist.py")
    assert run["world_size"] == 2
    accuracies = [fixed(100 * e["test_acc"], 2) for e in run["epochs"]]
    assert one_match(r"Measured ([\d-]+) \(`benchmarks/results/mnist_2ranks.json`, `python benchmarks/bench_examples.py mpi`\): "
                     r"the default 2-rank run reached ([\d.]+)% test accuracy \(on this shared 2-core VM, loaded by other "
                     r"jobs, in ([\d.]+) minutes") == (run["date"], accuracies[-1], fixed(run["seconds"] / 60, 1))
    found = doc_match("distributed.md", r"([\d-]+) on the shared 2-core VM \(`benchmarks/results/mnist_2ranks.json`, written by "
                                        r"`python benchmarks/bench_examples.py mpi`\): test accuracy ([\d., ]+) and "
                                        r"\*\*([\d.]+)%\*\* after the six epochs")
    assert found == (run["date"], ", ".join(accuracies[:-1]), accuracies[-1])
