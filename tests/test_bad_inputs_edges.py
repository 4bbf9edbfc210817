"""Bad inputs at the edges of the library (issue 27): data, datasets, checkpoint, onnx, interop,
distributed, keras and the examples' flags, swept by category rather than case by case:

    none        None where a value is needed
    type        a value of the wrong type (a string for a number, a single object for a list, ...)
    count       a negative, zero or fractional count (batch sizes, seeds, ranks, epochs, bucket sizes)
    conflict    arguments that contradict each other or an earlier call
    path        a path that is a directory, a symbolic link loop, a dangling link, under a regular file,
                or not writable
    silent      inputs that used to give a silently wrong answer

Each row must fail at the API with an exception whose message names the argument and what is allowed (as
tests/test_bad_inputs.py does for the core), raised by tinygrad_cnn's own code, not NumPy's or Python's.
RIGHT_ANSWERS holds inputs of the same categories that are fine and must keep working."""
import contextlib
import errno
import importlib.util
import os
import re
import sys
import tempfile
from unittest import mock

import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import checkpoint, distributed as dist, interop, keras, nn, onnx as tc_onnx, optim, torch_nn
from tinygrad_cnn.checkpoint import CheckpointError
from tinygrad_cnn.data import DataLoader
from tinygrad_cnn.datasets import mnist
from tinygrad_cnn.testing import gradcheck

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.dirname(os.path.abspath(tc.__file__))
EXAMPLES = os.path.join(ROOT, "examples")


def raised_here(excinfo):
    """True when the innermost frame is tinygrad_cnn's or an example's code (not NumPy, not Python)."""
    tb = excinfo.tb
    while tb.tb_next is not None:
        tb = tb.tb_next
    path = os.path.abspath(tb.tb_frame.f_code.co_filename)
    return path.startswith(PACKAGE + os.sep) or path.startswith(EXAMPLES + os.sep) or path.endswith("argparse.py")


# ---------------------------------------------------------------- helpers the rows share

X, Y = np.zeros((10, 2, 2), np.uint8), np.arange(10) % 3


@contextlib.contextmanager
def folder():
    """A scratch folder with a file, a directory, a symlink loop and a dangling link in it."""
    with tempfile.TemporaryDirectory() as d:
        open(os.path.join(d, "file"), "w").close()
        os.mkdir(os.path.join(d, "dir.npz"))
        os.symlink(os.path.join(d, "loop_b.npz"), os.path.join(d, "loop_a.npz"))
        os.symlink(os.path.join(d, "loop_a.npz"), os.path.join(d, "loop_b.npz"))
        os.symlink(os.path.join(d, "nowhere.npz"), os.path.join(d, "dangling.npz"))
        yield d


def in_folder(fn):
    """A row's call given the scratch folder."""
    def call():
        with folder() as d:
            return fn(d)
    return call


def x64():
    return tc.Tensor(np.ones(3), requires_grad=True)


def params():
    return [tc.Tensor(np.ones(3, np.float32), requires_grad=True)]


def small():
    return nn.Sequential([nn.Dense(2)], input_shape=(3,))


def save(path):
    small().save(path)


def load(path):
    small().load(path)


def unwritable_save(d):
    """The system refusing the write (as a read-only folder does; we may run as root, whom chmod does not stop)."""
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", args[0])
    with mock.patch.object(checkpoint.os, "open", refuse):
        save(os.path.join(d, "m.safetensors"))


def keras_model():
    return keras.Sequential([keras.layers.Dense(2, input_shape=(3,))]).compile(loss="mse")


def fit(**kwargs):
    args = dict(x=np.ones((4, 3)), y=np.ones((4, 2)), verbose=0)
    args.update(kwargs)
    return keras_model().fit(**args)


@contextlib.contextmanager
def fresh_world():
    """distributed's module state put back after the row (init() keeps its world for the process)."""
    kept = dist._world
    dist._world = None
    try:
        yield
    finally:
        dist._world = kept


def second_init(first, second):
    with fresh_world():
        dist.init(gpu_backend=first)
        dist.init(gpu_backend=second)


def in_fresh_world(fn):
    def call():
        with fresh_world():
            return fn()
    return call


def dropping_transform():
    loader = DataLoader(X, Y, batch_size=4, transform=lambda xb: xb[::2])  # keeps every other image
    next(iter(loader))


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"edges_example_{name}", os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def flags(example, *argv, parse="parse_args"):
    """An example's argument parsing; argparse's usage error (exit status 2) becomes a ValueError with its
    message, so that rows compare messages alike."""
    def call():
        module = load_example(example)
        err = __import__("io").StringIO()
        with contextlib.redirect_stderr(err):
            try:
                getattr(module, parse)(list(argv))
            except SystemExit as e:
                if e.code == 2:
                    raise ValueError(err.getvalue().strip().splitlines()[-1]) from None
                raise
    return call


def flags_in_folder(example, *argv):
    """flags() with {d} in argv standing for the scratch folder."""
    def call():
        with folder() as d:
            return flags(example, *[a.format(d=d) for a in argv])()
    return call


def predict_main(*argv):
    def call():
        module = load_example("predict")
        try:
            module.main(list(argv))
        except SystemExit as e:
            if isinstance(e.code, str):
                raise ValueError(e.code) from None
            raise
    return call


# (id, category, call, exception type, regex the message must match)
BAD_INPUTS = [
    # ------------------------------------------------ data.DataLoader
    ("DataLoader-transform-drops-rows", "silent", dropping_transform, ValueError,
     r"transform .* returned 2 rows for a batch of 4: it must keep one row per sample"),
    ("DataLoader-x-None", "none", lambda: DataLoader(None), TypeError, r"x must be an array of samples.*None"),
    ("DataLoader-x-strings", "type", lambda: DataLoader(np.array([["a"]])), TypeError, r"x must be numeric.*<U1"),
    ("DataLoader-y-strings", "type", lambda: DataLoader(X, np.array(["a"] * 10)), TypeError, r"y must be numeric"),
    ("DataLoader-batch_size-0", "count", lambda: DataLoader(X, batch_size=0), ValueError, r"batch_size must be a positive int, got 0"),
    ("DataLoader-batch_size-negative", "count", lambda: DataLoader(X, batch_size=-4), ValueError, r"batch_size must be a positive int, got -4"),
    ("DataLoader-batch_size-fraction", "count", lambda: DataLoader(X, batch_size=2.5), ValueError, r"batch_size must be a positive int, got 2\.5"),
    ("DataLoader-batch_size-None", "none", lambda: DataLoader(X, batch_size=None), ValueError, r"batch_size must be a positive int, got None"),
    ("DataLoader-seed-negative", "count", lambda: DataLoader(X, shuffle=True, seed=-1), ValueError, r"seed must be None or an int >= 0, got -1"),
    ("DataLoader-seed-string", "type", lambda: DataLoader(X, shuffle=True, seed="abc"), TypeError, r"seed must be None or an int >= 0, got 'abc'"),
    ("DataLoader-seed-fraction", "count", lambda: DataLoader(X, seed=2.5), TypeError, r"seed must be None or an int"),
    ("DataLoader-shuffle-string", "type", lambda: DataLoader(X, shuffle="no"), TypeError, r"shuffle must be True or False, got 'no'"),
    ("DataLoader-drop_last-None", "none", lambda: DataLoader(X, drop_last=None), TypeError, r"drop_last must be True or False"),
    ("DataLoader-transform-string", "type", lambda: DataLoader(X, transform="scale"), TypeError, r"transform must be callable or None"),
    ("DataLoader-rank-fraction", "count", lambda: DataLoader(X, rank=0.5, world_size=2), TypeError, r"rank must be an int, got 0\.5"),
    ("DataLoader-rank-outside-world", "conflict", lambda: DataLoader(X, rank=2, world_size=2), ValueError, r"rank must lie in \[0, world_size\)"),
    ("DataLoader-world_size-0", "count", lambda: DataLoader(X, world_size=0), ValueError, r"world_size >= 1"),
    ("DataLoader-seed-and-generator", "conflict", lambda: DataLoader(X, seed=1, generator=np.random.default_rng(1)),
     ValueError, r"a seed or a generator, not both"),
    ("DataLoader-generator-int", "type", lambda: DataLoader(X, generator=3), TypeError, r"generator must be a numpy\.random\.Generator"),
    ("DataLoader-x-y-lengths", "conflict", lambda: DataLoader(X, Y[:5]), ValueError, r"len\(x\)=10 and len\(y\)=5"),
    # ------------------------------------------------ datasets.mnist
    ("mnist.load_data-path-int", "type", lambda: mnist.load_data(123), TypeError, r"load_data: path must be a folder name.*123"),
    ("mnist.load_data-path-a-file", "path", in_folder(lambda d: mnist.load_data(os.path.join(d, "file"))),
     mnist.MNISTNotFoundError, r"load_data: path .*file' is a file; give the folder"),
    ("mnist.load_data-path-empty-folder", "path", in_folder(lambda d: mnist.load_data(os.path.join(d, "dir.npz"))),
     mnist.MNISTNotFoundError, r"MNIST file\(s\) not found: .*dir\.npz/train-images"),
    ("mnist.to_float_images-strings", "type", lambda: mnist.to_float_images(np.array([[["a"]]])), TypeError,
     r"to_float_images: images must be numeric"),
    ("mnist.to_float_images-None", "none", lambda: mnist.to_float_images(None), TypeError, r"to_float_images: images must be numeric.*object"),
    ("mnist.to_float_images-2d", "type", lambda: mnist.to_float_images(np.zeros((28, 28), np.uint8)), ValueError,
     r"expected images of shape \(N, H, W\), got \(28, 28\)"),
    # ------------------------------------------------ checkpoint (Module.save/load, save_arrays, load_file)
    ("load-None", "none", lambda: load(None), TypeError, r"load: path must be a file name \(str or pathlib\.Path\), got None"),
    ("load-int", "type", lambda: checkpoint.load_arrays(3), TypeError, r"load: path must be a file name.*got 3"),
    ("load-bytes", "type", lambda: checkpoint.load_file(b"m.npz"), TypeError, r"load: path must be a file name"),
    ("load-directory", "path", in_folder(lambda d: load(os.path.join(d, "dir.npz"))), CheckpointError,
     r"dir\.npz' is a directory, not a checkpoint file"),
    ("load-symlink-loop", "path", in_folder(lambda d: load(os.path.join(d, "loop_a.npz"))), CheckpointError,
     r"loop_a\.npz' is a symbolic link loop"),
    ("load-dangling-symlink", "path", in_folder(lambda d: load(os.path.join(d, "dangling.npz"))), CheckpointError,
     r"dangling\.npz' is a symbolic link to .*nowhere\.npz', which does not exist"),
    ("load-missing", "path", in_folder(lambda d: load(os.path.join(d, "missing.npz"))), CheckpointError,
     r"missing\.npz' does not exist"),
    ("save-None", "none", lambda: save(None), TypeError, r"save: path must be a file name \(str or pathlib\.Path\), got None"),
    ("save-directory", "path", in_folder(lambda d: save(os.path.join(d, "dir.npz"))), CheckpointError,
     r"cannot write .*dir\.npz': it is a directory"),
    ("save-symlink-loop", "path", in_folder(lambda d: save(os.path.join(d, "loop_a.npz"))), CheckpointError,
     r"cannot write .*loop_a\.npz': it is a symbolic link loop"),
    ("save-dangling-symlink", "path", in_folder(lambda d: save(os.path.join(d, "dangling.npz"))), CheckpointError,
     r"it is a symbolic link to .*nowhere\.npz', which does not exist"),
    ("save-parent-is-a-file", "path", in_folder(lambda d: save(os.path.join(d, "file", "m.npz"))), CheckpointError,
     r"cannot write .*file/m\.npz': .*file' is a regular file, not a folder"),
    ("save-grandparent-is-a-file", "path", in_folder(lambda d: save(os.path.join(d, "file", "sub", "m.npz"))),
     CheckpointError, r"file' is a regular file, not a folder"),
    ("save-unwritable", "path", in_folder(unwritable_save), PermissionError,
     r"save: cannot write .*m\.safetensors' \(Permission denied\)"),
    ("save_arrays-arrays-None", "none", lambda: checkpoint.save_arrays("m.npz", None), TypeError,
     r"save: arrays must be a dict of name -> array, got NoneType"),
    ("save_arrays-metadata-list", "type", lambda: checkpoint.save_arrays("m.npz", {}, metadata=["a"]), TypeError,
     r"metadata must be a dict of str -> str, got list"),
    ("check_writable-directory", "path", in_folder(lambda d: checkpoint.check_writable(d, "--save")), CheckpointError,
     r"--save: cannot write .*: it is a directory"),
    # ------------------------------------------------ onnx
    ("onnx.export-path-None", "none", lambda: tc_onnx.export(small(), None), TypeError,
     r"onnx\.export: path must be a file name.*got None"),
    ("onnx.export-path-directory", "path", in_folder(lambda d: tc_onnx.export(small(), d)), CheckpointError,
     r"onnx\.export: cannot write .*: it is a directory"),
    ("onnx.export-parent-is-a-file", "path", in_folder(lambda d: tc_onnx.export(small(), os.path.join(d, "file", "m.onnx"))),
     CheckpointError, r"onnx\.export: .*file' is a regular file, not a folder"),
    ("onnx.export-model-None", "none", lambda: tc_onnx.export(None, "m.onnx"), TypeError, r"onnx\.export takes a Sequential model \(a chain of layers\), got NoneType"),
    ("onnx.export-input_shape-string", "type", lambda: tc_onnx.export(small(), "m.onnx", input_shape="abc"), TypeError,
     r"onnx\.export: input_shape must be a tuple of ints.*'abc'"),
    # ------------------------------------------------ interop
    ("interop.to_torch_state_dict-None", "none", lambda: interop.to_torch_state_dict(None), TypeError,
     r"PyTorch interop handles a Sequential model.*, got NoneType"),
    ("interop.from_torch_state_dict-None", "none", lambda: interop.from_torch_state_dict(small(), None), TypeError,
     r"from_torch_state_dict: state must be a mapping of name -> tensor.*NoneType"),
    ("interop.from_torch_state_dict-list", "type", lambda: interop.from_torch_state_dict(small(), [np.ones(2)]), TypeError,
     r"state must be a mapping"),
    ("interop.torch_code-unbuilt", "conflict", lambda: interop.torch_code(nn.Sequential([nn.Dense(2)])), ValueError,
     r"needs a built model"),
    # ------------------------------------------------ distributed
    ("dist.init-second-call-other-backend", "conflict", lambda: second_init("nccl", "mpi"), ValueError,
     r"already initialized with gpu_backend='nccl'; a second init\(\) cannot change it to 'mpi'"),
    ("dist.init-backend-unknown", "type", in_fresh_world(lambda: dist.init(gpu_backend="gloo")), ValueError,
     r"gpu_backend must be 'nccl' or 'mpi', got 'gloo'"),
    ("dist.init-backend-int", "type", in_fresh_world(lambda: dist.init(gpu_backend=1)), TypeError,
     r"init: gpu_backend must be None, 'nccl' or 'mpi', got 1"),
    ("dist.init-threads-0", "count", in_fresh_world(lambda: dist.init(threads_per_rank=0)), ValueError,
     r"threads_per_rank must be 'auto', None or an int >= 1, got 0"),
    ("dist.init-threads-fraction", "count", in_fresh_world(lambda: dist.init(threads_per_rank=1.5)), ValueError,
     r"threads_per_rank must be 'auto', None or an int >= 1, got 1\.5"),
    ("dist.local_batch_size-0", "count", lambda: dist.local_batch_size(0), ValueError,
     r"local_batch_size: global_batch_size must be an int >= 1, got 0"),
    ("dist.local_batch_size-negative", "count", lambda: dist.local_batch_size(-4), ValueError,
     r"global_batch_size must be an int >= 1, got -4"),
    ("dist.local_batch_size-fraction", "count", lambda: dist.local_batch_size(2.5), TypeError,
     r"global_batch_size must be an int >= 1, got 2\.5"),
    ("dist.local_batch_size-None", "none", lambda: dist.local_batch_size(None), TypeError, r"global_batch_size must be an int"),
    ("dist.allreduce-string", "type", lambda: dist.allreduce("abc"), TypeError,
     r"allreduce: value must be a number, a numeric array or a Tensor, got 'abc'"),
    ("dist.allreduce-None", "none", lambda: dist.allreduce(None), TypeError, r"allreduce: value must be a number"),
    ("dist.allreduce-string-array", "type", lambda: dist.allreduce(np.array(["a"])), TypeError, r"allreduce: .*dtype <U1"),
    ("dist.allreduce-op", "type", lambda: dist.allreduce(1.0, op="avg"), ValueError, r"op must be 'sum', 'mean', 'max' or 'min'"),
    ("dist.broadcast_parameters-None", "none", lambda: dist.broadcast_parameters(None), TypeError,
     r"broadcast_parameters: params must be a Module or a list of Tensors, got None"),
    ("dist.broadcast_parameters-arrays", "type", lambda: dist.broadcast_parameters([np.ones(2)]), TypeError,
     r"params must be a Module or a list of Tensors, and hold a ndarray"),
    ("dist.broadcast_parameters-root-outside", "count", lambda: dist.broadcast_parameters(small(), root=1), ValueError,
     r"broadcast_parameters: root must be a rank in \[0, 1\)"),
    ("dist.broadcast_object-root-string", "type", lambda: dist.broadcast_object(1, root="0"), TypeError,
     r"broadcast_object: root must be an int rank"),
    ("dist.on_root-None", "none", lambda: dist.on_root(None), TypeError, r"on_root: fn must be a callable"),
    ("dist.on_root-root-negative", "count", lambda: dist.on_root(lambda: 1, root=-1), ValueError, r"on_root: root must be a rank"),
    ("dist.broadcast_optimizer_state-None", "none", lambda: dist.broadcast_optimizer_state(None), TypeError,
     r"broadcast_optimizer_state needs an Optimizer, got NoneType"),
    ("dist.average_gradients-None", "none", lambda: dist.average_gradients(None), TypeError,
     r"average_gradients: params must be a Module or a list of Tensors"),
    ("dist.average_gradients-bucket-0", "count", lambda: dist.average_gradients(small().parameters(), bucket_bytes=0),
     ValueError, r"average_gradients: bucket_bytes must be an int >= 1, got 0"),
    ("dist.DistributedOptimizer-bucket-fraction", "count",
     lambda: dist.DistributedOptimizer(optim.SGD(small().parameters(), lr=0.1), bucket_bytes=0.5), ValueError,
     r"DistributedOptimizer: bucket_bytes must be an int >= 1, got 0\.5"),
    ("dist.DistributedOptimizer-None", "none", lambda: dist.DistributedOptimizer(None), TypeError,
     r"DistributedOptimizer needs an Optimizer, got NoneType"),
    # ------------------------------------------------ keras
    ("keras.compile-metrics-dict", "type", lambda: keras_model().compile(loss="mse", metrics={"out": "accuracy"}), TypeError,
     r"compile: metrics must be a list of metrics \(names such as 'accuracy'"),
    ("keras.compile-metrics-unknown", "type", lambda: keras_model().compile(loss="mse", metrics=["f1"]), ValueError,
     r"compile: unknown metric 'f1': use one of 'accuracy'"),
    # NOTE: Keras 3.15.1 refuses a bare string too ("Expected `metrics` argument to be a list, tuple, or dict")
    ("keras.compile-metrics-a-string", "type", lambda: keras_model().compile(loss="mse", metrics="mae"), ValueError,
     r"compile: metrics must be a list of metrics, got the string 'mae'; write metrics=\['mae'\]"),
    ("keras.compile-weighted-metrics-a-string", "type",
     lambda: keras_model().compile(loss="mse", weighted_metrics="accuracy"), ValueError,
     r"weighted_metrics must be a list of metrics, got the string 'accuracy'; write weighted_metrics=\['accuracy'\]"),
    ("keras.compile-optimizer-None", "none", lambda: keras_model().compile(optimizer=None), TypeError,
     r"optimizer must be a name, a tinygrad_cnn\.keras\.optimizers object"),
    ("keras.compile-loss-int", "type", lambda: keras_model().compile(loss=3), TypeError, r"loss must be a name, a Loss or a callable, got int"),
    ("keras.Sequential-one-layer-not-a-list", "type", lambda: keras.Sequential(keras.layers.Dense(2)), TypeError,
     r"Sequential: layers must be a list of layers, got Dense \(wrap a single layer in a list"),
    ("keras.fit-x-None", "none", lambda: fit(x=None), ValueError, r"fit: x is missing"),
    ("keras.fit-y-None", "none", lambda: fit(y=None), ValueError, r"fit: y is missing"),
    ("keras.fit-epochs-fraction", "count", lambda: fit(epochs=2.5), ValueError, r"epochs must be an int >= 0, got 2\.5"),
    ("keras.fit-epochs-negative", "count", lambda: fit(epochs=-1), ValueError, r"epochs must be an int >= 0, got -1"),
    ("keras.fit-batch_size-0", "count", lambda: fit(batch_size=0), ValueError, r"batch_size must be an int >= 1, got 0"),
    ("keras.fit-shuffle-string", "type", lambda: fit(shuffle="no"), TypeError, r"fit: shuffle must be True or False, got 'no'"),
    ("keras.fit-callbacks-not-a-list", "type", lambda: fit(callbacks=keras.callbacks.History()), TypeError,
     r"fit: callbacks must be a list of Callback objects, got History"),
    ("keras.fit-validation_split-1.5", "count", lambda: fit(validation_split=1.5), ValueError, r"validation_split must be a number in \[0, 1\)"),
    ("keras.fit-validation_data-one", "type", lambda: fit(validation_data=(np.ones((2, 3)),)), ValueError,
     r"validation_data must be a pair"),
    ("keras.fit-x-y-lengths", "conflict", lambda: fit(y=np.ones((3, 2))), ValueError, r"x and y must hold the same number of samples, got 4 and 3"),
    ("keras.predict-None", "none", lambda: keras_model().predict(None, verbose=0), ValueError, r"predict: x is missing"),
    ("keras.evaluate-callbacks-not-a-list", "type",
     lambda: keras_model().evaluate(np.ones((2, 3)), np.ones((2, 2)), verbose=0, callbacks=keras.callbacks.History()),
     TypeError, r"evaluate: callbacks must be a list"),
    ("keras.set_weights-None", "none", lambda: keras_model().set_weights(None), TypeError,
     r"set_weights: weights must be a list of arrays"),
    ("keras.load_weights-None", "none", lambda: keras_model().load_weights(None), TypeError, r"load: path must be a file name"),
    ("keras.save_weights-directory", "path", in_folder(lambda d: keras_model().save_weights(d)), CheckpointError,
     r"it is a directory"),
    ("keras.ModelCheckpoint-None", "none", lambda: keras.callbacks.ModelCheckpoint(None), TypeError,
     r"ModelCheckpoint: filepath must be a file name.*None"),
    ("keras.ModelCheckpoint-h5", "type", lambda: keras.callbacks.ModelCheckpoint("best.h5"), CheckpointError,
     r"\.h5 is not a format this project writes"),
    ("keras.ModelCheckpoint-directory", "path", in_folder(lambda d: keras.callbacks.ModelCheckpoint(os.path.join(d, "dir.npz"))),
     ValueError, r"ModelCheckpoint: filepath .* is a directory"),
    ("keras.ModelCheckpoint-monitor-int", "type", lambda: keras.callbacks.ModelCheckpoint("m.npz", monitor=3), TypeError,
     r"ModelCheckpoint monitor must be the name of a logged value"),
    ("keras.CSVLogger-None", "none", lambda: keras.callbacks.CSVLogger(None), TypeError, r"CSVLogger: filename must be a file name"),
    ("keras.CSVLogger-directory", "path", in_folder(lambda d: keras.callbacks.CSVLogger(d)), ValueError,
     r"CSVLogger: filename .* is a directory"),
    ("keras.CSVLogger-separator-empty", "type", lambda: keras.callbacks.CSVLogger("log.csv", separator=""), ValueError,
     r"CSVLogger: separator must be one character"),
    ("keras.EarlyStopping-patience-negative", "count", lambda: keras.callbacks.EarlyStopping(patience=-1), ValueError,
     r"patience must be an int >= 0, got -1"),
    ("keras.EarlyStopping-min_delta-string", "type", lambda: keras.callbacks.EarlyStopping(min_delta="abc"), TypeError,
     r"EarlyStopping min_delta must be a finite number, got 'abc'"),
    ("keras.BinaryCrossentropy-from_logits-string", "type", lambda: keras.losses.BinaryCrossentropy(from_logits="yes"),
     TypeError, r"from_logits must be True or False"),
    ("keras.Adam-learning_rate-None", "none", lambda: keras.optimizers.Adam(learning_rate=None), ValueError,
     r"learning_rate must be a finite number >= 0, got None"),
    # ------------------------------------------------ the examples' flags
    ("mnist.py--seed-negative", "count", flags("mnist", "--seed", "-1"), ValueError, r"--seed: must be 0 or more, got -1"),
    ("mnist.py--save-directory", "path", flags_in_folder("mnist", "--save", "{d}/dir.npz"), ValueError,
     r"--save: cannot write .*dir\.npz': it is a directory"),
    ("mnist.py--save-under-a-file", "path", flags_in_folder("mnist", "--save", "{d}/file/m.npz"), ValueError,
     r"--save: .*file' is a regular file, not a folder"),
    ("mnist.py--save-symlink-loop", "path", flags_in_folder("mnist", "--save", "{d}/loop_a.npz"), ValueError,
     r"--save: .*symbolic link loop"),
    ("mnist.py--save-h5", "type", flags("mnist", "--save", "m.h5"), ValueError, r"\.h5 is not a format this project writes"),
    ("mnist.py--metrics-directory", "path", flags_in_folder("mnist", "--metrics", "{d}"), ValueError,
     r"--metrics: cannot write .*: it is a directory"),
    ("binary.py--seed-negative", "count", flags("binary", "--seed", "-3", parse="main"), ValueError,
     r"--seed: must be 0 or more, got -3"),
    ("binary.py--digits-same", "conflict", flags("binary", "--digits", "3", "3", parse="main"), ValueError,
     r"--digits needs two different digits from 0 to 9, got 3 and 3"),
    ("keras_mnist.py--epochs-0", "count", flags("keras_mnist", "--epochs", "0"), ValueError, r"--epochs: must be at least 1, got 0"),
    ("keras_mnist.py--limit-train-fraction", "count", flags("keras_mnist", "--limit-train", "2.5"), ValueError,
     r"--limit-train: must be a whole number, got '2\.5'"),
    ("keras_mnist.py--limit-test-negative", "count", flags("keras_mnist", "--limit-test", "-1"), ValueError,
     r"--limit-test: must be at least 1, got -1"),
    ("predict.py--top-0", "count", flags("predict", "--top", "0", "--index", "0"), ValueError, r"--top must be between 1 and 10, got 0"),
    ("predict.py--checkpoint-missing", "path", predict_main("--checkpoint", "/nonexistent/m.safetensors", "--index", "0"),
     ValueError, r"no checkpoint at /nonexistent/m\.safetensors\. Train one with `python .*mnist\.py`"),
    ("predict.py--checkpoint-directory", "path", lambda: predict_main("--checkpoint", ROOT, "--index", "0")(), ValueError,
     r"no checkpoint at"),
    # ------------------------------------------------ layer, optimizer and schedule constructors (nn, keras, optim)
    ("Conv2D-filters-0", "count", lambda: nn.Conv2D(0, 3), ValueError, r"Conv2D filters must be a positive int, got 0"),
    ("Conv2D-filters-fraction", "count", lambda: nn.Conv2D(2.5, 3), ValueError, r"Conv2D filters must be a positive int, got 2\.5"),
    ("Conv2D-filters-None", "none", lambda: nn.Conv2D(None, 3), ValueError, r"Conv2D filters must be a positive int, got None"),
    ("Conv2D-filters-string", "type", lambda: nn.Conv2D("8", 3), ValueError, r"Conv2D filters must be a positive int, got '8'"),
    ("Conv2D-kernel_size-negative", "count", lambda: nn.Conv2D(2, -1), ValueError, r"Conv2D kernel_size must be >= 1, got -1"),
    ("Conv2D-kernel_size-None", "none", lambda: nn.Conv2D(2, None), ValueError, r"Conv2D kernel_size must be an int or a pair"),
    ("Conv2D-kernel_size-triple", "type", lambda: nn.Conv2D(2, (3, 3, 3)), ValueError,
     r"Conv2D kernel_size must be an int or a pair of ints, got \(3, 3, 3\)"),
    ("Conv2D-strides-0", "count", lambda: nn.Conv2D(2, 3, strides=0), ValueError, r"Conv2D strides must be >= 1, got 0"),
    ("Conv2D-dilation_rate-0", "count", lambda: nn.Conv2D(2, 3, dilation_rate=0), ValueError, r"Conv2D dilation_rate must be >= 1"),
    ("Conv2D-padding-bogus", "type", lambda: nn.Conv2D(2, 3, padding="bogus"), ValueError,
     r"Conv2D padding must be 'valid', 'same' or an int/pair, got 'bogus'"),
    ("Conv2D-padding-negative", "count", lambda: nn.Conv2D(2, 3, padding=-1), ValueError, r"Conv2D padding must be >= 0, got -1"),
    ("Conv2D-padding-None", "none", lambda: nn.Conv2D(2, 3, padding=None), ValueError, r"Conv2D padding must be an int or a pair"),
    ("Conv2D-activation-unknown", "type", lambda: nn.Conv2D(2, 3, activation="bogus"), ValueError,
     r"unknown activation 'bogus': use one of 'relu'"),
    ("Conv2D-activation-int", "type", lambda: nn.Conv2D(2, 3, activation=3), TypeError,
     r"activation must be a name, None or a callable, got int"),
    ("Conv2D-initializer-unknown", "type", lambda: nn.Conv2D(2, 3, kernel_initializer="bogus"), ValueError,
     r"unknown initializer 'bogus': use one of glorot_uniform"),
    ("Conv2D-data_format-bogus", "type", lambda: nn.Conv2D(2, 3, data_format="nhwc"), ValueError,
     r"Conv2D data_format must be 'channels_first' .* or 'channels_last' .*, got 'nhwc'"),
    ("Conv2D-use_bias-string", "silent", lambda: nn.Conv2D(2, 3, use_bias="no"), TypeError,
     r"Conv2D use_bias must be True or False, got 'no'"),
    ("Dense-units-fraction", "count", lambda: nn.Dense(2.5), ValueError, r"Dense units must be a positive int, got 2\.5"),
    ("Dense-units-0", "count", lambda: nn.Dense(0), ValueError, r"Dense units must be a positive int, got 0"),
    ("Dense-units-None", "none", lambda: nn.Dense(None), ValueError, r"Dense units must be a positive int, got None"),
    ("Dense-units-bool", "type", lambda: nn.Dense(True), ValueError, r"Dense units must be a positive int, got True"),
    ("Dense-use_bias-string", "silent", lambda: nn.Dense(2, use_bias="false"), TypeError,
     r"Dense use_bias must be True or False, got 'false'"),
    ("Dense-bias_initializer-unknown", "type", lambda: nn.Dense(2, bias_initializer="bogus"), ValueError,
     r"unknown initializer 'bogus'"),
    ("Dropout-rate-above-1", "count", lambda: nn.Dropout(1.5), ValueError, r"Dropout rate must be a number in \[0, 1\), got 1\.5"),
    ("Dropout-rate-1", "count", lambda: nn.Dropout(1), ValueError, r"Dropout rate must be a number in \[0, 1\), got 1"),
    ("Dropout-rate-negative", "count", lambda: nn.Dropout(-0.1), ValueError, r"Dropout rate must be a number in \[0, 1\)"),
    ("Dropout-rate-None", "none", lambda: nn.Dropout(None), ValueError, r"Dropout rate must be a number in \[0, 1\), got None"),
    ("Dropout-rate-nan", "count", lambda: nn.Dropout(float("nan")), ValueError, r"Dropout rate must be a number .*got nan"),
    ("MaxPool2D-pool_size-0", "count", lambda: nn.MaxPool2D(0), ValueError, r"MaxPool2D pool_size must be >= 1, got 0"),
    ("MaxPool2D-pool_size-fraction", "count", lambda: nn.MaxPool2D(2.5), ValueError,
     r"MaxPool2D pool_size must be an int or a pair of ints, got 2\.5"),
    ("MaxPool2D-strides-0", "count", lambda: nn.MaxPool2D(2, strides=0), ValueError, r"MaxPool2D strides must be >= 1, got 0"),
    ("MaxPool2D-padding-bogus", "type", lambda: nn.MaxPool2D(2, padding="bogus"), ValueError,
     r"MaxPool2D padding must be 'valid' or 'same', got 'bogus'"),
    ("AvgPool2D-pool_size-None", "none", lambda: nn.AvgPool2D(None), ValueError, r"AvgPool2D pool_size must be an int or a pair"),
    ("Flatten-data_format-bogus", "type", lambda: nn.Flatten(data_format="x"), ValueError, r"Flatten data_format must be"),
    ("Softmax-axis-string", "type", lambda: nn.Softmax(axis="1"), TypeError, r"Softmax axis must be an int, got '1'"),
    ("Softmax-axis-fraction", "type", lambda: nn.Softmax(axis=1.5), TypeError, r"Softmax axis must be an int, got 1\.5"),
    ("Sequential-layers-int", "type", lambda: nn.Sequential(3), TypeError, r"Sequential takes a list of layers, got int"),
    ("Sequential-layer-a-string", "type", lambda: nn.Sequential([nn.Dense(2), "relu"]), TypeError,
     r"Sequential\.add needs a Layer .*got str"),
    ("Sequential-input_shape-negative", "count", lambda: nn.Sequential([nn.Dense(2)], input_shape=(-3,)), ValueError,
     r"input_shape must hold positive sizes .*got \(-3,\)"),
    ("Sequential-input_shape-0", "count", lambda: nn.Sequential([nn.Dense(2)], input_shape=(0,)), ValueError,
     r"input_shape must hold positive sizes"),
    ("Sequential-input_shape-fraction", "silent", lambda: nn.Sequential([nn.Dense(2)], input_shape=(2.5,)), TypeError,
     r"input_shape must be a tuple of ints .*got \(2\.5,\)"),
    ("BatchNormalization-momentum-2", "count", lambda: nn.BatchNormalization(momentum=2), ValueError,
     r"BatchNormalization momentum must be a number in \[0, 1\], got 2"),
    ("BatchNormalization-epsilon-0", "count", lambda: nn.BatchNormalization(epsilon=0), ValueError,
     r"BatchNormalization epsilon must be a number > 0, got 0"),
    ("BatchNormalization-axis-string", "type", lambda: nn.BatchNormalization(axis="1"), TypeError,
     r"BatchNormalization axis must be an int, got '1'"),
    ("BatchNormalization-center-string", "silent", lambda: nn.BatchNormalization(center="no"), TypeError,
     r"BatchNormalization center must be True or False, got 'no'"),
    ("GlobalAveragePooling2D-keepdims-string", "silent", lambda: nn.GlobalAveragePooling2D(keepdims="no"), TypeError,
     r"GlobalAveragePooling2D keepdims must be True or False, got 'no'"),
    ("Reshape-target_shape-None", "none", lambda: nn.Reshape(None), TypeError, r"Reshape target_shape must be a tuple of ints, got None"),
    ("Reshape-target_shape-two-minus-ones", "conflict", lambda: nn.Reshape((-1, -1)), ValueError,
     r"Reshape target_shape must hold sizes >= 1 and at most one -1"),
    ("Reshape-target_shape-fraction", "silent", lambda: nn.Reshape((2.5,)), TypeError,
     r"Reshape target_shape must be a tuple of ints, got \(2\.5,\)"),
    ("Reshape-target_shape-string", "silent", lambda: nn.Reshape("3"), TypeError, r"Reshape target_shape must be a tuple of ints, got '3'"),
    ("Rescaling-scale-string", "type", lambda: nn.Rescaling("a"), ValueError, r"Rescaling scale must be a finite number, got 'a'"),
    ("Rescaling-offset-None", "none", lambda: nn.Rescaling(1, offset=None), ValueError, r"Rescaling offset must be a finite number"),
    ("Conv2d-in_channels-0", "count", lambda: torch_nn.Conv2d(0, 2, 3), ValueError, r"Conv2d in_channels must be a positive int, got 0"),
    ("Conv2d-bias-string", "silent", lambda: torch_nn.Conv2d(1, 2, 3, bias="no"), TypeError, r"Conv2d bias must be True or False, got 'no'"),
    ("Linear-in_features-None", "none", lambda: torch_nn.Linear(None, 2), ValueError, r"Linear in_features must be a positive int, got None"),
    ("Linear-bias-string", "silent", lambda: torch_nn.Linear(2, 2, bias="no"), TypeError, r"Linear bias must be True or False, got 'no'"),
    ("layer-name-int", "type", lambda: nn.Dense(4, name=3), TypeError, r"Dense: name must be a string or None, got 3"),
    ("Add-name-int", "type", lambda: keras.layers.Add(3), TypeError, r"Add: name must be a string or None, got 3"),
    ("Input-dtype-bogus", "type", lambda: keras.Input(shape=(4,), dtype="bogus"), TypeError,
     r"Input dtype must be a NumPy dtype or its name \(such as 'float32'\), got 'bogus'"),
    ("Input-name-int", "type", lambda: keras.Input(shape=(4,), name=5), TypeError, r"Input name must be a string or None, got 5"),
    ("Concatenate-axis-string", "type", lambda: nn.Concatenate(axis="1"), TypeError, r"Concatenate axis must be an int, got '1'"),
    ("keras.Conv2D-input_shape-negative", "count", lambda: keras.layers.Conv2D(2, 3, input_shape=(-1, 28, 1)), ValueError,
     r"input_shape must hold positive sizes"),
    ("keras.Dense-input_shape-string", "silent", lambda: keras.layers.Dense(2, input_shape="3"), TypeError,
     r"input_shape must be a tuple of ints .*got '3'"),
    ("keras.Input-shape-None", "none", lambda: keras.layers.Input(None), TypeError, r"input_shape must be a tuple of ints"),
    ("keras.Input-shape-fraction", "silent", lambda: keras.layers.Input((2.5,)), TypeError,
     r"input_shape must be a tuple of ints .*got \(2\.5,\)"),
    ("keras.Input-batch_size-0", "count", lambda: keras.layers.Input((3,), batch_size=0), ValueError,
     r"Input batch_size must be a positive int or None, got 0"),
    ("keras.Activation-unknown", "type", lambda: keras.layers.Activation("bogus"), ValueError, r"unknown activation 'bogus'"),
    ("optim.Adam-params-None", "none", lambda: optim.Adam(None), TypeError,
     r"Adam needs an iterable of parameters \(model\.parameters\(\)\), got NoneType"),
    ("optim.SGD-params-one-tensor", "type", lambda: optim.SGD(params()[0], lr=0.1), TypeError,
     r"SGD needs an iterable of parameters .*got a single Tensor; wrap it in a list"),
    ("optim.Adam-lr-negative", "count", lambda: optim.Adam(params(), lr=-1), ValueError, r"lr must be >= 0\.0, got -1"),
    ("optim.Adam-lr-string", "type", lambda: optim.Adam(params(), lr="x"), TypeError, r"lr must be a number, got 'x'"),
    ("optim.Adam-betas-above-1", "count", lambda: optim.Adam(params(), betas=(1.5, 0.9)), ValueError, r"betas must lie in \[0, 1\)"),
    ("optim.SGD-nesterov-without-momentum", "conflict", lambda: optim.SGD(params(), lr=0.1, nesterov=True), ValueError,
     r"nesterov=True needs momentum > 0"),
    ("optim.Adam-nonfinite-bogus", "type", lambda: optim.Adam(params(), nonfinite="bogus"), ValueError,
     r"nonfinite must be 'skip' or 'raise', got 'bogus'"),
    ("optim.StepLR-step_size-0", "count", lambda: optim.StepLR(optim.SGD(params(), lr=0.1), step_size=0), ValueError,
     r"step_size must be a positive int, got 0"),
    ("optim.StepLR-optimizer-None", "none", lambda: optim.StepLR(None, step_size=2), TypeError, r"StepLR needs an Optimizer, got NoneType"),
    ("optim.CosineAnnealingLR-T_max-fraction", "count", lambda: optim.CosineAnnealingLR(optim.SGD(params(), lr=0.1), T_max=2.5),
     ValueError, r"T_max must be a positive int, got 2\.5"),
    ("optim.StepLR-gamma-None", "none", lambda: optim.StepLR(optim.SGD(params(), lr=0.1), 2, gamma=None), TypeError,
     r"gamma must be a number, got None"),
    ("optim.StepLR-last_epoch-None", "none", lambda: optim.StepLR(optim.SGD(params(), lr=0.1), 2, last_epoch=None),
     TypeError, r"last_epoch must be an int, got None"),
    ("optim.StepLR-last_epoch-resume", "conflict", lambda: optim.StepLR(optim.SGD(params(), lr=0.1), 2, last_epoch=3),
     ValueError, r"StepLR\(last_epoch=3\): resuming through last_epoch is not offered .*load_state_dict"),
    ("optim.StepLR-step-epoch-negative", "count", lambda: optim.StepLR(optim.SGD(params(), lr=0.1), 2).step(-1),
     ValueError, r"epoch must be an int >= 0, got -1"),
    ("optim.StepLR-load_state_dict-None", "none", lambda: optim.StepLR(optim.SGD(params(), lr=0.1), 2).load_state_dict(None),
     TypeError, r"load_state_dict needs a mapping, got NoneType"),
    ("optim.CosineAnnealingLR-optimizer-keras", "type", lambda: optim.CosineAnnealingLR(keras.optimizers.Adam(), T_max=3),
     TypeError, r"CosineAnnealingLR needs an Optimizer, got tinygrad_cnn\.keras\.\w+\.Adam: a Keras optimizer"),
    ("keras.optimizers.Adam-beta_1-above-1", "count", lambda: keras.optimizers.Adam(beta_1=1.5), ValueError,
     r"Adam beta_1 must be a finite number in \[0, 1\), got 1\.5"),
    ("keras.optimizers.RMSprop-rho-2", "count", lambda: keras.optimizers.RMSprop(rho=2), ValueError,
     r"RMSprop rho must be a finite number in \[0, 1\], got 2"),
    ("keras.optimizers.Adam-learning_rate-negative", "count", lambda: keras.optimizers.Adam(learning_rate=-1), ValueError,
     r"Adam learning_rate must be a finite number >= 0, got -1"),
    ("keras.EarlyStopping-patience-fraction", "count", lambda: keras.callbacks.EarlyStopping(patience=2.5), ValueError,
     r"EarlyStopping patience must be an int >= 0, got 2\.5"),
    ("keras.EarlyStopping-mode-bogus", "type", lambda: keras.callbacks.EarlyStopping(mode="bogus"), ValueError,
     r"EarlyStopping mode must be 'auto', 'min' or 'max', got 'bogus'"),
    ("keras.LearningRateScheduler-not-callable", "type", lambda: keras.callbacks.LearningRateScheduler(3), TypeError,
     r"LearningRateScheduler needs a callable schedule\(epoch, lr\), got 3"),
    ("keras.losses-from_logits-string", "silent", lambda: keras.losses.SparseCategoricalCrossentropy(from_logits="yes"),
     TypeError, r"SparseCategoricalCrossentropy from_logits must be True or False, got 'yes'"),
    ("Module.train-mode-string", "silent", lambda: small().train("no"), TypeError, r"train: mode must be True or False, got 'no'"),
    # ------------------------------------------------ testing.gradcheck's own arguments
    ("gradcheck-eps-0", "count", lambda: gradcheck(lambda t: t * 2, [x64()], eps=0), ValueError,
     r"gradcheck: eps must be a finite number > 0, got 0"),
    ("gradcheck-eps-negative", "count", lambda: gradcheck(lambda t: t * 2, [x64()], eps=-1e-6), ValueError,
     r"gradcheck: eps must be a finite number > 0"),
    ("gradcheck-atol-negative", "count", lambda: gradcheck(lambda t: t * 2, [x64()], atol=-1), ValueError,
     r"gradcheck: atol must be a finite number >= 0, got -1"),
    ("gradcheck-rtol-string", "type", lambda: gradcheck(lambda t: t * 2, [x64()], rtol="1e-3"), ValueError,
     r"gradcheck: rtol must be a finite number >= 0, got '1e-3'"),
    ("gradcheck-inputs-one-tensor", "type", lambda: gradcheck(lambda t: t * 2, x64()), TypeError,
     r"gradcheck: inputs must be a list or tuple .*got Tensor; wrap a single Tensor in a list"),
    ("gradcheck-fn-None", "none", lambda: gradcheck(None, [x64()]), TypeError,
     r"gradcheck: fn must be a callable taking the inputs, got NoneType"),
]

CATEGORIES = ("none", "type", "count", "conflict", "path", "silent")


def test_every_row_has_a_category_and_a_unique_id():
    assert all(row[1] in CATEGORIES for row in BAD_INPUTS)
    assert len({row[0] for row in BAD_INPUTS}) == len(BAD_INPUTS)


@pytest.mark.parametrize("name, call, error, pattern", [(row[0],) + row[2:] for row in BAD_INPUTS],
                         ids=[row[0] for row in BAD_INPUTS])
def test_bad_input_is_a_clear_error_raised_at_the_api(name, call, error, pattern, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # rows that would write (m.npz, m.onnx) write nothing, and nowhere else
    with pytest.raises(error) as info:
        call()
    assert re.search(pattern, str(info.value)), str(info.value)
    # NOTE: an example's rows end in SystemExit (a message, no traceback), which flags() turned into a ValueError
    assert ".py--" in name or raised_here(info), f"raised inside {info.traceback[-1].path}: {info.value}"


# ---------------------------------------------------------------- same categories, right answers

def save_through_a_symlink():
    """A link to a checkpoint is written through: the file it names is replaced, the link kept."""
    with folder() as d:
        target, link = os.path.join(d, "real.npz"), os.path.join(d, "link.npz")
        save(target)
        os.symlink(target, link)
        model = small()
        model.save(link)
        other = small()
        other.load(target)
        return os.path.islink(link), np.array_equal(other.parameters()[0].numpy(), model.parameters()[0].numpy())


def compile_with_a_metric_name():
    model = keras.Sequential([keras.layers.Dense(3, activation="softmax", input_shape=(2,))])
    model.compile(loss="sparse_categorical_crossentropy", metrics=("accuracy",))  # a tuple, as Keras takes
    history = model.fit(np.ones((4, 2)), np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    return model.metric_names, sorted(history.history)


def second_init_same_backend():
    with fresh_world():
        first = dist.init(gpu_backend="mpi")
        return dist.init() is first and dist.init(gpu_backend="MPI") is first


def transform_keeping_rows():
    loader = DataLoader(X, Y, batch_size=4, transform=lambda xb: xb.astype(np.float32) / 255)
    return [len(xb) for xb, _ in loader.iter_numpy()]


RIGHT_ANSWERS = [
    ("save-through-a-symlink", save_through_a_symlink, lambda r: r == (True, True)),
    ("compile-metrics-a-tuple", compile_with_a_metric_name,
     lambda r: r == (["accuracy"], ["accuracy", "loss"])),
    ("dist.init-again-with-the-same-backend", second_init_same_backend, lambda r: r is True),
    ("dist.local_batch_size-numpy-int", lambda: dist.local_batch_size(np.int64(64)), lambda r: r == 64),
    ("dist.allreduce-number-array-tensor", lambda: (dist.allreduce(3), dist.allreduce(np.ones(2)).tolist(),
                                                    dist.allreduce(tc.Tensor([1.0, 2.0]), op="max").tolist()),
     lambda r: r == (3, [1.0, 1.0], [1.0, 2.0])),
    ("DataLoader-transform-keeping-rows", transform_keeping_rows, lambda r: r == [4, 4, 2]),
    ("DataLoader-transform-dropping-rows-without-y", lambda: [len(b) for b in DataLoader(
        X, batch_size=4, transform=lambda xb: xb[:1]).iter_numpy()], lambda r: r == [1, 1, 1]),
    ("DataLoader-seed-numpy-int", lambda: len(DataLoader(X, shuffle=True, seed=np.int64(3))), lambda r: r == 1),
    ("Dense-use_bias-numpy-bool", lambda: nn.Dense(2, use_bias=np.bool_(False)).use_bias, lambda r: r is False),
    ("Sequential-input_shape-numpy-ints-or-one-int", lambda: (
        nn.Sequential([nn.Dense(2)], input_shape=(np.int64(3),)).input_shape,
        nn.Sequential([nn.Dense(2)], input_shape=3).input_shape), lambda r: r == ((3,), (3,))),
    ("Reshape-numpy-ints-and-one-minus-one", lambda: nn.Reshape((np.int64(2), -1)).target_shape, lambda r: r == (2, -1)),
    ("keras.Input-shape-from-a-generator", lambda: keras.layers.Input(s for s in (28, 28, 1)).shape,  # Keras 3: the batch axis first
     lambda r: r == (None, 28, 28, 1)),
]


@pytest.mark.parametrize("call, check", [row[1:] for row in RIGHT_ANSWERS], ids=[row[0] for row in RIGHT_ANSWERS])
def test_edge_input_gets_the_right_answer(call, check, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = call()
    assert check(result), result


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes to read-only folders")
def test_saving_into_a_read_only_folder_names_the_path(tmp_path):
    os.chmod(tmp_path, 0o500)
    try:
        with pytest.raises(PermissionError, match=r"save: cannot write .*m\.npz' \(Permission denied\)"):
            save(tmp_path / "m.npz")
    finally:
        os.chmod(tmp_path, 0o700)
