"""Minibatch iteration over in-memory datasets (NumPy arrays, or CuPy arrays kept on a GPU)."""

import numbers

import numpy as np

from .device import canonical_device, device_of, to_device, to_device_together, to_numpy

__all__ = ["DataLoader"]


class DataLoader:
    """Iterates (x, y) minibatches of NumPy arrays as Tensors on a device.

    By default the data stay in host memory as NumPy arrays; each batch (x
    and y together) goes to the device in one host->device copy, which keeps
    GPU memory use independent of the dataset size.  With
    `on_device=True` the whole dataset is copied to the device once (MNIST's
    training set is 47 MB as uint8) and each batch is gathered there: one
    small copy per epoch (the order), none per batch, and `transform` runs on
    the device.  CuPy arrays given as x or y stay where they are, as with
    `on_device=True`.

    Each `iter()` is one epoch.  With `shuffle=True` every epoch draws a
    fresh permutation from one `numpy.random.default_rng(seed)` generator,
    so epochs differ while the same seed reproduces the whole sequence; or
    from `generator`, a numpy.random.Generator you pass instead of a seed.
    Either way the loader's order never depends on the global generator
    (tinygrad_cnn.manual_seed) or on other threads.
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
                 world_size=1, on_device=False, generator=None):
        if x is None:
            raise TypeError("DataLoader: x must be an array of samples (first axis), got None")
        # NOTE: not np.asarray for everything: CuPy arrays refuse implicit conversion (and should stay put)
        x = x if hasattr(x, "__cuda_array_interface__") else np.asarray(x)
        if x.ndim == 0:
            raise ValueError("x must have a first (sample) dimension")
        if np.dtype(x.dtype).kind not in "biuf":
            raise TypeError(f"DataLoader: x must be numeric (bool, int or float), got dtype {x.dtype}")
        if y is not None:
            y = y if hasattr(y, "__cuda_array_interface__") else np.asarray(y)
            if np.dtype(y.dtype).kind not in "biuf":
                raise TypeError(f"DataLoader: y must be numeric (bool, int or float), got dtype {y.dtype}")
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
        for name, value in (("shuffle", shuffle), ("drop_last", drop_last), ("on_device", on_device)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"DataLoader: {name} must be True or False, got {value!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"DataLoader: seed must be None or an int >= 0, got {seed!r}")
        if seed is not None and seed < 0:
            raise ValueError(f"DataLoader: seed must be None or an int >= 0, got {seed!r}")
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
        self.on_device = bool(on_device) or device_of(x) != "cpu"
        if self.on_device:  # the dataset goes to the device once, here
            target = canonical_device(device if device is not None else
                                      (device_of(x) if device_of(x) != "cpu" else None))
            x = to_device(x, target)
            y = None if y is None else to_device(y, target)
            device = target
        self.x = x
        self.y = y
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.device = device
        self.transform = transform
        if generator is not None and not isinstance(generator, np.random.Generator):
            raise TypeError(f"generator must be a numpy.random.Generator (e.g. numpy.random.default_rng(0)), "
                            f"got {type(generator).__name__}")
        if generator is not None and seed is not None:
            raise ValueError("give DataLoader a seed or a generator, not both")
        self._rng = generator if generator is not None else np.random.default_rng(seed)

    @property
    def dataset(self):
        """The samples the loader draws from (x), so that len(loader.dataset) counts them, as in PyTorch."""
        return self.x

    def __len__(self):
        """Number of batches per epoch (on this rank)."""
        n, b = len(self.x) // self.world_size, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        """One epoch of Tensor batches: `(x, y)`, or `x` if y is None."""
        # Imported here so this module does not depend on the core at import.
        from .tensor import Tensor

        device = canonical_device(self.device)

        def wrap(batches):
            for batch in batches:
                batch = (batch,) if self.y is None else batch
                if not self.on_device:  # one host->device copy per batch
                    batch = to_device_together(batch, device)
                tensors = tuple(Tensor(b, device=device) for b in batch)
                yield tensors[0] if self.y is None else tensors

        return wrap(self._epoch())

    def iter_numpy(self):
        """One epoch of the same batches as plain NumPy arrays.

        Useful for evaluation code that does not need Tensors.  The
        permutation is drawn here, when the epoch starts, not lazily at the
        first batch, so epochs are numbered by the order of the calls.  With
        on_device=True each batch is copied back to the host.
        """
        batches = self._epoch()
        if not self.on_device:
            return batches
        return (to_numpy(b) if self.y is None else tuple(to_numpy(a) for a in b) for b in batches)

    def _epoch(self):
        """One epoch of batches as arrays where the data live (host, or device with on_device)."""
        n = len(self.x)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        if self.world_size > 1:  # this rank's shard: every world_size-th sample
            order = order[self.rank:n - n % self.world_size:self.world_size]
        stop = len(self) * self.batch_size if self.drop_last else len(order)
        if self.on_device:  # NOTE: the same host permutation (so seeds agree), sent once per epoch
            order = to_device(order, device_of(self.x))
        return self._batches(order, stop)

    def _batches(self, order, stop):
        for start in range(0, stop, self.batch_size):
            # Fancy indexing copies, so a batch never aliases the dataset.
            idx = order[start:start + self.batch_size]
            xb = self.x[idx]
            if self.transform is not None:
                xb = self._transformed(xb)
            if self.y is None:
                yield xb
            else:
                yield xb, self.y[idx]

    def _transformed(self, xb):
        """transform(xb), checked to keep one row per sample: a transform that drops or adds rows
        would pair images with the wrong labels."""
        n = len(xb)
        out = self.transform(xb)
        if self.y is not None and (getattr(out, "ndim", 1) == 0 or len(out) != n):
            got = "a scalar" if getattr(out, "ndim", 1) == 0 else f"{len(out)} rows"
            raise ValueError(f"DataLoader: transform {getattr(self.transform, '__name__', self.transform)!r} "
                             f"returned {got} for a batch of {n}: it must keep one row per sample "
                             f"(the labels are not transformed, so x and y would no longer match)")
        return out

    def __repr__(self):
        return (f"DataLoader(n={len(self.x)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, "
                f"device={self.device!r}"
                + (", on_device=True" if self.on_device else "")
                + (f", rank={self.rank}, world_size={self.world_size}"
                   if self.world_size > 1 else "") + ")")
