"""fit, evaluate and predict over batches that come one at a time: a generator, a list of (x, y) pairs,
a tinygrad_cnn.data.DataLoader, anything iterable that yields (x, y) (or x alone, for predict), as
Keras takes a tf.data.Dataset or a Python generator. The model sees each batch as it is given."""
import itertools
import warnings

import numpy

from ..autograd import no_grad
from ..tensor import Tensor, concatenate
from . import callbacks as callbacks_module
from .progress import Progress


def is_batches(x, y):
    """Whether fit/evaluate/predict got an iterable of batches (y None) rather than arrays."""
    if y is not None or x is None or isinstance(x, (numpy.ndarray, Tensor, str, bytes)) or hasattr(x, "__array__"):
        return False
    if hasattr(x, "__cuda_array_interface__") or hasattr(x, "__dlpack__"):
        return False
    if isinstance(x, (list, tuple)):  # a list of (x, y) pairs, not nested lists of numbers
        return bool(x) and all(isinstance(b, (tuple, list)) and len(b) in (1, 2) and hasattr(b[0], "shape")
                               for b in x)
    return hasattr(x, "__iter__") or hasattr(x, "__next__")


def _host(value, what, empty=False):
    """A batch as a NumPy array; `empty` lets it hold no samples (predict's: no rows out)."""
    array = value.numpy() if isinstance(value, Tensor) else numpy.asarray(
        value.get() if hasattr(value, "get") and hasattr(value, "__cuda_array_interface__") else value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be numeric, got dtype {array.dtype}")
    if array.ndim == 0 or (len(array) == 0 and not empty):  # NOTE: a mean loss over no samples is undefined
        raise ValueError(f"{what} must be a non-empty batch (a first, sample axis), got shape {array.shape}")
    return array


def _pair(batch, who, step, want_y=True):
    """(x, y) of one batch as NumPy arrays; y None when the batch is x alone (predict)."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2 and want_y:
        x, y = batch
    elif isinstance(batch, (tuple, list)) and len(batch) in (1, 2) and not want_y:
        x, y = batch[0], None
    elif not want_y and not isinstance(batch, (tuple, list)):
        x, y = batch, None
    else:
        raise ValueError(f"{who}: batch {step} must be a pair (x, y), got "
                         f"{type(batch).__name__}{' of length ' + str(len(batch)) if hasattr(batch, '__len__') else ''}"
                         f" (sample weights are not supported)")
    x = _host(x, f"{who}: batch {step}'s x", empty=not want_y).astype("float32", copy=False)
    if y is None:
        return x, None
    y = _host(y, f"{who}: batch {step}'s y")
    if len(x) != len(y):
        raise ValueError(f"{who}: batch {step} holds {len(x)} samples of x and {len(y)} of y")
    return x, y


class BatchesMixin:
    """fit/evaluate/predict over an iterable of batches, for keras.Sequential and keras.Model."""

    def _epoch_batches(self, source, steps, state):
        """The batches of one epoch: `steps` of them from one running iterator (steps_per_epoch), or
        a fresh pass over a re-iterable source, or what is left of a one-pass iterator."""
        if steps is not None:
            if state.get("iterator") is None:
                state["iterator"] = iter(source)
            return itertools.islice(state["iterator"], steps)
        if iter(source) is source:  # a generator or iterator: one pass only
            if state.get("used"):
                return iter(())
            state["used"] = True
        return iter(source)

    def _fit_batches(self, source, epochs, verbose, callbacks, validation_data, initial_epoch, steps_per_epoch,
                     validation_steps, validation_freq):
        from .models import RunningMeans  # NOTE: models imports this module; the helpers come at call time
        device, history = None, callbacks_module.History()
        hooks = callbacks_module.CallbackList(list(callbacks or []) + [history], self,
                                              {"epochs": epochs, "steps": steps_per_epoch, "verbose": verbose})
        batch_logs_wanted = hooks.wants("on_train_batch_end")
        self.stop_training, state, logs, metrics, step_optimizer = False, {}, {}, None, None
        hooks.call("on_train_begin", None)
        for epoch in range(initial_epoch, epochs):
            hooks.call("on_epoch_begin", epoch, None)
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
            self.train()
            running, progress, step = RunningMeans(), Progress(steps_per_epoch or 0, 2 if verbose else 0), -1
            for step, batch in enumerate(self._epoch_batches(source, steps_per_epoch, state)):
                x, y = _pair(batch, "fit", step)
                if step_optimizer is None:
                    step_optimizer = self._ready(x)
                    device = self._device()
                self._validate((None,) + x.shape[1:])
                given_y = y
                y = self.loss.targets(y, (len(x),) + tuple(self.compute_output_shape(x.shape[1:])))
                if metrics is None:
                    metrics = self._metrics(y)
                raw = self._raw_y(metrics, given_y)
                hooks.call("on_train_batch_begin", step, None)
                xb, yb = Tensor(x, device=device), Tensor(y, device=device)
                out, logits, loss = self.train_step(xb, yb, step_optimizer)
                running.record(loss, metrics, out, yb, logits, None, None if raw is None else Tensor(raw, device=device))
                hooks.call("on_train_batch_end", step, running.logs() if batch_logs_wanted else None)
                if self.stop_training:
                    break
            if step < 0:
                if epoch == initial_epoch:
                    raise ValueError("fit: the batches are empty: the iterable yielded no (x, y) pair")
                warnings.warn(f"fit: the batches ran out at epoch {epoch + 1} (a generator is read once; pass "
                              f"steps_per_epoch=, or a list or DataLoader, to train several epochs)", stacklevel=3)
                break
            logs = running.logs()
            if validation_data is not None and (epoch + 1) % validation_freq == 0:
                val = self._evaluate_batches(validation_data, validation_steps, hooks, 0, "fit: validation_data")
                logs.update({f"val_{key}": value for key, value in val.items()})
            progress.steps = step + 1
            progress.finish(logs)
            hooks.call("on_epoch_end", epoch, logs)
            if self.stop_training:
                break
        hooks.call("on_train_end", logs)
        return history

    def _evaluate_batches(self, source, steps, hooks, verbose, who="evaluate"):
        """Mean loss and metrics over an iterable of (x, y) batches (or an (x, y) pair of arrays), in eval mode."""
        from .models import RunningMeans
        if isinstance(source, (tuple, list)) and len(source) == 2 and not is_batches(source, None):
            source = [tuple(source)]  # validation_data=(x_val, y_val): one batch
        if self.loss is None:
            raise ValueError("call model.compile(optimizer=..., loss=...) before fit() or evaluate()")
        was_training, running, metrics, step = self.training, RunningMeans(), None, -1
        progress = Progress(steps or 0, 2 if verbose else 0)
        self.eval()
        hooks.call("on_test_begin", None)
        try:
            with no_grad():
                batches = iter(source) if steps is None else itertools.islice(iter(source), steps)
                for step, batch in enumerate(batches):
                    x, y = _pair(batch, who, step)
                    if not self.built:
                        self.build(x.shape[1:])
                    self._validate((None,) + x.shape[1:])
                    given_y = y
                    y = self.loss.targets(y, (len(x),) + tuple(self.compute_output_shape(x.shape[1:])))
                    metrics = self._metrics(y) if metrics is None else metrics
                    raw = self._raw_y(metrics, given_y)
                    hooks.call("on_test_batch_begin", step, None)
                    xb, yb = Tensor(x, device=self._device()), Tensor(y, device=self._device())
                    out, logits = self._output(xb)
                    running.record(self.loss.compute(out, yb, logits), metrics, out, yb, logits, None,
                                   None if raw is None else Tensor(raw, device=self._device()))
                    hooks.call("on_test_batch_end", step, running.logs() if hooks.wants("on_test_batch_end") else None)
        finally:
            self.train(was_training)
        if step < 0:
            raise ValueError(f"{who}: the batches are empty: the iterable yielded no (x, y) pair")
        logs = running.logs()
        progress.steps = step + 1
        progress.finish(logs)
        hooks.call("on_test_end", logs)
        self._last_metric_names = [m.name for m in metrics]
        return logs

    def _predict_batches(self, source, steps, verbose, callbacks):
        hooks = callbacks_module.CallbackList(callbacks, self, {"steps": steps, "verbose": verbose})
        was_training, outputs = self.training, []
        self.eval()
        hooks.call("on_predict_begin", None)
        try:
            with no_grad():
                batches = iter(source) if steps is None else itertools.islice(iter(source), steps)
                for step, batch in enumerate(batches):
                    x, _ = _pair(batch, "predict", step, want_y=False)
                    hooks.call("on_predict_batch_begin", step, None)
                    outputs.append(self(Tensor(x, device=self._device() if self.built else None)))
                    hooks.call("on_predict_batch_end", step, {"outputs": outputs[-1]})
        finally:
            self.train(was_training)
        hooks.call("on_predict_end", None)
        if not outputs:
            raise ValueError("predict: the batches are empty: the iterable yielded nothing")
        return concatenate(outputs).numpy()


__all__ = ["BatchesMixin", "is_batches"]
