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


# ------------------------------------------------------------ Precision, Recall, F1Score

def _confusion_run(keras):
    """Precision and Recall (by name, per threshold, top_k, class_id) and F1Score (per class, macro, weighted,
    micro with a threshold) through fit and a sample-weighted evaluate, on fixed weights and random data."""
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(20, 4)).astype("float32")
    y = rng.integers(0, 2, size=(20, 1)).astype("float32")
    binary = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    binary.set_weights([numpy.linspace(-1, 1, 4).reshape(4, 1).astype("float32"), numpy.zeros(1, "float32")])
    binary.compile(keras.optimizers.SGD(0.1), "binary_crossentropy",
                   metrics=["precision", "recall", keras.metrics.Precision(thresholds=[0.3, 0.6], name="pt"),
                            keras.metrics.Recall(thresholds=0.4, name="r4")])
    first = binary.fit(x, y, epochs=2, verbose=0, batch_size=8, shuffle=False, validation_data=(x[:10], y[:10]))
    onehot = keras.utils.to_categorical(rng.integers(0, 3, size=20), 3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.set_weights([numpy.linspace(-1, 1, 12).reshape(4, 3).astype("float32"), numpy.zeros(3, "float32")])
    metrics = keras.metrics
    model.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy",
                  metrics=[metrics.F1Score(), metrics.F1Score(average="macro", name="f1m"),
                           metrics.F1Score(average="weighted", name="f1w"),
                           metrics.F1Score(average="micro", threshold=0.3, name="f1u"),
                           metrics.Precision(top_k=2, name="p2"), metrics.Recall(class_id=2, name="r2")])
    second = model.fit(x, onehot, epochs=2, verbose=0, batch_size=8, shuffle=False)
    weighted = model.evaluate(x, onehot, verbose=0, return_dict=True, sample_weight=numpy.linspace(0, 1, 20))
    alone = metrics.Precision()
    alone.update_state([0, 1, 1, 1], [1.0, 0.2, 0.7, 0.9], sample_weight=[1.0, 1.0, 2.0, 0.5])
    return [{key: numpy.round(numpy.asarray(value, dtype="float64"), 5).tolist() for key, value in logs.items()}
            for logs in (first.history, second.history, weighted)] + [round(float(_numpy(alone.result())), 5)]


def test_precision_recall_f1():
    """Counts over the whole epoch (not batch means); a list of thresholds or average=None gives one value
    each, logged as arrays as Keras logs them. Keras' values (see the side-by-side test)."""
    first, second, weighted, alone = _confusion_run(tk)
    assert first["precision"] == [0.76923] * 2 and first["recall"] == [0.83333] * 2
    assert first["pt"] == [[0.6875, 0.81818]] * 2 and first["r4"] == [0.91667] * 2
    assert sorted(first) == ["loss", "precision", "pt", "r4", "recall", "val_loss", "val_precision", "val_pt",
                             "val_r4", "val_recall"]
    assert second["f1_score"] == [[0.14286, 0.0, 0.38095], [0.30769, 0.0, 0.38095]]
    assert second["f1m"] == [0.1746, 0.22955] and second["f1w"] == [0.20238, 0.26007]
    assert first["val_precision"] == [0.57143] * 2 and first["val_pt"] == [[0.55556, 0.66667]] * 2
    assert second["f1u"] == [0.33898, 0.39344] and second["p2"] == [0.25, 0.3] and second["r2"] == [0.125, 0.0]
    assert weighted["f1_score"] == [0.5, 0.28571, 0.35294] and weighted["f1m"] == 0.37955
    assert weighted["f1w"] == 0.38761 and weighted["p2"] == 0.375
    assert alone == round(2.5 / 3.5, 5)  # weights 2 + 0.5 of hits over 1 + 2 + 0.5 predicted


def test_precision_recall_f1_as_in_keras(real_keras):
    ours, theirs = _confusion_run(tk), _confusion_run(real_keras)
    for a, b in zip(ours[:3], theirs[:3]):
        assert a.keys() == b.keys()
        for key in a:
            assert numpy.allclose(a[key], b[key], atol=2e-5), key
    assert ours[3] == pytest.approx(theirs[3], abs=1e-5)


def test_confusion_metrics_save_and_progress(tmp_path, capsys):
    """A .keras file keeps their settings (loaded back compiled with them); the progress line shows a
    per-class F1 as its mean, as Keras' bar does."""
    pytest.importorskip("h5py")
    model = tk.Sequential([tk.Input((4,)), tk.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy", metrics=[tk.metrics.Precision(top_k=2, name="p2"),
                                                              tk.metrics.F1Score(average="macro"), "recall"])
    path = str(tmp_path / "m.keras")
    model.save(path)
    again = tk.models.load_model(path)
    x = numpy.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    y = numpy.eye(3, dtype="float32")[[0, 1, 2, 0, 1, 2]]
    assert again.evaluate(x, y, verbose=0, return_dict=True) == model.evaluate(x, y, verbose=0, return_dict=True)
    model.compile("sgd", "categorical_crossentropy", metrics=[tk.metrics.F1Score()])
    model.fit(x, y, epochs=1, verbose=2)
    f1 = model.evaluate(x, y, verbose=0, return_dict=True)["f1_score"]
    assert f1.shape == (3,) and "f1_score: " in capsys.readouterr().out


def test_confusion_metric_mistakes_are_named():
    with pytest.raises(ValueError, match=r"Threshold values must be in \[0, 1\]"):
        tk.metrics.Precision(thresholds=1.5)
    with pytest.raises(ValueError, match="top_k must be an int >= 1"):
        tk.metrics.Recall(top_k=0)
    with pytest.raises(ValueError, match="class_id=5 needs y_pred of shape"):
        tk.metrics.Recall(class_id=5).update_state(numpy.eye(3), numpy.eye(3))
    with pytest.raises(ValueError, match="does not match y_pred"):
        tk.metrics.Precision().update_state(numpy.array([0, 2, 1]), numpy.eye(3))
    with pytest.raises(ValueError, match="Invalid `average`"):
        tk.metrics.F1Score(average="mean")
    with pytest.raises(ValueError, match="FBetaScore expects 2D inputs"):
        tk.metrics.F1Score().update_state(numpy.ones(3), numpy.ones(3))


def _names_after_clear(keras):
    keras.metrics.Precision()
    keras.metrics.Precision()
    keras.backend.clear_session()
    return keras.metrics.Precision().name, keras.metrics.Precision().name


def test_clear_session_starts_metric_names_afresh():
    assert _names_after_clear(tk) == ("precision", "precision_1")


def test_clear_session_as_in_keras(real_keras):
    assert _names_after_clear(tk) == _names_after_clear(real_keras)


def _csv_row(keras, path):
    x = numpy.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    y = numpy.eye(3, dtype="float32")[[0, 1, 2, 0, 1, 2]]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.set_weights([numpy.linspace(-1, 1, 12).reshape(4, 3).astype("float32"), numpy.zeros(3, "float32")])
    model.compile("sgd", "categorical_crossentropy", metrics=[keras.metrics.F1Score()])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[keras.callbacks.CSVLogger(path)])
    with open(path) as f:
        return f.read().splitlines()[1].split(",1.09")[0]


def test_csv_logger_writes_a_per_class_metric_as_keras(tmp_path):
    assert _csv_row(tk, str(tmp_path / "t.csv")) == '0,"""[0.49999994, 0.0, 0.33333328]"""'


def test_csv_logger_per_class_as_in_keras(tmp_path, real_keras):
    assert _csv_row(tk, str(tmp_path / "t.csv")) == _csv_row(real_keras, str(tmp_path / "k.csv"))


# ------------------------------------------------------------ AUC

def _reference_auc(y_true, y_pred, weights=None, thresholds=None, curve="ROC", method="interpolation", n=200):
    """The AUC from its definition, in float64: confusion matrices at the thresholds (evenly spaced in [0, 1] or
    the given ones, with -1e-7 and 1 + 1e-7 at the ends; y_pred > threshold is a positive), then a Riemann sum;
    PR with interpolation integrates precision numerically along the straight line between two thresholds'
    (tp, tp + fp), which Keras (after Davis & Goadrich) does in closed form."""
    y, p = numpy.asarray(y_true, "float64").reshape(-1) != 0, numpy.asarray(y_pred, "float64").reshape(-1)
    w = numpy.ones_like(p) if weights is None else numpy.broadcast_to(numpy.asarray(weights, "float64"), p.shape)
    inner = numpy.arange(1, n - 1) / (n - 1) if thresholds is None else numpy.sort(numpy.asarray(thresholds, "float64"))
    cuts = numpy.concatenate([[-1e-7], inner, [1 + 1e-7]])
    positive = p[None, :] > cuts[:, None]
    tp, fp = (positive * y * w).sum(1), (positive * ~y * w).sum(1)
    fn, tn = (y * w).sum() - tp, (~y * w).sum() - fp
    if curve == "PR" and method == "interpolation":
        s = (numpy.arange(4000) + 0.5) / 4000  # midpoints along each step, from threshold i + 1 (s = 0) to i (s = 1)
        area = 0.0
        for i in range(len(cuts) - 1):
            if tp[i] > tp[i + 1]:
                tps = tp[i + 1] + s * (tp[i] - tp[i + 1])
                ps = tp[i + 1] + fp[i + 1] + s * (tp[i] + fp[i] - tp[i + 1] - fp[i + 1])
                area += (tps / ps).mean() * (tp[i] - tp[i + 1]) / (tp[0] + fn[0])
        return area

    def ratio(a, b):
        return numpy.divide(a, b, out=numpy.zeros_like(a), where=b != 0)

    recall = ratio(tp, tp + fn)
    x, h = (ratio(fp, fp + tn), recall) if curve == "ROC" else (recall, ratio(tp, tp + fp))
    if curve == "PRGAIN":  # gains relative to the always-positive classifier (Flach & Kull), clamped as Keras
        scale = (tp[0] + fn[0]) / (tn[0] + fp[0])
        x = numpy.maximum(numpy.where(tp > 0, 1 - scale * ratio(fn, tp), 0.0), 0.0)
        h = numpy.where(tp > 0, 1 - scale * ratio(fp, tp), 1.0)
    heights = {"interpolation": (h[:-1] + h[1:]) / 2, "minoring": numpy.minimum(h[:-1], h[1:]),
               "majoring": numpy.maximum(h[:-1], h[1:])}[method]
    return float(((x[:-1] - x[1:]) * heights).sum())


_AUC_SETTINGS = [{}, {"curve": "PR"}, {"summation_method": "minoring"}, {"summation_method": "majoring"},
                 {"curve": "PR", "summation_method": "minoring"}, {"num_thresholds": 7}, {"num_thresholds": 3},
                 {"thresholds": [0.3, 0.1, 0.8]}, {"thresholds": [0.25, 0.5, 0.75], "curve": "PR"},
                 {"from_logits": True}, {"from_logits": True, "curve": "PR"}, {"curve": "PRGAIN"}]


def _auc_states(keras):
    """Each setting's result after two batches (the second sample-weighted), and after reset_state and one batch."""
    rng = numpy.random.default_rng(1)
    y = rng.integers(0, 2, (60, 1)).astype("float32")
    p = rng.random((60, 1)).astype("float32")
    p[:3, 0] = [0.0, 1.0, 0.5]
    w = rng.random(60).astype("float32")
    out = []
    for settings in _AUC_SETTINGS:
        scale = 6.0 if settings.get("from_logits") else 1.0
        metric = keras.metrics.AUC(**settings)
        metric.update_state(y[:25], p[:25] * scale)
        metric.update_state(y[25:], p[25:] * scale - (3.0 if scale != 1 else 0.0), sample_weight=w[25:])
        both = float(_numpy(metric.result()))
        metric.reset_state()
        metric.update_state(y[25:, 0], p[25:, 0] * scale)
        out.append((both, float(_numpy(metric.result()))))
    return out, (y, p, w)


def test_auc_equals_the_confusion_matrix_definition():
    """Every curve, summation method, threshold setting and from_logits against the float64 definition, over two
    batches (one sample-weighted: weights count per sample), and after reset_state."""
    results, (y, p, w) = _auc_states(tk)
    sigmoid = lambda z: 1 / (1 + numpy.exp(-z.astype("float64")))
    for settings, (both, after_reset) in zip(_AUC_SETTINGS, results):
        logits = settings.get("from_logits", False)
        pred = sigmoid(numpy.concatenate([p[:25] * 6, p[25:] * 6 - 3])) if logits else p
        kw = {"thresholds": settings.get("thresholds"), "curve": settings.get("curve", "ROC"),
              "method": settings.get("summation_method", "interpolation"), "n": settings.get("num_thresholds", 200)}
        weights = numpy.concatenate([numpy.ones(25), w[25:]])
        assert both == pytest.approx(_reference_auc(y, pred, weights, **kw), abs=1e-5), settings
        alone = sigmoid(p[25:] * 6) if logits else p[25:]
        assert after_reset == pytest.approx(_reference_auc(y[25:], alone, **kw), abs=1e-5), settings
    assert len({round(both, 4) for both, _ in results}) >= 9  # the settings do change the value


def test_auc_as_in_keras(real_keras):
    ours, theirs = _auc_states(tk)[0], _auc_states(real_keras)[0]
    assert numpy.allclose(ours, theirs, atol=1e-5, rtol=0)


_MULTI_SETTINGS = [{"multi_label": True}, {"multi_label": True, "num_labels": 3, "curve": "PR"},
                   {"multi_label": True, "label_weights": [0.2, 1.0, 0.5]},
                   {"multi_label": True, "label_weights": [0.2, 1.0, 0.5], "curve": "PR", "thresholds": [0.2, 0.5]},
                   {"multi_label": True, "curve": "PRGAIN", "summation_method": "minoring"},
                   {"label_weights": [0.2, 1.0, 0.5]}, {}]


def _auc_multi(keras):
    """(batch, 3) labels: one curve per label (multi_label=True), or every pair one point, over two batches."""
    rng = numpy.random.default_rng(2)
    y = rng.integers(0, 2, (40, 3)).astype("float32")
    p = rng.random((40, 3)).astype("float32")
    w = rng.random(40).astype("float32")
    out = []
    for settings in _MULTI_SETTINGS:
        metric = keras.metrics.AUC(**settings)
        metric.update_state(y[:15], p[:15])
        metric.update_state(y[15:], p[15:], sample_weight=w[15:])
        out.append(float(_numpy(metric.result())))
    return out, (y, p, numpy.concatenate([numpy.ones(15, "float32"), w[15:]]))


def test_auc_multi_label_and_label_weights():
    """multi_label=True: the labels' AUCs averaged (weighted by label_weights); with False, label_weights weigh
    each label's pairs in the one flattened curve."""
    results, (y, p, w) = _auc_multi(tk)
    for settings, got in zip(_MULTI_SETTINGS, results):
        kw = {"thresholds": settings.get("thresholds"), "curve": settings.get("curve", "ROC"),
              "method": settings.get("summation_method", "interpolation")}
        labels = numpy.asarray(settings.get("label_weights", [1.0, 1.0, 1.0]))
        if settings.get("multi_label"):
            each = [_reference_auc(y[:, i], p[:, i], w, **kw) for i in range(3)]
            expected = (numpy.array(each) * labels).sum() / labels.sum()
        else:
            expected = _reference_auc(y, p, (w[:, None] * labels).reshape(-1), **kw)
        assert got == pytest.approx(expected, abs=1e-5), settings
    assert results[0] != pytest.approx(results[-1], abs=1e-4) and results[2] != pytest.approx(results[0], abs=1e-4)


def test_auc_multi_label_as_in_keras(real_keras):
    assert numpy.allclose(_auc_multi(tk)[0], _auc_multi(real_keras)[0], atol=1e-5, rtol=0)


def test_auc_keras_documented_example():
    """Keras' docstring: thresholds [-1e-7, 0.5, 1 + 1e-7] give 0.75; sample weights [1, 0, 0, 1] give 1.0."""
    metric = tk.metrics.AUC(num_thresholds=3)
    metric.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    assert float(metric.result()) == pytest.approx(0.75)
    assert metric.thresholds == pytest.approx([-1e-7, 0.5, 1 + 1e-7])
    assert metric.true_positives.numpy().tolist() == [2, 1, 0] and metric.false_positives.numpy().tolist() == [2, 0, 0]
    metric.reset_state()
    assert float(metric.result()) == 0.0
    metric.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9], sample_weight=[1, 0, 0, 1])
    assert float(metric.result()) == pytest.approx(1.0)


def _auc_model_run(keras):
    """AUC by name ('auc', 'AUC') and as objects in compile: fit with validation_data and a sample-weighted
    weighted_metrics AUC, then a sample-weighted evaluate; a logits model with AUC(from_logits=True)."""
    rng = numpy.random.default_rng(3)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = (x[:, 3:] + rng.normal(size=(40, 1)) > 0).astype("float32")
    w = rng.random(40).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.set_weights([numpy.linspace(-1, 1, 4).reshape(4, 1).astype("float32"), numpy.zeros(1, "float32")])
    metrics = keras.metrics
    model.compile(keras.optimizers.SGD(0.1), "binary_crossentropy",
                  metrics=["auc", "AUC", metrics.AUC(curve="PR", name="pr"),
                           metrics.AUC(num_thresholds=20, summation_method="majoring", name="maj"),
                           metrics.AUC(multi_label=True, num_labels=1, curve="PRGAIN", name="gain")],
                  weighted_metrics=[metrics.AUC(thresholds=[0.2, 0.4, 0.6], name="wauc")])
    history = model.fit(x[:30], y[:30], sample_weight=w[:30], epochs=2, batch_size=8, shuffle=False, verbose=0,
                        validation_data=(x[30:], y[30:]))
    evaluated = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    predicted = (_numpy(model.predict(x[30:], verbose=0)), _numpy(model.predict(x, verbose=0)))
    logits = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    logits.set_weights([numpy.linspace(1, -1, 4).reshape(4, 1).astype("float32"), numpy.zeros(1, "float32")])
    logits.compile(keras.optimizers.SGD(0.1), keras.losses.BinaryCrossentropy(from_logits=True),
                   metrics=[metrics.AUC(from_logits=True, name="logit_auc")])
    from_logits = logits.evaluate(x, y, verbose=0, return_dict=True)
    logs = [{key: numpy.round(numpy.asarray(value, dtype="float64"), 6).tolist() for key, value in logs.items()}
            for logs in (history.history, evaluated, from_logits)]
    return logs, predicted, _numpy(logits.predict(x, verbose=0)), (x, y, w)


def test_auc_in_fit_and_evaluate():
    """Logged by the name given; the validation and evaluate values are the definition's on the model's own
    predictions (evaluate's weighted_metrics with the sample weights, its metrics without)."""
    (history, evaluated, from_logits), (on_val, on_all), logits, (x, y, w) = _auc_model_run(tk)
    assert sorted(history) == sorted(["loss", "auc", "AUC", "pr", "maj", "gain", "wauc"] +
                                     ["val_" + k for k in ("loss", "auc", "AUC", "pr", "maj", "gain", "wauc")])
    assert history["auc"] == history["AUC"] and len(history["auc"]) == 2
    assert history["val_auc"][-1] == pytest.approx(_reference_auc(y[30:], on_val), abs=1e-5)
    assert history["val_pr"][-1] == pytest.approx(_reference_auc(y[30:], on_val, curve="PR"), abs=1e-5)
    assert evaluated["auc"] == pytest.approx(_reference_auc(y, on_all), abs=1e-5)
    assert evaluated["maj"] == pytest.approx(_reference_auc(y, on_all, n=20, method="majoring"), abs=1e-5)
    assert evaluated["gain"] == pytest.approx(_reference_auc(y, on_all, curve="PRGAIN"), abs=1e-5)
    assert evaluated["wauc"] == pytest.approx(_reference_auc(y, on_all, w, thresholds=[0.2, 0.4, 0.6]), abs=1e-5)
    assert evaluated["wauc"] != pytest.approx(_reference_auc(y, on_all, thresholds=[0.2, 0.4, 0.6]), abs=1e-4)
    sigmoid = 1 / (1 + numpy.exp(-logits.astype("float64")))
    assert from_logits["logit_auc"] == pytest.approx(_reference_auc(y, sigmoid), abs=1e-5)
    assert 0.5 < evaluated["auc"] < 1.0


def test_auc_in_fit_and_evaluate_as_in_keras(real_keras):
    ours, theirs = _auc_model_run(tk)[0], _auc_model_run(real_keras)[0]
    for a, b in zip(ours, theirs):
        assert a.keys() == b.keys()
        for key in a:
            assert numpy.allclose(a[key], b[key], atol=1e-5, rtol=0), key


def test_auc_settings_survive_a_keras_file(tmp_path):
    pytest.importorskip("h5py")
    model = tk.Sequential([tk.Input((4,)), tk.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=[tk.metrics.AUC(curve="PR", thresholds=[0.3, 0.6], name="p"),
                                                         "AUC"])
    model.save(str(tmp_path / "m.keras"))
    again = tk.models.load_model(str(tmp_path / "m.keras"))
    x = numpy.random.default_rng(0).normal(size=(12, 4)).astype("float32")
    y = numpy.float32([[0], [1]] * 6)
    assert again.evaluate(x, y, verbose=0, return_dict=True) == model.evaluate(x, y, verbose=0, return_dict=True)
    config = tk.metrics.AUC(curve="PR", thresholds=[0.6, 0.3], name="p").get_config()
    assert config["thresholds"] == pytest.approx([0.3, 0.6]) and config["num_thresholds"] == 4
    assert tk.metrics.AUC.from_config(config).thresholds == pytest.approx([-1e-7, 0.3, 0.6, 1 + 1e-7])


def test_auc_mistakes_are_named():
    with pytest.raises(ValueError, match="`num_labels` is needed only when `multi_label` is True"):
        tk.metrics.AUC(num_labels=3)
    with pytest.raises(ValueError, match="`y_pred` must have rank 2 when `multi_label=True`"):
        tk.metrics.AUC(multi_label=True).update_state(numpy.ones((2, 2, 2)), numpy.ones((2, 2, 2)))
    with pytest.raises(ValueError, match=r"multi_label=True with 3 labels needs y_pred of shape \(batch, 3\)"):
        tk.metrics.AUC(multi_label=True, num_labels=3).update_state(numpy.ones((2, 2)), numpy.ones((2, 2)))
    with pytest.raises(ValueError, match="label_weights must be a list of non-negative weights"):
        tk.metrics.AUC(label_weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="Invalid AUC curve value"):
        tk.metrics.AUC(curve="RC")
    with pytest.raises(ValueError, match="Invalid AUC summation method value"):
        tk.metrics.AUC(summation_method="trapezoid")
    with pytest.raises(ValueError, match="num_thresholds` must be an integer > 1"):
        tk.metrics.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="does not match y_pred"):
        tk.metrics.AUC().update_state(numpy.ones(3), numpy.ones(4))


def test_monitoring_an_auc_named_by_its_class_grows():
    """metrics=['AUC'] logs 'val_AUC' (as Keras); mode='auto' read it as neither loss nor score and asked for
    mode=. Keras maximizes it (AUC's direction is 'up')."""
    for callback in (tk.callbacks.EarlyStopping(monitor="val_AUC"), tk.callbacks.ModelCheckpoint("m.keras",
                                                                                                  monitor="val_AUC")):
        assert callback.mode == "max"


def _auc_file(keras, path, label_weights):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.set_weights([numpy.linspace(-1, 1, 4).reshape(4, 1).astype("float32"), numpy.zeros(1, "float32")])
    metrics = ["AUC", keras.metrics.AUC(curve="PR", thresholds=[0.3, 0.6], name="p"),
               keras.metrics.AUC(multi_label=True, label_weights=label_weights, name="ml")]
    model.compile("sgd", "binary_crossentropy", metrics=metrics)
    model.save(path)
    return model


def test_auc_in_keras_files_both_ways(real_keras, tmp_path):
    """A file Keras wrote (label_weights stored as a tensor) loads compiled here with its AUCs, and ours in Keras.
    NOTE: Keras itself fails to load label_weights under this test suite's conftest (Invalid dtype: object), so
    the file read by Keras has none."""
    pytest.importorskip("h5py")
    x = numpy.random.default_rng(0).normal(size=(12, 4)).astype("float32")
    y = numpy.float32([[0], [1]] * 6)
    for writer, reader, label_weights in ((real_keras, tk, [2.0]), (tk, real_keras, None)):
        path = str(tmp_path / f"{writer.__name__}.keras")
        theirs = _auc_file(writer, path, label_weights).evaluate(x, y, verbose=0, return_dict=True)
        ours = reader.models.load_model(path).evaluate(x, y, verbose=0, return_dict=True)
        assert sorted(ours) == ["AUC", "loss", "ml", "p"] and sorted(theirs) == sorted(ours)
        assert all(ours[key] == pytest.approx(theirs[key], abs=1e-5) for key in ours)
    config = tk.metrics.AUC(multi_label=True, label_weights=[0.5, 2.0]).get_config()
    assert tk.metrics.AUC.from_config(config).label_weights.tolist() == [0.5, 2.0]


@pytest.mark.parametrize("given", ["Precision", "Recall", "F1Score", "AUC", "precision", "recall", "auc"])
def test_a_metric_by_name_logs_under_the_name_given(given):
    """Keras 3 logs a metric given by name under that string as written: metrics=['Precision'] gives a
    'Precision' entry and 'val_Precision' (ours logged 'precision' for the capitalised class names)."""
    model = tk.Sequential([tk.Input((3,)), tk.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=[given])
    x, y = numpy.random.default_rng(0).random((8, 3)), numpy.array([[1.0], [0.0]] * 4)
    history = model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y))
    assert sorted(history.history) == sorted(["loss", given, "val_loss", f"val_{given}"])
