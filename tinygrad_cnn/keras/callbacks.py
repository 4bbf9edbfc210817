"""Keras' callbacks: hooks fit(), evaluate() and predict() call, with Keras' names and arguments.

`logs` are dicts of Python floats with Keras' keys ('loss', 'accuracy', 'val_loss', ...). Batch
hooks get the running means so far; they are computed (a device sync) only for callbacks that
override a batch hook."""
import csv
import math
import os
import warnings

import numpy

from ..checkpoint import check_suffix, path_argument
from . import optimizers
from .offered import not_offered


class Callback:
    """The base class: every hook does nothing. `self.model` is the model being trained and
    `self.params` holds {'epochs', 'steps', 'verbose'}; set `self.model.stop_training = True` to
    stop after the current batch."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        """Called by fit/evaluate/predict before the first hook."""
        self.model = model

    def set_params(self, params):
        """Called by fit/evaluate/predict with {'epochs', 'steps', 'verbose'}."""
        self.params = params

    def on_train_begin(self, logs=None):
        """Before the first epoch."""

    def on_train_end(self, logs=None):
        """After the last epoch (or a stop); logs are the last epoch's."""

    def on_epoch_begin(self, epoch, logs=None):
        """Before epoch `epoch` (counted from 0)."""

    def on_epoch_end(self, epoch, logs=None):
        """After epoch `epoch` and its validation: logs hold the epoch's means and val_ values."""

    def on_train_batch_begin(self, batch, logs=None):
        """Before training batch `batch` of the epoch."""

    def on_train_batch_end(self, batch, logs=None):
        """After training batch `batch`: logs hold the epoch's running means."""

    def on_test_begin(self, logs=None):
        """Before evaluate() or a validation pass."""

    def on_test_end(self, logs=None):
        """After evaluate() or a validation pass."""

    def on_test_batch_begin(self, batch, logs=None):
        """Before evaluation batch `batch`."""

    def on_test_batch_end(self, batch, logs=None):
        """After evaluation batch `batch`."""

    def on_predict_begin(self, logs=None):
        """Before predict()."""

    def on_predict_end(self, logs=None):
        """After predict()."""

    def on_predict_batch_begin(self, batch, logs=None):
        """Before prediction batch `batch`."""

    def on_predict_batch_end(self, batch, logs=None):
        """After prediction batch `batch`."""


class History(Callback):
    """What fit() returns: `.history` maps each key ('loss', 'accuracy', 'val_loss', ...) to one
    value per epoch, and `.epoch` lists the epochs run."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        """Start a new list of epochs."""
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        """Append the epoch's logs."""
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


def _mode(mode, monitor, who):
    if not isinstance(monitor, str):
        raise TypeError(f"{who} monitor must be the name of a logged value (e.g. 'val_loss'), got {monitor!r}")
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who} mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":  # as Keras: losses shrink, accuracies (and AUC) grow; anything else is not guessed
        if any(word in monitor.lower() for word in ("acc", "auc")):  # NOTE: metrics=["AUC"] logs val_AUC
            return "max"
        if "loss" not in monitor:
            raise ValueError(f"{who} cannot tell whether monitor={monitor!r} should be minimized or maximized; "
                             f"pass mode='max' (a score that grows) or mode='min' (one that shrinks)")
        return "min"
    return mode


def _better(mode, current, reference, min_delta=0.0):
    """Whether `current` improves on `reference` by more than min_delta; a NaN never does."""
    if current is None or math.isnan(current):
        return False
    return current + min_delta < reference if mode == "min" else current - min_delta > reference


class ModelCheckpoint(Callback):
    """Save the model's weights after each epoch (or every save_freq batches, {batch} in the name) through
    Module.save (atomic: a crash leaves the previous file whole). `filepath` may hold {epoch} and log
    keys ({epoch:02d}-{val_loss:.2f}). With save_best_only, only when `monitor` improves: a NaN never does, so a good checkpoint is
    never replaced by a diverged model. A name ending in .keras writes the Keras 3 file (Model.save), one
    ending in .weights.h5 Keras 3's weights file (save_weights); save_weights_only is accepted for Keras' sake."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(f"ModelCheckpoint save_freq must be 'epoch' or a number of batches >= 1, got {save_freq!r}")
        self.save_freq, self._epoch, self._seen, self._last_batch = save_freq, 0, 0, None
        if save_freq != "epoch":  # NOTE: an instance hook, so that fit reads batch logs (a sync) only for it
            self.on_train_batch_end = self._on_batch_end
        self.filepath = path_argument(filepath, "ModelCheckpoint", "filepath")
        # a .keras name saves the Keras 3 file (Model.save), a .weights.h5 one Keras' weights file (save_weights)
        if not self.filepath.lower().endswith((".keras", ".weights.h5")):
            check_suffix(self.filepath)  # NOTE: here, not after the first epoch's training
        if os.path.isdir(self.filepath):
            raise ValueError(f"ModelCheckpoint: filepath {self.filepath!r} is a directory; give a file name "
                             f"such as {os.path.join(self.filepath, 'model.safetensors')!r}")
        if save_weights_only and self.filepath.lower().endswith(".keras"):  # it was ignored: the whole model saved
            raise ValueError(f"ModelCheckpoint: save_weights_only=True, but {self.filepath!r} names a .keras file "
                             f"(the whole model); name it '{self.filepath[:-len('.keras')]}.weights.h5' (as Keras "
                             f"requires) or leave save_weights_only False")
        self.monitor, self.verbose = monitor, verbose
        self.save_best_only, self.save_weights_only = bool(save_best_only), bool(save_weights_only)
        self.mode = _mode(mode, monitor, "ModelCheckpoint")
        default = math.inf if self.mode == "min" else -math.inf
        self.best = default if initial_value_threshold is None else float(initial_value_threshold)

    def on_epoch_begin(self, epoch, logs=None):
        """Remember the epoch (a save every save_freq batches names it)."""
        self._epoch = epoch

    def _on_batch_end(self, batch, logs=None):
        """With save_freq=N: save every N batches (counted across epochs, as Keras), {batch} in the name."""
        self._seen += batch + 1 if self._last_batch is None or batch <= self._last_batch else batch - self._last_batch
        self._last_batch = batch
        if self._seen >= self.save_freq:
            self._seen = 0
            self._save(self._epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        """Save (when the monitored value improved, with save_best_only), for save_freq='epoch'."""
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _save(self, epoch, batch, logs):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs) if batch is None else \
            self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"ModelCheckpoint: {self.monitor!r} is not in the logs ({', '.join(logs)}); "
                              f"nothing saved", stacklevel=2)
                return
            if not _better(self.mode, current, self.best):
                if self.verbose:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, "
                      f"saving model to {path}")
            self.best = current
        elif self.verbose:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        if path.lower().endswith(".weights.h5"):
            self.model.save_weights(path)
        else:
            self.model.save(path)


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than min_delta for `patience` epochs; with
    restore_best_weights, the weights of the best epoch are put back when training ends (as Keras 3)."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping patience must be an int >= 0, got {patience!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float, numpy.integer, numpy.floating)) \
                or not math.isfinite(min_delta):
            raise TypeError(f"EarlyStopping min_delta must be a finite number, got {min_delta!r}")
        self.monitor, self.min_delta, self.patience, self.verbose = monitor, abs(float(min_delta)), patience, verbose
        self.mode = _mode(mode, monitor, "EarlyStopping")
        self.baseline, self.restore_best_weights, self.start_from_epoch = baseline, restore_best_weights, start_from_epoch

    def on_train_begin(self, logs=None):
        """Reset the wait and the best value."""
        self.wait, self.stopped_epoch, self.best_epoch, self.best_weights = 0, 0, 0, None
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        """Count the epochs without improvement; stop after `patience` of them."""
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"EarlyStopping: {self.monitor!r} is not in the logs ({', '.join(logs or {})})",
                          stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.state_dict(), epoch
        self.wait += 1
        if _better(self.mode, current, self.best, self.min_delta):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.state_dict()
            if self.baseline is None or _better(self.mode, current, self.baseline, self.min_delta):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        """Put the best epoch's weights back (restore_best_weights)."""
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.load_state_dict(self.best_weights)


class TerminateOnNaN(Callback):
    """Stop training at the first batch whose loss is NaN or infinite (a device sync per batch)."""

    def on_train_batch_end(self, batch, logs=None):
        """Stop when the running loss is NaN or infinite."""
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of each epoch to schedule(epoch, lr) (or
    schedule(epoch)); the rate used goes into the logs as 'learning_rate'."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler needs a callable schedule(epoch, lr), got {schedule!r}")
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        """Set this epoch's learning rate from the schedule."""
        optimizer = self.model.optimizer
        lr = float(optimizers.learning_rate(optimizer))
        try:
            new = self.schedule(epoch, lr)
        except TypeError:  # a one-argument schedule(epoch), as Keras also accepts
            new = self.schedule(epoch)
        if isinstance(new, bool) or not isinstance(new, (int, float, numpy.floating)) or not math.isfinite(new):
            raise ValueError(f"LearningRateScheduler: the schedule must return a finite number, got {new!r} "
                             f"at epoch {epoch}")
        optimizers.set_learning_rate(optimizer, float(new))
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(new)}.")

    def on_epoch_end(self, epoch, logs=None):
        """Record the rate as logs['learning_rate']."""
        if logs is not None:
            logs["learning_rate"] = float(optimizers.learning_rate(self.model.optimizer))


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` (not below min_lr) when `monitor` has not improved by more
    than min_delta for `patience` epochs, then wait `cooldown` epochs before counting again, as Keras 3;
    the rate the epoch used goes into the logs as 'learning_rate'."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        super().__init__()
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 <= factor < 1:
            raise ValueError(f"ReduceLROnPlateau factor must be a number in [0, 1), got {factor!r}")
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"ReduceLROnPlateau {name} must be an int >= 0, got {value!r}")
        for name, value in (("min_delta", min_delta), ("min_lr", min_lr)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TypeError(f"ReduceLROnPlateau {name} must be a finite number, got {value!r}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, float(factor), patience, verbose
        self.mode = _mode(mode, monitor, "ReduceLROnPlateau")
        self.min_delta, self.cooldown, self.min_lr = abs(float(min_delta)), cooldown, float(min_lr)

    def on_train_begin(self, logs=None):
        """Reset the wait, the cooldown and the best value."""
        self.wait, self.cooldown_counter, self.best = 0, 0, None

    def on_epoch_end(self, epoch, logs=None):
        """Log the rate; count an epoch without improvement (outside a cooldown); reduce after `patience`."""
        logs = {} if logs is None else logs
        optimizer = self.model.optimizer
        logs["learning_rate"] = lr = float(optimizers.learning_rate(optimizer))
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"ReduceLROnPlateau: {self.monitor!r} is not in the logs ({', '.join(logs)})", stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.best is None or _better(self.mode, current, self.best, self.min_delta):
            self.best, self.wait = current, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            # NOTE: compared in float32, as Keras keeps the rate: a rate at min_lr is not reduced again
            if self.wait >= self.patience and numpy.float32(lr) > numpy.float32(self.min_lr):
                new = max(lr * self.factor, self.min_lr)
                optimizers.set_learning_rate(optimizer, new)
                if self.verbose:
                    print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                self.cooldown_counter, self.wait = self.cooldown, 0


def _cell(value):
    """A log value as Keras' CSVLogger writes it: a metric of several numbers (F1Score per class) as the text
    '"[0.5, 0.0, 0.33]"', quotes included, which the CSV writer then quotes as Keras' file has it."""
    if hasattr(value, "ndim") and value.ndim > 0:
        return f'"[{", ".join(map(str, value))}]"'
    return value


class CSVLogger(Callback):
    """Write one row per epoch (epoch, then the logs' keys in sorted order) to a CSV file, flushed
    each epoch; append=True continues an existing file."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        filename = path_argument(filename, "CSVLogger", "filename")
        if os.path.isdir(filename):
            raise ValueError(f"CSVLogger: filename {filename!r} is a directory; give a file name such as "
                             f"{os.path.join(filename, 'log.csv')!r}")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"CSVLogger: separator must be one character, got {separator!r}")
        self.filename, self.separator, self.append = filename, separator, bool(append)
        self.keys, self.file, self.writer = None, None, None

    def on_train_begin(self, logs=None):
        """Open the file (appending with append=True)."""
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.keys, self.writer, self._header = None, None, not exists

    def on_epoch_end(self, epoch, logs=None):
        """Write the epoch's row (the header first, for a new file)."""
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            self.writer = csv.DictWriter(self.file, fieldnames=["epoch"] + self.keys, delimiter=self.separator)
            if self._header:
                self.writer.writeheader()
        self.writer.writerow({"epoch": epoch, **{k: _cell(logs.get(k, "NA")) for k in self.keys}})
        self.file.flush()

    def on_train_end(self, logs=None):
        """Close the file."""
        if self.file is not None:
            self.file.close()
            self.file = None


class LambdaCallback(Callback):
    """A callback made of functions, as Keras': on_epoch_begin/on_epoch_end(epoch, logs),
    on_train_batch_begin/on_train_batch_end(batch, logs), on_train_begin/on_train_end(logs), and any other
    hook by its name (on_test_batch_end=..., on_predict_end=...)."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        given = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for hook, function in given.items():
            if not hook.startswith("on_") or not callable(getattr(Callback, hook, None)):
                raise TypeError(f"LambdaCallback: unknown hook {hook!r}; the hooks are "
                                f"{', '.join(name for name in vars(Callback) if name.startswith('on_'))}")
            if function is not None:
                if not callable(function):
                    raise TypeError(f"LambdaCallback: {hook} must be a function, got {function!r}")
                setattr(self, hook, function)  # NOTE: an instance attribute: CallbackList.wants sees it


class CallbackList:
    """The callbacks of one fit/evaluate/predict call, called in order (not public API)."""

    def __init__(self, callbacks, model, params):
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be tinygrad_cnn.keras.callbacks.Callback objects, got "
                                f"{type(cb).__name__}")
        self.callbacks = callbacks
        for cb in callbacks:
            cb.set_model(model)
            cb.set_params(params)

    def wants(self, hook):
        """Whether some callback overrides `hook` (so batch logs must be computed for it); a LambdaCallback
        overrides the hooks it was given."""
        return any(getattr(type(cb), hook) is not getattr(Callback, hook) or hook in vars(cb) for cb in self.callbacks)

    def call(self, hook, *args):
        """Call `hook` of each callback; logs of None become {} as in Keras, where a hook with nothing to
        report gets an empty dict (so the guides' `list(logs.keys())` runs in every hook)."""
        if args and args[-1] is None:
            args = args[:-1] + ({},)
        for cb in self.callbacks:
            getattr(cb, hook)(*args)


__all__ = ["Callback", "History", "ModelCheckpoint", "EarlyStopping", "TerminateOnNaN", "LearningRateScheduler", "ReduceLROnPlateau",
           "CSVLogger", "LambdaCallback"]
__getattr__ = not_offered('keras.callbacks', __all__)
