""".keras files (issue 26): model.save("m.keras") writes Keras 3's zip (config.json, metadata.json,
model.weights.h5) and keras.models.load_model reads it back; against real Keras 3, both directions give the
same predictions to 1e-5, and layers with no equivalent here are refused by name. The HDF5 part needs h5py
(the h5 extra); the real-Keras tests skip where Keras 3 with its torch backend is absent, as
tests/test_keras_peer.py does (pip install keras torch==2.13.0)."""
import json
import os
import zipfile

import numpy as np
import pytest

import tinygrad_cnn as tf
from tinygrad_cnn import nn
from tinygrad_cnn.keras.saving import KerasFileError

h5py = pytest.importorskip("h5py", reason="h5py is not installed (pip install 'tinygrad_cnn[h5]')")
keras = tf.keras


def model_with_every_layer():
    tf.random.set_seed(0)
    L = keras.layers
    model = keras.Sequential([
        keras.Input((10, 10, 1)), L.Rescaling(1 / 255, 0.1), L.Conv2D(4, 3, padding="same", activation="relu"),
        L.BatchNormalization(), L.MaxPooling2D(), L.Conv2D(6, (3, 2), strides=(1, 2), name="narrow"), L.ReLU(),
        L.AveragePooling2D(padding="same"), L.GlobalAveragePooling2D(keepdims=True), L.Flatten(),
        L.Reshape((3, 2)), L.Flatten(), L.Dropout(0.25), L.Dense(8, activation="tanh"),
        L.BatchNormalization(momentum=0.9, epsilon=1e-5, center=False), L.Activation("sigmoid"),
        L.Dense(3), L.Softmax()])
    x = np.random.default_rng(0).integers(0, 256, (12, 10, 10, 1)).astype("float32")
    model(x, training=True)  # the moving statistics move away from 0 and 1
    return model, x


def test_save_writes_keras_3s_zip_and_load_model_reads_it_back(tmp_path):
    model, x = model_with_every_layer()
    path = tmp_path / "m.keras"
    model.save(str(path))
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        config = json.loads(z.read("config.json"))
        with z.open("model.weights.h5") as f, h5py.File(f, "r") as h5:
            assert h5["layers/conv2d/vars/0"].shape == (3, 3, 1, 4)  # Keras' layout: (KH, KW, C, filters)
            assert h5["layers/conv2d_1/vars"].attrs["name"] == "narrow"  # Keras' paths go by class, not by name
            assert h5["layers/dense/vars/0"].shape == (6, 8) and len(h5["layers/batch_normalization/vars"]) == 4
            assert len(h5["layers/batch_normalization_1/vars"]) == 3  # center=False: no beta
    assert config["class_name"] == "Sequential"
    assert [layer["class_name"] for layer in config["config"]["layers"]][:4] == \
        ["InputLayer", "Rescaling", "Conv2D", "BatchNormalization"]
    loaded = keras.models.load_model(str(path))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_what_has_no_keras_equivalent_is_named(tmp_path):
    model = nn.Sequential([nn.Conv2D(2, 3, padding=1)], input_shape=(1, 5, 5))
    with pytest.raises(KerasFileError, match=r"conv2d.*explicit padding \(1, 1\)"):
        keras.saving.save_model(model, tmp_path / "a.keras")
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(KerasFileError, match="not built"):
        unbuilt.save(str(tmp_path / "b.keras"))
    assert not os.listdir(tmp_path)
    config = {"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "input_layer"}},
        {"class_name": "LayerNormalization", "config": {"name": "norm"}}]}}
    with zipfile.ZipFile(tmp_path / "c.keras", "w") as z:
        z.writestr("config.json", json.dumps(config))
    with pytest.raises(KerasFileError, match=r"c.keras: layer 0 \('norm'\): Keras layer 'LayerNormalization' is not "
                                             r"supported here"):
        keras.models.load_model(str(tmp_path / "c.keras"))
    (tmp_path / "d.keras").write_bytes(b"not a zip")
    with pytest.raises(KerasFileError, match=r"d.keras: not a readable .keras file"):
        keras.models.load_model(str(tmp_path / "d.keras"))


def test_model_checkpoint_can_write_keras_files(tmp_path):
    model, x = model_with_every_layer()
    model.compile(loss="sparse_categorical_crossentropy")
    path = str(tmp_path / "best.keras")
    model.fit(x, np.arange(12) % 3, epochs=1, verbose=0, callbacks=[keras.callbacks.ModelCheckpoint(path)])
    np.testing.assert_array_equal(keras.models.load_model(path).predict(x, verbose=0), model.predict(x, verbose=0))


# ---------------------------------------------------------------- against real Keras 3

def test_real_keras_opens_our_file_with_the_same_predictions(tmp_path, real_keras):
    model, x = model_with_every_layer()
    path = str(tmp_path / "ours.keras")
    model.save(path)
    theirs = real_keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)), model.predict(x, verbose=0), atol=1e-5)
    channels_first = nn.Sequential([nn.Conv2D(3, 3, activation="relu"), nn.MaxPool2D(2), nn.Flatten(),
                                    nn.Dense(2)], input_shape=(2, 8, 8))
    keras.saving.save_model(channels_first, tmp_path / "cf.keras")
    xf = np.random.default_rng(1).standard_normal((4, 2, 8, 8)).astype("float32")
    np.testing.assert_allclose(np.asarray(real_keras.models.load_model(str(tmp_path / "cf.keras")).predict(
        xf, verbose=0)), channels_first(xf).numpy(), atol=1e-5)


def test_we_open_real_keras_files_with_the_same_predictions(tmp_path, real_keras):
    L = real_keras.layers
    real_keras.utils.set_random_seed(0)
    theirs = real_keras.Sequential([
        real_keras.Input((10, 10, 1)), L.Rescaling(1 / 255), L.Conv2D(4, 3, padding="same", activation="relu"),
        L.BatchNormalization(), L.MaxPooling2D(), L.Conv2D(6, 3), L.GlobalMaxPooling2D(), L.Dropout(0.5),
        L.Dense(8, activation="relu"), L.BatchNormalization(), L.Dense(3, activation="softmax")])
    x = np.random.default_rng(0).integers(0, 256, (12, 10, 10, 1)).astype("float32")
    y = np.arange(12) % 3
    theirs.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    theirs.fit(x, y, epochs=2, verbose=0)  # moving statistics away from 0 and 1
    theirs.save(str(tmp_path / "theirs.keras"))
    ours = keras.models.load_model(str(tmp_path / "theirs.keras"))
    np.testing.assert_allclose(ours.predict(x, verbose=0), np.asarray(theirs.predict(x, verbose=0)), atol=1e-5)
    assert isinstance(ours.optimizer, keras.optimizers.Adam) and ours.metric_names == ["accuracy"]
    ours.fit(x, y, epochs=1, verbose=0)  # compiled from the file: it trains
    # a functional model that is a chain of layers
    inputs = real_keras.Input((5,))
    outputs = L.Dense(2)(L.Dense(4, activation="tanh")(inputs))
    functional = real_keras.Model(inputs, outputs)
    functional.save(str(tmp_path / "f.keras"))
    xf = np.random.default_rng(1).standard_normal((3, 5)).astype("float32")
    np.testing.assert_allclose(keras.models.load_model(str(tmp_path / "f.keras")).predict(xf, verbose=0),
                               np.asarray(functional.predict(xf, verbose=0)), atol=1e-5)


def test_real_keras_layers_we_lack_are_refused_by_name(tmp_path, real_keras):
    model = real_keras.Sequential([real_keras.Input((6,)), real_keras.layers.Dense(4),
                                   real_keras.layers.LayerNormalization(), real_keras.layers.Dense(2)])
    model.save(str(tmp_path / "ln.keras"))
    with pytest.raises(KerasFileError, match=r"layer 1 \('layer_normalization'\): Keras layer 'LayerNormalization'"):
        keras.models.load_model(str(tmp_path / "ln.keras"))
