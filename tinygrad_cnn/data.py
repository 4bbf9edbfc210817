"""Minibatch iteration over in-memory NumPy datasets."""

import numbers

import numpy as np

__all__ = ["DataLoader"]


class DataLoader:
    """Iterates (x, y) minibatches of NumPy arrays as Tensors on a device.

    The data stay in host memory as NumPy arrays; only one batch at a time is
    wrapped in a Tensor (and so copied to the device), which keeps GPU memory
    use independent of the dataset size.

    Each `iter()` is one epoch.  With `shuffle=True` every epoch draws a
    fresh permutation from one `numpy.random.default_rng(seed)` generator,
    so epochs differ while the same seed reproduces the whole sequence.
    `transform` is applied to each x batch (a NumPy array) before it is
    wrapped, e.g. `mnist.to_float_images`; labels are passed through
    unchanged so integer labels stay integer.

    Data-parallel training (see tinygrad_cnn.distributed): with `world_size`
    ranks, rank `rank` takes every world_size-th sample of the epoch's
    order, starting at its rank, as PyTorch's DistributedSampler.  Every rank
    draws the same permutation (same seed), so the shards are disjoint, of
    equal size, and rank r's k-th batch plus the others' k-th batches are
    exactly the k-th batch of one process at world_size times the batch
    size.  NOTE: the last len(x) % world_size samples of each (shuffled)
    order are left out, so that all ranks take the same number of steps.
    """

    def __init__(self, x, y=None, batch_size=32, shuffle=False, seed=None,
                 drop_last=False, device=None, transform=None, rank=0,
                 world_size=1):
        x = np.asarray(x)
        if x.ndim == 0:
            raise ValueError("x must have a first (sample) dimension")
        if y is not None:
            y = np.asarray(y)
            if y.ndim == 0 or len(y) != len(x):
                length = "a scalar" if y.ndim == 0 else len(y)
                raise ValueError(f"x and y must have the same length, got "
                                 f"len(x)={len(x)} and len(y)={length}")
        if (isinstance(batch_size, bool)
                or not isinstance(batch_size, numbers.Integral)
                or batch_size <= 0):
            raise ValueError(
                f"batch_size must be a positive int, got {batch_size!r}")
        if transform is not None and not callable(transform):
            raise TypeError(
                f"transform must be callable or None, got {transform!r}")
        for name, value in (("rank", rank), ("world_size", world_size)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be an int, got {value!r}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, world_size) with world_size >= 1, got "
                             f"rank={rank}, world_size={world_size}")
        if world_size > 1 and world_size > len(x):
            raise ValueError(f"more ranks ({world_size}) than samples ({len(x)}): every rank "
                             f"needs at least one sample")
        self.rank, self.world_size = int(rank), int(world_size)
        self.x = x
        self.y = y
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.device = device
        self.transform = transform
        self._rng = np.random.default_rng(seed)

    def __len__(self):
        """Number of batches per epoch (on this rank)."""
        n, b = len(self.x) // self.world_size, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        """One epoch of Tensor batches: `(x, y)`, or `x` if y is None."""
        # Imported here so this module does not depend on the core at import.
        from .tensor import Tensor

        def wrap(batches):
            for batch in batches:
                if self.y is None:
                    yield Tensor(batch, device=self.device)
                else:
                    xb, yb = batch
                    yield (Tensor(xb, device=self.device),
                           Tensor(yb, device=self.device))

        return wrap(self.iter_numpy())

    def iter_numpy(self):
        """One epoch of the same batches as plain NumPy arrays.

        Useful for evaluation code that does not need Tensors.  The
        permutation is drawn here, when the epoch starts, not lazily at the
        first batch, so epochs are numbered by the order of the calls.
        """
        n = len(self.x)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        if self.world_size > 1:  # this rank's shard: every world_size-th sample
            order = order[self.rank:n - n % self.world_size:self.world_size]
        stop = len(self) * self.batch_size if self.drop_last else len(order)
        return self._batches(order, stop)

    def _batches(self, order, stop):
        for start in range(0, stop, self.batch_size):
            # Fancy indexing copies, so a batch never aliases the dataset.
            idx = order[start:start + self.batch_size]
            xb = self.x[idx]
            if self.transform is not None:
                xb = self.transform(xb)
            if self.y is None:
                yield xb
            else:
                yield xb, self.y[idx]

    def __repr__(self):
        return (f"DataLoader(n={len(self.x)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, "
                f"device={self.device!r}"
                + (f", rank={self.rank}, world_size={self.world_size}"
                   if self.world_size > 1 else "") + ")")
