"""The Keras API tutorials use (issue 26): arrays into models and tf.nn functions, training=, keras.utils,
the functional keras.Model and subclassing, get_layer and the weight lists, metric objects, RMSprop
('rmsprop', Keras' default), fit/evaluate/predict over iterables of batches, summary() returning None,
and the declared input shape enforced as Keras does."""
import numpy as np
import pytest

import tinygrad_cnn as tf
from tinygrad_cnn import optim
from tests.conftest import DEVICES

keras = tf.keras


def data(n=48, shape=(8, 8, 1), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n,) + shape).astype("float32"), rng.integers(0, classes, n)


def small(shape=(8, 8, 1)):
    tf.random.set_seed(0)
    return keras.Sequential([keras.layers.Conv2D(4, 3, activation="relu", input_shape=shape),
                             keras.layers.MaxPooling2D(), keras.layers.Flatten(),
                             keras.layers.Dense(3, activation="softmax")])


# ---------------------------------------------------------------- arrays everywhere

def test_models_layers_and_tf_functions_take_arrays_and_lists():
    x, _ = data(4)
    model = small()
    out = model(x[:1])
    assert isinstance(out, tf.Tensor) and out.numpy().shape == (1, 3)
    np.testing.assert_allclose(model(x.astype("float64")).numpy(), model(tf.Tensor(x)).numpy(), rtol=1e-6)
    np.testing.assert_allclose(tf.nn.softmax(np.array([[0.0, np.log(3.0)]])).numpy(), [[0.25, 0.75]])
    np.testing.assert_allclose(tf.nn.relu([-1.0, 2.0]).numpy(), [0, 2])
    assert tf.argmax(np.array([[1, 5, 2], [7, 0, 1]]), axis=1).numpy().tolist() == [1, 0]
    assert keras.ops.argmax([[1.0, 3.0]], axis=-1).numpy().tolist() == [1]
    # Keras 3's default axis=None indexes the flattened input (it was the last axis here: [1, 0], silently)
    assert keras.ops.argmax([[1.0, 3.0], [5.0, 0.0]]).numpy().tolist() == 2
    assert keras.ops.argmin([[1.0, 3.0], [5.0, 0.0]]).numpy().tolist() == 3
    assert tf.convert_to_tensor([1.0, 2.0]).dtype == np.float32
    with pytest.raises(TypeError, match="sequential.*Tensor or an array, got dict"):
        model({"x": 1})


@pytest.mark.parametrize("device", DEVICES)
def test_arrays_go_to_the_layers_device(device):
    layer = keras.layers.Dense(2, device=device)
    out = layer(np.ones((3, 4)))  # NumPy, float64: to the layer's device, in its dtype (float32)
    assert out.device == tf.device.canonical_device(device) and out.dtype == np.float32
    on_device = tf.Tensor(np.ones((3, 4), "float32"), device=device).data  # a NumPy or (emulated) CuPy array
    np.testing.assert_array_equal(keras.layers.Dense(2, device="cpu")(on_device).numpy().shape, (3, 2))
    assert keras.layers.Dense(2)([[1.0, 2.0]]).shape == (1, 2)  # lists too


def test_training_argument_switches_the_mode_for_one_call():
    layer = keras.layers.Dropout(0.5)
    x = np.ones((4, 50), "float32")
    assert layer.training
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    model = keras.Sequential([keras.layers.Dense(50, input_shape=(50,)), layer])
    model.eval()
    dropped = model(x, training=True).numpy()
    assert (dropped == 0).any() and not model.training and not layer.training


def test_declared_input_shape_is_enforced_as_keras_does():
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3), keras.layers.MaxPooling2D(),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    # 9x9 would pass every layer (8 -> 6 -> 3 and 9 -> 7 -> 3): only the declared shape refuses it
    with pytest.raises(ValueError, match=r"expects inputs of shape \(None, 8, 8, 1\).*got \(2, 9, 9, 1\)"):
        model(np.zeros((2, 9, 9, 1), "float32"))
    model.compile(loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"\(None, 8, 8, 1\)"):
        model.fit(np.zeros((2, 9, 9, 1)), np.zeros(2), verbose=0)


# ---------------------------------------------------------------- keras.utils and tf.random

def test_utils_to_categorical_normalize_and_seeds():
    np.testing.assert_array_equal(keras.utils.to_categorical([0, 2, 1]), np.eye(3)[[0, 2, 1]])
    assert keras.utils.to_categorical(np.array([[1], [0]]), num_classes=4).shape == (2, 4)
    with pytest.raises(ValueError, match="class index 5 is out of range for num_classes=3"):
        keras.utils.to_categorical([5], 3)
    np.testing.assert_allclose(keras.utils.normalize(np.array([[3.0, 4.0], [0.0, 0.0]])), [[0.6, 0.8], [0, 0]])
    keras.utils.set_random_seed(3)
    a = small().get_weights()
    tf.random.set_seed(0)
    b = keras.layers.Dense(2)
    b.build((3,))
    assert not np.array_equal(a[0].ravel()[:6], b.weight.numpy().ravel())
    keras.utils.set_random_seed(3)
    np.testing.assert_array_equal(np.random.rand(2), np.random.RandomState(3).rand(2))


# ---------------------------------------------------------------- functional API and subclassing

def functional():
    tf.random.set_seed(1)
    inputs = keras.Input(shape=(8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return inputs, x, keras.Model(inputs=inputs, outputs=outputs)


def test_functional_model_trains_like_the_same_sequential():
    inputs, hidden, model = functional()
    assert hidden.shape == (None, 4)
    tf.random.set_seed(1)
    twin = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                             keras.layers.BatchNormalization(), keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(3, activation="softmax")])
    x, y = data()
    for m in (model, twin):
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    h1, h2 = (m.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0).history for m in (model, twin))
    assert h1 == h2
    np.testing.assert_array_equal(model.predict(x, verbose=0), twin.predict(x, verbose=0))
    assert model.get_layer("dense") is model.layers[-1] and model.get_layer(index=2).name == "batch_normalization"
    assert [t.shape for t in model.non_trainable_weights] == [(4,), (4,)]
    assert len(model.weights) == len(model.trainable_weights) + 2 == 8
    with pytest.raises(ValueError, match=r"no layer named 'nope'.*'conv2d'"):
        model.get_layer("nope")


def test_functional_limits_are_named():
    a, b = keras.Input((4,)), keras.Input((4,))
    with pytest.raises(NotImplementedError, match="several inputs"):
        keras.Model(inputs=[a, b], outputs=keras.layers.Dense(2)(a))
    shared = keras.layers.Dense(4)
    with pytest.raises(NotImplementedError, match="used twice"):
        keras.Model(a, shared(shared(a)))
    with pytest.raises(ValueError, match="not computed from these inputs"):
        keras.Model(a, keras.layers.Dense(2)(b))


def test_subclassed_model_fits():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(16, activation="relu")
            self.out = keras.layers.Dense(3)

        def call(self, x, training=False):
            return self.out(self.hidden(x))

    tf.random.set_seed(0)
    net = Net()
    net.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(shape=(6,))
    losses = net.fit(x, y, epochs=5, verbose=0).history["loss"]
    assert losses[-1] < losses[0] and net(x[:2]).shape == (2, 3)
    assert [layer.name for layer in (net.hidden, net.out)] == ["dense", "dense_1"]


# ---------------------------------------------------------------- metrics, optimizers

def test_metric_objects_standalone_and_in_compile():
    m = keras.metrics.SparseCategoricalAccuracy()
    m.update_state([1, 0], np.array([[0.1, 0.9], [0.2, 0.8]]))
    assert float(m.result()) == 0.5
    m.update_state(tf.Tensor(np.array([0])), np.array([[0.7, 0.3]]), sample_weight=[2.0])
    assert float(m.result()) == 0.75
    m.reset_state()
    assert float(m.result()) == 0.0
    mean = keras.metrics.Mean()
    mean.update_state([1.0, 2.0, 6.0])
    assert float(mean.result()) == 3.0
    x, y = data()
    model = small()
    model.compile(loss="sparse_categorical_crossentropy", metrics=[keras.metrics.SparseCategoricalAccuracy()])
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    expected = float(np.mean(model.predict(x, verbose=0).argmax(-1) == y))
    assert logs["sparse_categorical_accuracy"] == pytest.approx(expected)


def rmsprop_reference(p, grads, lr, alpha, eps, momentum, centered, eps_inside):
    sq, buf, avg = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for g in grads:
        sq = alpha * sq + (1 - alpha) * g * g
        denominator = sq
        if centered:
            avg = alpha * avg + (1 - alpha) * g
            denominator = sq - avg * avg
        denominator = np.sqrt(denominator + eps) if eps_inside else np.sqrt(denominator) + eps
        if momentum:
            buf = momentum * buf + g / denominator
            p = p - lr * buf
        else:
            p = p - lr * g / denominator
    return p


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("momentum,centered,eps_inside", [(0.0, False, False), (0.9, False, True), (0.5, True, False),
                                                          (0.0, True, True)])
def test_rmsprop_matches_its_formula(device, momentum, centered, eps_inside):
    rng = np.random.default_rng(0)
    start, grads = rng.standard_normal(7), [rng.standard_normal(7) * 10 ** -k for k in range(4)]
    p = tf.Tensor(start.copy(), device=device, requires_grad=True)
    opt = optim.RMSprop([p], lr=0.01, alpha=0.9, eps=1e-3, momentum=momentum, centered=centered, eps_inside=eps_inside)
    for g in grads:
        p.grad = tf.Tensor(g, device=device)
        opt.step()
    expected = rmsprop_reference(start, grads, 0.01, 0.9, 1e-3, momentum, centered, eps_inside)
    np.testing.assert_allclose(p.numpy(), expected, rtol=1e-12, atol=1e-14)
    restored = optim.RMSprop([tf.Tensor(start.copy(), requires_grad=True)], lr=0.01, alpha=0.9, eps=1e-3,
                             momentum=momentum, centered=centered, eps_inside=eps_inside)
    restored.load_state_dict(opt.state_dict())
    assert set(opt.state_dict()) == set(restored.state_dict())


def test_rmsprop_matches_torch():
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
    rng = np.random.default_rng(1)
    start, grads = rng.standard_normal(5), [rng.standard_normal(5) for _ in range(3)]
    theirs = torch.tensor(start.copy(), requires_grad=True)
    topt = torch.optim.RMSprop([theirs], lr=0.01, alpha=0.9, eps=1e-6, momentum=0.5, centered=True)
    ours = tf.Tensor(start.copy(), requires_grad=True)
    opt = optim.RMSprop([ours], lr=0.01, alpha=0.9, eps=1e-6, momentum=0.5, centered=True)
    for g in grads:
        theirs.grad, ours.grad = torch.tensor(g), tf.Tensor(g)
        topt.step()
        opt.step()
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-12)


def test_rmsprop_is_keras_default_and_by_name():
    model = small()
    model.compile(loss="sparse_categorical_crossentropy")
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)
    assert model.optimizer.learning_rate == 0.001 and model.optimizer.hyper["rho"] == 0.9
    model.fit(*data(), epochs=1, verbose=0)
    assert model.optimizer.optimizer.eps_inside and model.optimizer.optimizer.eps == 1e-7


# ---------------------------------------------------------------- fit on iterables

def test_fit_evaluate_predict_on_iterables_of_batches():
    x, y = data()
    arrays, batches = small(), small()
    for m in (arrays, batches):
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    pairs = [(x[i:i + 16], y[i:i + 16]) for i in range(0, len(x), 16)]
    h1 = arrays.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, validation_data=(x, y))
    h2 = batches.fit(pairs, epochs=2, verbose=0, validation_data=pairs)
    for key in h1.history:
        np.testing.assert_allclose(h2.history[key], h1.history[key], rtol=1e-6)
    assert batches.evaluate(iter(pairs), verbose=0) == pytest.approx(arrays.evaluate(x, y, verbose=0, batch_size=16))
    np.testing.assert_allclose(batches.predict((b[0] for b in pairs), verbose=0), arrays.predict(x, verbose=0),
                               rtol=1e-6)

    def endless():
        while True:
            yield x[:8], y[:8]
    assert len(batches.fit(endless(), epochs=3, steps_per_epoch=2, verbose=0).history["loss"]) == 3
    with pytest.warns(UserWarning, match="ran out at epoch 2"):
        assert len(batches.fit((p for p in pairs), epochs=3, verbose=0).history["loss"]) == 1
    with pytest.raises(ValueError, match="batch 0 must be a pair"):
        batches.fit(iter([x[:4]]), verbose=0)


def test_fit_on_a_data_loader():
    x, y = data()
    model = small()
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loader = tf.data.DataLoader(x, y, batch_size=16)
    history = model.fit(loader, epochs=2, verbose=0)
    assert len(history.history["accuracy"]) == 2


def test_rmsprop_and_batch_normalization_train_as_real_keras():
    """From real Keras' initial weights and the same batches, three RMSprop steps of a model with
    BatchNormalization end at the same weights and moving statistics (skipped without Keras 3 + torch)."""
    pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install keras)")
    if real.backend.backend() != "torch":
        pytest.skip("Keras runs on another backend; set KERAS_BACKEND=torch")
    x, y = data(n=48, shape=(6,))

    def layers(k):
        # NOTE: no bias before the normalisation: its true gradient is 0, and RMSprop would turn float32
        # rounding noise there into steps of the learning rate's size, different in each framework
        return [k.layers.Dense(8, activation="relu", use_bias=False), k.layers.BatchNormalization(),
                k.layers.Dense(3, activation="softmax")]
    real.utils.set_random_seed(0)
    theirs = real.Sequential([real.Input((6,))] + layers(real))
    theirs.compile(optimizer=real.optimizers.RMSprop(learning_rate=0.01), loss="sparse_categorical_crossentropy")
    ours = keras.Sequential([keras.Input((6,))] + layers(keras))
    ours.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.01), loss="sparse_categorical_crossentropy")
    ours.set_weights(theirs.get_weights())
    theirs.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    ours.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


def residual_model():
    tf.random.set_seed(2)
    L = keras.layers
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    y = L.BatchNormalization()(L.Conv2D(4, 3, padding="same")(x))
    x = L.Add()([x, y])
    h = L.Concatenate()([L.GlobalAveragePooling2D()(x), L.GlobalMaxPooling2D()(x)])
    return keras.Model(inputs, L.Dense(3, activation="softmax")(h))


def test_functional_model_with_branches_runs_its_graph_and_trains(capsys):
    model = residual_model()
    assert model.is_graph and [layer.name for layer in model.layers][-3:] == ["global_max_pooling2d", "concatenate",
                                                                             "dense"]
    x, y = data()
    model.eval()
    L = model.layers  # the graph by hand: (input), conv, conv, batch norm, add, two poolings, concatenate, dense
    a = L[1](L[0](x))
    b = L[4]([a, L[3](L[2](a))])
    expected = L[8](L[7]([L[5](b), L[6](b)]))
    np.testing.assert_allclose(model(x).numpy(), expected.numpy(), rtol=1e-6)
    np.testing.assert_allclose(model.logits(x).softmax(-1).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-7)
    model.train()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    losses = model.fit(x, y, epochs=8, batch_size=16, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    assert model.summary() is None and "add (Add)" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"expects inputs of shape \(None, 8, 8, 1\)"):
        model(np.zeros((1, 9, 9, 1), "float32"))
    with pytest.raises(ValueError, match="with branches.*not saved"):
        model.save("never.keras")
    from tinygrad_cnn import interop
    with pytest.raises(TypeError, match="with branches"):
        interop.torch_names(model)


# ---------------------------------------------------------------- fit with arrays: steps and validation as Keras 3

class _Counts(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.train_batches = self.test_batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.train_batches += 1

    def on_test_batch_end(self, batch, logs=None):
        self.test_batches += 1


def _compiled():
    model = small()
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_fit_with_arrays_runs_steps_per_epoch_batches_and_validation_steps():
    """As real Keras 3.15.1 (torch backend) with 64 samples and batch_size 16: steps_per_epoch=2 runs 2
    batches an epoch (History.params["steps"] 2), 10 runs the 4 there are with a warning, and
    validation_steps=2 evaluates 2 validation batches. Both were ignored with arrays (4 and 4 batches)."""
    x, y = data(64)
    model, counts = _compiled(), _Counts()
    history = model.fit(x, y, batch_size=16, epochs=2, steps_per_epoch=2, verbose=0, callbacks=[counts])
    assert counts.train_batches == 4 and history.params["steps"] == 2
    counts = _Counts()
    with pytest.warns(UserWarning, match="steps_per_epoch=10 is more than the 4 batches"):
        model.fit(x, y, batch_size=16, epochs=2, steps_per_epoch=10, verbose=0, callbacks=[counts])
    assert counts.train_batches == 8
    counts = _Counts()
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0, validation_data=(x, y), validation_steps=2,
                        callbacks=[counts])
    assert counts.test_batches == 2
    np.testing.assert_allclose(history.history["val_loss"][0], model.evaluate(x[:32], y[:32], batch_size=16, verbose=0)[0],
                               rtol=1e-6)


def test_fit_with_arrays_takes_an_iterable_of_batches_as_validation_data():
    """Keras 3 takes a dataset or generator as validation_data beside array x; here it was refused
    ("validation_data must be a pair"). The validation figures are evaluate()'s over the same batches."""
    x, y = data(64)
    model, counts = _compiled(), _Counts()

    def batches():
        for i in range(0, 64, 32):
            yield x[i:i + 32], y[i:i + 32]

    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0, validation_data=batches(), callbacks=[counts])
    assert counts.test_batches == 2 and {"val_loss", "val_accuracy"} <= set(history.history)
    expected = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    np.testing.assert_allclose(history.history["val_loss"][0], expected["loss"], rtol=1e-6)
    np.testing.assert_allclose(history.history["val_accuracy"][0], expected["accuracy"], rtol=1e-6)
    with pytest.raises(ValueError, match="validation_data must be a pair"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y, y, y))
