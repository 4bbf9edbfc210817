"""torch.utils.data's spelling (`from tinygrad_cnn.utils.data import DataLoader, TensorDataset, Dataset`, where
PyTorch code imports from torch.utils.data): a Dataset subclass or a TensorDataset, batched by a DataLoader as
torch's default collate batches them, in the order of a sampler (torch's samplers, Subset and random_split are
here too). tinygrad_cnn.data.DataLoader(x, y) over NumPy arrays is the fast path; this one is for code written for
PyTorch. NOTE: no worker processes (num_workers and pin_memory change nothing: batches are made in this
process), and a generator= is NumPy's (numpy.random.default_rng), so shuffled orders are not torch's."""
import math
import numbers
from collections.abc import Mapping

import numpy

from .tensor import Tensor, generator_or_global


class Dataset:
    """torch.utils.data.Dataset: subclass it with __len__() and __getitem__(i), which returns one sample
    (an array, a Tensor, a number, or a tuple of them)."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index)")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__()")


class TensorDataset(Dataset):
    """torch.utils.data.TensorDataset(*tensors): sample i is (t[i] for each tensor), all of one length."""

    def __init__(self, *tensors):
        if not tensors or not all(isinstance(t, Tensor) for t in tensors):
            raise TypeError("TensorDataset takes one or more Tensors (tinygrad_cnn.tensor(array) makes one)")
        if any(t.ndim == 0 or len(t) != len(tensors[0]) for t in tensors):
            raise ValueError(f"TensorDataset: the tensors must have one first size, got shapes "
                             f"{[t.shape for t in tensors]}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return len(self.tensors[0])


def default_collate(samples):
    """torch's default collate: samples (tuples or dicts of arrays, Tensors or numbers) stacked field by field
    into Tensors on the first sample's device; Python floats become float64 and ints int64, as torch's."""
    first = samples[0]
    if isinstance(first, Mapping):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        return type(first)(default_collate([s[k] for s in samples]) for k in range(len(first)))
    if isinstance(first, Tensor):
        return Tensor(first.xp.stack([s.data for s in samples]), device=first.device)
    if isinstance(first, (numbers.Number, numpy.ndarray, numpy.generic)):
        return Tensor(numpy.stack([numpy.asarray(s) for s in samples]))
    raise TypeError(f"DataLoader: a sample field is a {type(first).__name__}; default_collate stacks arrays, "
                    f"Tensors and numbers (give collate_fn= for others)")


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def _flag(value, what):
    if not isinstance(value, (bool, numpy.bool_)):
        raise TypeError(f"{what} must be True or False, got {value!r}")
    return bool(value)


class Sampler:
    """torch.utils.data.Sampler: subclass it with __iter__ (the dataset indices of one epoch, in order) and
    __len__; DataLoader(dataset, sampler=...) batches what it gives."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__()")


class SequentialSampler(Sampler):
    """torch.utils.data.SequentialSampler(data_source): 0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """torch.utils.data.RandomSampler(data_source, replacement=False, num_samples=None, generator=None): a new
    permutation each epoch (more than len(data_source) samples: permutations one after another, as torch's),
    or with replacement num_samples independent draws. The draws come from `generator`, a
    numpy.random.Generator, or the global one (manual_seed); torch's own draws are not reproduced."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source, self.replacement = data_source, _flag(replacement, "RandomSampler replacement")
        self._num_samples = None if num_samples is None else _positive_int(num_samples, "RandomSampler num_samples")
        generator_or_global(generator, "RandomSampler")  # a clear error now for anything but a Generator
        self.generator = generator

    @property
    def num_samples(self):
        """The indices of one epoch: num_samples, or the dataset's length (read each epoch, as torch's)."""
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n, count = len(self.data_source), self.num_samples
        rng = generator_or_global(self.generator, "RandomSampler")
        if n == 0:
            return iter([])
        if self.replacement:
            return iter(rng.integers(0, n, count).tolist())
        whole, rest = divmod(count, n)
        orders = [rng.permutation(n) for _ in range(whole)] + ([rng.permutation(n)[:rest]] if rest else [])
        return iter(numpy.concatenate(orders).tolist() if orders else [])

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """torch.utils.data.SubsetRandomSampler(indices, generator=None): the given indices in a new random order
    each epoch (a train/validation split of one dataset by two samplers)."""

    def __init__(self, indices, generator=None):
        generator_or_global(generator, "SubsetRandomSampler")
        self.indices, self.generator = indices, generator

    def __iter__(self):
        order = generator_or_global(self.generator, "SubsetRandomSampler").permutation(len(self.indices))
        return iter([self.indices[int(i)] for i in order])

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """torch.utils.data.WeightedRandomSampler(weights, num_samples, replacement=True, generator=None): index i
    drawn with probability weights[i] / sum(weights) (oversampling rare classes)."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        weights = numpy.asarray(weights.numpy() if isinstance(weights, Tensor) else weights, dtype=numpy.float64)
        if weights.ndim != 1 or not len(weights) or not numpy.all(weights >= 0) or not weights.sum() > 0:
            raise ValueError(f"WeightedRandomSampler: weights must be a 1-D sequence of numbers >= 0, not all 0, "
                             f"got shape {weights.shape}")
        self.num_samples = _positive_int(num_samples, "WeightedRandomSampler num_samples")
        self.replacement = _flag(replacement, "WeightedRandomSampler replacement")
        if not self.replacement and self.num_samples > numpy.count_nonzero(weights):
            raise ValueError(f"WeightedRandomSampler: {self.num_samples} samples without replacement from "
                             f"{numpy.count_nonzero(weights)} indices of weight > 0")
        generator_or_global(generator, "WeightedRandomSampler")
        self.weights, self.generator = weights, generator

    def __iter__(self):
        rng = generator_or_global(self.generator, "WeightedRandomSampler")
        return iter(rng.choice(len(self.weights), self.num_samples, self.replacement,
                               self.weights / self.weights.sum()).tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """torch.utils.data.BatchSampler(sampler, batch_size, drop_last): the sampler's indices in lists of
    batch_size (the last one shorter, or dropped with drop_last). DataLoader(batch_sampler=...) takes one."""

    def __init__(self, sampler, batch_size, drop_last):
        self.sampler = sampler
        self.batch_size = _positive_int(batch_size, "BatchSampler batch_size")
        if not isinstance(drop_last, (bool, numpy.bool_)):  # NOTE: a ValueError here, as torch's BatchSampler
            raise ValueError(f"BatchSampler drop_last must be True or False, got {drop_last!r}")
        self.drop_last = bool(drop_last)

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class DataLoader:
    """torch.utils.data.DataLoader(dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
    num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
    multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False): batches
    of a Dataset, one epoch per iter(), with torch's rules for these arguments: the order comes from `sampler`
    (any iterable of indices), or shuffle=True's RandomSampler (drawing from `generator`, a
    numpy.random.Generator, else the global one: tinygrad_cnn.manual_seed reproduces it, as torch.manual_seed
    does torch's), else in order; `batch_sampler` gives whole batches instead, and excludes batch_size, shuffle,
    sampler and drop_last; sampler excludes shuffle (ValueErrors, as torch's). NOTE: batches are made in this
    process (as torch's with num_workers=0): worker_init_fn is never called, and with num_workers=0 the
    worker options raise as torch's do."""

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True):
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"DataLoader needs a dataset with __getitem__ and __len__ (a Dataset subclass or a "
                            f"TensorDataset), got {type(dataset).__name__}; for NumPy arrays x, y use "
                            f"tinygrad_cnn.data.DataLoader(x, y, batch_size=...)")
        shuffle = False if shuffle is None else _flag(shuffle, "DataLoader: shuffle")
        drop_last = _flag(drop_last, "DataLoader: drop_last")
        for name, value in (("pin_memory", pin_memory), ("persistent_workers", persistent_workers),
                            ("in_order", in_order)):
            _flag(value, f"DataLoader: {name}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be an int >= 0, got {num_workers!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or timeout < 0:
            raise ValueError(f"DataLoader: timeout must be a number >= 0, got {timeout!r}")
        if num_workers == 0:  # NOTE: torch's checks; with num_workers > 0 they are accepted and change nothing
            for name, value, default in (("prefetch_factor", prefetch_factor, None),
                                         ("persistent_workers", persistent_workers, False),
                                         ("multiprocessing_context", multiprocessing_context, None)):
                if value is not default and value != default:
                    raise ValueError(f"DataLoader: {name}={value!r} needs num_workers > 0 (worker processes), as "
                                     f"torch's; leave it out")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler= and shuffle=True are mutually exclusive (as torch's): the sampler "
                             "gives the order; give a RandomSampler or SubsetRandomSampler to shuffle")
        if batch_sampler is not None:
            if batch_size not in (1, None) or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler= is mutually exclusive with batch_size, shuffle, "
                                 "sampler and drop_last (as torch's): the batch sampler gives whole batches")
            batch_size = None
        elif batch_size is None:
            raise NotImplementedError("DataLoader: batch_size=None (no automatic batching) is not offered here; "
                                      "iterate the dataset itself, or give batch_size=1 and take batch[0]")
        else:
            batch_size = _positive_int(batch_size, "DataLoader: batch_size")
        generator_or_global(generator, "DataLoader")  # a clear error now for anything but a Generator
        if sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset, self.batch_size, self.drop_last, self.sampler = dataset, batch_size, drop_last, sampler
        self.batch_sampler, self.generator, self.num_workers = batch_sampler, generator, int(num_workers)
        self.collate_fn, self.pin_memory, self.timeout = collate_fn or default_collate, pin_memory, timeout
        self.worker_init_fn = worker_init_fn

    def __len__(self):
        return len(self.batch_sampler)

    def __iter__(self):
        for indices in self.batch_sampler:
            if isinstance(self.dataset, TensorDataset) and self.collate_fn is default_collate:
                # NOTE: a TensorDataset's batch is one gather per tensor, not a stack of single samples; a
                # tensor that requires grad is indexed in the graph, so that its batches do too (torch's)
                indices = numpy.asarray(indices, dtype=numpy.int64)
                yield tuple(t[indices] if t.requires_grad else Tensor(t.data[t.xp.asarray(indices)], device=t.device)
                            for t in self.dataset.tensors)
            else:
                yield self.collate_fn([self.dataset[int(i)] for i in indices])


class Subset(Dataset):
    """torch.utils.data.Subset(dataset, indices): sample i is dataset[indices[i]]."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, indices

    def __getitem__(self, index):
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths, generator=None):
    """torch.utils.data.random_split(dataset, lengths, generator=None): Subsets of a random permutation of the
    dataset, of the given lengths (which sum to its length), or of fractions summing to 1 (each length
    floor(fraction * n), the remainder given one each to the first ones, as torch's). The permutation comes
    from `generator` (a numpy.random.Generator) or the global one; torch's own draws are not reproduced."""
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(f, float) for f in lengths):
        if not math.isclose(sum(lengths), 1.0) or not all(0.0 <= f <= 1.0 for f in lengths):
            raise ValueError(f"random_split: fractions must each lie in [0, 1] and sum to 1, got {lengths}")
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if not lengths or any(isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 0 for k in lengths) \
            or sum(lengths) != n:
        raise ValueError(f"random_split: lengths must be ints >= 0 summing to the dataset's length {n} (or "
                         f"fractions summing to 1), got {lengths}")
    order = generator_or_global(generator, "random_split").permutation(n).tolist()
    starts = numpy.cumsum([0] + lengths).tolist()
    return [Subset(dataset, order[a:b]) for a, b in zip(starts, starts[1:])]


__all__ = ["Dataset", "TensorDataset", "DataLoader", "default_collate", "Sampler", "SequentialSampler",
           "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler", "Subset",
           "random_split"]
