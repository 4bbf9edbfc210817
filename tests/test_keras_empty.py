"""The Keras-style API with no samples (issue 27's open edge): predict gives (0, classes) outputs;
fit, evaluate, train_on_batch and test_on_batch refuse no samples (and an empty batch of an iterable)
with a ValueError that names the call, before any step or callback, so no NaN reaches a History.

What real Keras 3.15.1 (torch backend) does with the same data, checked by the tests at the end where
it is installed: predict_on_batch gives (0, 10); fit on no samples and a validation_split leaving none
raise a ValueError. Elsewhere it is no reference: predict(x of 0 samples) raises UnboundLocalError,
evaluate raises "None was passed" from inside Sequential.call, train_on_batch a torch RuntimeError
("grad can be implicitly created only for scalar outputs"), test_on_batch returns [0.0, 0.0] (a
perfect-looking loss), an empty last batch of a generator gives evaluate a nan loss, and an empty
validation_data only warns and leaves the val_ keys out."""
import warnings

import numpy as np
import pytest

import tinygrad_cnn as tf
from tinygrad_cnn.keras import callbacks as callbacks_module

keras = tf.keras
# NOTE: a RuntimeWarning (NumPy's "Mean of empty slice", "invalid value") is an error here
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

SHAPE, CLASSES = (28, 28, 1), 10
EMPTY_X, EMPTY_Y = np.zeros((0,) + SHAPE, np.float32), np.zeros((0,), np.int64)


def data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n,) + SHAPE).astype(np.float32), rng.integers(0, CLASSES, n)


def sequential(declared=True):
    tf.random.set_seed(0)
    first = [keras.Input(SHAPE)] if declared else []
    model = keras.Sequential(first + [keras.layers.Conv2D(2, 3, activation="relu"), keras.layers.MaxPooling2D(),
                                      keras.layers.Flatten(), keras.layers.Dense(CLASSES, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def functional():
    tf.random.set_seed(0)
    inputs = keras.Input(SHAPE)
    outputs = keras.layers.Dense(CLASSES)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


MODELS = {"sequential": sequential, "sequential_unbuilt": lambda: sequential(declared=False),
          "functional": functional}


class Recorder(callbacks_module.Callback):
    """Every hook called, with its logs."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            return lambda *args: self.calls.append((name, args))
        return super().__getattribute__(name)


def generator(*batches):
    yield from batches


def weights(model):
    return [w.copy() for w in model.get_weights()] if model.built else []


# ---------------------------------------------------------------- predict: (0, classes)

@pytest.mark.parametrize("batch_size", [None, 1, 8])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_predict_on_no_samples_is_an_empty_array_of_the_output_shape(name, batch_size):
    model = MODELS[name]()
    recorder = Recorder()
    out = model.predict(EMPTY_X, batch_size=batch_size, verbose=0, callbacks=[recorder])
    assert isinstance(out, np.ndarray) and out.shape == (0, CLASSES) and out.dtype == np.float32
    hooks = [call for call, _ in recorder.calls]
    assert hooks == ["on_predict_begin", "on_predict_end"]  # no batch ran
    np.testing.assert_array_equal(model.predict(data(3)[0], verbose=0).shape, (3, CLASSES))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_predict_on_batch_of_no_samples(name):
    model = MODELS[name]()
    out = model.predict_on_batch(EMPTY_X)
    assert out.shape == (0, CLASSES) and out.dtype == np.float32
    x, _ = data(5)
    np.testing.assert_allclose(model.predict_on_batch(x), model.predict(x, batch_size=2, verbose=0), rtol=1e-6)


def test_predict_over_batches_takes_an_empty_batch_as_no_rows():
    """An iterable's empty (last) batch adds no rows; only empty batches give (0, classes). Before the
    fix: ValueError "batch 1's x must be a non-empty batch"."""
    model = sequential()
    x, _ = data(5)
    out = model.predict(generator((x[:3],), (x[3:],), (EMPTY_X,)), verbose=0)
    np.testing.assert_allclose(out, model.predict(x, verbose=0), rtol=1e-6)
    assert model.predict([(EMPTY_X,)], verbose=0).shape == (0, CLASSES)
    assert model.predict(generator(EMPTY_X, x[:2]), verbose=0).shape == (2, CLASSES)
    with pytest.raises(ValueError, match="predict: the batches are empty: the iterable yielded nothing"):
        model.predict(generator(), verbose=0)


# ---------------------------------------------------------------- fit and evaluate: a clear refusal

CALLS = {
    "fit": lambda m, x, y, cb: m.fit(x, y, batch_size=4, verbose=0, callbacks=cb),
    "evaluate": lambda m, x, y, cb: m.evaluate(x, y, batch_size=4, verbose=0, callbacks=cb),
    "train_on_batch": lambda m, x, y, cb: m.train_on_batch(x, y),
    "test_on_batch": lambda m, x, y, cb: m.test_on_batch(x, y),
}


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_no_samples_are_refused_before_any_step_or_callback(name, call):
    model = MODELS[name]()
    before, recorder = weights(model), Recorder()
    with pytest.raises(ValueError, match=rf"^{call}: no samples \(x has shape \(0, 28, 28, 1\)\)"):
        CALLS[call](model, EMPTY_X, EMPTY_Y, [recorder])
    assert recorder.calls == []
    for old, new in zip(before, weights(model)):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("call", ["fit", "evaluate"])
def test_an_empty_list_is_no_samples(call):
    """fit([]) and evaluate([]) (no batches, or no samples): before the fix, "expects inputs of shape
    (None, 28, 28, 1) ..., got (None,)", as if the sample shape were wrong."""
    with pytest.raises(ValueError, match=rf"^{call}: no samples \(x has shape \(0,\)\)"):
        CALLS[call](sequential(), [], [], None)


def test_empty_validation_data_is_refused_before_training():
    model, (x, y) = sequential(), data()
    before, recorder = weights(model), Recorder()
    with pytest.raises(ValueError, match=r"^fit: validation_data: no samples \(x has shape \(0, 28, 28, 1\)\)"):
        model.fit(x, y, validation_data=(EMPTY_X, EMPTY_Y), verbose=0, callbacks=[recorder])
    assert recorder.calls == []
    for old, new in zip(before, weights(model)):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("split", [0.95, 0.99])
def test_a_validation_split_that_leaves_no_samples_is_refused(split):
    """Keras' rule: the training part is floor(n * (1 - split)) samples, so any split > 0 leaves at least
    one validation sample and a large one may leave no training sample: an error."""
    model, (x, y) = sequential(), data(12)
    with pytest.raises(ValueError, match=rf"validation_split={split} leaves no training or no validation samples "
                                         rf"out of 12"):
        model.fit(x, y, validation_split=split, verbose=0)


@pytest.mark.parametrize("split", [0.001, 0.1])
def test_a_small_validation_split_validates_on_one_sample(split):
    model, (x, y) = sequential(), data(12)
    history = model.fit(x, y, validation_split=split, epochs=2, batch_size=5, verbose=0)
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(np.isfinite(v).all() for v in history.history.values())


@pytest.mark.parametrize("where", ["last", "only"])
@pytest.mark.parametrize("call", ["fit", "evaluate"])
def test_an_empty_batch_of_an_iterable_is_refused_by_its_index(call, where):
    """A mean loss over an empty batch is nan (real Keras' evaluate returns it, its fit fails in torch):
    refused, naming the batch; fit's History never gets a value."""
    model, (x, y) = sequential(), data(8)
    batches = [(x[:4], y[:4]), (EMPTY_X, EMPTY_Y)] if where == "last" else [(EMPTY_X, EMPTY_Y)]
    index = len(batches) - 1
    recorder = Recorder()
    with pytest.raises(ValueError, match=rf"^{call}: batch {index}'s x must be a non-empty batch .*"
                                         rf"got shape \(0, 28, 28, 1\)"):
        getattr(model, call)(generator(*batches), verbose=0, callbacks=[recorder])
    assert not any(name == "on_epoch_end" for name, _ in recorder.calls)
    for _, args in recorder.calls:  # the logs a callback saw before the refusal are finite
        logs = args[-1] if args and isinstance(args[-1], dict) else {}
        assert all(np.isfinite(v) for v in logs.values()), logs


def test_an_empty_validation_batch_is_refused():
    model, (x, y) = sequential(), data(8)
    with pytest.raises(ValueError, match=r"^fit: validation_data: batch 0's x must be a non-empty batch"):
        model.fit([(x, y)], validation_data=[(EMPTY_X, EMPTY_Y)], verbose=0)


# ---------------------------------------------------------------- train_on_batch and test_on_batch

def test_on_batch_methods_give_that_batch_s_values():
    """As Keras 3: the values of this batch alone (no running means across calls)."""
    model, (x, y) = sequential(), data(8)
    first, second = model.test_on_batch(x[:4], y[:4]), model.test_on_batch(x[4:], y[4:])
    np.testing.assert_allclose(second, model.evaluate(x[4:], y[4:], verbose=0), rtol=1e-6)
    np.testing.assert_allclose(first, model.evaluate(x[:4], y[:4], verbose=0), rtol=1e-6)
    assert model.test_on_batch(x, y, return_dict=True).keys() == {"loss", "accuracy"}
    before = model.test_on_batch(x, y)
    loss, accuracy = model.train_on_batch(x, y)
    np.testing.assert_allclose([loss, accuracy], before, rtol=1e-6)  # the loss before the step
    assert model.test_on_batch(x, y)[0] < loss


@pytest.mark.parametrize("method", ["train_on_batch", "test_on_batch"])
def test_on_batch_methods_take_keras_arguments_in_keras_order(method):
    """Keras 3's third argument is sample_weight (train_on_batch's fourth class_weight), return_dict
    comes after: weights given by position weigh as by name, never taken for return_dict (a list of
    weights returned a dict from an unweighted step, an array raised NumPy's "truth value of an array
    is ambiguous")."""
    (x, y), weights = data(5), [1.0, 0.0, 0.0, 0.0, 0.0]
    by_name, by_position = sequential(), sequential()
    named = getattr(by_name, method)(x, y, sample_weight=weights)
    assert getattr(by_position, method)(x, y, weights) == named
    if method == "train_on_batch":
        assert by_position.train_on_batch(x, y, None, {0: 2.0}) == by_name.train_on_batch(x, y, class_weight={0: 2.0})
    assert getattr(by_name, method)(x, y, None, **({"class_weight": None} if method == "train_on_batch" else {}),
                                    return_dict=True).keys() == {"loss", "accuracy"}


# ---------------------------------------------------------------- against real Keras

def dense_pair(real_keras):
    """The same Dense softmax model in real Keras and here, from Keras' initial weights."""
    real_keras.utils.set_random_seed(0)
    theirs = real_keras.Sequential([real_keras.Input(SHAPE), real_keras.layers.Flatten(),
                                    real_keras.layers.Dense(CLASSES, activation="softmax")])
    theirs.compile(real_keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    ours = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                             keras.layers.Dense(CLASSES, activation="softmax")])
    ours.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    kernel, bias = theirs.get_weights()
    ours.set_weights([kernel, bias])
    return theirs, ours


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_predict_on_batch_of_no_samples_as_real_keras(real_keras):
    theirs, ours = dense_pair(real_keras)
    expected = np.asarray(theirs.predict_on_batch(EMPTY_X))
    out = ours.predict_on_batch(EMPTY_X)
    assert out.shape == expected.shape == (0, CLASSES) and out.dtype == expected.dtype
    assert ours.predict(EMPTY_X, verbose=0).shape == expected.shape  # Keras' predict fails there (see the top)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_refusals_as_real_keras(real_keras):
    theirs, ours = dense_pair(real_keras)
    x, y = data(12)
    for model in (theirs, ours):
        with pytest.raises(ValueError):
            model.fit(EMPTY_X, EMPTY_Y, verbose=0)
        with pytest.raises(ValueError, match="validation_split=0.99"):
            model.fit(x, y, validation_split=0.99, verbose=0)
        history = model.fit(x, y, validation_split=0.001, verbose=0).history  # one validation sample
        assert np.isfinite(history["val_loss"]).all() and history["val_accuracy"][0] in (0.0, 1.0)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_on_batch_values_as_real_keras(real_keras):
    theirs, ours = dense_pair(real_keras)
    x, y = data(8)
    for method in ("test_on_batch", "train_on_batch", "test_on_batch", "train_on_batch", "test_on_batch"):
        expected = getattr(theirs, method)(x[:6], y[:6])
        np.testing.assert_allclose(getattr(ours, method)(x[:6], y[:6]), expected, rtol=2e-5, err_msg=method)
    expected = theirs.test_on_batch(x, y, return_dict=True)
    got = ours.test_on_batch(x, y, return_dict=True)
    assert got.keys() == expected.keys()
    np.testing.assert_allclose([got[k] for k in sorted(got)], [expected[k] for k in sorted(got)], rtol=2e-5)


@pytest.mark.parametrize("method", ["train_on_batch", "test_on_batch", "predict_on_batch", "fit", "evaluate", "predict"])
def test_signatures_as_real_keras(real_keras, method):
    """The same parameters in the same order as Keras 3 (its evaluate's **kwargs aside), so that a
    Keras user's positional call means the same here."""
    import inspect
    theirs = [name for name in inspect.signature(getattr(real_keras.Sequential, method)).parameters if name != "kwargs"]
    assert list(inspect.signature(getattr(keras.Sequential, method)).parameters) == theirs


def test_fit_evaluate_predict_take_keras_positions():
    """Keras' positions: fit's 10th and 11th are class_weight and sample_weight (the 10th was
    initial_epoch here, so fit(..., True, {0: 2.0}) started at epoch {0: 2.0}), evaluate's 5th is
    sample_weight (it was callbacks), predict's 4th steps (it was callbacks)."""
    (x, y), weights = data(8), np.linspace(0, 2, 8)
    by_name, by_position = sequential(), sequential()
    assert by_position.fit(x, y, 4, 1, 0, None, 0.0, None, False, {0: 2.0}).history == \
        by_name.fit(x, y, 4, 1, 0, shuffle=False, class_weight={0: 2.0}).history
    assert by_position.fit(x, y, 4, 1, 0, None, 0.0, None, False, None, weights).history == \
        by_name.fit(x, y, 4, 1, 0, shuffle=False, sample_weight=weights).history
    history = by_position.fit(x, y, 4, 2, 0, None, 0.0, None, False, None, None, 1)  # initial_epoch 1: one epoch
    assert history.epoch == [1]
    assert by_position.evaluate(x, y, 4, 0, weights) == by_position.evaluate(x, y, 4, 0, sample_weight=weights)
    assert by_position.evaluate(x, y, 4, 0, None, None, None, True).keys() == {"loss", "accuracy"}
    assert by_position.predict(x, 4, 0, None, None).shape == (8, CLASSES)


# ---------------------------------------------------------------- metric objects

METRIC_ARGUMENTS = {  # name: (y_true, y_pred) of no samples
    "Mean": (np.zeros((0,)), None),
    "Accuracy": (np.zeros((0, CLASSES)), np.zeros((0, CLASSES))),
    "SparseCategoricalAccuracy": (EMPTY_Y, np.zeros((0, CLASSES), np.float32)),
    "CategoricalAccuracy": (np.zeros((0, CLASSES)), np.zeros((0, CLASSES), np.float32)),
    "BinaryAccuracy": (np.zeros((0, CLASSES)), np.zeros((0, CLASSES), np.float32)),
}


@pytest.mark.parametrize("name", sorted(METRIC_ARGUMENTS))
def test_metric_objects_over_no_samples_stay_at_zero_silently(name):
    """As real Keras 3.15.1: a metric updated with no samples still reads 0.0 (its value before any
    update), and a later batch counts alone; no RuntimeWarning on the way."""
    metric = getattr(keras.metrics, name)()
    y_true, y_pred = METRIC_ARGUMENTS[name]
    metric.update_state(y_true, y_pred)
    assert float(metric.result().numpy()) == 0.0
    if name == "Mean":
        metric.update_state(np.array([2.0, 4.0]))
        assert float(metric.result().numpy()) == 3.0


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
@pytest.mark.parametrize("name", sorted(METRIC_ARGUMENTS))
def test_metric_objects_over_no_samples_as_real_keras(real_keras, name):
    y_true, y_pred = METRIC_ARGUMENTS[name]
    theirs = getattr(real_keras.metrics, name)()
    theirs.update_state(y_true) if y_pred is None else theirs.update_state(y_true, y_pred)
    ours = getattr(keras.metrics, name)()
    ours.update_state(y_true, y_pred)
    assert float(ours.result().numpy()) == float(theirs.result())
