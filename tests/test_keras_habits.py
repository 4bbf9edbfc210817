"""A demanding Keras 3 user's habits, run here and (where installed) on real Keras 3 (torch backend):
sample and class weights in fit/evaluate, ... Each test failed before its fix."""
import numpy
import pytest

import tinygrad_cnn.keras as tk

LOSSES = [("sparse_categorical_crossentropy", "softmax", 3), ("categorical_crossentropy", "softmax", 3),
          ("binary_crossentropy", "sigmoid", 1), ("mse", None, 1)]


def _data(n=50, seed=0):
    rng = numpy.random.default_rng(seed)
    return (rng.normal(size=(n, 6)).astype("float32"), rng.integers(0, 3, n),
            rng.random(n).astype("float32"))


def _targets(loss, labels):
    if loss == "categorical_crossentropy":
        return numpy.eye(3, dtype="float32")[labels]
    return labels if loss.startswith("sparse") else (labels > 0).astype("float32")


def _dense(keras, loss, activation, units):
    """One Dense layer with the same weights in either Keras, compiled with plain SGD."""
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(units, activation=activation)])
    model.set_weights([numpy.linspace(-1, 1, 6 * units).reshape(6, units).astype("float32"),
                       numpy.zeros(units, "float32")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss, metrics=None if loss == "mse" else ["accuracy"])
    return model


def _weighted_runs(keras, loss, activation, units):
    """Every weighted call a user makes, as plain numbers: the weighted loss and the unweighted metrics."""
    x, labels, weights = _data()
    y, runs = _targets(loss, labels), {}
    model = _dense(keras, loss, activation, units)
    runs["evaluate"] = model.evaluate(x, y, sample_weight=weights, batch_size=16, verbose=0, return_dict=True)
    runs["test_on_batch"] = model.test_on_batch(x, y, sample_weight=weights, return_dict=True)
    runs["fit sample_weight"] = model.fit(x, y, sample_weight=weights, batch_size=16, epochs=2, validation_split=0.2,
                                          shuffle=False, verbose=0).history
    model = _dense(keras, loss, activation, units)
    runs["fit class_weight"] = model.fit(x, y, class_weight={0: 3.0, 1: 0.5}, batch_size=16, epochs=2,
                                         validation_split=0.2, shuffle=False, verbose=0).history
    runs["train_on_batch"] = model.train_on_batch(x, y, class_weight={0: 2.0}, return_dict=True)
    runs["validation triple"] = model.fit(x, y, sample_weight=weights, batch_size=16, shuffle=False, verbose=0,
                                          validation_data=(x[:10], y[:10], weights[:10])).history
    return runs


@pytest.mark.parametrize("loss, activation, units", LOSSES)
def test_sample_and_class_weights_train_and_score_as_keras(real_keras, loss, activation, units):
    """Keras weights each sample's loss (sum(weight x loss) / batch size), splits sample_weight with
    validation_split, takes (x, y, sample_weight) as validation_data, and leaves compile's metrics
    unweighted. Here every one of these calls raised NotImplementedError."""
    ours, theirs = _weighted_runs(tk, loss, activation, units), _weighted_runs(real_keras, loss, activation, units)
    assert ours.keys() == theirs.keys()
    for call in ours:
        assert sorted(ours[call]) == sorted(theirs[call]), call
        for key in ours[call]:
            numpy.testing.assert_allclose(ours[call][key], theirs[call][key], rtol=1e-5, atol=1e-6, err_msg=f"{call} {key}")


def test_weighted_loss_is_the_weighted_sum_over_the_batch_size():
    """Without real Keras: evaluate's weighted loss is sum(w x per-sample loss) / N, from Keras' own loss
    function; class_weight is sample_weight looked up by label (1 for a class not named)."""
    x, labels, weights = _data()
    model = _dense(tk, "sparse_categorical_crossentropy", "softmax", 3)
    each = tk.losses.sparse_categorical_crossentropy(labels, model.predict(x, verbose=0)).numpy()
    loss, accuracy = model.evaluate(x, labels, sample_weight=weights, verbose=0)
    numpy.testing.assert_allclose(loss, (weights * each).sum() / len(x), rtol=1e-5)
    assert accuracy == model.evaluate(x, labels, verbose=0)[1]  # compile's metrics stay unweighted
    table = numpy.array([3.0, 0.5, 1.0])
    numpy.testing.assert_allclose(model.test_on_batch(x, labels, sample_weight=table[labels])[0],
                                  (table[labels] * each).mean(), rtol=1e-5)
    before = model.get_weights()
    model.train_on_batch(x, labels, sample_weight=numpy.zeros(len(x)))  # weight 0 everywhere: a zero gradient
    for new, old in zip(model.get_weights(), before):
        numpy.testing.assert_array_equal(new, old)


@pytest.mark.parametrize("call, match", [
    (lambda m, x, y: m.fit(x, y, sample_weight=numpy.ones(3), verbose=0), r"one number per sample, shape \(50,\)"),
    (lambda m, x, y: m.fit(x, y, sample_weight=numpy.ones(50), class_weight={0: 1.0}, verbose=0), "not both"),
    (lambda m, x, y: m.fit(x, y, class_weight=[1.0, 2.0, 3.0], verbose=0), "class_weight must be a dict"),
    (lambda m, x, y: m.fit(x, y, class_weight={"cat": 2.0}, verbose=0), "keys must be class indices"),
    (lambda m, x, y: m.evaluate(x, y, sample_weight=numpy.full(50, numpy.nan), verbose=0), "must be finite"),
    (lambda m, x, y: m.fit([(x, y)], class_weight={0: 2.0}, verbose=0), "pass x and y as arrays"),
])
def test_bad_weights_are_named(call, match):
    x, labels, _ = _data()
    model = _dense(tk, "sparse_categorical_crossentropy", "softmax", 3)
    before = model.get_weights()
    with pytest.raises((ValueError, TypeError, NotImplementedError), match=match):
        call(model, x, labels)
    for new, old in zip(model.get_weights(), before):
        numpy.testing.assert_array_equal(new, old)


def test_a_custom_loss_must_give_one_value_per_sample_to_be_weighted():
    x, labels, weights = _data()
    model = tk.Sequential([tk.Input((6,)), tk.layers.Dense(1)])
    model.compile("sgd", loss=lambda y_true, y_pred: ((y_pred - y_true) ** 2).mean())
    with pytest.raises(ValueError, match="one loss per sample"):
        model.fit(x, labels.astype("float32"), sample_weight=weights, verbose=0)
    model.compile("sgd", loss=lambda y_true, y_pred: ((y_pred - y_true) ** 2).mean(axis=-1))
    assert model.fit(x, labels.astype("float32"), sample_weight=weights, verbose=0).history["loss"][0] > 0


def _logged_names(keras, metrics):
    """(History keys, evaluate's keys) after compiling with `metrics` (a function of the keras module)."""
    x, labels, _ = _data(20)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=metrics(keras))
    history = model.fit(x, labels, epochs=1, verbose=0, validation_split=0.2)
    return sorted(history.history), sorted(model.evaluate(x, labels, verbose=0, return_dict=True))


NAMED_METRICS = [lambda k: [k.metrics.SparseCategoricalAccuracy(name="acc")],
                 lambda k: [k.metrics.SparseCategoricalAccuracy(), "accuracy"],
                 lambda k: ["accuracy", "accuracy"],
                 lambda k: [k.metrics.SparseCategoricalAccuracy(name="x"), k.metrics.SparseCategoricalAccuracy(name="x")]]


def test_a_metric_object_is_logged_under_its_name():
    """SparseCategoricalAccuracy(name="acc") logs 'acc' and 'val_acc' in Keras; here the name was dropped
    for 'sparse_categorical_accuracy', so history.history["val_acc"] (a callback's monitor) was missing.
    A repeated name is numbered, as Keras does ('accuracy', 'accuracy_1'), not merged into one."""
    assert _logged_names(tk, NAMED_METRICS[0]) == (["acc", "loss", "val_acc", "val_loss"], ["acc", "loss"])
    assert _logged_names(tk, NAMED_METRICS[2])[1] == ["accuracy", "accuracy_1", "loss"]


@pytest.mark.parametrize("metrics", NAMED_METRICS)
def test_metric_names_as_in_keras(real_keras, metrics):
    assert _logged_names(tk, metrics) == _logged_names(real_keras, metrics)


# ---------------------------------------------------------------- freezing: layer.trainable = False

def _bn_model(keras):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.BatchNormalization(), keras.layers.Dense(3, activation="softmax")])


def _changed(model, fit):
    """Which of get_weights()'s arrays `fit()` changed."""
    before = [w.copy() for w in model.get_weights()]
    fit()
    return [not numpy.array_equal(a, b) for a, b in zip(before, model.get_weights())]


def _freezing_story(keras):
    """A fine-tuning session, step by step, as plain booleans and counts."""
    import warnings
    x, labels, _ = _data(40)
    model, story = _bn_model(keras), {}
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")

    def fit():
        model.fit(x, labels, epochs=1, batch_size=8, verbose=0)

    fit()
    model.layers[0].trainable = False
    story["frozen without recompiling"] = _changed(model, fit)
    story["weights"] = (len(model.trainable_weights), len(model.non_trainable_weights), len(model.weights))
    story["flags"] = (model.trainable, [layer.trainable for layer in model.layers])
    model.layers[1].trainable = False
    story["frozen BatchNormalization keeps its moving statistics"] = _changed(model, fit)
    story["per layer"] = ([len(layer.trainable_weights) for layer in model.layers],
                          [len(layer.non_trainable_weights) for layer in model.layers])
    story["count_params"] = (model.count_params(), [layer.count_params() for layer in model.layers])
    model.trainable = False
    story["model frozen"] = ([layer.trainable for layer in model.layers], len(model.trainable_weights))
    model.layers[2].trainable = True
    story["a layer of a frozen model"] = (model.trainable, len(model.trainable_weights))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both warn that nothing trains
        story["nothing trains"] = _changed(model, fit)
    model.trainable = True
    story["all thawed"] = _changed(model, fit)
    return story


def test_freezing_layers_and_models_as_in_keras(real_keras):
    """Keras 3: trainable=False freezes a layer's weights, read at each step (no recompile needed); a frozen
    BatchNormalization also stops moving its statistics (inference mode); model.trainable=False freezes
    every layer, and a layer inside a frozen model stays frozen; weights and count_params list frozen
    weights as non-trainable. Here trainable=False raised NotImplementedError."""
    assert _freezing_story(tk) == _freezing_story(real_keras)


def test_a_frozen_middle_layer_passes_the_gradient_on_and_a_callback_can_unfreeze_it():
    """Without real Keras: with the middle Dense frozen, the first one still trains (the gradient flows
    through the frozen layer); a callback that unfreezes it after epoch 0 trains it from epoch 1, as a
    fine-tuning schedule does; summary() counts the frozen weights as non-trainable."""
    x, labels, _ = _data(40)
    model = tk.Sequential([tk.Input((6,)), tk.layers.Dense(5, activation="relu"),
                           tk.layers.Dense(4, activation="relu"), tk.layers.Dense(3, activation="softmax")])
    model.layers[1].trainable = False
    model.compile(tk.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    lines = []
    model.summary(print_fn=lines.append)
    assert "Trainable params: 50" in lines[0] and "Non-trainable params: 24" in lines[0]  # 35 + 15 against 20 + 4
    assert _changed(model, lambda: model.fit(x, labels, epochs=1, verbose=0)) == [True, True, False, False, True, True]

    class Unfreeze(tk.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.layers[1].trainable = True

    frozen = [w.copy() for w in model.layers[1].get_weights()]
    model.fit(x, labels, epochs=1, verbose=0, callbacks=[Unfreeze()])
    assert all(numpy.array_equal(a, b) for a, b in zip(frozen, model.layers[1].get_weights()))
    assert _changed(model, lambda: model.fit(x, labels, epochs=1, verbose=0)) == [True] * 6


def test_a_frozen_layer_stays_frozen_through_a_keras_file(real_keras, tmp_path):
    """A .keras file says which layers are frozen: ours says it (it wrote trainable: true for all) and
    load_model reads it (it ignored it, so a Keras fine-tuning model came back training everything)."""
    pytest.importorskip("h5py")
    for writer, reader in ((tk, real_keras), (real_keras, tk), (tk, tk)):
        model = _bn_model(writer)
        model.layers[0].trainable = False
        path = str(tmp_path / f"{writer.__name__}-{reader.__name__}.keras")
        model.save(path)
        again = reader.models.load_model(path)
        assert [layer.trainable for layer in again.layers] == [False, True, True], (writer.__name__, reader.__name__)
        assert len(again.trainable_weights) == 4


# ---------------------------------------------------------------- Keras 3's .weights.h5 files

def _conv_model(keras):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3), keras.layers.BatchNormalization(),
                             keras.layers.Flatten(), keras.layers.Dense(3), keras.layers.Dense(2)])


def _images():
    return numpy.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")


def test_weights_h5_files_go_both_ways_with_keras(real_keras, tmp_path):
    """Keras 3's save_weights/load_weights take names ending in .weights.h5; here such a name was refused
    ('.h5 is not a format this project writes'), so a Keras user's weights could not come over."""
    pytest.importorskip("h5py")
    for writer, reader in ((real_keras, tk), (tk, real_keras)):
        source, target = _conv_model(writer), _conv_model(reader)
        source.layers[1].set_weights([numpy.full(2, 2.0, "float32"), numpy.ones(2, "float32"),
                                      numpy.full(2, 0.3, "float32"), numpy.full(2, 2.0, "float32")])
        path = str(tmp_path / f"{writer.__name__}.weights.h5")
        source.save_weights(path)
        target.load_weights(path)
        numpy.testing.assert_allclose(target.predict(_images(), verbose=0), source.predict(_images(), verbose=0),
                                      atol=1e-5)


def test_weights_h5_round_trip_and_checkpoint_here(tmp_path):
    """Without real Keras: save_weights/load_weights with .weights.h5 give the same predictions, and
    ModelCheckpoint('best.weights.h5', save_weights_only=True) (Keras 3's idiom) writes such a file
    (its constructor refused the name)."""
    pytest.importorskip("h5py")
    model, again = _conv_model(tk), _conv_model(tk)
    model.compile("adam", "sparse_categorical_crossentropy")
    path = str(tmp_path / "best.weights.h5")
    checkpoint = tk.callbacks.ModelCheckpoint(path, monitor="loss", save_best_only=True, save_weights_only=True)
    model.fit(_images(), numpy.array([0, 1, 0, 1]), epochs=1, verbose=0, callbacks=[checkpoint])
    again.load_weights(path)
    numpy.testing.assert_array_equal(again.predict(_images(), verbose=0), model.predict(_images(), verbose=0))


def test_a_weights_h5_file_that_does_not_fit_is_named(tmp_path):
    pytest.importorskip("h5py")
    model = _conv_model(tk)
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    other = tk.Sequential([tk.Input((8, 8, 1)), tk.layers.Flatten(), tk.layers.Dense(2)])
    before = other.get_weights()
    with pytest.raises(tk.saving.KerasFileError, match=r"layers.1.weight.*\(72, 3\)"):
        other.load_weights(path)
    assert all(numpy.array_equal(a, b) for a, b in zip(before, other.get_weights()))
    with pytest.raises(tk.saving.KerasFileError, match="no such file"):
        model.load_weights(str(tmp_path / "missing.weights.h5"))
    inputs = tk.Input((6,))
    branches = tk.Model(inputs, tk.layers.Add()([tk.layers.Dense(2)(inputs), tk.layers.Dense(2)(inputs)]))
    with pytest.raises(tk.saving.KerasFileError, match="use a .safetensors name"):
        branches.save_weights(str(tmp_path / "b.weights.h5"))


# ---------------------------------------------------------------- get_config / from_config / clone_model

def _configured_layers(keras):
    layers = keras.layers
    return [layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="c"), layers.MaxPooling2D(2, name="p"),
            layers.BatchNormalization(momentum=0.9, name="b"), layers.Dropout(0.3, name="d"), layers.Flatten(name="f"),
            layers.Dense(5, activation="softmax", use_bias=False, name="e")]


def _comparable(config):
    """A layer config without what legitimately differs: initializer settings, Keras-only options."""
    return {key: value for key, value in config.items() if "initializer" not in key
            and key not in ("quantization_config", "activity_regularizer", "renorm", "renorm_momentum", "renorm_clipping")}


def test_layer_and_model_configs_as_in_keras(real_keras):
    """get_config/from_config were missing here (AttributeError). Our configs hold Keras' values (tuples, as
    Keras' get_config gives them), each Keras layer config rebuilds the same layer here, and whole Sequential
    configs go both ways."""
    for theirs, ours in zip(_configured_layers(real_keras), _configured_layers(tk)):
        assert _comparable(ours.get_config()) == _comparable(theirs.get_config()), type(ours).__name__
        assert _comparable(type(ours).from_config(theirs.get_config()).get_config()) == _comparable(ours.get_config())
    keras_model = real_keras.Sequential([real_keras.Input((8, 8, 1))] + _configured_layers(real_keras))
    ours = tk.Sequential.from_config(keras_model.get_config())
    assert [layer.name for layer in ours.layers] == [layer.name for layer in keras_model.layers]
    assert ours.count_params() == keras_model.count_params() == 136
    back = real_keras.Sequential.from_config(ours.get_config())
    assert back.count_params() == 136 and back.layers[2].momentum == 0.9


def test_config_round_trip_and_clone_model():
    """Without real Keras: from_config(get_config()) gives the same config (a frozen layer stays frozen, an
    unbuilt BatchNormalization keeps center/scale, which read False before its weights existed);
    clone_model gives the same layers with fresh weights, not compiled, as Keras'."""
    unbuilt = tk.layers.BatchNormalization()
    assert unbuilt.get_config()["center"] is True and unbuilt.get_config()["scale"] is True
    model = tk.Sequential([tk.Input((8, 8, 1))] + _configured_layers(tk))
    model.layers[0].trainable = False
    model.compile("adam", "sparse_categorical_crossentropy")
    config = model.get_config()
    assert config["layers"][0]["config"]["batch_shape"] == (None, 8, 8, 1)
    again = tk.Sequential.from_config(config)
    assert again.get_config() == config and again.layers[0].trainable is False
    clone = tk.models.clone_model(model)
    assert clone.get_config() == config and clone.optimizer is None
    assert not numpy.array_equal(clone.layers[0].get_weights()[0], model.layers[0].get_weights()[0])
    assert tk.layers.Dense.from_config({"units": 3}).units == 3


def test_configs_that_cannot_be_made_say_what_to_do():
    class Subclassed(tk.Model):
        def __init__(self):
            super().__init__()
            self.dense = tk.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(NotImplementedError, match="subclassed model.*set_weights"):
        Subclassed().get_config()
    with pytest.raises(ValueError, match="no 'units'"):
        tk.layers.Dense.from_config({"filters": 3})
    with pytest.raises(NotImplementedError, match="clone_function is not supported"):
        tk.models.clone_model(tk.Sequential([tk.Input((2,)), tk.layers.Dense(1)]), clone_function=lambda layer: layer)


# ---------------------------------------------------------------- what is not offered says what to use

@pytest.mark.parametrize("module, name, alternative", [
    ("callbacks", "TensorBoard", "CSVLogger"), ("layers", "LSTM", "image models only"), ("optimizers", "Nadam", "'adam'"),
    ("metrics", "IoU", "model.predict"), ("utils", "plot_model", "model.summary"),
    ("utils", "image_dataset_from_directory", "DataLoader"), (None, "regularizers", "keras has: Input"),
])
def test_a_keras_name_not_offered_says_so_and_names_the_alternative(module, name, alternative):
    """A Keras user reaching for keras.callbacks.TensorBoard got "module has no attribute"; the error now says
    it is not offered here, what to use instead where something fits, and what the module has."""
    owner = tk if module is None else getattr(tk, module)
    with pytest.raises(AttributeError, match=f"{name} is not offered by tinygrad_cnn.keras.*{alternative}"):
        getattr(owner, name)
    for offered in owner.__all__:
        assert getattr(owner, offered) is not None
    assert not hasattr(owner, "__wrapped__")


def test_the_hinted_names_are_real_keras_names(real_keras):
    from tinygrad_cnn.keras.offered import HINTS
    modules = [real_keras.layers, real_keras.callbacks, real_keras.optimizers, real_keras.metrics, real_keras.utils]
    for name in HINTS:
        assert any(hasattr(module, name) for module in modules), name


# ---------------------------------------------------------------- compile's other arguments

def _weighted_metric_runs(keras, metrics, weighted):
    x, labels, weights = _data(20)
    model = _dense(keras, "sparse_categorical_crossentropy", "softmax", 3)
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=metrics(keras),
                  weighted_metrics=weighted(keras))
    return {"evaluate": model.evaluate(x, labels, sample_weight=weights, verbose=0, return_dict=True),
            "unweighted": model.evaluate(x, labels, verbose=0, return_dict=True),
            "fit": model.fit(x, labels, sample_weight=weights, validation_split=0.2, verbose=0, shuffle=False,
                             batch_size=8).history,
            "class_weight": model.fit(x, labels, class_weight={0: 2.0}, verbose=0, shuffle=False, batch_size=8).history,
            "train_on_batch": model.train_on_batch(x, labels, sample_weight=weights, return_dict=True)}


@pytest.mark.parametrize("metrics, weighted", [
    (lambda k: ["accuracy"], lambda k: ["accuracy"]), (lambda k: None, lambda k: ["accuracy"]),
    (lambda k: None, lambda k: [k.metrics.SparseCategoricalAccuracy(name="wacc")]),
])
def test_weighted_metrics_as_in_keras(real_keras, metrics, weighted):
    """compile(weighted_metrics=...) (Keras' way to weigh accuracy by sample_weight or class_weight; a
    name also in metrics is logged as 'weighted_<name>') raised TypeError here."""
    ours, theirs = _weighted_metric_runs(tk, metrics, weighted), _weighted_metric_runs(real_keras, metrics, weighted)
    for call in ours:
        assert sorted(ours[call]) == sorted(theirs[call]), call
        for key in ours[call]:
            numpy.testing.assert_allclose(ours[call][key], theirs[call][key], rtol=1e-5, atol=1e-6, err_msg=f"{call} {key}")


def test_weighted_accuracy_is_the_weighted_mean_of_hits():
    x, labels, weights = _data(20)
    model = _dense(tk, "sparse_categorical_crossentropy", "softmax", 3)
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"], weighted_metrics=["accuracy"])
    hits = model.predict(x, verbose=0).argmax(axis=1) == labels
    logs = model.evaluate(x, labels, sample_weight=weights, verbose=0, return_dict=True)
    numpy.testing.assert_allclose(logs["weighted_accuracy"], (weights * hits).sum() / weights.sum(), rtol=1e-6)
    assert logs["accuracy"] == hits.mean()
    assert model.evaluate(x, labels, sample_weight=numpy.zeros(20), verbose=0, return_dict=True)["weighted_accuracy"] == 0


def test_compile_takes_keras_arguments_in_keras_order():
    """Keras 3's compile(optimizer, loss, loss_weights, metrics, weighted_metrics, run_eagerly, ...): here
    run_eagerly=True (a debugging habit) raised TypeError. Metrics given third land in loss_weights in
    Keras (and are silently dropped there); here that is named."""
    model = _dense(tk, "sparse_categorical_crossentropy", "softmax", 3)
    model.compile("adam", "sparse_categorical_crossentropy", run_eagerly=True, jit_compile=False, steps_per_execution=1,
                  metrics=["accuracy"])
    x, labels, _ = _data(20)
    assert sorted(model.evaluate(x, labels, verbose=0, return_dict=True)) == ["accuracy", "loss"]
    with pytest.raises(TypeError, match="third argument is loss_weights.*metrics=\\['accuracy'\\]"):
        model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    with pytest.raises(NotImplementedError, match="loss_weights"):
        model.compile("adam", "sparse_categorical_crossentropy", loss_weights=[1.0])


@pytest.mark.gpu
def test_weights_weighted_metrics_and_freezing_run_alike_on_the_gpu():
    """The same weighted, partly frozen training on the (emulated or real) GPU as on the CPU: the weights
    are sent to the device once with the data, and the numbers agree."""
    x, labels, weights = _data(40)

    def run(device):
        tk.utils.set_random_seed(0)
        model = tk.Sequential([tk.Input((6,)), tk.layers.Dense(5, activation="relu"), tk.layers.BatchNormalization(),
                               tk.layers.Dense(3, activation="softmax")], device=device)
        model.layers[1].trainable = False
        model.compile(tk.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"],
                      weighted_metrics=["accuracy"])
        history = model.fit(x, labels, sample_weight=weights, batch_size=8, epochs=2, validation_split=0.25,
                            shuffle=False, verbose=0).history
        assert str(model.weights[0].device).startswith(device)
        return history, model.get_weights()

    (cpu, cpu_weights), (gpu, gpu_weights) = run("cpu"), run("cuda")
    assert cpu.keys() == gpu.keys()
    for key in cpu:
        numpy.testing.assert_allclose(gpu[key], cpu[key], rtol=1e-5, err_msg=key)
    for a, b in zip(gpu_weights, cpu_weights):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_output_shape_and_json_as_in_keras(real_keras):
    """model.output_shape and to_json/model_from_json were missing (AttributeError); Keras' JSON rebuilds the
    model here and ours in Keras."""
    for keras in (real_keras, tk):
        model = keras.Sequential([keras.Input((8, 8, 1))] + _configured_layers(keras))
        assert model.output_shape == (None, 5)
        assert real_keras.models.model_from_json(model.to_json()).count_params() == 136
        assert tk.models.model_from_json(model.to_json()).count_params() == 136
    with pytest.raises(AttributeError, match="not built yet"):
        tk.Sequential([tk.layers.Dense(2)]).output_shape


# ---------------------------------------------------------------- a subclassed model's layers

def _subclassed(keras):
    class Classifier(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(4, activation="relu")
            self.out = keras.layers.Dense(3, activation="softmax")

        def call(self, inputs, training=False):
            return self.out(self.hidden(inputs))

    model = Classifier()
    model(numpy.zeros((1, 6), "float32"))
    model.set_weights([numpy.linspace(-1, 1, 24).reshape(6, 4).astype("float32"), numpy.full(4, 0.1, "float32"),
                       numpy.linspace(1, -1, 12).reshape(4, 3).astype("float32"), numpy.zeros(3, "float32")])
    return model


def _subclassed_story(keras):
    x, labels, _ = _data(40)
    model = _subclassed(keras)
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    story = {"layers": [type(layer).__name__ for layer in model.layers],
             "loss": round(model.evaluate(x, labels, verbose=0), 5)}
    for layer in model.layers[:1]:
        layer.trainable = False
    story["frozen"] = _changed(model, lambda: model.fit(x, labels, epochs=1, verbose=0))
    story["get_layer"] = type(model.get_layer(index=1)).__name__
    return story


def test_a_subclassed_models_layers_are_listed_as_in_keras(real_keras):
    """Keras lists a subclassed model's layers in model.layers; here the list was empty, so the habit
    `for layer in model.layers[:k]: layer.trainable = False` froze nothing, silently. Listing them must not
    make its final softmax count as strippable (the loss is of the probabilities call() returns)."""
    assert _subclassed_story(tk) == _subclassed_story(real_keras)


def test_a_subclassed_models_weight_names_stay_its_attributes():
    model = _subclassed(tk)
    assert list(model.state_dict()) == ["hidden.weight", "hidden.bias", "out.weight", "out.bias"]
    assert [layer.name for layer in model.layers] == ["dense", "dense_1"]
    with pytest.raises(TypeError, match="no pop"):
        model.pop()
