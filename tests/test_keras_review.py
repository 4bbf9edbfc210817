"""A review of the Keras users' features (weights, freezing, configs, files) by a demanding Keras 3 user:
each test failed before its fix, and compares with real Keras 3 (torch backend) where that is installed."""
import numpy
import pytest

import tinygrad_cnn.keras as tk
from tinygrad_cnn.keras.saving import KerasFileError


def _initialized(keras):
    return keras.Sequential([keras.Input((50,)), keras.layers.Dense(400, kernel_initializer="he_normal",
                                                                    bias_initializer="ones"),
                             keras.layers.BatchNormalization(gamma_initializer="zeros")])


def _drawn(model):
    """What a fresh copy's weights were drawn from: the kernel's spread, the bias and gamma's values."""
    weights = [numpy.asarray(w) for w in model.get_weights()]
    return round(float(weights[0].std()), 2), float(weights[1].mean()), float(weights[2].mean())


def test_initializers_survive_configs_clone_model_and_json():
    """clone_model, from_config and model_from_json draw fresh weights from the layers' initializers; every
    config said GlorotUniform/Zeros/Ones whatever the layer was given, so a he_normal copy was glorot."""
    model = _initialized(tk)
    assert tk.layers.Dense.from_config(model.layers[0].get_config()).get_config()["kernel_initializer"][
        "class_name"] == "HeNormal"
    for copy in (tk.models.clone_model(model), tk.models.model_from_json(model.to_json()),
                 tk.Sequential.from_config(model.get_config())):
        assert _drawn(copy) == (0.2, 1.0, 0.0)  # he_normal over 50 inputs: std sqrt(2 / 50)


def test_initializers_in_configs_as_in_keras(real_keras):
    ours, theirs = _initialized(tk), _initialized(real_keras)
    for mine, keras_layer in zip(ours.layers, theirs.layers):
        config, keras_config = mine.get_config(), keras_layer.get_config()
        for key in config:
            if key.endswith("_initializer"):
                assert config[key]["class_name"] == keras_config[key]["class_name"], key
    assert _drawn(real_keras.models.model_from_json(ours.to_json())) == (0.2, 1.0, 0.0)
    assert _drawn(tk.models.model_from_json(theirs.to_json())) == (0.2, 1.0, 0.0)


def test_an_initializer_without_a_keras_name_is_named():
    layer = tk.layers.Dense(3, kernel_initializer=lambda shape, dtype: numpy.ones(shape, dtype))
    with pytest.raises(KerasFileError, match="kernel_initializer .* has no Keras name"):
        layer.get_config()
    config = tk.layers.Dense(3).get_config()
    config["kernel_initializer"] = {"class_name": "RandomNormal", "config": {}}
    with pytest.raises(KerasFileError, match="kernel_initializer 'RandomNormal' is not offered here"):
        tk.layers.Dense.from_config(config)


def _scored(keras):
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    model.set_weights([numpy.linspace(-1, 1, 18).reshape(6, 3).astype("float32"), numpy.zeros(3, "float32")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_steps_limit_evaluate_and_predict_on_arrays_as_in_keras():
    """evaluate(x, y, steps=2) and predict(x, steps=2) take the first 2 batches, as Keras; with arrays
    `steps` was accepted and ignored (all 20 samples)."""
    rng = numpy.random.default_rng(0)
    x, labels, weights = rng.normal(size=(20, 6)).astype("float32"), rng.integers(0, 3, 20), rng.random(20)
    model = _scored(tk)
    assert model.predict(x, batch_size=4, steps=2, verbose=0).shape == (8, 3)
    limited = model.evaluate(x, labels, batch_size=4, steps=2, sample_weight=weights, verbose=0)
    assert limited == pytest.approx(model.evaluate(x[:8], labels[:8], sample_weight=weights[:8], verbose=0))
    assert limited != pytest.approx(model.evaluate(x, labels, sample_weight=weights, verbose=0))


def test_steps_on_arrays_match_keras(real_keras):
    rng = numpy.random.default_rng(1)
    x, labels = rng.normal(size=(20, 6)).astype("float32"), rng.integers(0, 3, 20)
    ours, theirs = _scored(tk), _scored(real_keras)
    assert ours.evaluate(x, labels, batch_size=4, steps=3, verbose=0) == pytest.approx(
        theirs.evaluate(x, labels, batch_size=4, steps=3, verbose=0), abs=1e-5)
    assert numpy.allclose(ours.predict(x, batch_size=4, steps=3, verbose=0),
                          theirs.predict(x, batch_size=4, steps=3, verbose=0), atol=1e-6)


@pytest.mark.parametrize("name", ["model.keras", "model.weights.h5", "model.safetensors"])
def test_overwrite_false_keeps_an_existing_file(tmp_path, name):
    """save/save_weights(path, overwrite=False) on an existing file: Keras asks before overwriting; here it
    was accepted and the file overwritten silently. Now a FileExistsError naming it, the file untouched."""
    pytest.importorskip("h5py")
    path, model = tmp_path / name, _scored(tk)
    save = model.save_weights if name.endswith(".weights.h5") else model.save
    save(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match=f"{name}' exists and overwrite=False"):
        save(path, overwrite=False)
    assert path.read_bytes() == before
    save(tmp_path / ("new_" + name), overwrite=False)  # a new file is written
    save(path, overwrite=True)


def test_save_weights_only_with_a_keras_name_is_refused(tmp_path):
    """ModelCheckpoint('m.keras', save_weights_only=True) saved the whole model, the flag ignored; Keras
    refuses the name (it must end in .weights.h5), and so does this now."""
    with pytest.raises(ValueError, match=r"save_weights_only=True, but .*m\.keras.*'.*m\.weights\.h5'"):
        tk.callbacks.ModelCheckpoint(str(tmp_path / "m.keras"), save_weights_only=True)
    tk.callbacks.ModelCheckpoint(str(tmp_path / "m.weights.h5"), save_weights_only=True)
    tk.callbacks.ModelCheckpoint(str(tmp_path / "m.keras"))


def test_save_weights_only_names_as_in_keras(real_keras, tmp_path):
    for name, weights_only in (("m.keras", True), ("m.weights.h5", True), ("m.keras", False)):
        outcomes = []
        for keras in (real_keras, tk):
            try:
                keras.callbacks.ModelCheckpoint(str(tmp_path / name), save_weights_only=weights_only)
                outcomes.append("accepted")
            except ValueError:
                outcomes.append("refused")
        assert outcomes[0] == outcomes[1], (name, weights_only)


def test_count_params_before_the_weights_exist_is_an_error_as_in_keras():
    """An unbuilt model or layer counted 0 parameters (Keras raises ValueError: there are none yet)."""
    model = tk.Sequential([tk.layers.Dense(4), tk.layers.Dense(2)])
    for thing in (model, model.layers[0]):
        with pytest.raises(ValueError, match="not built yet"):
            thing.count_params()
    model.build((6,))
    assert model.count_params() == 6 * 4 + 4 + 4 * 2 + 2 and model.layers[0].count_params() == 28


def test_save_weights_of_an_unbuilt_model_or_to_h5_is_named(tmp_path):
    """An unbuilt model's save_weights wrote a .weights.h5 file with no weights (Keras refuses: not built);
    a plain .h5 name was refused as a format 'not written here' without naming Keras 3's '.weights.h5'."""
    pytest.importorskip("h5py")
    with pytest.raises(KerasFileError, match="not built, so it has no weights to save"):
        tk.Sequential([tk.layers.Dense(3)]).save_weights(tmp_path / "m.weights.h5")
    assert not (tmp_path / "m.weights.h5").exists()
    with pytest.raises(ValueError, match="'.weights.h5'"):
        _scored(tk).save_weights(str(tmp_path / "m.h5"))


def _frozen_middle(keras, functional):
    layers = [keras.layers.Flatten(), keras.layers.Dense(3), keras.layers.Dense(2)]
    if functional:
        inputs = keras.Input((4, 4, 1))
        outputs = inputs
        for layer in layers:
            outputs = layer(outputs)
        model = keras.Model(inputs, outputs)
    else:
        model = keras.Sequential([keras.Input((4, 4, 1))] + layers)
    layers[1].trainable = False
    return model


def _summary_text(model, **kwargs):
    lines = []
    model.summary(print_fn=lambda line, *args, **kw: lines.append(line), **kwargs)
    return "\n".join(lines)


@pytest.mark.parametrize("functional", [False, True])
def test_summary_show_trainable_adds_keras_column(functional):
    """summary(show_trainable=True) was accepted and ignored; Keras adds a Trainable column (Y, N, -)."""
    model = _frozen_middle(tk, functional)
    text = _summary_text(model, show_trainable=True)
    assert "Trainable" in text.splitlines()[2]
    marks = [line.split()[-1] for line in text.splitlines() if "(Flatten)" in line or "(Dense)" in line]
    assert marks == ["-", "N", "Y"]
    assert "Trainable " not in _summary_text(model).splitlines()[2]


def test_summary_trainable_marks_as_in_keras(real_keras):
    text = _summary_text(_frozen_middle(real_keras, False), show_trainable=True)
    marks = [line.split("│")[-2].strip() for line in text.splitlines() if "(Flatten)" in line or "(Dense)" in line]
    assert marks == ["-", "N", "Y"]


def test_a_merge_layer_counts_no_weights_unbuilt():
    """count_params' error is for layers that make weights: an Add (no weights, never built) counts 0."""
    inputs = tk.Input((6,))
    outputs = tk.layers.Add()([tk.layers.Dense(3)(inputs), tk.layers.Dense(3)(inputs)])
    model = tk.Model(inputs, outputs)
    assert model.layers[-1].count_params() == 0 and model.count_params() == 42
    assert "add (Add)" in _summary_text(model, show_trainable=True)


def _regularized_config():
    config = tk.Sequential([tk.Input((6,)), tk.layers.Dense(3), tk.layers.Dropout(0.3)]).get_config()
    config["layers"][1]["config"]["kernel_regularizer"] = {"module": "keras.regularizers", "class_name": "L2",
                                                           "config": {"l2": 0.1}, "registered_name": None}
    config["layers"][2]["config"]["noise_shape"] = (None, 1)
    return config


def test_regularizers_constraints_and_noise_shape_are_not_dropped_silently(tmp_path):
    """A Keras config's kernel_regularizer (an L2 penalty in training), constraints and Dropout's noise_shape
    were dropped without a word: from_config now names them, loading a file warns (its predictions hold)."""
    with pytest.raises(KerasFileError, match=r"layer 0 \('dense'\): kernel_regularizer is not supported"):
        tk.Sequential.from_config(_regularized_config())
    with pytest.raises(KerasFileError, match="noise_shape is not supported"):
        tk.layers.Dropout.from_config(_regularized_config()["layers"][2]["config"])
    pytest.importorskip("h5py")
    path = tmp_path / "m.keras"
    tk.Sequential([tk.Input((6,)), tk.layers.Dense(3), tk.layers.Dropout(0.3)]).save(path)
    import json
    import zipfile
    with zipfile.ZipFile(path) as z:
        files = {name: z.read(name) for name in z.namelist()}
    config = json.loads(files["config.json"])
    config["config"]["layers"][1]["config"]["kernel_regularizer"] = _regularized_config()["layers"][1]["config"][
        "kernel_regularizer"]
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    with pytest.warns(UserWarning, match="kernel_regularizer is not supported here and left out"):
        tk.models.load_model(path)


def test_a_keras_regularized_model_is_named(real_keras):
    model = real_keras.Sequential([real_keras.Input((6,)), real_keras.layers.Dense(
        3, kernel_regularizer=real_keras.regularizers.L2(0.1), bias_constraint=real_keras.constraints.NonNeg())])
    with pytest.raises(KerasFileError, match="kernel_regularizer, bias_constraint are not supported"):
        tk.models.model_from_json(model.to_json())


def test_optimizer_settings_not_offered_are_named_on_load(real_keras, tmp_path):
    """A Keras file compiled with Adam(amsgrad=True, clipnorm=1.0) loaded compiled with a plain Adam, the two
    settings dropped silently (a resumed fit stepped differently); now a warning names them."""
    pytest.importorskip("h5py")
    model = real_keras.Sequential([real_keras.Input((6,)), real_keras.layers.Dense(3, activation="softmax")])
    model.compile(real_keras.optimizers.Adam(1e-4, beta_1=0.8, amsgrad=True, clipnorm=1.0),
                  "sparse_categorical_crossentropy")
    model.save(tmp_path / "m.keras")
    with pytest.warns(UserWarning, match="the optimizer's clipnorm, amsgrad are not offered here"):
        loaded = tk.models.load_model(tmp_path / "m.keras")
    assert loaded.optimizer.learning_rate == pytest.approx(1e-4) and loaded.optimizer.hyper["beta_1"] == pytest.approx(0.8)
    model.compile(real_keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
    model.save(tmp_path / "plain.keras")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tk.models.load_model(tmp_path / "plain.keras")


def test_a_keras_file_compiled_with_loss_and_metric_objects_loads_compiled(real_keras, tmp_path):
    """compile(loss=keras.losses.SparseCategoricalCrossentropy(), metrics=[SparseCategoricalAccuracy(name='acc')])
    writes objects' configs into the file; it loaded uncompiled here, silently (fit then said 'call compile')."""
    pytest.importorskip("h5py")
    rng = numpy.random.default_rng(2)
    x, labels = rng.normal(size=(12, 6)).astype("float32"), rng.integers(0, 3, 12)
    model = real_keras.Sequential([real_keras.Input((6,)), real_keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", real_keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[real_keras.metrics.SparseCategoricalAccuracy(name="acc")])
    model.save(tmp_path / "m.keras")
    theirs = model.evaluate(x, labels, verbose=0, return_dict=True)
    ours = tk.models.load_model(tmp_path / "m.keras").evaluate(x, labels, verbose=0, return_dict=True)
    assert ours.keys() == theirs.keys() and all(ours[k] == pytest.approx(theirs[k], abs=1e-5) for k in ours)
    model.compile("adam", real_keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
                  metrics=[real_keras.metrics.AUC()])
    model.save(tmp_path / "smoothed.keras")
    with pytest.warns(UserWarning, match="loss .* is not offered here; the model loads uncompiled"):
        assert getattr(tk.models.load_model(tmp_path / "smoothed.keras"), "loss", None) is None


def test_a_metric_objects_name_survives_a_keras_file(tmp_path):
    """compile(metrics=[SparseCategoricalAccuracy(name='acc')]) logs 'acc'; saved to .keras and loaded (here or
    in Keras) it logged 'sparse_categorical_accuracy', so a callback monitoring 'val_acc' found nothing."""
    pytest.importorskip("h5py")
    model = _scored(tk)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=[tk.metrics.SparseCategoricalAccuracy(name="acc")],
                  weighted_metrics=["accuracy", tk.metrics.SparseCategoricalAccuracy(name="b")])
    x, labels = numpy.zeros((4, 6), "float32"), numpy.zeros(4, "int64")
    model.save(tmp_path / "m.keras")
    names = sorted(tk.models.load_model(tmp_path / "m.keras").evaluate(x, labels, verbose=0, return_dict=True))
    assert names == sorted(model.evaluate(x, labels, verbose=0, return_dict=True)) == ["acc", "accuracy", "b", "loss"]


def test_a_metric_objects_name_reaches_keras(real_keras, tmp_path):
    pytest.importorskip("h5py")
    model = _scored(tk)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=[tk.metrics.SparseCategoricalAccuracy(name="acc")])
    model.save(tmp_path / "m.keras")
    x, labels = numpy.zeros((4, 6), "float32"), numpy.zeros(4, "int64")
    assert sorted(real_keras.models.load_model(tmp_path / "m.keras").evaluate(
        x, labels, verbose=0, return_dict=True)) == ["acc", "loss"]


def test_a_callable_initializer_still_saves_with_its_weights(tmp_path):
    """model.save / save_weights hold the weights, so a layer made with a callable initializer (no Keras name)
    saves and loads as before; only get_config/to_json/clone_model, which draw new weights, name it."""
    pytest.importorskip("h5py")
    model = tk.Sequential([tk.Input((6,)), tk.layers.Dense(3, kernel_initializer=lambda s, d: numpy.full(s, 0.5, d))])
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    assert numpy.array_equal(tk.models.load_model(tmp_path / "m.keras").get_weights()[0], model.get_weights()[0])
    again = tk.Sequential([tk.Input((6,)), tk.layers.Dense(3)])
    again.load_weights(tmp_path / "m.weights.h5")
    assert numpy.array_equal(again.get_weights()[0], model.get_weights()[0])
    with pytest.raises(KerasFileError, match="has no Keras name"):
        model.to_json()
