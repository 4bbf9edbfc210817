"""Code in the style of keras.io's introductory guides ("The Sequential model", "The Functional API",
"Training & evaluation with the built-in methods", "Writing your own callbacks", "Save, serialize, and
export models"), where tinygrad_cnn.keras once failed or differed from Keras 3.15.1. Each test asserts
Keras' results directly (so it runs without Keras) and, where real Keras 3 is installed (torch backend),
that Keras gives the same."""
import numpy
import pytest

import tinygrad_cnn.keras as tk


def _numpy(value):
    return value.detach().cpu().numpy() if hasattr(value, "detach") else numpy.asarray(value)


# ------------------------------------------------------------ keras.ops basics

def _ops_results(keras):
    ops = keras.ops
    a = numpy.array([[1.0, -2.0], [3.0, 4.0]], "float32")
    values = [ops.ones((2, 3)), ops.zeros((2, 3)), ops.add(a, 1.0), ops.subtract(a, a), ops.multiply(a, 2.0),
              ops.divide(a, 2.0), ops.matmul(a, a), ops.abs(a), ops.square(a), ops.sqrt(ops.abs(a)),
              ops.exp(a), ops.log(ops.abs(a)), ops.cast(a, "int32"), ops.concatenate([a, a], axis=1),
              ops.stack([a, a]), ops.expand_dims(a, -1), ops.squeeze(ops.ones((2, 1))), ops.transpose(a),
              ops.transpose(ops.ones((2, 3, 4)), (2, 0, 1))]
    return [(tuple(_numpy(v).shape), str(_numpy(v).dtype), _numpy(v).tolist()) for v in values] + \
        [ops.shape(ops.ones((2, 3)))]


def test_ops_basics():
    """The guides' keras.ops (ops.ones to try a layer, ops.square in a custom loss) exist and compute."""
    got = _ops_results(tk)
    a = numpy.array([[1.0, -2.0], [3.0, 4.0]], "float32")
    assert got[0] == ((2, 3), "float32", [[1.0] * 3] * 2)
    assert got[6][2] == (a @ a).tolist() and got[8][2] == (a * a).tolist()
    assert got[12][1] == "int32" and got[13][0] == (2, 4) and got[14][0] == (2, 2, 2)
    assert got[16][0] == (2,) and got[18][0] == (4, 2, 3) and got[-1] == (2, 3)


def test_ops_as_in_keras(real_keras):
    ours, theirs = _ops_results(tk), _ops_results(real_keras)
    assert [o[:2] for o in ours[:-1]] == [t[:2] for t in theirs[:-1]] and ours[-1] == theirs[-1]
    for o, t in zip(ours[:-1], theirs[:-1]):
        numpy.testing.assert_allclose(o[2], t[2], rtol=1e-6)


def test_ops_missing_name_is_named():
    with pytest.raises(AttributeError, match="keras.ops.erfinv is not offered"):
        tk.ops.erfinv


# ------------------------------------------------------------ compile(metrics=["mae"]): the callbacks guide

X = numpy.linspace(-1, 1, 24, dtype="float32").reshape(6, 4)
Y = numpy.array([0, 1, 2, 1, 0, 2])


def _error_metrics(keras):
    """Logs of fit and evaluate with metrics=['mean_absolute_error', 'mse'], for a softmax model under
    categorical_crossentropy (fit skips the softmax for the loss: the metrics must see it again) and a
    linear one under mse (weighted too)."""
    onehot = keras.utils.to_categorical(Y, 3)
    results = []
    for activation, loss in (("softmax", "categorical_crossentropy"), (None, "mean_squared_error")):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation=activation)])
        model.set_weights([numpy.arange(12, dtype="float32").reshape(4, 3) / 10, numpy.array([0.1, 0.0, -0.1], "float32")])
        model.compile(keras.optimizers.SGD(0.0), loss, metrics=["mean_absolute_error", "mse"],
                      weighted_metrics=["mae"])
        history = model.fit(X, onehot, batch_size=4, epochs=1, verbose=0, sample_weight=numpy.arange(6.0))
        results.append((history.history, model.evaluate(X, onehot, batch_size=4, verbose=0, return_dict=True)))
    return results


def test_error_metrics_in_compile():
    """mae/mse over every output; with a softmax model the errors are of the probabilities."""
    got = _error_metrics(tk)
    onehot = tk.utils.to_categorical(Y, 3)
    z = X @ (numpy.arange(12, dtype="float32").reshape(4, 3) / 10) + numpy.array([0.1, 0.0, -0.1], "float32")
    p = numpy.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    for out, (history, logs) in zip((p, z), got):
        assert sorted(history) == ["loss", "mae", "mean_absolute_error", "mse"]  # "mae": the weighted one
        assert logs["mean_absolute_error"] == pytest.approx(numpy.abs(out - onehot).mean(), rel=1e-5)
        assert logs["mse"] == pytest.approx(((out - onehot) ** 2).mean(), rel=1e-5)
        per_sample = numpy.abs(out - onehot).mean(1)
        assert history["mae"][0] == pytest.approx((per_sample * numpy.arange(6)).sum() / 15, rel=1e-5)


def test_error_metrics_as_in_keras(real_keras):
    for (h1, l1), (h2, l2) in zip(_error_metrics(tk), _error_metrics(real_keras)):
        assert sorted(h1) == sorted(h2) and sorted(l1) == sorted(l2)
        for key in h2:
            assert h1[key] == pytest.approx(h2[key], rel=1e-5)
        for key in l2:
            assert l1[key] == pytest.approx(l2[key], rel=1e-5)


def test_error_metric_on_class_indices_is_refused():
    model = tk.Sequential([tk.Input((4,)), tk.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["mae"])
    with pytest.raises(ValueError, match="metric 'mae'.*one-hot"):
        model.evaluate(X, Y, verbose=0)


# ------------------------------------------------------------ callbacks: the logs each hook gets

def _hook_logs(keras):
    """(hook, batch or epoch, sorted log keys) of each hook called in fit (with validation), evaluate and
    predict, the guide's CustomCallback that reads `list(logs.keys())` in every hook."""
    seen = []

    class Recorder(keras.callbacks.Callback):
        pass

    for hook in ("on_train_begin", "on_train_end", "on_test_begin", "on_test_end", "on_predict_begin",
                 "on_predict_end"):
        setattr(Recorder, hook, (lambda h: lambda self, logs=None: seen.append((h, list(logs.keys()))))(hook))
    for hook in ("on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end",
                 "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end"):
        setattr(Recorder, hook, (lambda h: lambda self, i, logs=None: seen.append((h, i, sorted(logs.keys()))))(hook))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(keras.optimizers.SGD(0.0), "mse", metrics=["mae"])
    onehot = keras.utils.to_categorical(Y, 3)
    model.fit(X, onehot, batch_size=4, epochs=1, verbose=0, validation_data=(X, onehot), callbacks=[Recorder()])
    model.evaluate(X, onehot, batch_size=4, verbose=0, callbacks=[Recorder()])
    model.predict(X, batch_size=4, verbose=0, callbacks=[Recorder()])
    return seen


def test_every_hook_gets_a_dict_of_logs():
    """Keras gives {} where a hook has nothing to report (the guide calls logs.keys() in each), the running
    loss and metrics at each test batch's end, and the batch's outputs at each predict batch's end."""
    seen = _hook_logs(tk)
    assert ("on_train_batch_begin", 0, []) in seen and ("on_predict_begin", []) in seen
    assert ("on_test_batch_end", 1, ["loss", "mae"]) in seen
    assert ("on_predict_batch_end", 1, ["outputs"]) in seen


def test_hook_logs_as_in_keras(real_keras):
    assert _hook_logs(tk) == _hook_logs(real_keras)


def test_test_batch_logs_are_running_means():
    losses = []
    model = tk.Sequential([tk.Input((4,)), tk.layers.Dense(3, kernel_initializer="zeros")])
    model.compile("sgd", "mse")
    onehot = tk.utils.to_categorical(Y, 3)
    model.evaluate(X, onehot, batch_size=4, verbose=0,
                   callbacks=[tk.callbacks.LambdaCallback(on_test_batch_end=lambda b, logs: losses.append(logs["loss"]))])
    assert losses == pytest.approx([1 / 3, 1 / 3])


def _lambda_logs(keras):
    seen = []
    callback = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append((epoch, sorted(logs))),
        on_train_begin=lambda logs: seen.append("begin"),
        on_train_batch_end=lambda batch, logs: seen.append(("batch", batch, round(float(logs["loss"]), 5))))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, kernel_initializer="zeros")])
    model.compile(keras.optimizers.SGD(0.0), "mse")
    model.fit(X, keras.utils.to_categorical(Y, 3), batch_size=3, epochs=2, verbose=0, shuffle=False,
              callbacks=[callback])
    return seen


def test_lambda_callback():
    assert _lambda_logs(tk) == ["begin", ("batch", 0, 0.33333), ("batch", 1, 0.33333), (0, ["loss"]),
                                ("batch", 0, 0.33333), ("batch", 1, 0.33333), (1, ["loss"])]


def test_lambda_callback_as_in_keras(real_keras):
    assert _lambda_logs(tk) == _lambda_logs(real_keras)


def test_lambda_callback_bad_hook_is_named():
    with pytest.raises(TypeError, match="unknown hook 'on_epoch_ending'"):
        tk.callbacks.LambdaCallback(on_epoch_ending=print)


# ------------------------------------------------------------ feature extraction: model.inputs, layer.output

IMAGES = numpy.random.default_rng(0).random((3, 8, 8, 1)).astype("float32")


def _conv_stack(keras):
    model = keras.Sequential([keras.Input(shape=(8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Conv2D(2, 3, activation="relu", name="my_intermediate_layer"),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    rng = numpy.random.default_rng(1)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    return model


def _features(keras):
    """The Sequential guide's feature extractor: (shapes of the layers' outputs, its output for IMAGES, the
    output of the model without its last layer made from model.outputs)."""
    model = _conv_stack(keras)
    shapes = [tuple(layer.output.shape) for layer in model.layers]
    extractor = keras.Model(inputs=model.inputs, outputs=model.get_layer(name="my_intermediate_layer").output)
    return shapes, _numpy(extractor(IMAGES)), tuple(model.outputs[0].shape), len(model.inputs)


def test_sequential_feature_extractor():
    """keras.Model(inputs=model.inputs, outputs=layer.output) runs the model's first layers, with their weights."""
    shapes, features, output_shape, n_inputs = _features(tk)
    assert shapes == [(None, 6, 6, 4), (None, 4, 4, 2), (None, 32), (None, 2)]
    assert output_shape == (None, 2) and n_inputs == 1
    model = _conv_stack(tk)
    assert numpy.allclose(features, model.layers[1](model.layers[0](IMAGES)).numpy(), atol=1e-6)


def test_sequential_feature_extractor_as_in_keras(real_keras):
    ours, theirs = _features(tk), _features(real_keras)
    assert ours[0] == theirs[0] and ours[2:] == theirs[2:]
    numpy.testing.assert_allclose(ours[1], theirs[1], rtol=1e-5, atol=1e-6)


def test_functional_layer_output_and_variables():
    inputs = tk.Input(shape=(4,))
    hidden = tk.layers.Dense(3, name="hidden")(inputs)
    model = tk.Model(inputs, tk.layers.Dense(2)(hidden))
    assert model.layers[0].output is inputs and model.get_layer("hidden").output is hidden
    assert model.inputs == [inputs] and tuple(model.outputs[0].shape) == (None, 2)
    model.get_layer("hidden").trainable = False
    assert (len(model.trainable_variables), len(model.non_trainable_variables), len(model.variables)) == (2, 2, 4)


def test_output_before_any_input_is_named():
    model = tk.Sequential([tk.layers.Dense(2)])
    with pytest.raises(ValueError, match="has never been called on a symbolic input"):
        model.layers[0].output
    with pytest.raises(ValueError, match="no inputs yet: give keras.Input"):
        model.inputs


def _all_features(keras):
    """The guide's extractor of every layer's output: model(x) and predict(x), each a list of arrays."""
    model = _conv_stack(keras)
    extractor = keras.Model(inputs=model.inputs, outputs=[layer.output for layer in model.layers])
    return [_numpy(f) for f in extractor(IMAGES)], extractor.predict(IMAGES, batch_size=2, verbose=0)


def test_feature_extractor_of_every_layer():
    called, predicted = _all_features(tk)
    model = _conv_stack(tk)
    expected, h = [], IMAGES
    for layer in model.layers:
        h = layer(h)
        expected.append(h.numpy())
    assert isinstance(predicted, list) and len(called) == len(predicted) == 4
    for c, p, e in zip(called, predicted, expected):
        numpy.testing.assert_allclose(c, e, atol=1e-6)
        numpy.testing.assert_allclose(p, e, atol=1e-6)


def test_feature_extractor_of_every_layer_as_in_keras(real_keras):
    for ours, theirs in zip(_all_features(tk), _all_features(real_keras)):
        assert len(ours) == len(theirs)
        for o, t in zip(ours, theirs):
            numpy.testing.assert_allclose(o, t, rtol=1e-5, atol=1e-6)


def test_several_outputs_do_not_compile():
    model = _conv_stack(tk)
    extractor = tk.Model(model.inputs, [model.layers[0].output, model.layers[-1].output])
    assert [tuple(o.shape) for o in extractor.outputs] == [(None, 6, 6, 4), (None, 2)]
    with pytest.raises(NotImplementedError, match="several outputs .* does not train"):
        extractor.compile("adam", "mse")


# ------------------------------------------------------------ the Functional API guide's first lines

def _input_and_build(keras):
    inputs = keras.Input(shape=(784,))
    sized = keras.Input(shape=(28, 28, 1), batch_size=8, dtype="float64")
    layer = keras.layers.Dense(3)
    layer.build((None, 4))  # Keras' shape, with the batch axis
    return (tuple(inputs.shape), str(inputs.dtype), tuple(sized.shape), str(sized.dtype), inputs.ndim,
            sorted(tuple(w.shape) for w in layer.get_weights()), str(keras.layers.Dense(2)(inputs).dtype))


def test_input_shape_has_the_batch_axis():
    """The guide prints inputs.shape, (None, 784), and inputs.dtype, 'float32'."""
    assert _input_and_build(tk) == ((None, 784), "float32", (8, 28, 28, 1), "float64", 2, [(3,), (4, 3)], "float32")
    model = tk.Sequential([tk.Input(shape=(784,)), tk.layers.Dense(2)])  # the declared shape is still the sample's
    assert model.input_shape == (None, 784) and model.predict(numpy.zeros((2, 784), "float32"), verbose=0).shape == (2, 2)


def test_input_shape_and_build_as_in_keras(real_keras):
    assert _input_and_build(tk) == _input_and_build(real_keras)


# ------------------------------------------------------------ cross-entropy of probabilities that do not sum to 1

def _crossentropies(keras):
    y_pred = numpy.array([[0.2, 0.7, 0.0], [0.3, 0.3, 0.3]], "float32")
    onehot, labels = numpy.array([[0, 1, 0], [1, 0, 0]], "float32"), numpy.array([1, 0])
    return [_numpy(v).tolist() for v in (keras.losses.categorical_crossentropy(onehot, y_pred),
                                         keras.losses.sparse_categorical_crossentropy(labels, y_pred),
                                         keras.losses.CategoricalCrossentropy()(onehot, y_pred),
                                         keras.losses.SparseCategoricalCrossentropy()(labels, y_pred))]


def test_crossentropy_normalizes_probabilities():
    """Keras divides y_pred by its sum first: -log(0.7 / 0.9) and -log(1/3), not -log(0.7) and -log(0.3)."""
    per_sample = [-numpy.log(0.7 / 0.9), -numpy.log(1 / 3)]
    got = _crossentropies(tk)
    assert got[0] == pytest.approx(per_sample, rel=1e-5) and got[1] == pytest.approx(per_sample, rel=1e-5)
    assert got[2] == pytest.approx(numpy.mean(per_sample), rel=1e-5) == got[3]


def test_crossentropy_normalizes_as_in_keras(real_keras):
    for ours, theirs in zip(_crossentropies(tk), _crossentropies(real_keras)):
        assert ours == pytest.approx(theirs, rel=1e-5)


# ------------------------------------------------------------ what the guides use that is not offered: named limits

def test_metric_function_in_compile():
    """A metric function (once refused by name) is logged under its name, as Keras' MeanMetricWrapper
    (tests/test_keras_metrics.py compares with real Keras)."""
    def my_metric(y_true, y_pred):
        return tk.ops.mean(tk.ops.square(y_true - y_pred))

    model = tk.Sequential([tk.Input((4,)), tk.layers.Dense(3)])
    model.compile("adam", "mse", metrics=[my_metric])
    x, y = numpy.ones((4, 4), "float32"), numpy.zeros((4, 3), "float32")
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["my_metric"] == pytest.approx(logs["loss"], rel=1e-6)


def test_learning_rate_schedules_name_the_alternative():
    with pytest.raises(AttributeError, match="schedules is not offered.*LearningRateScheduler"):
        tk.optimizers.schedules


# ------------------------------------------------------------ the training guide's custom loss class

def _custom_loss(keras):
    ops = keras.ops

    class CustomMSE(keras.losses.Loss):
        def __init__(self, regularization_factor=0.1, name="custom_mse"):
            super().__init__(name=name)
            self.regularization_factor = regularization_factor

        def call(self, y_true, y_pred):
            mse = ops.mean(ops.square(y_true - y_pred), axis=-1)
            reg = ops.mean(ops.square(0.5 - y_pred), axis=-1)
            return mse + reg * self.regularization_factor

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, kernel_initializer="ones")])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=CustomMSE())
    onehot = keras.utils.to_categorical(Y, 3)
    history = model.fit(X, onehot, batch_size=3, epochs=1, verbose=0, shuffle=False)
    direct = float(_numpy(CustomMSE()(onehot, X @ numpy.ones((4, 3), "float32"))))
    return history.history["loss"][0], model.evaluate(X, onehot, verbose=0), direct, CustomMSE().name


def test_custom_loss_class():
    """A keras.losses.Loss subclass with call(): its per-sample values averaged, in fit, evaluate and called."""
    out = X @ numpy.ones((4, 3), "float32")
    onehot = tk.utils.to_categorical(Y, 3)
    expected = float((((onehot - out) ** 2).mean(-1) + 0.1 * ((0.5 - out) ** 2).mean(-1)).mean())
    fitted, evaluated, direct, name = _custom_loss(tk)
    assert (fitted, evaluated, direct) == pytest.approx((expected,) * 3, rel=1e-5) and name == "custom_mse"


def test_custom_loss_class_as_in_keras(real_keras):
    ours, theirs = _custom_loss(tk), _custom_loss(real_keras)
    assert ours[:3] == pytest.approx(theirs[:3], rel=1e-5) and ours[3] == theirs[3]


def test_loss_without_call_and_other_reductions_are_named():
    class NoCall(tk.losses.Loss):
        pass

    with pytest.raises(NotImplementedError, match="NoCall must define call"):
        NoCall()(numpy.zeros((2, 1)), numpy.zeros((2, 1)))
    with pytest.raises(NotImplementedError, match="reduction='sum' is not supported"):
        tk.losses.MeanSquaredError(reduction="sum")


def test_serializables_are_offered():
    """(keras.layers.Layer is offered: tests/test_keras_metrics.py trains one as Keras does; saving it:
    tests/test_keras_custom_saving.py.)"""
    assert tk.saving.register_keras_serializable is tk.utils.register_keras_serializable


# ------------------------------------------------------------ the training guide's ModelCheckpoint(save_freq=N)

def _checkpoints(keras, folder):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, kernel_initializer="ones")])
    model.compile(keras.optimizers.SGD(0.0), "mse")
    onehot = keras.utils.to_categorical(numpy.resize(Y, 10), 3)
    callback = keras.callbacks.ModelCheckpoint(filepath=str(folder) + "/m-{epoch}-{batch}-{loss:.1f}.weights.h5",
                                               save_weights_only=True, save_freq=3)
    model.fit(numpy.resize(X, (10, 4)), onehot, batch_size=2, epochs=2, verbose=0, shuffle=False, callbacks=[callback])
    return sorted(p.name for p in folder.iterdir())


def test_checkpoint_every_few_batches(tmp_path):
    """save_freq=3 over 2 epochs of 5 batches: batches are counted across epochs, as Keras counts them."""
    names = _checkpoints(tk, tmp_path)
    assert [n.split("-")[1:3] for n in names] == [["1", "3"], ["2", "1"], ["2", "4"]]


def test_checkpoint_every_few_batches_as_in_keras(real_keras, tmp_path):
    (tmp_path / "ours").mkdir()
    (tmp_path / "keras").mkdir()
    assert _checkpoints(tk, tmp_path / "ours") == _checkpoints(real_keras, tmp_path / "keras")
