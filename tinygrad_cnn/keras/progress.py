"""Progress as Keras prints it: a bar with ETA and running metrics on a terminal, redrawn at most
every 0.1 s; when output goes to a file or pipe, one line at the end of each epoch instead."""
import sys
import time

import numpy

NOTE_INTERVAL = 0.1  # seconds between redraws (each one reads the metrics: a device sync on a GPU)


def _duration(seconds):
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{seconds:.0f}s"


def _metrics(logs):
    # NOTE: as Keras' progress bar, a metric of several numbers (F1Score per class) shows their mean
    return "".join(f" - {key}: {float(numpy.mean(value)):.4f}" for key, value in logs.items())


class Progress:
    """One epoch's (or one evaluation's) progress over `steps` batches. verbose 0: silent; 1: a
    bar on a terminal, else the final line only; 2: the final line only."""

    def __init__(self, steps, verbose, stream=None):
        self.steps, self.stream = steps, stream or sys.stdout
        isatty = getattr(self.stream, "isatty", None)
        self.bar = verbose == 1 and bool(isatty and isatty())
        self.quiet = verbose == 0
        self.start = self.last = time.perf_counter()

    def due(self, step):
        """Whether update(step, ...) would draw now (so the caller reads the metrics only then)."""
        return self.bar and (step == self.steps or time.perf_counter() - self.last >= NOTE_INTERVAL)

    def update(self, step, logs):
        """Redraw the bar after `step` batches with the running `logs`."""
        self.last = now = time.perf_counter()
        done = step / max(self.steps, 1)
        width = 30
        filled = int(width * done)
        bar = "=" * max(filled - 1, 0) + (">" if filled < width else "=") if filled else ""
        per_step = (now - self.start) / max(step, 1)
        eta = f"ETA: {_duration(per_step * (self.steps - step))}"
        digits = len(str(self.steps))
        self.stream.write(f"\r{step:{digits}d}/{self.steps} [{bar:.<{width}}] - {eta}{_metrics(logs)}\x1b[K")
        self.stream.flush()

    def finish(self, logs):
        """The epoch's last line: steps, time, time per step and the final logs."""
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.start
        per_step = elapsed / max(self.steps, 1)
        unit = f"{per_step * 1e3:.0f}ms/step" if per_step >= 1e-3 else f"{per_step * 1e6:.0f}us/step"
        head = f"\r{self.steps}/{self.steps} [{'=' * 30}]" if self.bar else f"{self.steps}/{self.steps}"
        self.stream.write(f"{head} - {_duration(elapsed)} {unit}{_metrics(logs)}" + ("\x1b[K\n" if self.bar else "\n"))
        self.stream.flush()
