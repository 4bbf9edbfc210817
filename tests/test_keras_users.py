"""Keras users' everyday code, run on tinygrad_cnn.keras and (where installed) on real Keras 3 (torch
backend) to compare: what a keras.io-style snippet does must not silently differ here."""
import numpy
import pytest

import tinygrad_cnn.keras as tk


def _data(n=64, features=6, classes=3, seed=0):
    rng = numpy.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype("float32"), rng.integers(0, classes, n)


def _model(keras):
    layers = keras.layers
    return keras.Sequential([keras.Input((6,)), layers.Dense(8, activation="relu"), layers.Dropout(0.5),
                             layers.BatchNormalization(), layers.Dense(3, activation="softmax")])


def _numpy(out):
    return out.detach().cpu().numpy() if hasattr(out, "detach") else out.numpy()


def _call_is_inference(keras):
    """(model(x) repeatable, model(x) == predict(x), BatchNormalization's moving mean untouched by model(x))
    after one epoch of fit(), the way a user checks a trained model by calling it."""
    x, y = _data()
    keras.utils.set_random_seed(1)
    model = _model(keras)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    moving_mean = _numpy(model.layers[2].moving_mean).copy()
    first, second = _numpy(model(x[:8])), _numpy(model(x[:8]))
    return (numpy.allclose(first, second), numpy.allclose(first, model.predict(x[:8], verbose=0), atol=1e-5),
            numpy.array_equal(moving_mean, _numpy(model.layers[2].moving_mean)))


def test_calling_a_model_runs_inference_as_in_keras(real_keras):
    """Keras: model(x) without training= is inference (no dropout, moving statistics, nothing updated),
    also right after fit(); here it ran in the training mode fit() left: random outputs, and each call
    moved BatchNormalization's moving mean."""
    assert _call_is_inference(real_keras) == (True, True, True)
    assert _call_is_inference(tk) == (True, True, True)


def test_calling_a_model_with_training_true_still_trains_mode():
    x, _ = _data()
    model = _model(tk)
    model.build((6,))
    a, b = model(x, training=True).numpy(), model(x, training=True).numpy()
    assert not numpy.allclose(a, b)  # dropout is on when asked for
    assert numpy.allclose(model(x).numpy(), model(x).numpy())


def test_freezing_a_layer_keeps_its_weights_as_in_keras(real_keras):
    """Keras: layer.trainable = False freezes its weights (fit leaves them as they are). Here setting it
    was first a plain attribute nobody read (the 'frozen' layer went on training), then refused; now it
    freezes (tests/test_keras_habits.py compares the details with Keras)."""
    x, y = _data()
    for keras in (real_keras, tk):
        model = _model(keras)
        model.layers[0].trainable = False
        model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        before = [w.copy() for w in model.get_weights()]
        model.fit(x, y, epochs=1, verbose=0)
        changed = [not numpy.array_equal(a, b) for a, b in zip(before, model.get_weights())]
        assert changed[:2] == [False, False] and all(changed[2:4]), (keras.__name__, changed)
    with pytest.raises(TypeError, match="trainable must be True or False"):
        tk.layers.Dense(3).trainable = 0


def _plateau_rates(keras, **kwargs):
    """The learning rate logged each epoch when `loss` never improves by min_delta=10 after the first epoch."""
    x, y = _data()
    keras.utils.set_random_seed(0)
    model = _model(keras)
    model.compile(keras.optimizers.SGD(learning_rate=0.1), "sparse_categorical_crossentropy")
    reduce = keras.callbacks.ReduceLROnPlateau(monitor="loss", min_delta=10.0, **kwargs)
    history = model.fit(x, y, epochs=8, batch_size=32, verbose=0, callbacks=[reduce])
    return sorted(history.history), history.history["learning_rate"]


def test_reduce_lr_on_plateau_as_keras(real_keras):
    """ReduceLROnPlateau (keras.io's usual callback) was missing: AttributeError. The rates it sets, with
    patience, cooldown and min_lr, and the 'learning_rate' log key follow real Keras."""
    kwargs = dict(factor=0.5, patience=1, cooldown=1, min_lr=0.02)
    keys, rates = _plateau_rates(tk, **kwargs)
    real_keys, real_rates = _plateau_rates(real_keras, **kwargs)
    assert keys == real_keys == ["learning_rate", "loss"]
    assert rates == pytest.approx(real_rates, rel=1e-6)
    # by hand: epoch 0 sets best; each later epoch fails, reduces (patience 1) and starts a cooldown of one
    # epoch, which ends at the start of the next epoch's check, so each epoch reduces until min_lr
    assert rates == pytest.approx([0.1, 0.1, 0.05, 0.025, 0.02, 0.02, 0.02, 0.02])
    kwargs = dict(factor=0.2, patience=2, mode="min")
    assert _plateau_rates(tk, **kwargs)[1] == pytest.approx(_plateau_rates(real_keras, **kwargs)[1], rel=1e-6)
    with pytest.raises(ValueError, match="factor"):
        tk.callbacks.ReduceLROnPlateau(factor=1.0)


def _saved_and_loaded(keras, path, tmp_path):
    """keras.io's checkpoint round trip: fit with ModelCheckpoint(save_best_only=True), load_model the file,
    evaluate. Returns (the loaded model's optimizer class and learning rate, its evaluate dict)."""
    x, y = _data()
    keras.utils.set_random_seed(0)
    model = _model(keras)
    model.compile(keras.optimizers.Adam(learning_rate=0.005), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, validation_split=0.25, verbose=0,
              callbacks=[keras.callbacks.ModelCheckpoint(str(path), save_best_only=True)])
    loaded = keras.models.load_model(str(path))
    rate = float(numpy.asarray(loaded.optimizer.learning_rate))
    return (type(loaded.optimizer).__name__, rate), loaded.evaluate(x, y, verbose=0, return_dict=True)


def test_load_model_comes_back_compiled(real_keras, tmp_path):
    """Keras' load_model returns the model compiled as saved (optimizer, loss, metrics), so evaluate() works
    on it at once; here the .keras file held no compile_config, and evaluate() raised 'call model.compile'."""
    real_optimizer, real_logs = _saved_and_loaded(real_keras, tmp_path / "real.keras", tmp_path)
    optimizer, logs = _saved_and_loaded(tk, tmp_path / "best.keras", tmp_path)
    assert real_optimizer[0] == optimizer[0] == "Adam" and optimizer[1] == pytest.approx(real_optimizer[1]) == 0.005
    assert sorted(logs) == sorted(real_logs) == ["accuracy", "loss"]
    # real Keras reads this file compiled too, and evaluates the same weights to the same loss
    again = real_keras.models.load_model(str(tmp_path / "best.keras"))
    assert type(again.optimizer).__name__ == "Adam"
    x, y = _data()
    assert again.evaluate(x, y, verbose=0, return_dict=True)["loss"] == pytest.approx(logs["loss"], rel=1e-4)


@pytest.mark.parametrize("make", [lambda k: k.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
                                  lambda k: k.optimizers.RMSprop(learning_rate=0.002, rho=0.8, centered=True),
                                  lambda k: k.optimizers.Adam(beta_1=0.8, beta_2=0.99, epsilon=1e-5)])
def test_load_model_keeps_the_optimizers_settings(real_keras, tmp_path, make):
    """Both ways (a file written here, one written by Keras), the loaded optimizer has the saved momentum,
    betas, rho..., not only the learning rate: a resumed fit steps as the saved one would."""
    x, y = _data()
    for keras in (tk, real_keras):
        model = _model(keras)
        model.compile(make(keras), "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=1, verbose=0)
        model.save(str(tmp_path / "m.keras"))
        loaded = tk.models.load_model(str(tmp_path / "m.keras")).optimizer
        expected = make(tk)
        assert type(loaded) is type(expected) and loaded.hyper == expected.hyper
        assert loaded.learning_rate == pytest.approx(expected.learning_rate)


@pytest.mark.parametrize("name, labels", [("categorical_crossentropy", "onehot"),
                                          ("sparse_categorical_crossentropy", "index"),
                                          ("mean_squared_error", "onehot")])
def test_loss_functions_as_keras(real_keras, name, labels):
    """Keras' function form, `loss=keras.losses.categorical_crossentropy` (the classic MNIST example), and
    its direct call, one loss per sample, were missing (AttributeError); fit's loss is the named loss's."""
    x, y = _data()
    target = tk.utils.to_categorical(y, 3) if labels == "onehot" else y
    probabilities = numpy.random.default_rng(1).dirichlet(numpy.ones(3), size=5).astype("float32")
    mine = getattr(tk.losses, name)(target[:5], probabilities)
    theirs = getattr(real_keras.losses, name)(target[:5], probabilities)
    assert mine.shape == (5,) and mine.numpy() == pytest.approx(_numpy(theirs), rel=1e-5)
    logs = []
    for keras in (tk, real_keras):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
        model.compile(keras.optimizers.SGD(0.1), loss=getattr(keras.losses, name))
        model.set_weights([numpy.full((6, 3), 0.1, "float32"), numpy.zeros(3, "float32")])
        logs.append(model.evaluate(x, target, verbose=0, return_dict=True))
    assert sorted(logs[0]) == sorted(logs[1]) == ["loss"]
    assert logs[0]["loss"] == pytest.approx(logs[1]["loss"], rel=1e-5)


def test_binary_crossentropy_function_as_keras(real_keras):
    rng = numpy.random.default_rng(2)
    target, probabilities = rng.integers(0, 2, (5, 4)).astype("float32"), rng.uniform(0.01, 0.99, (5, 4)).astype("float32")
    mine = tk.losses.binary_crossentropy(target, probabilities)
    assert mine.numpy() == pytest.approx(_numpy(real_keras.losses.binary_crossentropy(target, probabilities)), rel=1e-5)
    assert tk.losses.binary_crossentropy(target, numpy.log(probabilities / (1 - probabilities)), from_logits=True) \
        .numpy() == pytest.approx(mine.numpy(), rel=1e-4)


def test_layer_weights_and_pop_as_keras(real_keras):
    """model.layers[i].get_weights()/set_weights() (Keras' order: kernel, bias; gamma, beta, moving mean,
    moving variance) and Sequential.pop() were missing here (AttributeError)."""
    shapes = {}
    for keras in (tk, real_keras):
        model = _model(keras)
        shapes[keras] = [[w.shape for w in layer.get_weights()] for layer in model.layers]
        removed = model.pop()
        assert removed.name.startswith("dense") and len(model.layers) == 3
        assert model.predict(_data()[0][:5], verbose=0).shape == (5, 8)
        assert len(model.get_weights()) == 6
    # Keras' layouts both sides: a dense kernel is (inputs, units)
    assert shapes[tk] == shapes[real_keras] == [[(6, 8), (8,)], [], [(8,)] * 4, [(8, 3), (3,)]]
    model = _model(tk)
    dense = model.layers[0]
    dense.set_weights([numpy.ones((6, 8), "float32"), numpy.zeros(8, "float32")])
    assert (dense.get_weights()[0] == 1).all() and model.get_weights()[0].sum() == 48
    with pytest.raises(ValueError, match="2 weight arrays"):
        dense.set_weights([numpy.ones((6, 8), "float32")])
    with pytest.raises(ValueError, match=r"got shape \(8, 6\), expected \(6, 8\) in Keras' layout \(inputs, units\)"):
        dense.set_weights([numpy.ones((8, 6), "float32"), numpy.zeros(8, "float32")])
    while model.layers:
        model.pop()
    with pytest.raises(TypeError, match="no layers"):
        model.pop()


def _standalone(keras):
    """keras.io's Dropout/BatchNormalization demo: a layer called on its own, without and with training=."""
    data = numpy.random.default_rng(3).normal(3.0, 2.0, (16, 4)).astype("float32")
    dropout, norm = keras.layers.Dropout(0.5), keras.layers.BatchNormalization()
    unchanged = numpy.allclose(_numpy(dropout(data)), data)
    dropped = numpy.mean(_numpy(dropout(data, training=True)) == 0) > 0.2
    inference = _numpy(norm(data))
    moving = _numpy(norm.moving_mean).copy()
    batch_stats = _numpy(norm(data, training=True))
    return (unchanged, dropped, numpy.allclose(inference, data / numpy.sqrt(1 + 1e-3), atol=1e-5),
            bool(numpy.all(moving == 0)), abs(float(batch_stats.mean())) < 1e-4,
            bool(numpy.all(_numpy(norm.moving_mean) > 0)))


def test_a_layer_called_alone_runs_inference_as_in_keras(real_keras):
    """Keras: a layer called without training= is in inference mode (Dropout the identity, BatchNormalization
    with its moving statistics, which the call leaves alone); here a new layer was in training mode."""
    assert _standalone(real_keras) == (True,) * 6
    assert _standalone(tk) == (True,) * 6


@pytest.mark.parametrize("case", ["sgd-split", "adam-onehot-initial-epoch", "rmsprop", "sgd-name-uneven"])
def test_fit_history_evaluate_predict_match_keras(real_keras, case):
    """From the same weights, with shuffle=False: History (keys, order, epochs, values), evaluate(return_dict=True)
    and predict(batch_size=) agree with real Keras to float32 rounding (measured <= 1e-6 apart)."""
    x, y = _data(70)
    rng = numpy.random.default_rng(5)
    first, second = (rng.normal(size=shape).astype("float32") * 0.3 for shape in ((6, 8), (8, 3)))
    onehot = tk.utils.to_categorical(y, 3)
    optimizer, loss, target, settings = {
        "sgd-split": (lambda k: k.optimizers.SGD(0.1), "sparse_categorical_crossentropy", y,
                      dict(epochs=3, batch_size=16, validation_split=0.25)),
        "adam-onehot-initial-epoch": (lambda k: k.optimizers.Adam(0.01), "categorical_crossentropy", onehot,
                                      dict(epochs=4, initial_epoch=1, batch_size=10, validation_data=(x[:20], onehot[:20]))),
        "rmsprop": (lambda k: k.optimizers.RMSprop(0.01), "sparse_categorical_crossentropy", y, dict(epochs=2)),
        "sgd-name-uneven": (lambda k: "sgd", "sparse_categorical_crossentropy", y,
                            dict(epochs=2, batch_size=7, validation_split=0.1))}[case]
    results = []
    for keras in (tk, real_keras):
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])
        model.set_weights([first, numpy.zeros(8, "float32"), second, numpy.zeros(3, "float32")])
        model.compile(optimizer=optimizer(keras), loss=loss, metrics=["accuracy"])
        history = model.fit(x, target, verbose=0, shuffle=False, **settings)
        results.append((history.history, history.epoch, model.evaluate(x, target, verbose=0, return_dict=True, batch_size=9),
                        model.predict(x[:5], verbose=0, batch_size=2)))
    (history, epochs, logs, predicted), (real_history, real_epochs, real_logs, real_predicted) = results
    assert list(history) == list(real_history) and epochs == real_epochs
    for key in history:
        assert all(isinstance(v, float) for v in history[key])
        assert history[key] == pytest.approx(real_history[key], abs=1e-5)
    assert logs == pytest.approx(real_logs, abs=1e-5)
    assert predicted.dtype == real_predicted.dtype and predicted == pytest.approx(real_predicted, abs=1e-5)


def _stopping(keras, tmp_path, settings):
    """EarlyStopping and ModelCheckpoint(save_best_only) over a scripted monitored value."""
    scores = [5, 4, 4.5, 3, 3.5, 3.6, 3.7, 2, 1, 1]

    class Script(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["score"], logs["val_score"] = scores[epoch], -scores[epoch]

    x, y = _data(32)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    stop = keras.callbacks.EarlyStopping(**settings)
    folder = tmp_path / keras.__name__
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    save = keras.callbacks.ModelCheckpoint(str(folder / "m-{epoch:02d}.keras"), monitor="val_score", mode="max",
                                           save_best_only=True)
    history = model.fit(x, y, epochs=len(scores), verbose=0, callbacks=[Script(), stop, save])
    return history.epoch, stop.stopped_epoch, stop.best_epoch, stop.wait, sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("settings", [dict(patience=0), dict(patience=2, restore_best_weights=True),
                                      dict(patience=1, min_delta=0.6), dict(patience=2, baseline=3.2),
                                      dict(patience=1, start_from_epoch=3), dict(patience=2, mode="max")])
def test_early_stopping_and_best_checkpoints_as_keras(real_keras, tmp_path, settings):
    """The epochs run, stopped_epoch, best_epoch, wait and the checkpoints written match Keras 3.15.1."""
    settings = {"monitor": "score", "mode": "min", **settings}
    assert _stopping(tk, tmp_path, settings) == _stopping(real_keras, tmp_path, settings)


def test_mode_auto_refuses_a_value_of_unknown_direction(real_keras, tmp_path):
    """Keras cannot tell whether an unknown logged value ('val_f1', a callback's) should grow or shrink and
    asks for mode=; here mode='auto' silently took 'min', so a growing score stopped training early."""
    with pytest.raises(ValueError, match="mode"):
        _stopping(real_keras, tmp_path, dict(monitor="score", patience=1))
    for make in (lambda: tk.callbacks.EarlyStopping(monitor="score"),
                 lambda: tk.callbacks.ModelCheckpoint(str(tmp_path / "m.keras"), monitor="val_f1"),
                 lambda: tk.callbacks.ReduceLROnPlateau(monitor="f1")):
        with pytest.raises(ValueError, match="mode='max'"):
            make()
    for monitor in ("val_loss", "loss", "accuracy", "val_sparse_categorical_accuracy", "val_acc"):
        tk.callbacks.EarlyStopping(monitor=monitor)


def test_a_model_call_in_one_thread_leaves_another_threads_lone_layers_in_inference():
    """The count of keras model calls under way is per thread (as grad mode): while one thread is inside
    a model call, a Dropout called alone in another thread still runs in inference mode. With one
    process-wide count, that Dropout zeroed about half of x."""
    import threading
    inside, done = threading.Event(), threading.Event()

    class Waits(tk.layers.ReLU):
        def forward(self, x):
            inside.set()
            done.wait(10)
            return super().forward(x)

    model = tk.Sequential([tk.Input((6,)), Waits()])
    worker = threading.Thread(target=lambda: model(numpy.ones((2, 6), "float32")))
    worker.start()
    try:
        assert inside.wait(10)
        x = numpy.ones((200, 6), "float32")
        out = tk.layers.Dropout(0.5)(x)
    finally:
        done.set()
        worker.join()
    numpy.testing.assert_array_equal(_numpy(out), x)


def _conv_model(keras, square=False):
    """A small channels-last CNN: Conv2D, MaxPooling2D, Flatten, Dense (8 -> 8 when `square`), Dense."""
    layers = keras.layers
    return keras.Sequential([keras.Input((6, 6, 2)), layers.Conv2D(4, (3, 3), padding="same", activation="relu"),
                             layers.MaxPooling2D(), layers.Flatten(), layers.Dense(8, activation="relu"),
                             layers.Dense(8, activation="relu") if square else layers.Dense(8),
                             layers.Dense(3, activation="softmax")])


@pytest.mark.parametrize("direction", ["keras-to-ours", "ours-to-keras"])
def test_weights_move_between_real_keras_and_ours_as_they_are(real_keras, direction):
    """Keras users copy weights with model.set_weights(other.get_weights()) and layer.set_weights([kernel,
    bias]). Here get_weights gave the project's layouts (a conv kernel (filters, channels, KH, KW), a dense
    kernel (units, inputs)): Keras' arrays failed on shape, and a square dense kernel (8 x 8 here) loaded
    transposed without a word, so the model computed something else. Now both speak Keras' layouts."""
    real_keras.utils.set_random_seed(3)
    tk.utils.set_random_seed(4)
    theirs, ours = _conv_model(real_keras, square=True), _conv_model(tk, square=True)
    source, target = (theirs, ours) if direction == "keras-to-ours" else (ours, theirs)
    target.set_weights(source.get_weights())
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, _numpy(b) if hasattr(b, "numpy") else b)
    x = numpy.random.default_rng(5).normal(size=(7, 6, 6, 2)).astype("float32")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    for mine, real in zip(ours.layers, theirs.layers):  # layer by layer too
        mine.set_weights(real.get_weights())
        assert all(numpy.array_equal(a, b) for a, b in zip(mine.get_weights(), real.get_weights()))


def test_set_weights_names_a_kernel_in_the_projects_own_layout():
    model = _conv_model(tk)
    model.build((6, 6, 2))
    weights = model.get_weights()
    assert weights[0].shape == (3, 3, 2, 4) and weights[2].shape == (18 * 2, 8)
    conv = model.layers[0]
    with pytest.raises(ValueError, match=r"weight': got shape \(4, 2, 3, 3\), expected \(3, 3, 2, 4\) in Keras' "
                                         r"layout \(KH, KW, channels, filters\)"):
        conv.set_weights([conv.weight.numpy(), conv.bias.numpy()])
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=r"got shape \(8, 36\), expected \(36, 8\)"):
        model.set_weights([w.T if w.ndim == 2 and w.shape == (36, 8) else w for w in weights])
    assert all(numpy.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # nothing was written


@pytest.mark.gpu
def test_set_weights_takes_cupy_arrays():
    """set_weights of CuPy arrays (a model on the GPU, its weights moved there by hand): load_state_dict took
    them (device.to_numpy), but set_weights' layout check called numpy.asarray on them first, which CuPy
    refuses ("Implicit conversion to a NumPy array is not allowed")."""
    import cupy
    model = _conv_model(tk)
    model.build((6, 6, 2))
    weights = model.get_weights()
    model.set_weights([w * 2 for w in weights])
    model.set_weights([cupy.asarray(w) for w in weights])
    assert all(numpy.array_equal(a, b) for a, b in zip(model.get_weights(), weights))
    conv = model.layers[0]
    conv.set_weights([cupy.asarray(w) for w in weights[:2]])
    assert all(numpy.array_equal(a, b) for a, b in zip(conv.get_weights(), weights[:2]))


def test_set_weights_of_a_functional_model_with_branches_before_its_first_call():
    """A functional model with branches (merged by Add) is built from its Input, but its Add layer said it
    'could still make weights' until called (its class overrides build), so load_state_dict, and set_weights
    with it, refused the model as not built: set_weights(other.get_weights()) failed on a new model."""
    def branched(seed):
        tk.utils.set_random_seed(seed)
        inputs = tk.Input((4, 4, 2))
        merged = tk.layers.Add()([tk.layers.Conv2D(3, 3, padding="same")(inputs), tk.layers.Conv2D(3, 1)(inputs)])
        return tk.Model(inputs, tk.layers.Dense(5)(tk.layers.Flatten()(merged)))

    source, target = branched(1), branched(2)
    target.set_weights(source.get_weights())
    x = numpy.random.default_rng(0).normal(size=(3, 4, 4, 2)).astype("float32")
    numpy.testing.assert_array_equal(target.predict(x, verbose=0), source.predict(x, verbose=0))
