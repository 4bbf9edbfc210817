"""What a Keras name that is not offered here says: the module's own names, and where one exists, the
alternative. Each keras submodule's module-level __getattr__ comes from not_offered(), so that
`keras.callbacks.TensorBoard` says what to use instead of a bare "module has no attribute"."""

_OWN_METRIC = ("compile takes the accuracies, 'mae', 'mse', Precision, Recall, F1Score, AUC, metric functions fn(y_true, y_pred) and your own "
               "keras.metrics.Metric subclasses (add_variable, update_state, result): write it as one, or compute "
               "it from model.predict()")

HINTS = {
    "TensorBoard": "log with CSVLogger('log.csv') or read the History fit() returns",
    "BackupAndRestore": "save with ModelCheckpoint and resume with fit(initial_epoch=...)",
    "image_dataset_from_directory": "load images into NumPy arrays, or batch them with tinygrad_cnn.data.DataLoader",
    "plot_model": "print the layers with model.summary()",
    "Nadam": "use 'adam', 'adamw', 'rmsprop' or 'sgd'",
    "Adagrad": "use 'adam', 'adamw', 'rmsprop' or 'sgd'",
    "Adadelta": "use 'adam', 'adamw', 'rmsprop' or 'sgd'",
    "Adamax": "use 'adam', 'adamw', 'rmsprop' or 'sgd'",
    "schedules": "set the rate each epoch with callbacks.LearningRateScheduler(lambda epoch, lr: ...)",
    "IoU": _OWN_METRIC,
}
for _name in ("LSTM", "GRU", "SimpleRNN", "Bidirectional", "Attention", "MultiHeadAttention", "Embedding"):
    HINTS[_name] = "no recurrent, attention or embedding layers here: image models only"


def not_offered(module_name, offered):
    """A module __getattr__ raising AttributeError that names the missing Keras name, its alternative if any,
    and the module's offered names."""
    def __getattr__(name):
        if name.startswith("__"):  # NOTE: Python's own probes (__path__, __wrapped__...) get the plain error
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        hint = f" ({HINTS[name]})" if name in HINTS else ""
        raise AttributeError(f"{module_name}.{name} is not offered by tinygrad_cnn.keras{hint}; "
                             f"{module_name} has: {', '.join(sorted(offered))}")
    return __getattr__
