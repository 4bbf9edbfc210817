"""Where tinygrad_cnn.keras once differed from Keras 3.15.1 and now does as it does: each test asserts
Keras' values directly (so it runs without Keras) and, where real Keras 3 is installed (torch backend),
that Keras gives the same."""
import warnings

import numpy
import pytest

import tinygrad_cnn.keras as tk


def _numpy(value):
    return value.detach().cpu().numpy() if hasattr(value, "detach") else numpy.asarray(value)


# ------------------------------------------------------------ binary accuracy on soft labels

SOFT_TRUE = numpy.array([[0.3], [0.8], [1.0], [0.0], [0.5]], "float32")
SOFT_PRED = numpy.array([[0.2], [0.9], [0.9], [0.1], [0.7]], "float32")


def _binary_accuracies(keras):
    """(BinaryAccuracy on soft labels, compile(metrics=['accuracy']) of a sigmoid output on soft labels,
    the same on 0/1 integer labels)."""
    metric = keras.metrics.BinaryAccuracy()
    metric.update_state(SOFT_TRUE, SOFT_PRED)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
    model.set_weights([numpy.zeros((1, 1), "float32"), numpy.ones(1, "float32")])  # every output sigmoid(1) = 0.73
    x, soft = numpy.zeros((4, 1), "float32"), SOFT_TRUE[:4]
    return (float(_numpy(metric.result())),
            model.evaluate(x, soft, verbose=0, return_dict=True)["accuracy"],
            model.evaluate(x, numpy.array([0, 0, 1, 0]), verbose=0, return_dict=True)["accuracy"])


def test_binary_accuracy_compares_soft_labels_without_rounding():
    """Keras casts y_pred > 0.5 to y_true's dtype and compares: 0.3 and 0.8 are never hits. Here the labels
    were rounded (0.8 counted as 1): 0.8 and 0.5 instead of 0.4 and 0.25."""
    assert _binary_accuracies(tk) == pytest.approx((0.4, 0.25, 0.25))


def test_binary_accuracy_on_soft_labels_as_in_keras(real_keras):
    assert _binary_accuracies(tk) == pytest.approx(_binary_accuracies(real_keras))


# ------------------------------------------------------------ fit(steps_per_epoch=) over arrays

def _epoch_losses(keras, batch_size, steps_per_epoch, epochs):
    """The loss of each epoch of fit(x = 0..9, y = 0, shuffle=False) with a kernel of 1 that does not move
    (learning rate 0): the mean of x**2 over the samples the epoch ran, which tells which batches it took."""
    x, y = numpy.arange(10, dtype="float32").reshape(10, 1), numpy.zeros((10, 1), "float32")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")])
    model.compile(keras.optimizers.SGD(learning_rate=0.0), "mse")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, batch_size=batch_size, steps_per_epoch=steps_per_epoch, epochs=epochs,
                            shuffle=False, verbose=0)
    return history.history["loss"], [w for w in caught if "steps_per_epoch" in str(w.message)]


def _mean_square(*samples):
    return float(numpy.mean(numpy.square(samples)))


STEPS_CASES = [(2, 2, 4), (2, 3, 3), (4, 4, 2), (2, None, 2)]


def test_steps_per_epoch_continues_through_the_arrays():
    """Keras 3: each epoch takes the next steps_per_epoch batches of a running pass over x, ends early
    where the pass ends (a warning), and the next epoch starts a new pass. Here every epoch restarted at
    the first batch (3.5 four times for the first case: samples 0-3 only, 6-9 never trained on)."""
    first, second, third = _mean_square(0, 1, 2, 3), _mean_square(4, 5, 6, 7), _mean_square(8, 9)
    losses, warned = _epoch_losses(tk, 2, 2, 4)
    assert losses == pytest.approx([first, second, third, first])
    assert len(warned) == 1 and "epoch 3" in str(warned[0].message)  # 1 batch left for 2 steps
    losses, warned = _epoch_losses(tk, 2, 3, 3)
    assert losses == pytest.approx([_mean_square(0, 1, 2, 3, 4, 5), _mean_square(6, 7, 8, 9),
                                    _mean_square(0, 1, 2, 3, 4, 5)])
    losses, warned = _epoch_losses(tk, 4, 4, 2)  # more steps than batches: every epoch is one whole pass
    assert losses == pytest.approx([_mean_square(*range(10))] * 2) and len(warned) == 1


@pytest.mark.parametrize("batch_size, steps_per_epoch, epochs", STEPS_CASES)
def test_steps_per_epoch_takes_the_batches_keras_takes(real_keras, batch_size, steps_per_epoch, epochs):
    ours, theirs = (_epoch_losses(k, batch_size, steps_per_epoch, epochs)[0] for k in (tk, real_keras))
    assert ours == pytest.approx(theirs)


# ------------------------------------------------------------ input_shape with the batch axis

def _shapes(keras):
    """(input_shape, output_shape) of a Sequential from Input, one from input_shape=, a functional model,
    and a Sequential built with Keras' (None, 5)."""
    layers = keras.layers
    from_input = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(3)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras 3 warns about input_shape= on a layer
        from_argument = keras.Sequential([layers.Dense(3, input_shape=(4,))])
    inputs = keras.Input((4,))
    functional = keras.Model(inputs, layers.Dense(2)(layers.Dense(3)(inputs)))
    built = keras.Sequential([layers.Dense(3)])
    built.build((None, 5))
    return [(m.input_shape, m.output_shape) for m in (from_input, from_argument, functional, built)]


def test_input_shape_has_the_batch_axis():
    """Keras: model.input_shape is (None, 8, 8, 1), as output_shape is; here it left the batch axis out."""
    assert _shapes(tk) == [((None, 8, 8, 1), (None, 3)), ((None, 4), (None, 3)), ((None, 4), (None, 2)),
                           ((None, 5), (None, 3))]
    model = tk.Sequential([tk.Input((6, 6, 1)), tk.layers.Conv2D(2, 3), tk.layers.Flatten(), tk.layers.Dense(3)])
    assert model.layers[0].input_shape == (None, 6, 6, 1) and model.layers[2].input_shape == (None, 32)
    assert model.built_input_shape == (6, 6, 1)  # nn's form, without the batch axis, stays there


def test_input_shape_as_in_keras(real_keras):
    assert _shapes(tk) == _shapes(real_keras)


def test_input_shape_before_the_model_is_built_is_an_attribute_error():
    """As Keras: an unbuilt model has no input_shape (AttributeError), with a message saying what to do."""
    model = tk.Sequential([tk.layers.Dense(3)])
    with pytest.raises(AttributeError, match="not built yet"):
        model.input_shape
    model(numpy.zeros((2, 7), "float32"))
    assert model.input_shape == (None, 7)


def test_input_shape_survives_config_and_files(tmp_path):
    model = tk.Sequential([tk.Input((6, 6, 1)), tk.layers.Conv2D(2, 3), tk.layers.Flatten(), tk.layers.Dense(3)])
    again = tk.Sequential.from_config(model.get_config())
    assert again.input_shape == (None, 6, 6, 1) and again.output_shape == (None, 3)
    model.save(tmp_path / "m.keras")
    loaded = tk.models.load_model(tmp_path / "m.keras")
    assert loaded.input_shape == (None, 6, 6, 1)
    numpy.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])


# ------------------------------------------------------------ a functional model lists its InputLayer first

def _functional(keras):
    layers = keras.layers
    inputs = keras.Input((6, 6, 1))
    x = layers.Flatten()(layers.Conv2D(2, 3, activation="relu")(inputs))
    return keras.Model(inputs, layers.Dense(3, activation="softmax")(x))


def _listed(keras, tmp_path=None):
    """What a user reads off model.layers of a functional model, of a Sequential from Input/InputLayer, of
    a functional clone, and of a functional model after freezing all but its last layer by position."""
    model = _functional(keras)
    first = model.layers[0]
    sequentials = [keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]),
                   keras.Sequential([keras.layers.InputLayer(shape=(4,)), keras.layers.Dense(2)])]
    for layer in model.layers[:-1]:
        layer.trainable = False
    clone = keras.models.clone_model(model)
    return ([type(layer).__name__ for layer in model.layers], [layer.name for layer in model.layers[1:]],
            isinstance(first, keras.layers.InputLayer), first.get_weights(), first.count_params(),
            tuple(first.batch_shape), model.count_params(), [w.shape for w in model.get_weights()],
            (len(model.trainable_weights), len(model.non_trainable_weights)),
            [[type(layer).__name__ for layer in s.layers] for s in sequentials],
            [type(layer).__name__ for layer in clone.layers], model.get_layer(index=1).name)


def test_functional_model_lists_its_input_layer_first():
    """Keras lists a functional model's InputLayer first (model.layers[1] is the first Conv2D), a Sequential's
    not at all; here the functional model listed none, so model.layers[i] was Keras' model.layers[i + 1]."""
    names, rest, is_input, weights, count, batch_shape, total, shapes, split, sequentials, cloned, second = \
        _listed(tk, None)
    assert names == ["InputLayer", "Conv2D", "Flatten", "Dense"] and rest == ["conv2d", "flatten", "dense"]
    assert is_input and weights == [] and count == 0 and batch_shape == (None, 6, 6, 1)
    assert total == 2 * 9 + 2 + 32 * 3 + 3 and shapes == [(3, 3, 1, 2), (2,), (32, 3), (3,)]
    assert split == (2, 2)  # the Conv2D frozen through model.layers[:-1], the Dense not
    assert sequentials == [["Dense"], ["Dense"]] and cloned == names and second == "conv2d"


def test_functional_model_lists_layers_as_in_keras(real_keras):
    """Everything but the layers' names (Keras numbers them across models: conv2d_1, ...)."""
    ours, theirs = _listed(tk, None), _listed(real_keras, None)
    assert ours[:1] + ours[2:-1] == theirs[:1] + theirs[2:-1]
    assert theirs[-1] == theirs[1][0]  # get_layer(index=1) is the first layer after the InputLayer


def test_functional_model_with_its_input_layer_still_trains_saves_and_loads(tmp_path):
    model = _functional(tk)
    x = numpy.random.default_rng(0).normal(size=(8, 6, 6, 1)).astype("float32")
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(x, numpy.arange(8) % 3, epochs=1, verbose=0)
    model.save_weights(tmp_path / "f.weights.h5")
    again = _functional(tk)
    again.load_weights(tmp_path / "f.weights.h5")
    for a, b in zip(again.get_weights(), model.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    model.save(tmp_path / "f.keras")
    loaded = tk.models.load_model(tmp_path / "f.keras")
    assert isinstance(loaded, tk.Model) and [type(layer).__name__ for layer in loaded.layers][0] == "InputLayer"
    assert isinstance(tk.Sequential.from_config(model.get_config()), tk.Model)
    numpy.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    text = []
    model.summary(print_fn=text.append)
    assert "input_layer (InputLayer)" in text[0] and "(None, 6, 6, 1)" in text[0]
    with pytest.raises(ValueError, match=r"expects inputs of shape \(None, 6, 6, 1\)"):
        model(numpy.zeros((1, 5, 5, 1), "float32"))


def test_a_functional_checkpoint_saved_before_the_input_layer_was_listed_still_loads(tmp_path):
    """Saved weights are never lost: a functional model's .safetensors from before the InputLayer took
    position 0 names its layers one lower (layers.0.weight for today's layers.1.weight) and loads shifted;
    today's names load as they are, and a state that fits neither way is refused naming the keys."""
    from tinygrad_cnn.checkpoint import save_arrays
    model = _functional(tk)
    today = model.state_dict()
    assert sorted(today) == ["layers.1.bias", "layers.1.weight", "layers.3.bias", "layers.3.weight"]
    old = {name.replace("layers.1.", "layers.0.").replace("layers.3.", "layers.2."): value
           for name, value in today.items()}  # the names this model's weights had before
    save_arrays(str(tmp_path / "old.safetensors"), old)
    again = _functional(tk)
    again.load(str(tmp_path / "old.safetensors"))
    for name, value in again.state_dict().items():
        numpy.testing.assert_array_equal(value, today[name])
    again.load_state_dict(today)  # today's names: no shift
    with pytest.raises(ValueError, match="unexpected key 'layers.0.weight'"):
        again.load_state_dict({**old, "layers.9.weight": today["layers.1.weight"]})


def test_a_keras_functional_file_loads_as_a_functional_model(real_keras, tmp_path):
    """A functional .keras file written by Keras loads as a keras.Model here too, its InputLayer first."""
    theirs = _functional(real_keras)
    theirs.save(tmp_path / "theirs.keras")
    ours = tk.models.load_model(tmp_path / "theirs.keras")
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in theirs.layers]
    x = numpy.random.default_rng(0).normal(size=(4, 6, 6, 1)).astype("float32")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), _numpy(theirs.predict(x, verbose=0)), rtol=1e-5,
                                  atol=1e-6)


def test_a_functional_file_written_here_loads_in_keras_as_a_functional_model(real_keras, tmp_path):
    """Our functional chain is written as Keras' Functional config (it was written as a Sequential, which
    loads without the InputLayer, here and in Keras)."""
    ours = _functional(tk)
    ours.save(tmp_path / "ours.keras")
    theirs = real_keras.models.load_model(tmp_path / "ours.keras")
    assert [type(layer).__name__ for layer in theirs.layers] == [type(layer).__name__ for layer in ours.layers]
    x = numpy.random.default_rng(0).normal(size=(4, 6, 6, 1)).astype("float32")
    numpy.testing.assert_allclose(_numpy(theirs.predict(x, verbose=0)), ours.predict(x, verbose=0), rtol=1e-5,
                                  atol=1e-6)
