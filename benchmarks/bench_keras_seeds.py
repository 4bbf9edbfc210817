"""Test accuracy of the tutorial's Keras code over several seeds: tinygrad_cnn.keras against real
Keras (3, torch backend) on the same bundled MNIST, each run in its own process.

    python benchmarks/bench_keras_seeds.py --seeds 0 1 2 3                  # ours only, ~2 min a seed
    KERAS_BACKEND=torch python benchmarks/bench_keras_seeds.py --seeds 0-9 --peer keras \\
        --workers 2 --json benchmarks/results/keras_seeds.json            # and real Keras, ~3 min a seed

A single seed says little: five epochs of Adam at a constant 1e-3 end anywhere from 98.6% to 99.3%
on either framework, so the table gives each run and the mean and spread per framework. The
question it answers is whether examples/keras_mnist.py's >= 99% is a property of the framework or
of one seed (issue 13).

    KERAS_BACKEND=torch python benchmarks/bench_keras_seeds.py --seeds 0-5 --peer keras --paired --workers 2

--paired takes the initial weights and the shuffle out of the comparison: both frameworks start
from the weights Keras draws for the seed and see the same batches, so a gap that remains is in
the training step itself."""
import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from common import machine, print_table, write_json

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# NOTE: the tutorial's model and training call, as examples/keras_mnist.py has them; `tf` is
# tinygrad_cnn or keras, and the seed line is the only one that differs
RUN = r'''
import json, os, sys, time
sys.path.insert(0, {root!r})
framework, seed, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import tinygrad_cnn
if framework == "keras":
    import torch
    torch.set_num_threads(1)  # NOTE: one core per run, as ours holds BLAS at one thread
    import types
    import keras
    keras.utils.set_random_seed(seed)
    tf = types.SimpleNamespace(keras=keras)  # NOTE: Keras 3.15 has no keras.keras; tf.keras is keras
    relu, softmax = "relu", "softmax"
else:
    tf = tinygrad_cnn
    tf.manual_seed(seed)
    relu, softmax = tf.nn.relu, tf.nn.softmax
model = tf.keras.Sequential([
    tf.keras.layers.Conv2D(32, (3, 3), padding="same", activation=relu, input_shape=(28, 28, 1)),
    tf.keras.layers.MaxPooling2D((2, 2), strides=2),
    tf.keras.layers.Conv2D(64, (3, 3), padding="same", activation=relu),
    tf.keras.layers.MaxPooling2D((2, 2), strides=2),
    tf.keras.layers.Flatten(),
    tf.keras.layers.Dense(128, activation=relu),
    tf.keras.layers.Dense(10, activation=softmax)])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
(x_train, y_train), (x_test, y_test) = tinygrad_cnn.keras.datasets.mnist.load_data()
x_train, x_test = x_train[..., None] / 255.0, x_test[..., None] / 255.0
start = time.perf_counter()
if sys.argv[4] == "own":  # each framework's own initial weights and shuffle
    logs = model.fit(x_train, y_train, epochs=epochs, verbose=0, validation_data=(x_test, y_test)).history
else:  # paired: Keras' initial weights for the seed, and the same NumPy permutation each epoch
    import keras
    import numpy
    keras.utils.set_random_seed(seed)
    peer = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(32, (3, 3), padding="same"),
                             keras.layers.MaxPooling2D(), keras.layers.Conv2D(64, (3, 3), padding="same"),
                             keras.layers.MaxPooling2D(), keras.layers.Flatten(), keras.layers.Dense(128),
                             keras.layers.Dense(10)])
    weights = peer.get_weights()  # Keras' layouts, which set_weights takes in either framework
    model.set_weights([w.copy() for w in weights])
    order, logs = numpy.random.default_rng(1000 + seed), {{}}
    for epoch in range(epochs):
        perm = order.permutation(len(x_train))
        one = model.fit(x_train[perm], y_train[perm], epochs=1, shuffle=False, verbose=0,
                        validation_data=(x_test, y_test)).history
        for k, vs in one.items():
            logs.setdefault(k, []).extend(vs)
print(json.dumps({{"seconds": time.perf_counter() - start, **{{k: [float(v) for v in vs] for k, vs in logs.items()}}}}))
'''


def seeds(values):
    """'0-3 7' -> [0, 1, 2, 3, 7]."""
    out = []
    for value in values:
        lo, _, hi = value.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def one_run(framework, seed, epochs, order="own"):
    code = RUN.format(root=os.path.abspath(ROOT))
    env = dict(os.environ, KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "torch"))
    done = subprocess.run([sys.executable, "-c", code, framework, str(seed), str(epochs), order], capture_output=True,
                          text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{framework} seed {seed} failed:\n{done.stderr[-2000:]}")
    return {"framework": framework, "seed": seed, "order": order, **json.loads(done.stdout.strip().splitlines()[-1])}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", default=["0-3"], help="seeds or ranges, e.g. 0-9 (default 0-3)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--peer", choices=["none", "keras"], default="none", help="also run real Keras")
    parser.add_argument("--workers", type=int, default=1, help="runs at once (one core each)")
    parser.add_argument("--paired", action="store_true",
                        help="both start from Keras' initial weights for the seed and train on the same batches "
                             "(a NumPy permutation each epoch, given with shuffle=False); needs Keras")
    parser.add_argument("--json", help="write the runs and the summary here")
    args = parser.parse_args()
    frameworks = ["ours"] + (["keras"] if args.peer == "keras" else [])
    jobs = [(f, s) for s in seeds(args.seeds) for f in frameworks]
    with ThreadPoolExecutor(args.workers) as pool:
        runs = list(pool.map(lambda job: one_run(job[0], job[1], args.epochs, "paired" if args.paired else "own"),
                             jobs))
    rows, summary = [], {}
    for framework in frameworks:
        mine = [r for r in runs if r["framework"] == framework]
        finals = [100 * r["val_accuracy"][-1] for r in mine]
        for r, final in zip(mine, finals):
            rows.append([framework, r["seed"], f"{100 * r['val_accuracy'][0]:.2f}%", f"{final:.2f}%",
                         f"{r['loss'][-1]:.4f}", f"{r['seconds']:.0f} s"])
        summary[framework] = {"mean": statistics.mean(finals), "sd": statistics.stdev(finals) if len(finals) > 1 else 0.0,
                              "at_least_99": sum(f >= 99.0 for f in finals), "runs": len(finals)}
        rows.append([framework, "mean", "", f"{summary[framework]['mean']:.2f}% (sd {summary[framework]['sd']:.2f})",
                     f"{summary[framework]['at_least_99']}/{len(finals)} >= 99%", ""])
    print_table(["framework", "seed", "epoch 1", f"epoch {args.epochs}", "train loss", "time"], rows)
    if args.json:
        write_json(args.json, {"machine": machine(), "epochs": args.epochs, "paired": args.paired, "runs": runs,
                               "summary": summary})


if __name__ == "__main__":
    main()
