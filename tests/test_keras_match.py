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
