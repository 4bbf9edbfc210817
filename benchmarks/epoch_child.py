"""One process, one framework, one epoch: what `bench_epoch.py --runs N` starts for each run.

    python benchmarks/epoch_child.py --kind ours --checkout .          # the example's way (examples/mnist.py)
    python benchmarks/epoch_child.py --kind ours-user --checkout /tmp/base
    /work/tfenv/bin/python benchmarks/epoch_child.py --kind keras      # TensorFlow/Keras, its own interpreter

Trains the tutorial's CNN (Conv2D 32, MaxPool, Conv2D 64, MaxPool, Flatten, Dense 128, Dense 10
softmax) for one epoch of the bundled MNIST, batch 128, Adam lr 1e-3, then predicts the 10,000 test
images (batch 1000), and prints one JSON line: first-epoch seconds, test accuracy, inference
images/s and peak resident memory (the whole process's, from the start of training: the peak
of loading MNIST is reset first where Linux allows; TensorFlow's import alone holds ~600 MB). It imports nothing from this folder, so that `--checkout` alone
decides which tinygrad_cnn runs (its folder goes first on sys.path).

The kinds:
- `ours`: as examples/mnist.py trains: `tg.memory.keep_freed_memory()` where that checkout's example
  calls it (examples before issue 25's kernels/buffers.py did), its `build_model()` and
  `train_step()`, a shuffling `DataLoader` that scales each batch from uint8 (the example's progress
  bar and running metrics left out).
- `ours-user`: a user's own loop, PyTorch-style: the same layers written out, the whole training set
  scaled to float32 once, a batch a slice of it, `loss.backward()`, `optimizer.step()`; no
  memory-tuning call.
- `keras`: the same model in Keras 3 on TensorFlow, `model.fit(x, y, batch_size=128, epochs=1)` as the
  tutorial (shuffled, with its accuracy metric), timed around `fit`, so the first epoch includes
  TensorFlow tracing its step, as a user's first epoch does.
"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def peak_rss_mb(field="VmHWM"):
    """This process's peak resident memory (Linux VmHWM; ru_maxrss elsewhere), in MB; with
    field="VmRSS", its resident memory now (None off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    if field != "VmHWM":
        return None
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak():
    """Start the peak (VmHWM) afresh, so that it is training's and not loading MNIST's (Linux 4.0+:
    writing 5 to /proc/self/clear_refs). Returns whether it could."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def read_idx(path):
    """An IDX file (MNIST's format, gzipped) as a uint8 array: for Keras, which does not import us."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def ours(args):
    sys.path[:0] = [args.checkout, os.path.join(args.checkout, "examples")]
    import tinygrad_cnn as tg
    from tinygrad_cnn import nn, optim
    from tinygrad_cnn.datasets import mnist
    from tinygrad_cnn.nn import functional as F

    info = dict(tinygrad_cnn=os.path.dirname(tg.__file__))
    (x, y), (x_test, y_test) = mnist.load_data()
    x, y = x[:args.images], y[:args.images]
    if args.kind == "ours":
        from mnist import build_model, train_step  # the checkout's examples/mnist.py
        from tinygrad_cnn.data import DataLoader
        import mnist as example
        # as that checkout's example does: older ones called keep_freed_memory(), today's do not
        # (kernels/buffers.py keeps the large arrays instead)
        with open(example.__file__, encoding="utf-8") as f:
            calls_it = "tg.memory.keep_freed_memory()" in f.read()
        info["keep_freed_memory"] = tg.memory.keep_freed_memory() if calls_it else False
        tg.manual_seed(args.seed)
        model = build_model()
        optimizer = optim.Adam(model.parameters(), lr=args.lr)
        info["rss_before_training_mb"], info["peak_reset"] = peak_rss_mb("VmRSS"), reset_peak()
        start, cpu = time.perf_counter(), time.process_time()
        for xb, yb in DataLoader(x, y, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                                 transform=mnist.to_float_images):
            train_step(model, optimizer, xb, yb)
    else:
        tg.manual_seed(args.seed)
        model = nn.Sequential([
            nn.Conv2D(32, (3, 3), padding="same", activation="relu"),
            nn.MaxPool2D((2, 2), strides=2),
            nn.Conv2D(64, (3, 3), padding="same", activation="relu"),
            nn.MaxPool2D((2, 2), strides=2),
            nn.Flatten(),
            nn.Dense(128, activation="relu"),
            nn.Dense(10, activation="softmax"),
        ], input_shape=(1, 28, 28))
        optimizer = optim.Adam(model.parameters(), lr=args.lr)
        images = (x[:, None] / np.float32(255)).astype(np.float32)
        labels = y.astype(np.int64)
        order = np.random.default_rng(args.seed).permutation(len(images))
        info["keep_freed_memory"] = False
        info["rss_before_training_mb"], info["peak_reset"] = peak_rss_mb("VmRSS"), reset_peak()
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(images), args.batch_size):
            idx = order[i:i + args.batch_size]
            loss = F.cross_entropy(model.logits(tg.Tensor(images[idx])), tg.Tensor(labels[idx]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    info["first_epoch_seconds"] = time.perf_counter() - start
    info["first_epoch_cpu_seconds"] = time.process_time() - cpu  # all threads: cores used = this / seconds
    info["peak_rss_mb"] = peak_rss_mb()

    test = mnist.to_float_images(x_test[:args.test_images])
    model.eval()

    def predict(batch):
        with tg.no_grad():
            return model.logits(tg.Tensor(batch)).argmax(axis=1).numpy()

    predict(test[:args.infer_batch])  # one untimed batch, as Keras gets its traced one
    start = time.perf_counter()
    predicted = np.concatenate([predict(test[i:i + args.infer_batch]) for i in range(0, len(test), args.infer_batch)])
    info["inference_images_per_second"] = len(test) / (time.perf_counter() - start)
    info["test_accuracy"] = float((predicted == y_test[:args.test_images]).mean())
    info["peak_rss_after_inference_mb"] = peak_rss_mb()
    return info


def keras(args):
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras as k
    import tensorflow as tf

    data = os.path.join(args.checkout, "data", "mnist")
    x = read_idx(os.path.join(data, "train-images-idx3-ubyte.gz"))[:args.images]
    y = read_idx(os.path.join(data, "train-labels-idx1-ubyte.gz"))[:args.images]
    x_test = read_idx(os.path.join(data, "t10k-images-idx3-ubyte.gz"))[:args.test_images]
    y_test = read_idx(os.path.join(data, "t10k-labels-idx1-ubyte.gz"))[:args.test_images]
    info = dict(tensorflow=tf.__version__, keras=k.__version__, backend=k.backend.backend(),
                intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads())
    k.utils.set_random_seed(args.seed)
    model = k.Sequential([
        k.Input((28, 28, 1)),
        k.layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
        k.layers.MaxPooling2D((2, 2), strides=2),
        k.layers.Conv2D(64, (3, 3), padding="same", activation="relu"),
        k.layers.MaxPooling2D((2, 2), strides=2),
        k.layers.Flatten(),
        k.layers.Dense(128, activation="relu"),
        k.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=k.optimizers.Adam(args.lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    images = (x[..., None] / np.float32(255)).astype(np.float32)
    test = (x_test[..., None] / np.float32(255)).astype(np.float32)
    info["rss_before_training_mb"], info["peak_reset"] = peak_rss_mb("VmRSS"), reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(images, y.astype(np.int64), batch_size=args.batch_size, epochs=1, verbose=0)
    info["first_epoch_seconds"] = time.perf_counter() - start
    info["first_epoch_cpu_seconds"] = time.process_time() - cpu
    info["peak_rss_mb"] = peak_rss_mb()
    model.predict(test[:args.infer_batch], batch_size=args.infer_batch, verbose=0)  # traces predict
    start = time.perf_counter()
    predicted = model.predict(test, batch_size=args.infer_batch, verbose=0).argmax(axis=1)
    info["inference_images_per_second"] = len(test) / (time.perf_counter() - start)
    info["test_accuracy"] = float((predicted == y_test).mean())
    info["peak_rss_after_inference_mb"] = peak_rss_mb()
    return info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", choices=["ours", "ours-user", "keras"], required=True)
    p.add_argument("--checkout", default=os.path.dirname(HERE),
                   help="the tinygrad_cnn checkout to run (and whose data/mnist Keras reads)")
    p.add_argument("--images", type=int, default=60000)
    p.add_argument("--test-images", type=int, default=10000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--infer-batch", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.checkout = os.path.abspath(args.checkout)
    info = keras(args) if args.kind == "keras" else ours(args)
    print(json.dumps(dict(kind=args.kind, images=args.images, **info)), flush=True)


if __name__ == "__main__":
    main()
