"""tinygrad_cnn.keras: the tutorial's Keras code as written, fit against the hand-written loop, each
callback, channels-last against channels-first, string and object arguments, and bad arguments."""
import csv
import io
import math

import numpy as np
import pytest

import tinygrad_cnn as tf
from tinygrad_cnn import keras, optim
from tinygrad_cnn.keras import callbacks
from tinygrad_cnn.nn import functional as F
from tests.conftest import DEVICES


def tutorial_model():
    return tf.keras.Sequential([
        tf.keras.layers.Conv2D(32, (3, 3), padding='same', activation=tf.nn.relu, input_shape=(28, 28, 1)),
        tf.keras.layers.MaxPooling2D((2, 2), strides=2),
        tf.keras.layers.Conv2D(64, (3, 3), padding='same', activation=tf.nn.relu),
        tf.keras.layers.MaxPooling2D((2, 2), strides=2),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(128, activation=tf.nn.relu),
        tf.keras.layers.Dense(10, activation=tf.nn.softmax)
    ])


def small_model(seed=0, softmax=True, data_format=None, **kwargs):
    tf.manual_seed(seed)
    return keras.Sequential([
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", input_shape=(8, 8, 1), data_format=data_format),
        keras.layers.MaxPooling2D(2, data_format=data_format),
        keras.layers.Flatten(data_format=data_format),
        keras.layers.Dense(10, activation="softmax" if softmax else None),
    ], **kwargs)


def small_data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.random((n, 8, 8, 1), dtype=np.float32) * 0.5
    x[np.arange(n), y % 8, :, 0] += 1.0  # a learnable bright row per class (classes 8, 9 share rows 0, 1)
    return x, y


def compiled(model=None, **kwargs):
    model = model or small_model()
    model.compile(**{"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"],
                     **kwargs})
    return model


# ---------------------------------------------------------------- the tutorial's code

def test_the_tutorials_keras_code_runs_as_written_on_a_subset_and_learns(capsys):
    """The issue's block, on 6,000 training and 1,000 test images for one epoch. NOTE: seeds 0-4
    gave 93.1%, 95.0%, 93.8%, 94.4% and 94.0% on these 1,000 images; seed 1 is used here."""
    tf.manual_seed(1)
    model = tutorial_model()
    model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
    (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()
    x_train, y_train, x_test, y_test = x_train[:6000], y_train[:6000], x_test[:1000], y_test[:1000]
    history = model.fit(x_train[..., None] / 255.0, y_train, epochs=1,
                        validation_data=(x_test[..., None] / 255.0, y_test))
    loss, accuracy = model.evaluate(x_test[..., None] / 255.0, y_test)
    assert accuracy > 0.93
    assert list(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert history.history["val_accuracy"] == [accuracy] and history.history["val_loss"] == [loss]
    assert history.epoch == [0]
    probabilities = model.predict(x_test[:50, ..., None] / 255.0)
    assert isinstance(probabilities, np.ndarray) and probabilities.shape == (50, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    out = capsys.readouterr().out
    assert "Epoch 1/1" in out and "188/188" in out and "\r" not in out  # not a terminal: one line per epoch


def test_summary_uses_keras_3_names_channels_last_shapes_and_its_parameter_count(capsys):
    lines = []
    assert tutorial_model().summary(print_fn=lines.append) is None  # as Keras: a notebook shows it once
    text = "\n".join(lines)
    assert tutorial_model().summary() is None and capsys.readouterr().out.strip() == text.strip()
    for row in ["conv2d (Conv2D)", "(None, 28, 28, 32)", "max_pooling2d (MaxPooling2D)", "(None, 14, 14, 32)",
                "conv2d_1 (Conv2D)", "max_pooling2d_1 (MaxPooling2D)", "(None, 7, 7, 64)", "flatten (Flatten)",
                "(None, 3136)", "dense (Dense)", "dense_1 (Dense)", "Total params: 421,642"]:
        assert row in text


def test_input_first_and_model_build_with_a_batch_axis_build_the_model():
    a = keras.Sequential([keras.Input(shape=(8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    b = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(3)])
    assert a.built and not b.built
    b.build((None, 8, 8, 1))
    assert b.input_shape == (None, 8, 8, 1) and b.count_params() == a.count_params() == 64 * 3 + 3
    c = keras.Sequential()
    c.add(keras.layers.Dense(2, input_shape=(5,)))
    assert c.built and c.layers[0].weight.shape == (2, 5)


# ---------------------------------------------------------------- fit is the hand-written loop

def test_fit_equals_the_hand_written_loop_bit_for_bit():
    x, y = small_data()
    model = compiled()
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=(x[:20], y[:20]))

    reference = small_model()
    opt = optim.Adam(reference.parameters(), lr=1e-3, eps=1e-7, eps_hat=True)  # Keras' Adam
    losses = []
    for epoch in range(2):
        order = tf.get_rng().permutation(len(x))  # fit shuffles from the global generator
        total = 0.0
        for start in range(0, len(x), 16):
            idx = order[start:start + 16]
            loss = F.cross_entropy(reference.logits(tf.Tensor(x[idx])), tf.Tensor(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        losses.append(total / len(x))
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)
    np.testing.assert_allclose(history.history["loss"], losses, rtol=1e-6)


def test_any_numeric_dtype_is_cast_to_float32_and_gives_the_same_training():
    x, y = small_data()
    as_uint8 = (x * 100).astype(np.uint8)
    a = compiled()
    a.fit(as_uint8, y, epochs=1, verbose=0)
    b = compiled()
    b.fit(as_uint8.astype(np.float32), y.astype(np.float64), epochs=1, verbose=0)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_validation_split_takes_the_last_samples_before_shuffling():
    x, y = small_data()
    a = compiled()
    h = a.fit(x, y, epochs=1, verbose=0, validation_split=0.25)
    b = compiled()
    b.fit(x[:72], y[:72], epochs=1, verbose=0)
    np.testing.assert_allclose(h.history["val_loss"][0], b.evaluate(x[72:], y[72:], verbose=0)[0], rtol=1e-6)


def test_initial_epoch_and_shuffle_false():
    x, y = small_data()
    model = compiled()
    history = model.fit(x, y, epochs=3, initial_epoch=1, shuffle=False, verbose=0)
    assert history.epoch == [1, 2] and len(history.history["loss"]) == 2


# ---------------------------------------------------------------- progress

def test_progress_is_one_line_per_epoch_off_a_terminal_and_a_bar_on_one(capsys):
    x, y = small_data()
    model = compiled()
    model.fit(x, y, epochs=2, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert lines[1].startswith("3/3 - ") and " - accuracy: " in lines[1] and " - loss: " in lines[1]
    model.fit(x, y, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    from tinygrad_cnn.keras.progress import Progress
    stream = Terminal()
    bar = Progress(4, 1, stream)
    assert bar.due(4)
    bar.update(2, {"loss": 0.5})
    bar.finish({"loss": 0.25})
    text = stream.getvalue()
    assert text.startswith("\r2/4 [") and "ETA" in text and "loss: 0.5000" in text and text.endswith("\n")


# ---------------------------------------------------------------- callbacks

class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"epoch_begin {epoch}")

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(f"batch_end {batch} {sorted(logs)}")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"epoch_end {epoch} {sorted(logs)}")

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


def test_a_callback_sees_the_hooks_in_order_with_keras_logs():
    x, y = small_data(n=40)
    recorder = Recorder()
    compiled().fit(x, y, batch_size=20, epochs=1, verbose=0, callbacks=[recorder], validation_data=(x, y))
    assert recorder.calls == ["train_begin", "epoch_begin 0", "batch_end 0 ['accuracy', 'loss']",
                              "batch_end 1 ['accuracy', 'loss']",
                              "epoch_end 0 ['accuracy', 'loss', 'val_accuracy', 'val_loss']", "train_end"]
    assert recorder.params == {"epochs": 1, "steps": 2, "verbose": 0} and isinstance(recorder.model, keras.Sequential)


def test_model_checkpoint_saves_through_module_save_and_only_on_improvement(tmp_path):
    model = compiled()
    best = callbacks.ModelCheckpoint(str(tmp_path / "best.npz"), monitor="val_loss", save_best_only=True)
    best.set_model(model)
    best.on_epoch_end(0, {"val_loss": 1.0})
    saved = model.get_weights()
    model.layers[0].weight.data += 1
    best.on_epoch_end(1, {"val_loss": 2.0})   # worse: kept
    best.on_epoch_end(2, {"val_loss": math.nan})   # diverged: kept
    fresh = small_model(seed=5)
    fresh.load(str(tmp_path / "best.npz"))
    for a, b in zip(fresh.get_weights(), saved):
        np.testing.assert_array_equal(a, b)
    best.on_epoch_end(3, {"val_loss": 0.5})
    fresh.load(str(tmp_path / "best.npz"))
    np.testing.assert_array_equal(fresh.layers[0].weight.numpy(), model.layers[0].weight.numpy())

    x, y = small_data()
    every = callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{loss:.3f}.npz"), monitor="loss")
    history = compiled().fit(x, y, epochs=2, verbose=0, callbacks=[every])
    names = sorted(p.name for p in tmp_path.glob("m-*.npz"))
    assert names == [f"m-{e + 1:02d}-{loss:.3f}.npz" for e, loss in enumerate(history.history["loss"])]
    assert not list(tmp_path.glob(".tmp-*"))   # atomic writes leave no temporary files


def test_early_stopping_waits_patience_epochs_and_restores_the_best_weights():
    model = compiled()
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    stop.set_model(model)
    stop.on_train_begin()
    weights = []
    for epoch, loss in enumerate([1.0, 0.5, 0.6, 0.7, 0.8]):
        model.layers[0].weight.data += 1
        weights.append(model.layers[0].weight.numpy().copy())
        stop.on_epoch_end(epoch, {"val_loss": loss})
        if model.stop_training:
            break
    assert epoch == 3 and stop.stopped_epoch == 3 and stop.best_epoch == 1
    stop.on_train_end()
    np.testing.assert_array_equal(model.layers[0].weight.numpy(), weights[1])

    x, y = small_data()
    model = compiled(optimizer=keras.optimizers.SGD(learning_rate=0.0))   # nothing improves
    history = model.fit(x, y, epochs=10, verbose=0, callbacks=[callbacks.EarlyStopping(monitor="loss", patience=1, min_delta=1e-4)])
    assert len(history.epoch) == 2   # stopped at epoch 1, the first without improvement


@pytest.mark.filterwarnings("ignore:.*non-finite gradient")  # the optimizer skips the NaN step, and says so
def test_terminate_on_nan_stops_at_the_first_bad_batch():
    x, y = small_data()
    x[40] = np.nan  # in the third batch of 16 when not shuffled

    class Count(callbacks.Callback):
        batches = 0

        def on_train_batch_end(self, batch, logs=None):
            Count.batches += 1
    history = compiled().fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                             callbacks=[callbacks.TerminateOnNaN(), Count()])
    assert Count.batches == 3 and history.epoch == [0] and math.isnan(history.history["loss"][0])


def test_learning_rate_scheduler_sets_the_rate_each_epoch():
    x, y = small_data()
    model = compiled(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    seen = []

    class Watch(callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                seen.append(self.model.optimizer.optimizer.lr)
    history = model.fit(x, y, epochs=3, verbose=0,
                        callbacks=[callbacks.LearningRateScheduler(lambda epoch, lr: lr / 2), Watch()])
    assert seen == [0.05, 0.025, 0.0125] and history.history["learning_rate"] == seen
    model = compiled(optimizer=optim.SGD(small_model().parameters(), lr=0.1))
    with pytest.raises(ValueError, match="other parameters"):
        model.fit(x, y, verbose=0)
    model = small_model()
    compiled(model, optimizer=optim.SGD(model.parameters(), lr=0.1))
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))])
    assert model.optimizer.lr == 0.02


def test_csv_logger_writes_one_row_per_epoch_and_appends(tmp_path):
    x, y = small_data()
    path = tmp_path / "log.csv"
    history = compiled().fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.CSVLogger(str(path))])
    rows = list(csv.DictReader(open(path)))
    assert list(rows[0]) == ["epoch", "accuracy", "loss"] and [r["epoch"] for r in rows] == ["0", "1"]
    assert [float(r["loss"]) for r in rows] == pytest.approx(history.history["loss"])
    compiled().fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(str(path), append=True)])
    assert len(list(csv.DictReader(open(path)))) == 3


# ---------------------------------------------------------------- channels-last and channels-first

def test_channels_first_keras_layers_give_the_channels_last_outputs_with_transposed_inputs():
    last = small_model()
    first = keras.Sequential([
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", data_format="channels_first",
                            input_shape=(1, 8, 8)),
        keras.layers.MaxPooling2D(2, data_format="channels_first"),
        keras.layers.Flatten(data_format="channels_first"),
        keras.layers.Dense(10, activation="softmax")])
    first.set_weights(last.get_weights())   # the same weights: Flatten orders features (H, W, C) in both
    x, _ = small_data(n=10)
    np.testing.assert_allclose(first.predict(x.transpose(0, 3, 1, 2), verbose=0), last.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-7)
    assert first.layers[0].weight.shape == last.layers[0].weight.shape == (4, 1, 3, 3)


# ---------------------------------------------------------------- string and object arguments

def test_objects_train_as_their_names_do():
    x, y = small_data()
    by_name = compiled()
    by_name.fit(x, y, epochs=1, verbose=0)
    by_object = compiled(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                         loss=keras.losses.SparseCategoricalCrossentropy())
    by_object.fit(x, y, epochs=1, verbose=0)
    logits_model = compiled(small_model(softmax=False), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logits_model.fit(x, y, epochs=1, verbose=0)
    one_hot = compiled(loss="categorical_crossentropy")
    one_hot.fit(x, np.eye(10, dtype=np.float32)[y], epochs=1, verbose=0)
    for model in (by_object, logits_model):
        for p, q in zip(by_name.parameters(), model.parameters()):
            np.testing.assert_array_equal(p.numpy(), q.numpy())
    for p, q in zip(by_name.parameters(), one_hot.parameters()):   # the same loss by another formula
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-4, atol=1e-6)
    assert by_name.optimizer.learning_rate == 1e-3


def test_probability_losses_without_a_strippable_activation_and_the_other_losses():
    x, y = small_data()
    probs = tf.Tensor(np.array([[0.25, 0.75], [1.0, 0.0]], dtype=np.float32))
    loss = keras.losses.SparseCategoricalCrossentropy()(np.array([1, 1]), probs)
    np.testing.assert_allclose(float(loss), (-np.log(0.75) - np.log(1e-7)) / 2, rtol=1e-5)
    binary = keras.Sequential([keras.layers.Flatten(input_shape=(8, 8, 1)), keras.layers.Dense(1, activation="sigmoid")])
    binary.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    history = binary.fit(x, (y % 2).astype(np.float32), epochs=2, verbose=0)
    assert 0 <= history.history["accuracy"][-1] <= 1 and history.history["loss"][1] < history.history["loss"][0]
    regression = keras.Sequential([keras.layers.Flatten(input_shape=(8, 8, 1)), keras.layers.Dense(1)])
    regression.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
    history = regression.fit(x, y.astype(np.float32) / 10, epochs=3, verbose=0)
    assert list(history.history) == ["loss"] and history.history["loss"][2] < history.history["loss"][0]
    assert isinstance(regression.evaluate(x, y / 10, verbose=0), float)
    assert set(regression.evaluate(x, y / 10, verbose=0, return_dict=True)) == {"loss"}


# ---------------------------------------------------------------- bad arguments

def test_bad_arguments_get_clear_errors():
    x, y = small_data()
    model = small_model()
    with pytest.raises(ValueError, match="compile"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="unknown loss 'sparse_crossentropy'.*sparse_categorical_crossentropy"):
        model.compile(loss="sparse_crossentropy")
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'.*'adam'.*'rmsprop'"):
        model.compile(optimizer="adagrad", loss="mse")
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        model.compile(loss="mse", metrics=["f1"])
    with pytest.raises(ValueError, match="learning_rate"):
        keras.optimizers.Adam(learning_rate=-1)
    with pytest.raises(ValueError, match=r"Adam beta_1 must be a finite number in \[0, 1\), got 1.5"):
        keras.optimizers.Adam(beta_1=1.5)
    compiled(model)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\].*from 1 to 10"):
        model.fit(x, np.where(y == 0, 10, y), verbose=0)
    with pytest.raises(ValueError, match="labels must lie in"):
        model.evaluate(x, -y - 1, verbose=0)
    with pytest.raises(ValueError, match="whole numbers"):
        model.fit(x, y + 0.5, verbose=0)
    with pytest.raises(ValueError, match="same number of samples, got 96 and 95"):
        model.fit(x, y[:-1], verbose=0)
    with pytest.raises(ValueError, match="one-hot labels use 'categorical_crossentropy'"):
        model.fit(x, np.eye(10)[y], verbose=0)
    with pytest.raises(ValueError, match="looks channels-first"):
        model.fit(x.transpose(0, 3, 1, 2), y, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="verbose"):
        model.fit(x, y, verbose=3)
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="validation_data must be a pair"):
        model.fit(x, y, validation_data=x, verbose=0)
    with pytest.raises(TypeError, match="x must be numeric"):
        model.fit(np.array([["a"]] * 96), y, verbose=0)
    with pytest.raises(TypeError, match="Callback"):
        model.fit(x, y, verbose=0, callbacks=[print])


def test_binary_crossentropy_of_raw_scores_points_to_from_logits():
    x, y = small_data()
    scores = keras.Sequential([keras.layers.Flatten(input_shape=(8, 8, 1)), keras.layers.Dense(1)])
    scores.compile(optimizer="sgd", loss="binary_crossentropy")
    scores.set_weights([w + 5 for w in scores.get_weights()])  # outputs well outside [0, 1]
    with pytest.raises(ValueError, match=r"BinaryCrossentropy: input must lie in \[0, 1\].*"
                                         r"BinaryCrossentropy\(from_logits=True\)"):
        scores.fit(x, (y % 2).astype(np.float32), verbose=0)
    with pytest.raises(ValueError, match=r"from_logits=True"):
        keras.losses.BinaryCrossentropy()(np.array([1.0]), tf.Tensor(np.array([[3.0]], dtype=np.float32)))


# ---------------------------------------------------------------- devices

@pytest.mark.parametrize("device", DEVICES)
def test_fit_evaluate_predict_on_a_device(device):
    x, y = small_data()
    model = compiled(small_model(device=device))
    assert model.layers[0].weight.device.startswith(device)
    history = model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y))
    assert history.history["loss"][1] < history.history["loss"][0]
    assert model.predict(x[:3], verbose=0).shape == (3, 10)


@pytest.mark.parametrize("seconds", [5.0, 103.0, 4000.0])
def test_the_tutorials_epoch_line_matches_however_long_the_epoch_took(monkeypatch, seconds):
    """docs/tutorial.md shows a fit's epoch line; on a slow machine the time reads 1:43, not 103s."""
    import doctest
    from pathlib import Path
    from tinygrad_cnn.keras import progress as progress_module
    text = (Path(__file__).resolve().parents[1] / "docs" / "tutorial.md").read_text(encoding="utf-8")
    expected = next(line.lstrip("# ") for line in text.splitlines() if line.startswith("# 188/188"))
    clock = iter([0.0, seconds])
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: next(clock))
    stream = io.StringIO()
    progress_module.Progress(188, 2, stream).finish(
        {"accuracy": 0.9, "loss": 0.3, "val_accuracy": 0.95, "val_loss": 0.2})
    checker = doctest.OutputChecker()
    assert checker.check_output(expected + "\n", stream.getvalue(), doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE), \
        (expected, stream.getvalue())


@pytest.mark.kernels  # a copy and sync budget of the fast path
@pytest.mark.gpu
def test_fit_on_a_gpu_sends_the_data_once_and_syncs_once_per_epoch_when_silent():
    """fit copies x and y to the device once and gathers each batch there; with verbose=0 the
    running metrics are read once, at the epoch's end (a sync each), not after every batch."""
    from conftest import EMULATED
    if not EMULATED:
        pytest.skip("counts launches on the CuPy emulation")
    from cupy_emulation import record
    rng = np.random.default_rng(0)
    x, y = rng.random((96, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, 96)
    model = keras.Sequential([keras.layers.Conv2D(2, 3, activation="relu", input_shape=(8, 8, 1)),
                              keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")], device="cuda")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with record() as counts:
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)  # 12 batches an epoch
    assert counts.h2d_bytes < x.nbytes + y.nbytes + 2 * 96 * 8 + 4096, counts.as_dict()  # data, two orders, scalars
    assert counts.h2d <= 4, counts.as_dict()  # x, y and each epoch's order; no copy per batch
    ours = sum(n for (kind, site), n in counts.sites.items() if kind == "sync" and "tinygrad_cnn/optim.py" not in site)
    assert ours <= 2 * 2, counts.sites  # loss and accuracy, read once an epoch (optimizers' own checks aside)
    with record() as counts:
        out = model.predict(x, verbose=0)
    assert out.shape == (96, 3) and counts.d2h == 1, counts.as_dict()
