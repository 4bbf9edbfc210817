"""torch.utils.data's spelling (`from tinygrad_cnn.utils.data import DataLoader, TensorDataset, Dataset`, where
PyTorch code imports from torch.utils.data): a Dataset subclass or a TensorDataset, batched by a DataLoader as
torch's default collate batches them. tinygrad_cnn.data.DataLoader(x, y) over NumPy arrays is the fast path;
this one is for code written for PyTorch. NOTE: no worker processes (num_workers and pin_memory change nothing:
batches are made in this process)."""
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


class DataLoader:
    """torch.utils.data.DataLoader(dataset, batch_size=1, shuffle=False, drop_last=False, collate_fn=None):
    batches of a Dataset, one epoch per iter(). The shuffled order comes from the global generator
    (tinygrad_cnn.manual_seed reproduces it, as torch.manual_seed does torch's) or from `generator`, a
    numpy.random.Generator."""

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, num_workers=0, pin_memory=False,
                 collate_fn=None, generator=None):
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"DataLoader needs a dataset with __getitem__ and __len__ (a Dataset subclass or a "
                            f"TensorDataset), got {type(dataset).__name__}; for NumPy arrays x, y use "
                            f"tinygrad_cnn.data.DataLoader(x, y, batch_size=...)")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        for name, value in (("shuffle", shuffle), ("drop_last", drop_last), ("pin_memory", pin_memory)):
            if not isinstance(value, (bool, numpy.bool_)):
                raise TypeError(f"DataLoader: {name} must be True or False, got {value!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be an int >= 0, got {num_workers!r}")
        generator_or_global(generator, "DataLoader")  # a clear error now for anything but a Generator
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, int(batch_size), bool(shuffle), \
            bool(drop_last)
        self.collate_fn, self.generator = collate_fn or default_collate, generator

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        order = generator_or_global(self.generator, "DataLoader").permutation(n) if self.shuffle else numpy.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            indices = order[start:start + self.batch_size]
            if isinstance(self.dataset, TensorDataset) and self.collate_fn is default_collate:
                # NOTE: a TensorDataset's batch is one gather per tensor, not a stack of single samples; a
                # tensor that requires grad is indexed in the graph, so that its batches do too (torch's)
                yield tuple(t[indices] if t.requires_grad else Tensor(t.data[t.xp.asarray(indices)], device=t.device)
                            for t in self.dataset.tensors)
            else:
                yield self.collate_fn([self.dataset[int(i)] for i in indices])


__all__ = ["Dataset", "TensorDataset", "DataLoader", "default_collate"]
