"""Run the examples as a user would and record the figures the README gives about them (issue 27).

    python benchmarks/bench_examples.py mnist        # examples/mnist.py, defaults  -> results/mnist_run.json
    python benchmarks/bench_examples.py keras        # examples/keras_mnist.py      -> results/keras_mnist_run.json
    python benchmarks/bench_examples.py agreement    # torch and onnxruntime vs ours -> results/agreement.json
    python benchmarks/bench_examples.py mpi          # mpirun -n 2 examples/mnist.py -> results/mnist_2ranks.json

Arguments after `--` go to the example, e.g. a quick look that checks the pipeline:

    python benchmarks/bench_examples.py mnist --out /tmp/quick.json -- --epochs 1 --limit-train 2000

Each file holds the date, the commit, this command, the example's own command and its figures (per-epoch
test accuracy and seconds, the final accuracy); tests/test_readme_figures.py checks the README against
them. `agreement` trains one epoch of examples/mnist.py (or takes --checkpoint) and compares the class
probabilities of the 10,000 test images with PyTorch (the `interop` module's torch model) and onnxruntime
(the `onnx` extra's export), and keeps what `examples/predict.py --index 0` prints for it; a peer that is
not installed is recorded as skipped.

Runtimes on the project's 2-core VM on 2026-12-07, loaded by other jobs (load average ~10): mnist 763 s,
keras 912 s, agreement 180 s, mpi 447 s; on a quiet day mnist took about 1.5 minutes (2026-11-29), and a
2-rank run 49 minutes once under heavier load (2026-12-01). Accuracy depends
on the code (and the BLAS), not on the load: re-run after changing kernels, then update the README lines
that tests/test_readme_figures.py points at.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from common import ROOT, machine, provenance, write_json

RESULTS = os.path.join(ROOT, "benchmarks", "results")


def run(command, env=None):
    """Run `command` from the repository root, its output shown as it goes; its wall seconds."""
    print("$ " + " ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - start


def mnist_figures(metrics_path):
    with open(metrics_path, encoding="utf-8") as f:
        metrics = json.load(f)
    epochs = metrics["epochs"]
    return dict(config=metrics["config"], world_size=metrics["world_size"], epochs=epochs,
                final_test_accuracy=epochs[-1]["test_acc"],
                training_seconds=sum(e["epoch_seconds"] for e in epochs))


def example_mnist(args, scratch, ranks=None):
    metrics = os.path.join(scratch, "metrics.json")
    example = ["examples/mnist.py", "--no-progress", "--save", "", "--metrics", metrics] + args.example_args
    command = [sys.executable] + example
    if ranks:
        command = ["mpirun", "-n", str(ranks)] + command
    seconds = run(command)
    shown = (["mpirun", "-n", str(ranks)] if ranks else []) + ["python"] + example[:1] + args.example_args
    return dict(example_command=" ".join(shown), seconds=seconds, **mnist_figures(metrics))


def example_keras(args, scratch):
    """examples/keras_mnist.py in a child process; its history and evaluation come back as JSON."""
    code = ("import json, sys; sys.path.insert(0, 'examples')\n"
            "import keras_mnist\n"
            "history, evaluated = keras_mnist.main(sys.argv[2:])\n"
            "with open(sys.argv[1], 'w') as f:\n"
            "    json.dump(dict(history=history.history, evaluate=[float(v) for v in evaluated]), f)\n")
    out = os.path.join(scratch, "keras.json")
    seconds = run([sys.executable, "-c", code, out] + args.example_args)
    with open(out, encoding="utf-8") as f:
        result = json.load(f)
    history = {k: [float(v) for v in vs] for k, vs in result["history"].items()}
    return dict(example_command=" ".join(["python", "examples/keras_mnist.py"] + args.example_args), seconds=seconds,
                history=history, test_loss=result["evaluate"][0], final_test_accuracy=result["evaluate"][1])


def agreement(args, scratch):
    """Class probabilities of ours, PyTorch's and onnxruntime's run of one checkpoint, compared."""
    import numpy as np

    import tinygrad_cnn as tg
    from tinygrad_cnn import interop
    from tinygrad_cnn.datasets import mnist
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    from mnist import build_model

    checkpoint, trained = args.checkpoint, None
    if checkpoint is None:
        checkpoint = os.path.join(scratch, "mnist.safetensors")
        example = ["examples/mnist.py", "--no-progress", "--epochs", "1", "--save", checkpoint, "--metrics",
                   os.path.join(scratch, "metrics.json")] + args.example_args
        run([sys.executable] + example)
        trained = " ".join(["python", "examples/mnist.py", "--epochs", "1"] + args.example_args)
    model = build_model()
    model.load(checkpoint)
    model.eval()
    _, (x_test, y_test) = mnist.load_data()
    x = mnist.to_float_images(x_test)
    with tg.no_grad():
        ours = np.concatenate([model(tg.Tensor(x[i:i + 1000])).numpy() for i in range(0, len(x), 1000)])
    shown = subprocess.run([sys.executable, "examples/predict.py", "--checkpoint", checkpoint, "--index", "0"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    result = dict(checkpoint_from=trained or checkpoint, images=len(x), predict_index_0=shown,
                  ours=dict(test_accuracy=float(np.mean(ours.argmax(1) == y_test))), peers={})
    peers = result["peers"]
    try:
        import torch
    except ImportError:
        peers["torch"] = dict(skipped="torch is not installed (pip install torch==2.13.0)")
    else:
        net = eval(interop.torch_code(model), {"torch": torch})  # noqa: S307 - our own generated source
        net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                             for k, v in interop.to_torch_state_dict(model).items()})
        net.eval()
        with torch.no_grad():
            theirs = net(torch.from_numpy(x)).numpy()
        peers["torch"] = dict(version=torch.__version__, max_abs_difference=float(np.max(np.abs(theirs - ours))),
                              test_accuracy=float(np.mean(theirs.argmax(1) == y_test)))
    try:
        import onnxruntime as ort
        from tinygrad_cnn import onnx
    except ImportError:
        peers["onnxruntime"] = dict(skipped="onnxruntime or onnx is not installed (the onnx extra)")
    else:
        path = os.path.join(scratch, "mnist.onnx")
        onnx.export(model, path, (1, 28, 28))
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        theirs = session.run(None, {session.get_inputs()[0].name: x})[0]
        peers["onnxruntime"] = dict(version=ort.__version__, onnx_bytes=os.path.getsize(path), max_abs_difference=float(np.max(np.abs(theirs - ours))),
                                    test_accuracy=float(np.mean(theirs.argmax(1) == y_test)))
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("mnist", "keras", "agreement", "mpi"))
    p.add_argument("--out", default=None, help="the results file (default: benchmarks/results/<its name>.json)")
    p.add_argument("--checkpoint", default=None, help="agreement: compare this checkpoint instead of training one")
    p.add_argument("--ranks", type=int, default=2, help="mpi: processes (default 2)")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = p.parse_args(argv[:cut])
    args.example_args = argv[cut + 1:]  # after --: passed to the example
    names = dict(mnist="mnist_run.json", keras="keras_mnist_run.json", agreement="agreement.json",
                 mpi="mnist_2ranks.json")
    out = args.out or os.path.join(RESULTS, names[args.what])
    stamp = provenance()  # NOTE: at the start: the tree may change during a run of many minutes
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        if args.what == "mnist":
            figures = example_mnist(args, scratch)
        elif args.what == "mpi":
            figures = example_mnist(args, scratch, ranks=args.ranks)
        elif args.what == "keras":
            figures = example_keras(args, scratch)
        else:
            figures = agreement(args, scratch)
    figures["bench_seconds"] = time.perf_counter() - start
    write_json(out, dict(**stamp, machine=machine(), **figures))
    summary = figures.get("final_test_accuracy")
    if summary is not None:
        print(f"final test accuracy {100 * summary:.2f}% ({figures['bench_seconds']:.0f} s)")
    else:
        print(json.dumps(figures["peers"], indent=1))


if __name__ == "__main__":
    main()
