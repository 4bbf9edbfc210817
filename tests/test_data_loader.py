"""Tests for tinygrad_cnn.data.DataLoader.

Batching and shuffling logic is checked through `iter_numpy` (the same
batches without Tensor wrapping); the Tensor path is checked for shapes,
dtypes, values and devices.
"""

import numpy as np
import pytest

import tinygrad_cnn
from tinygrad_cnn.data import DataLoader
from tinygrad_cnn.datasets.mnist import to_float_images
from tinygrad_cnn.device import canonical_device


def dataset(n=10):
    """x[i] holds i everywhere, so a batch's indices can be read back."""
    x = np.repeat(np.arange(n, dtype=np.int64)[:, None], 3, axis=1)
    y = np.arange(n, dtype=np.int64) * 10
    return x, y


# --- batching -------------------------------------------------------------

@pytest.mark.parametrize("n, bs, drop_last, sizes", [
    (10, 3, False, [3, 3, 3, 1]),
    (10, 3, True, [3, 3, 3]),
    (9, 3, False, [3, 3, 3]),
    (9, 3, True, [3, 3, 3]),
    (2, 5, False, [2]),
    (2, 5, True, []),
    (0, 4, False, []),
])
def test_batch_count_and_sizes(n, bs, drop_last, sizes):
    x, y = dataset(n)
    loader = DataLoader(x, y, batch_size=bs, drop_last=drop_last)
    assert len(loader) == len(sizes)
    batches = list(loader.iter_numpy())
    assert [len(xb) for xb, _ in batches] == sizes
    assert [len(yb) for _, yb in batches] == sizes


def test_unshuffled_order_and_pairing():
    x, y = dataset(7)
    batches = list(DataLoader(x, y, batch_size=3).iter_numpy())
    np.testing.assert_array_equal(np.concatenate([b for b, _ in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b for _, b in batches]), y)


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_sample_once_per_epoch(shuffle):
    x, y = dataset(23)
    loader = DataLoader(x, y, batch_size=4, shuffle=shuffle, seed=1)
    for _ in range(3):
        seen = []
        for xb, yb in loader.iter_numpy():
            np.testing.assert_array_equal(yb, xb[:, 0] * 10)  # pairs intact
            seen.extend(xb[:, 0].tolist())
        assert sorted(seen) == list(range(23))


def test_drop_last_with_shuffle_drops_a_random_remainder():
    x, y = dataset(10)
    loader = DataLoader(x, y, batch_size=4, shuffle=True, seed=0,
                        drop_last=True)
    seen = [b[:, 0].tolist() for b, _ in loader.iter_numpy()]
    assert [len(s) for s in seen] == [4, 4]
    assert len(set(sum(seen, []))) == 8


def test_batches_do_not_alias_the_dataset():
    x, y = dataset(6)
    xb, _ = next(DataLoader(x, y, batch_size=3).iter_numpy())
    xb[...] = -1
    assert (x >= 0).all()


# --- shuffling ------------------------------------------------------------

def epoch_orders(loader, epochs):
    return [np.concatenate([xb[:, 0] for xb, _ in loader.iter_numpy()])
            .tolist() for _ in range(epochs)]


def test_seeded_shuffle_reproducible_and_differs_across_epochs():
    x, y = dataset(50)
    first = epoch_orders(DataLoader(x, y, 8, shuffle=True, seed=123), 3)
    again = epoch_orders(DataLoader(x, y, 8, shuffle=True, seed=123), 3)
    assert first == again
    assert first[0] != first[1] != first[2]
    assert first[0] != list(range(50))
    other = epoch_orders(DataLoader(x, y, 8, shuffle=True, seed=124), 1)
    assert other[0] != first[0]


def test_permutation_drawn_when_epoch_starts():
    """Epochs are numbered by iter() calls, not by when batches are read."""
    x, y = dataset(30)
    a = DataLoader(x, y, 30, shuffle=True, seed=5)
    b = DataLoader(x, y, 30, shuffle=True, seed=5)
    a1, a2 = a.iter_numpy(), a.iter_numpy()
    b1 = next(b.iter_numpy())[0]
    b2 = next(b.iter_numpy())[0]
    np.testing.assert_array_equal(next(a2)[0], b2)
    np.testing.assert_array_equal(next(a1)[0], b1)


def test_tensor_and_numpy_epochs_share_the_generator():
    x, y = dataset(20)
    a = DataLoader(x, y, 20, shuffle=True, seed=7, device="cpu")
    b = DataLoader(x, y, 20, shuffle=True, seed=7, device="cpu")
    xa, _ = next(iter(a))
    xb, _ = next(b.iter_numpy())
    np.testing.assert_array_equal(xa.numpy(), xb)


# --- validation -----------------------------------------------------------

def test_mismatched_lengths():
    with pytest.raises(ValueError, match=r"len\(x\)=5.*len\(y\)=4"):
        DataLoader(np.zeros((5, 2)), np.zeros(4))


def test_scalar_inputs_rejected():
    with pytest.raises(ValueError, match="same length"):
        DataLoader(np.zeros((5, 2)), np.int64(3))
    with pytest.raises(ValueError, match="first"):
        DataLoader(np.float32(1.0))


@pytest.mark.parametrize("bs", [0, -1, 2.5, 4.0, "8", True, None])
def test_bad_batch_size(bs):
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(np.zeros((5, 2)), batch_size=bs)


def test_numpy_integer_batch_size_accepted():
    loader = DataLoader(np.zeros((5, 2)), batch_size=np.int64(2))
    assert len(loader) == 3


def test_bad_transform():
    with pytest.raises(TypeError, match="transform"):
        DataLoader(np.zeros((5, 2)), transform="scale")


# --- Tensor output --------------------------------------------------------

def test_yields_tensors_with_dtypes_kept():
    x = np.arange(5 * 28 * 28, dtype=np.uint8).reshape(5, 28, 28)
    y = np.array([3, 1, 4, 1, 5], dtype=np.int64)
    batches = list(DataLoader(x, y, batch_size=2, device="cpu"))
    assert len(batches) == 3
    xb, yb = batches[0]
    assert isinstance(xb, tinygrad_cnn.Tensor)
    assert isinstance(yb, tinygrad_cnn.Tensor)
    assert xb.shape == (2, 28, 28) and xb.dtype == np.uint8
    assert yb.shape == (2,) and yb.dtype == np.int64
    assert xb.device == "cpu" and yb.device == "cpu"
    np.testing.assert_array_equal(xb.numpy(), x[:2])
    np.testing.assert_array_equal(batches[-1][1].numpy(), y[4:])


def test_uint8_labels_stay_integer():
    x = np.zeros((4, 28, 28), dtype=np.uint8)
    y = np.array([0, 9, 2, 7], dtype=np.uint8)
    _, yb = next(iter(DataLoader(x, y, batch_size=4,
                                 transform=to_float_images)))
    assert yb.dtype == np.uint8
    np.testing.assert_array_equal(yb.numpy(), y)


def test_transform_applied_to_x_only():
    x = (np.arange(6 * 28 * 28) % 256).astype(np.uint8).reshape(6, 28, 28)
    y = np.arange(6, dtype=np.int64)
    loader = DataLoader(x, y, batch_size=4, transform=to_float_images,
                        device="cpu")
    (xb, yb), (xb2, _) = list(loader)
    assert xb.shape == (4, 1, 28, 28) and xb.dtype == np.float32
    assert xb2.shape == (2, 1, 28, 28)
    np.testing.assert_allclose(xb.numpy()[:, 0], x[:4] / 255.0, rtol=1e-6)
    assert yb.dtype == np.int64


def test_x_only_yields_single_tensor():
    x = np.arange(10, dtype=np.float32).reshape(5, 2)
    out = list(DataLoader(x, batch_size=2, device="cpu"))
    assert all(isinstance(t, tinygrad_cnn.Tensor) for t in out)
    assert [t.shape for t in out] == [(2, 2), (2, 2), (1, 2)]
    np.testing.assert_array_equal(np.concatenate([t.numpy() for t in out]),
                                  x)


def test_default_device():
    x, y = dataset(4)
    xb, yb = next(iter(DataLoader(x, y, batch_size=4)))
    assert xb.device == yb.device == canonical_device(None)


@pytest.mark.skipif(not tinygrad_cnn.cuda_available(),
                    reason="needs a CUDA device with CuPy")
def test_cuda_device():
    x = np.arange(6 * 28 * 28, dtype=np.uint8).reshape(6, 28, 28)
    y = np.arange(6, dtype=np.int64)
    loader = DataLoader(x, y, batch_size=4, shuffle=True, seed=0,
                        device="cuda", transform=to_float_images)
    seen = []
    for xb, yb in loader:
        assert xb.device == yb.device == "cuda:0"
        assert xb.dtype == np.float32 and yb.dtype == np.int64
        np.testing.assert_allclose(xb.numpy()[:, 0],
                                   x[yb.numpy()] / 255.0, rtol=1e-6)
        seen.extend(yb.numpy().tolist())
    assert sorted(seen) == list(range(6))


def test_on_real_mnist_subset():
    """End to end: the MNIST loader's arrays through the DataLoader."""
    from tinygrad_cnn.datasets import mnist
    _, (x_test, y_test) = mnist.load_data(mnist.REPO_DATA_DIR)
    loader = DataLoader(x_test, y_test, batch_size=128, shuffle=True,
                        seed=0, drop_last=True, device="cpu",
                        transform=mnist.to_float_images)
    assert len(loader) == 10000 // 128
    xb, yb = next(iter(loader))
    assert xb.shape == (128, 1, 28, 28) and xb.dtype == np.float32
    assert yb.shape == (128,) and yb.dtype == np.uint8
    assert 0.0 <= xb.numpy().min() and xb.numpy().max() <= 1.0
