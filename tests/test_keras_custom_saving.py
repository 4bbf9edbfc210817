"""Saving and loading models that hold your own classes, as Keras 3.15.1 does: register_keras_serializable,
get_config/from_config (and Keras' auto-config), load_model(custom_objects=...), custom_object_scope,
the entries Keras writes into config.json for them, and files going both ways between real Keras and here.
Each test asserts the expected values directly (so it runs without Keras); the *_keras ones run real Keras 3
(torch backend) where it is installed."""
import json
import zipfile

import numpy
import pytest

import tinygrad_cnn.keras as tk

pytest.importorskip("h5py")


def _classes(keras, register=True):
    """A layer with its own get_config and a non-trainable weight made first, one with Keras' auto-config (no
    get_config), a metric function and a Metric subclass, registered (or not) as a user would."""
    ops = keras.ops
    package = keras.saving.register_keras_serializable(package="KMore", name="Scale") if register else (lambda c: c)

    @package
    class Scale(keras.layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def build(self, input_shape):
            self.seen = self.add_weight(shape=(), initializer="zeros", trainable=False, name="seen")
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

        def call(self, inputs):
            return inputs * self.w * self.factor

        def get_config(self):
            config = super().get_config()
            config.update(factor=self.factor)
            return config

    class Shift(keras.layers.Layer):  # no get_config: Keras keeps the plain arguments it was made with
        def __init__(self, units=3, sign=1.0, **kwargs):
            super().__init__(**kwargs)
            self.units, self.sign = units, sign

        def build(self, input_shape):
            self.b = self.add_weight(shape=(self.units,), initializer="random_normal", name="b")

        def call(self, inputs):
            return inputs + self.sign * self.b

    def gap(y_true, y_pred):
        return ops.mean(ops.abs(ops.cast(y_true, "float32") - y_pred), axis=-1)

    class Hits(keras.metrics.Metric):
        def __init__(self, name="hits", cut=0.5, **kwargs):
            super().__init__(name=name, **kwargs)
            self.cut = cut
            self.n = self.add_variable(shape=(), initializer="zeros", name="n")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.n.assign_add(ops.sum(ops.cast(ops.greater(y_pred, self.cut), "float32")))

        def result(self):
            return self.n

        def get_config(self):
            return {**super().get_config(), "cut": self.cut}

    if register:
        keras.saving.register_keras_serializable(package="KMore")(gap)
        keras.saving.register_keras_serializable(package="KMore")(Hits)
    return Scale, Shift, gap, Hits


def _data():
    rng = numpy.random.default_rng(1)
    return rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 3)).astype("float32")


def _model(keras, classes):
    Scale, Shift, gap, Hits = classes
    model = keras.Sequential([keras.Input((3,)), Scale(3.0), Shift(units=3, sign=-1.0), keras.layers.Dense(3)])
    model.set_weights([numpy.float32([1.0, 2.0, 0.5]), numpy.float32(4.0), numpy.float32([0.1, 0.2, 0.3]),
                       numpy.linspace(-1, 1, 9).reshape(3, 3).astype("float32"), numpy.zeros(3, "float32")])
    model.compile(keras.optimizers.SGD(0.01), "mse", metrics=[gap, Hits(cut=0.25), "mae"])
    return model


def _entries(path):
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    return config["config"]["layers"][1:3], config["compile_config"]["metrics"]


def _forget(keras):
    for key in [key for key in keras.saving.get_custom_objects() if key.startswith("KMore>")]:
        del keras.saving.get_custom_objects()[key]


@pytest.fixture
def registered():
    yield _classes(tk)
    _forget(tk)


def test_register_keras_serializable_names_the_class():
    Scale, Shift, gap, Hits = classes = _classes(tk)
    try:
        assert tk.saving.get_registered_name(Scale) == "KMore>Scale" and tk.saving.get_registered_name(Shift) == "Shift"
        assert tk.saving.get_custom_objects()["KMore>gap"] is gap and tk.utils.get_custom_objects()["KMore>Hits"] is Hits
        assert tk.saving.get_registered_object("KMore>Scale") is Scale
        assert tk.saving.get_registered_object("Shift") is None
        assert tk.saving.get_registered_object("Shift", custom_objects={"Shift": Shift}) is Shift
        with tk.saving.custom_object_scope({"Shift": Shift}):
            assert tk.utils.get_registered_object("Shift") is Shift
        assert tk.saving.get_registered_object("Shift") is None
        assert classes
    finally:
        _forget(tk)
    with pytest.raises(ValueError, match="get_config"):
        tk.saving.register_keras_serializable()(type("Plain", (), {}))


def test_own_layers_and_metrics_round_trip_a_keras_file(tmp_path, registered):
    """config.json names each class as Keras writes it (module None for __main__'s, else its module; the
    registered name, or the class name); the file loads back with the same weights, the config's arguments,
    and the metrics compiled again."""
    Scale, Shift, gap, Hits = registered
    x, y = _data()
    model = _model(tk, registered)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    path = str(tmp_path / "own.keras")
    model.save(path)
    layers, metrics = _entries(path)
    assert [(e["module"], e["class_name"], e["registered_name"]) for e in layers] == [
        (__name__, "Scale", "KMore>Scale"), (__name__, "Shift", "Shift")]
    assert layers[0]["config"]["factor"] == 3.0 and layers[0]["config"]["dtype"]["class_name"] == "DTypePolicy"
    assert layers[1]["config"]["units"] == 3 and layers[1]["config"]["sign"] == -1.0  # Keras' auto-config
    assert metrics[0] == {"module": "builtins", "class_name": "function", "config": "KMore>gap",
                          "registered_name": "function"}
    assert metrics[1]["registered_name"] == "KMore>Hits" and metrics[1]["config"] == {"name": "hits", "dtype": "float32",
                                                                                      "cut": 0.25}
    # Shift is not registered: the error names it and both ways to make it known
    with pytest.raises(tk.saving.KerasFileError, match=r"your own layer 'Shift'.*custom_objects=\{'Shift': Shift\}"
                                                      r".*register_keras_serializable"):
        tk.models.load_model(path)
    again = tk.models.load_model(path, custom_objects={"Shift": Shift})
    assert [type(layer).__name__ for layer in again.layers] == ["Scale", "Shift", "Dense"]
    assert again.layers[0].factor == 3.0 and again.layers[1].sign == -1.0 and again.layers[1].name == "shift"
    for a, b in zip(again.get_weights(), model.get_weights()):
        assert a.shape == b.shape and numpy.array_equal(a, b)
    assert numpy.array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    assert again.evaluate(x, y, verbose=0, return_dict=True) == model.evaluate(x, y, verbose=0, return_dict=True)
    with tk.saving.custom_object_scope({"Shift": Shift}):
        assert tk.models.load_model(path, compile=False).layers[1].units == 3
    assert tk.models.model_from_json(model.to_json(), custom_objects={"Shift": Shift}).layers[0].factor == 3.0


def test_own_weights_are_ordered_as_keras():
    """Keras lists a layer's trainable weights first, then the others, whatever order build made them in."""
    Scale = _classes(tk, register=False)[0]
    layer = Scale()
    layer.build((None, 3))
    assert [w.shape for w in layer.get_weights()] == [(3,), ()]


def test_own_class_mistakes_are_named(tmp_path):
    Scale, Shift, gap, Hits = _classes(tk, register=False)
    model = tk.Sequential([tk.Input((3,)), Scale(2.0), tk.layers.Dense(2)])
    model.compile("sgd", "mse", metrics=[gap])
    path = str(tmp_path / "m.keras")
    model.save(path)
    with pytest.raises(tk.saving.KerasFileError, match="your own layer 'Scale'"):
        tk.models.load_model(path)
    with pytest.raises(tk.saving.KerasFileError, match=r"your own metric function 'gap'.*custom_objects=\{'gap': gap\}"):
        tk.models.load_model(path, custom_objects={"Scale": Scale})
    assert tk.models.load_model(path, custom_objects={"Scale": Scale, "gap": gap}).metrics_names == \
        ["loss", "compile_metrics"]

    class Holder(tk.layers.Layer):  # an object argument: Keras' auto-config cannot keep it
        def __init__(self, table, **kwargs):
            super().__init__(**kwargs)
            self.table = table

        def call(self, inputs):
            return inputs

    held = tk.Sequential([tk.Input((3,)), Holder(object())])
    with pytest.raises(NotImplementedError, match="Holder .*must define get_config"):
        held.save(str(tmp_path / "h.keras"))


def _keras_run(keras, classes, path_in=None, path_out=None):
    """Save the model (trained a step) to path_out, or load path_in; return predictions, weights and logs."""
    x, y = _data()
    if path_in is None:
        model = _model(keras, classes)
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
        model.save(path_out)
    else:
        model = keras.models.load_model(path_in, custom_objects={"Shift": classes[1]})
    logs = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    return model.predict(x, verbose=0), [numpy.asarray(w) for w in model.get_weights()], logs, \
        [type(layer).__name__ for layer in model.layers]


def _same(a, b):
    assert a[3] == b[3]
    assert numpy.allclose(a[0], b[0], atol=1e-5)
    for u, v in zip(a[1], b[1]):
        assert u.shape == v.shape and numpy.allclose(u, v, atol=1e-6)
    assert a[2].keys() == b[2].keys() and all(abs(a[2][k] - b[2][k]) < 1e-4 for k in a[2])


def test_own_classes_keras_writes_the_same_entries(tmp_path, real_keras, registered):
    theirs = _classes(real_keras)
    try:
        _model(real_keras, theirs).save(str(tmp_path / "k.keras"))
        _model(tk, registered).save(str(tmp_path / "t.keras"))
    finally:
        _forget(real_keras)
    keras_layers, keras_metrics = _entries(str(tmp_path / "k.keras"))
    our_layers, our_metrics = _entries(str(tmp_path / "t.keras"))
    for ours, keras_entry in zip(our_layers, keras_layers):
        for key in ("module", "class_name", "registered_name", "build_config"):
            assert ours[key] == keras_entry[key]
        extra = {"activity_regularizer", "autocast"}  # Keras' own Layer.__init__ arguments
        assert set(keras_entry["config"]) - extra == set(ours["config"]) - extra
    assert our_metrics[0] == keras_metrics[0] and our_metrics[1] == keras_metrics[1] and our_metrics[2] == "mae"


def test_own_classes_files_go_both_ways_with_keras(tmp_path, real_keras, registered):
    """Keras loads the file written here (its own registered classes in place of ours) and predicts, weighs
    and evaluates the same; and the file Keras writes loads here the same way."""
    theirs = _classes(real_keras)
    try:
        ours_saved = _keras_run(tk, registered, path_out=str(tmp_path / "t.keras"))
        keras_loaded = _keras_run(real_keras, theirs, path_in=str(tmp_path / "t.keras"))
        keras_saved = _keras_run(real_keras, theirs, path_out=str(tmp_path / "k.keras"))
        ours_loaded = _keras_run(tk, registered, path_in=str(tmp_path / "k.keras"))
    finally:
        _forget(real_keras)
    _same(ours_saved, keras_loaded)
    _same(keras_saved, ours_loaded)
    _same(ours_saved, keras_saved)


def _weights_file_run(keras, classes, path, write):
    model = _model(keras, classes)
    if write:
        model.save_weights(path)
    else:
        model.set_weights([numpy.zeros_like(w) for w in model.get_weights()])
        model.load_weights(path)
    return [numpy.asarray(w) for w in model.get_weights()]


def test_own_layers_in_weights_files_and_clones(tmp_path):
    """.weights.h5 files keep your own layers' weights (a 0-d one stays 0-d), and clone_model copies your own
    classes unregistered, as Keras' (each layer's class.from_config)."""
    classes = _classes(tk, register=False)
    path = str(tmp_path / "w.weights.h5")
    saved = _weights_file_run(tk, classes, path, True)
    loaded = _weights_file_run(tk, classes, path, False)
    assert [w.shape for w in loaded] == [(3,), (), (3,), (3, 3), (3,)] and loaded[1] == 4.0
    assert all(numpy.array_equal(a, b) for a, b in zip(saved, loaded))
    clone = tk.models.clone_model(_model(tk, classes))
    assert [type(layer).__name__ for layer in clone.layers] == ["Scale", "Shift", "Dense"] and clone.layers[1].sign == -1.0


def test_own_layers_in_weights_files_go_both_ways_with_keras(tmp_path, real_keras):
    ours, theirs = _classes(tk, register=False), _classes(real_keras, register=False)
    saved = _weights_file_run(tk, ours, str(tmp_path / "t.weights.h5"), True)
    assert all(numpy.allclose(a, b) for a, b in zip(saved, _weights_file_run(real_keras, theirs,
                                                                             str(tmp_path / "t.weights.h5"), False)))
    saved = _weights_file_run(real_keras, theirs, str(tmp_path / "k.weights.h5"), True)
    assert all(numpy.allclose(a, b) for a, b in zip(saved, _weights_file_run(tk, ours, str(tmp_path / "k.weights.h5"),
                                                                             False)))


def _block(keras):
    """keras.io's subclassing guide's composition: your own layer holding built-in layers (and a weight)."""
    class Block(keras.layers.Layer):
        def __init__(self, units=3, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.inner = keras.layers.Dense(units)
            self.second = keras.layers.Dense(units, activation="relu")

        def build(self, input_shape):
            self.scale = self.add_weight(shape=(self.units,), initializer="ones")
            self.inner.build(input_shape)
            self.second.build((None, self.units))

        def call(self, inputs):
            return self.second(self.inner(inputs)) * self.scale

    return Block


def _block_run(keras, path, write, weights_only=False):
    Block = _block(keras)
    x = numpy.random.default_rng(2).normal(size=(6, 4)).astype("float32")
    if write:
        model = keras.Sequential([keras.Input((4,)), Block(3), keras.layers.Dense(2)])
        model.set_weights([numpy.full(3, 2.0, "float32"), numpy.linspace(-1, 1, 12).reshape(4, 3).astype("float32"),
                           numpy.zeros(3, "float32"), numpy.eye(3, dtype="float32") + 0.5, numpy.ones(3, "float32"),
                           numpy.linspace(0, 1, 6).reshape(3, 2).astype("float32"), numpy.zeros(2, "float32")])
        model.save_weights(path) if weights_only else model.save(path)
    elif weights_only:
        model = keras.Sequential([keras.Input((4,)), Block(3), keras.layers.Dense(2)])
        model.load_weights(path)
    else:
        model = keras.models.load_model(path, custom_objects={"Block": Block})
    return model.predict(x, verbose=0), [numpy.asarray(w) for w in model.get_weights()]


@pytest.mark.parametrize("weights_only", [False, True])
def test_own_layer_holding_layers(tmp_path, weights_only):
    """Its inner layers' weights are filed under their attribute names (layers/block/inner/vars), as Keras
    files them, and come back in their layouts (a Dense kernel (inputs, units))."""
    path = str(tmp_path / ("b.weights.h5" if weights_only else "b.keras"))
    saved = _block_run(tk, path, True, weights_only)
    loaded = _block_run(tk, path, False, weights_only)
    assert numpy.array_equal(saved[0], loaded[0]) and [w.shape for w in loaded[1]] == [
        (3,), (4, 3), (3,), (3, 3), (3,), (3, 2), (2,)]
    import h5py
    if weights_only:
        names = []
        with h5py.File(path, "r") as f:
            f.visit(names.append)
        assert "layers/block/inner/vars/0" in names and "layers/block/second/vars/1" in names
        assert "layers/block/vars/0" in names and "layers/block/vars/1" not in names


@pytest.mark.parametrize("weights_only", [False, True])
def test_own_layer_holding_layers_both_ways_with_keras(tmp_path, real_keras, weights_only):
    ending = "weights.h5" if weights_only else "keras"
    ours = _block_run(tk, str(tmp_path / f"t.{ending}"), True, weights_only)
    theirs = _block_run(real_keras, str(tmp_path / f"t.{ending}"), False, weights_only)
    assert numpy.allclose(ours[0], theirs[0], atol=1e-5)
    keras_saved = _block_run(real_keras, str(tmp_path / f"k.{ending}"), True, weights_only)
    ours_loaded = _block_run(tk, str(tmp_path / f"k.{ending}"), False, weights_only)
    assert numpy.allclose(keras_saved[0], ours_loaded[0], atol=1e-5)
    for a, b in zip(keras_saved[1], ours_loaded[1]):
        assert numpy.allclose(a, b)


def _loss_run(keras, path, write):
    def doubled_error(y_true, y_pred):
        return 2.0 * keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)

    x, y = _data()
    if write:
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])
        model.set_weights([numpy.linspace(-1, 1, 9).reshape(3, 3).astype("float32"), numpy.zeros(3, "float32")])
        model.compile(keras.optimizers.SGD(0.01), doubled_error)
        model.save(path)
    else:
        model = keras.models.load_model(path, custom_objects={"doubled_error": doubled_error})
    return model.evaluate(x, y, verbose=0), getattr(model.loss, "__name__", None) or model.loss.name


def test_own_loss_function_round_trips(tmp_path):
    """Written as Keras writes it ({'module': 'builtins', 'class_name': 'function', ...}); the file loads
    compiled with it given in custom_objects, and names it otherwise (as Keras raises; it loaded uncompiled)."""
    path = str(tmp_path / "l.keras")
    saved = _loss_run(tk, path, True)
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("config.json"))["compile_config"]["loss"] == {
            "module": "builtins", "class_name": "function", "config": "doubled_error", "registered_name": "function"}
    with pytest.raises(tk.saving.KerasFileError, match="your own loss function 'doubled_error'"):
        tk.models.load_model(path)
    assert _loss_run(tk, path, False) == saved and saved[1] == "doubled_error"


def test_own_loss_function_both_ways_with_keras(tmp_path, real_keras):
    ours = _loss_run(tk, str(tmp_path / "t.keras"), True)
    assert _loss_run(real_keras, str(tmp_path / "t.keras"), False)[0] == pytest.approx(ours[0], rel=1e-6)
    theirs = _loss_run(real_keras, str(tmp_path / "k.keras"), True)
    assert _loss_run(tk, str(tmp_path / "k.keras"), False)[0] == pytest.approx(theirs[0], rel=1e-6)


def test_subclass_of_a_built_in_layer_is_named(tmp_path):
    """It was written as its base class and loaded as a plain Dense, its own call() silently lost."""
    class Doubled(tk.layers.Dense):
        def forward(self, x):
            return super().forward(x) * 2.0

    model = tk.Sequential([tk.Input((3,)), Doubled(2)])
    with pytest.raises(tk.saving.KerasFileError, match="your class Doubled subclasses the built-in Dense.*keras.layers"
                                                      r".Layer and hold the Dense inside it"):
        model.save(str(tmp_path / "d.keras"))


def test_keras_own_classes_with_a_registered_name_are_not_taken_for_yours(tmp_path):
    """Keras writes registered_name 'Functional' for a model inside a model: that is Keras' class, not yours."""
    config = {"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
         "config": {"batch_shape": [None, 4], "name": "input_layer"}},
        {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
         "config": {"name": "inner"}}]}}
    path = tmp_path / "f.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
    with pytest.raises(tk.saving.KerasFileError, match="Keras layer 'Functional' is not supported here"):
        tk.models.load_model(str(path))


def test_own_metric_that_cannot_take_its_config_is_named(tmp_path):
    class Strict(tk.metrics.Metric):
        def __init__(self, name="strict"):  # no dtype=, no **kwargs: cls(**config) cannot work
            super().__init__(name=name)

        def update_state(self, y_true, y_pred, sample_weight=None):
            pass

        def result(self):
            return tk.ops.zeros(())

    model = tk.Sequential([tk.Input((3,)), tk.layers.Dense(2)])
    model.compile("sgd", "mse", metrics=[Strict()])
    model.save(str(tmp_path / "s.keras"))
    with pytest.raises(tk.saving.KerasFileError, match=r"Strict.from_config\(config\) failed.*\*\*kwargs"):
        tk.models.load_model(str(tmp_path / "s.keras"), custom_objects={"Strict": Strict})
