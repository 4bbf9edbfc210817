"""keras.backend's settings (epsilon, floatx), Keras' Precision, Recall and F1Score metric classes, and
compile(metrics=...) forms, each as in Keras 3.15.1. Each test asserts Keras' values directly (so it runs
without Keras); the *_as_in_keras ones run the same code on real Keras 3 (torch backend)."""
import numpy
import pytest

import tinygrad_cnn.keras as tk


def _numpy(value):
    return value.detach().cpu().numpy() if hasattr(value, "detach") else numpy.asarray(value)


@pytest.fixture
def keep_epsilon():
    yield
    tk.backend.set_epsilon(1e-7)


def _epsilon_run(keras):
    """A hand-written F1 metric with backend.epsilon(), and the cross-entropies' clip under set_epsilon."""
    K, ops = keras.backend, keras.ops

    def f1(y_true, y_pred):
        predicted = ops.cast(ops.greater(y_pred, 0.5), "float32")
        y_true = ops.cast(y_true, "float32")
        tp = ops.sum(y_true * predicted)
        precision = tp / (ops.sum(predicted) + K.epsilon())
        recall = tp / (ops.sum(y_true) + K.epsilon())
        return 2 * precision * recall / (precision + recall + K.epsilon())

    y_true = numpy.float32([[1], [0], [1], [1]])
    y_pred = numpy.float32([[0.9], [0.6], [0.2], [1.0]])
    out = [K.epsilon(), K.floatx(), keras.config.epsilon(), float(_numpy(f1(y_true, y_pred)))]
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=[f1])
    out.append(round(model.evaluate(numpy.float32([[0.0], [1.0]]), numpy.float32([[1], [0]]), verbose=0)[1], 5))
    loss = keras.losses.BinaryCrossentropy()
    out.append(round(float(_numpy(loss(numpy.float32([[1.0], [0.0]]), numpy.float32([[0.0], [1.0]])))), 4))
    keras.backend.set_epsilon(1e-3)
    out += [K.epsilon(), keras.config.epsilon(),
            round(float(_numpy(loss(numpy.float32([[1.0], [0.0]]), numpy.float32([[0.0], [1.0]])))), 4),
            round(float(_numpy(keras.losses.CategoricalCrossentropy()(numpy.float32([[1, 0]]),
                                                                        numpy.float32([[0.0, 1.0]])))), 4)]
    keras.backend.set_epsilon(1e-7)
    return out


def test_backend_epsilon(keep_epsilon):
    """1e-7 by default; set_epsilon moves the cross-entropies' clip: -log(1e-3) = 6.9078 for a sure miss (16.0302 at 1e-7, float32)."""
    got = _epsilon_run(tk)
    assert got[:3] == [1e-7, "float32", 1e-7] and got[3] == pytest.approx(2 / 3, rel=1e-6)
    assert got[4] == 0.0 and got[5] == 16.0302 and got[6:] == [1e-3, 1e-3, 6.9078, 6.9078]
    with pytest.raises(ValueError, match="set_epsilon: epsilon must be a number"):
        tk.backend.set_epsilon("small")
    with pytest.raises(ValueError, match="float32 only"):
        tk.backend.set_floatx("float64")
    tk.backend.set_floatx("float32")


def test_backend_epsilon_as_in_keras(real_keras, keep_epsilon):
    assert _epsilon_run(tk) == pytest.approx(_epsilon_run(real_keras), rel=1e-5)


def _bare_string(keras):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    refused = []
    for given in ({"metrics": "mae"}, {"weighted_metrics": "mae"}):
        with pytest.raises(ValueError) as caught:
            model.compile("sgd", "mse", **given)
        refused.append(str(caught.value))
    model.compile("sgd", "mse", metrics=("mae",))
    return refused, model.evaluate(numpy.ones((2, 4), "float32"), numpy.ones((2, 1), "float32"), verbose=0,
                                   return_dict=True).keys()


def test_compile_refuses_a_bare_metric_string():
    """As Keras 3.15.1 (Keras 2 read metrics='accuracy' as one metric): the error names the list to write."""
    refused, keys = _bare_string(tk)
    assert refused[0] == ("compile: metrics must be a list of metrics, got the string 'mae'; write metrics=['mae'] "
                          "(Keras 3 takes a list, a tuple or a dict)")
    assert "weighted_metrics=['mae']" in refused[1] and sorted(keys) == ["loss", "mae"]


def test_compile_refuses_a_bare_metric_string_as_keras(real_keras):
    refused, keys = _bare_string(real_keras)
    assert all("Expected `metrics` argument to be a list" in r or "Expected `weighted_metrics`" in r for r in refused)
    assert sorted(keys) == sorted(_bare_string(tk)[1])
