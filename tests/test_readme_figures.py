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
    assert one_match(r"its epoch 1, ([\d.]+)%, is also `benchmarks/results/epoch_cpu.json`'s") == (e["epoch1"],)
    assert one_match(r"\| test accuracy \| ([\d.]+)% \|") == (e["epoch1"],)


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
    r"measured 2026-11-29 \(no results file",
    r"3,960-4,230 training images/s; the same run, no results file",
    r"0\.96x to 0\.98x in five runs, no results file",
    r"Re-measured 2026-12-03 on a slower day of the same VM \(no results file\)",
    r"ended at 98\.99% \(issue 27; no results file",
    r"Measured 2026-12-02 \(no results file\) on the 1-epoch checkpoint",
    r"Measured 2026-12-01 \(no results file\): the default 2-rank run reached 99\.13%",
]


@pytest.mark.parametrize("pattern", NO_RESULTS_FILE)
def test_figures_without_a_results_file_say_so(pattern):
    one_match(pattern)


def test_every_results_file_the_readme_cites_exists_and_every_file_is_cited():
    cited = set(re.findall(r"`(?:benchmarks/results/)?(\w+\.json)`", readme()))
    present = {name for name in os.listdir(RESULTS) if name.endswith(".json")}
    assert cited <= present, cited - present
    # NOTE: distributed_cpu.json, anomaly_cpu.json and ops_cpu.json back docs/ and benchmarks/README.md; so do
    # issue 25's A/Bs of keep_freed_memory and the conv1 block (benchmarks/README.md, "A user's own loop")
    backing = {"distributed_cpu.json", "anomaly_cpu.json", "ops_cpu.json", "conv1_cpu.json", "conv1_cpu_thread_time.json",
               "ab_keep_freed_before.json", "ab_control_before.json", "ab_example_vs_users_loop.json",
               "ab_keep_freed_after.json", "ab_keep_freed_after_rerun.json", "ab_control_after.json"}
    assert present - cited <= backing, present - cited


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
