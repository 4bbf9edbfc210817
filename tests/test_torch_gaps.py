"""Gaps a PyTorch user hits: a Sequential's state_dict names, autograd.grad with create_graph, and the
DataLoader's sampler options. Each test asserts the expected values itself (it runs without torch) and,
where torch is installed, also checks them against torch 2.13."""
import numpy as np
import pytest

import tinygrad_cnn as tg
import tinygrad_cnn.torch_nn as nn

try:
    import torch
except ImportError:  # NOTE: the torch comparisons are skipped; the asserted values still run
    torch = None


def _data(*shape, seed=0, dtype="float32"):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ------------------------------------------------------------------ 1. a Sequential's state_dict names

def _nested(nn_):
    return nn_.Sequential(nn_.Conv2d(1, 2, 3), nn_.ReLU(), nn_.Flatten(),
                          nn_.Sequential(nn_.Linear(8, 3), nn_.ReLU(), nn_.Linear(3, 4)), nn_.Linear(4, 2))


def _holder(nn_):
    class Net(nn_.Module):
        def __init__(self):
            super().__init__()
            self.features = nn_.Sequential(nn_.Conv2d(1, 2, 3), nn_.ReLU(), nn_.Conv2d(2, 2, 1))
            self.fc = nn_.Linear(8, 2)

        def forward(self, x):
            return self.fc(self.features(x).flatten(1))
    return Net()


NESTED_KEYS = ["0.weight", "0.bias", "3.0.weight", "3.0.bias", "3.2.weight", "3.2.bias", "4.weight", "4.bias"]
HOLDER_KEYS = ["features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias", "fc.weight", "fc.bias"]


def test_a_torch_style_sequential_names_its_weights_as_torch_does():
    # before: layers.0.weight, layers.3.layers.0.weight, features.layers.0.weight
    assert list(_nested(nn).state_dict()) == NESTED_KEYS
    assert list(_holder(nn).state_dict()) == HOLDER_KEYS
    assert [name for name, _ in _holder(nn).named_parameters()] == HOLDER_KEYS
    assert list(_nested(nn)[3:5].state_dict()) == NESTED_KEYS[2:]  # a slice keeps the positions, as torch's
    assert list(tg.nn.Sequential(nn.Linear(2, 3)).state_dict()) == ["layers.0.weight", "layers.0.bias"]  # Keras' own
    if torch is not None:
        assert list(_nested(torch.nn).state_dict()) == NESTED_KEYS
        assert list(_holder(torch.nn).state_dict()) == HOLDER_KEYS
        assert list(_nested(torch.nn)[3:5].state_dict()) == NESTED_KEYS[2:]


def test_a_sequential_of_an_ordered_dict_names_its_layers_by_the_keys():
    from collections import OrderedDict

    def make(nn_):
        return nn_.Sequential(OrderedDict([("conv1", nn_.Conv2d(1, 2, 3)), ("relu", nn_.ReLU()),
                                           ("head", nn_.Sequential(nn_.Flatten(), nn_.Linear(8, 2)))]))
    keys = ["conv1.weight", "conv1.bias", "head.1.weight", "head.1.bias"]
    ours = make(nn)  # before: TypeError, Sequential.add needs a Layer, got str
    assert list(ours.state_dict()) == keys and list(ours[1:].state_dict()) == keys[2:]
    assert ours.conv1 is ours[0] and ours(tg.zeros((1, 1, 4, 4))).shape == (1, 2)
    with pytest.raises(ValueError, match="without '.'"):
        nn.Sequential(OrderedDict([("a.b", nn.ReLU())]))
    if torch is not None:
        theirs = make(torch.nn)
        assert list(theirs.state_dict()) == keys and list(theirs[1:].state_dict()) == keys[2:]
        ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
        x = _data(2, 1, 4, 4)
        np.testing.assert_allclose(ours(tg.Tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_a_torch_state_dict_loads_by_name_and_computes_the_same():
    x = _data(2, 1, 4, 4)
    ours = _holder(nn)
    if torch is None:
        theirs_state = {k: v * 0.5 for k, v in ours.state_dict().items()}
    else:
        theirs = _holder(torch.nn)
        theirs_state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    ours.load_state_dict(theirs_state)  # before: missing key 'features.layers.0.weight', unexpected 'features.0.weight'
    for k, v in ours.state_dict().items():
        np.testing.assert_array_equal(v, theirs_state[k])
    if torch is not None:
        np.testing.assert_allclose(ours(tg.Tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_a_safetensors_file_torch_wrote_loads_by_name(tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch") if torch is not None else None
    if safetensors_torch is None:
        pytest.skip("torch is not installed (pip install torch==2.13.0)")
    theirs = _holder(torch.nn)
    safetensors_torch.save_file(theirs.state_dict(), str(tmp_path / "theirs.safetensors"))
    ours = _holder(nn)
    assert ours.load(tmp_path / "theirs.safetensors") == ([], [])  # before: missing 'features.layers.0.weight', ...
    x = _data(2, 1, 4, 4)
    np.testing.assert_allclose(ours(tg.Tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_files_saved_with_the_old_layers_names_still_load(tmp_path):
    # torch_nn.Sequential was nn.Sequential before it took torch's names: that class writes the old keys
    old_nested = tg.nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(),
                                  tg.nn.Sequential(nn.Linear(8, 3), nn.ReLU(), nn.Linear(3, 4)), nn.Linear(4, 2))
    assert "layers.3.layers.0.weight" in old_nested.state_dict()
    old_nested.save(tmp_path / "nested.safetensors")
    new = _nested(nn)
    assert new.load(tmp_path / "nested.safetensors") == ([], [])
    for (old_key, a), (new_key, b) in zip(old_nested.state_dict().items(), new.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=f"{old_key} -> {new_key}")
    old_holder = _holder(nn)
    old_holder.features = tg.nn.Sequential(old_holder.features.layers)
    assert "features.layers.2.weight" in old_holder.state_dict()
    tg.save(old_holder.state_dict(), tmp_path / "holder.safetensors")
    new = _holder(nn)
    new.load_state_dict(tg.load(tmp_path / "holder.safetensors"))
    np.testing.assert_array_equal(new.features[2].weight.numpy(), old_holder.features[2].weight.numpy())
    # an old key that fits nothing is still named as unexpected
    with pytest.raises(ValueError, match="unexpected key 'features.layers.7.weight'"):
        new.load_state_dict({**new.state_dict(), "features.layers.7.weight": np.zeros(1, np.float32)})


# ------------------------------------------------------------------ 2. torch.autograd.grad, create_graph

def _cubic(lib, x, w):
    return (x ** 3 * w).sum()


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")  # torch's, about its own cycles
def test_autograd_grad_with_create_graph_gives_a_hessian_vector_product():
    xs, ws, vs = (_data(4, seed=s, dtype="float64") for s in (1, 2, 3))
    results = {}
    for name, lib in (("ours", tg), ("torch", torch)):
        if lib is None:
            continue
        x = lib.tensor(xs, requires_grad=True)
        w, v = lib.tensor(ws), lib.tensor(vs)
        y = _cubic(lib, x, w)
        # before: module 'tinygrad_cnn.autograd' has no attribute 'grad'
        (g,) = lib.autograd.grad(y, x, create_graph=True)
        (hv,) = lib.autograd.grad((g * v).sum(), x)
        y = _cubic(lib, x, w)
        y.backward(create_graph=True)  # .grad keeps its graph
        g2 = x.grad
        x.grad = None
        (g2 * v).sum().backward()
        results[name] = [t.detach().numpy() for t in (g, hv, g2, x.grad)]
    expected = [3 * xs ** 2 * ws, 6 * xs * ws * vs, 3 * xs ** 2 * ws, 6 * xs * ws * vs]
    for name, got in results.items():
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12, err_msg=name)


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_backward_inputs_fills_only_those_grads_as_torchs():
    xs, ws = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    for lib in (tg, torch):
        if lib is None:
            continue
        x, w, z = (lib.tensor(a, requires_grad=True) for a in (xs, ws, np.array([1.0])))
        (x ** 2 * w).sum().backward(inputs=[x])  # before: unexpected keyword argument 'inputs'
        assert w.grad is None
        np.testing.assert_allclose(x.grad.numpy(), 2 * xs * ws, rtol=1e-12)
        (x ** 2 * w).sum().backward(inputs=x)  # accumulated, as backward() does
        np.testing.assert_allclose(x.grad.numpy(), 4 * xs * ws, rtol=1e-12)
        (x ** 2 * w).sum().backward(inputs=[z])  # not used: left alone
        assert z.grad is None
        h = x * 2
        (h * w).sum().backward(inputs=[h])  # an intermediate tensor gets a .grad when asked for
        np.testing.assert_allclose(h.grad.numpy(), ws, rtol=1e-12)
        x.grad = None
        (x ** 3).sum().backward(inputs=[x], create_graph=True)
        assert x.grad.requires_grad
        np.testing.assert_allclose(x.grad.detach().numpy(), 3 * xs ** 2, rtol=1e-12)
        with pytest.raises(RuntimeError, match="cannot be empty"):
            (x * w).sum().backward(inputs=[])


def _penalty(lib, nn_, params, real, fake, alpha):
    """A WGAN-GP gradient penalty of a small critic, as torch code writes it; the critic's weights given."""
    critic = nn_.Sequential(nn_.Conv2d(1, 2, 3), nn_.Tanh(), nn_.Flatten(), nn_.Linear(18, 1)).double()
    critic.load_state_dict({k: lib.tensor(v) for k, v in params.items()})
    interp = (lib.tensor(alpha) * lib.tensor(real) + (1 - lib.tensor(alpha)) * lib.tensor(fake)).requires_grad_(True)
    d = critic(interp)
    grads = lib.autograd.grad(outputs=d, inputs=interp, grad_outputs=lib.ones_like(d), create_graph=True,
                              retain_graph=True, only_inputs=True)[0]
    grads = grads.view(grads.size(0), -1)
    gp = (((grads ** 2).sum(dim=1).sqrt() - 1) ** 2).mean()
    gp.backward()
    return gp.item(), {k: None if p.grad is None else p.grad.numpy() for k, p in critic.named_parameters()}


def test_a_gradient_penalty_trains_the_critic_as_torch_does():
    real, fake = _data(3, 1, 5, 5, seed=1, dtype="float64"), _data(3, 1, 5, 5, seed=2, dtype="float64")
    alpha = np.random.default_rng(3).random((3, 1, 1, 1))
    shapes = {"0.weight": (2, 1, 3, 3), "0.bias": (2,), "3.weight": (1, 18), "3.bias": (1,)}
    params = {k: 0.5 * _data(*s, seed=10 + i, dtype="float64") for i, (k, s) in enumerate(shapes.items())}
    gp, grads = _penalty(tg, nn, params, real, fake, alpha)
    assert grads["3.bias"] is None  # the penalty does not depend on the last bias (torch's None too)
    # expected values without torch: central differences of the penalty in each weight
    h = 1e-6
    for key in ("0.weight", "0.bias", "3.weight"):
        numeric = np.zeros(shapes[key])
        for i in np.ndindex(*shapes[key]):
            up, down = ({**params, key: params[key].copy()} for _ in range(2))
            up[key][i] += h
            down[key][i] -= h
            numeric[i] = (_penalty(tg, nn, up, real, fake, alpha)[0]
                          - _penalty(tg, nn, down, real, fake, alpha)[0]) / (2 * h)
        np.testing.assert_allclose(grads[key], numeric, rtol=1e-6, atol=1e-8, err_msg=key)
    if torch is not None:
        their_gp, their_grads = _penalty(torch, torch.nn, params, real, fake, alpha)
        assert gp == pytest.approx(their_gp, rel=1e-12)
        assert their_grads["3.bias"] is None
        for key in ("0.weight", "0.bias", "3.weight"):
            np.testing.assert_allclose(grads[key], their_grads[key], rtol=1e-10, atol=1e-12, err_msg=key)


def test_autograd_grad_takes_torchs_other_arguments():
    x = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    z = tg.tensor(np.array([3.0]), requires_grad=True)
    y = (x ** 3).sum()
    gx, gz = tg.autograd.grad(y, [x, z], retain_graph=True, materialize_grads=True)
    np.testing.assert_array_equal(gz.numpy(), [0.0])  # torch: tensor([0.])
    np.testing.assert_array_equal(gx.numpy(), [3.0, 12.0])
    assert tg.autograd.grad(y, [x, z], retain_graph=True, allow_unused=True)[1] is None
    with pytest.raises(RuntimeError, match=r"inputs\[1\].*allow_unused=True"):
        tg.autograd.grad(y, [x, z], retain_graph=True)
    with pytest.raises(ValueError, match="materialize_grads=True.*allow_unused"):  # torch: ValueError too
        tg.autograd.grad(y, [x, z], retain_graph=True, materialize_grads=True, allow_unused=False)
    with pytest.raises(NotImplementedError, match="is_grads_batched.*once per upstream gradient"):
        tg.autograd.grad(y, x, retain_graph=True, is_grads_batched=True)
    assert tg.autograd.grad is tg.grad


# ------------------------------------------------------------------ 3. the DataLoader's samplers

from tinygrad_cnn.utils import data as tdata  # noqa: E402 (torch.utils.data's spelling)


def _libs():
    """(our torch.utils.data, our tensor maker), and torch's where installed."""
    yield tdata, tg.tensor
    if torch is not None:
        yield torch.utils.data, torch.tensor


def _firsts(loader):
    return [batch[0].tolist() for batch in loader]


def test_sampler_and_batch_sampler_give_the_batches_torch_gives():
    for lib, tensor in _libs():
        ds = lib.TensorDataset(tensor(np.arange(10)))
        # before: DataLoader() got an unexpected keyword argument 'sampler' / 'batch_sampler'
        assert _firsts(lib.DataLoader(ds, batch_size=2, sampler=[9, 1, 4])) == [[9, 1], [4]]
        loader = lib.DataLoader(ds, batch_size=4, sampler=lib.SequentialSampler(ds), drop_last=True)
        assert _firsts(loader) == [[0, 1, 2, 3], [4, 5, 6, 7]] and len(loader) == 2
        loader = lib.DataLoader(ds, batch_sampler=lib.BatchSampler(lib.SequentialSampler(ds), 3, False))
        assert _firsts(loader) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]] and len(loader) == 4
        assert loader.batch_size is None
        assert _firsts(lib.DataLoader(ds, batch_sampler=[[0, 5], [2]])) == [[0, 5], [2]]
        assert list(lib.BatchSampler(range(10), 4, True)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
        assert len(lib.BatchSampler(range(10), 4, False)) == 3
        # collate_fn gets the list of samples of each batch, with a sampler or a batch sampler alike
        assert list(lib.DataLoader(ds, batch_size=4, collate_fn=len)) == [4, 4, 2]
        assert list(lib.DataLoader(ds, batch_sampler=[[1, 2, 3], [4]], collate_fn=len)) == [3, 1]
        assert type(lib.DataLoader(ds).sampler).__name__ == "SequentialSampler"
        assert type(lib.DataLoader(ds, shuffle=True).sampler).__name__ == "RandomSampler"
        assert type(lib.DataLoader(ds).batch_sampler).__name__ == "BatchSampler"


@pytest.mark.parametrize("kwargs", [dict(sampler=[0, 1], shuffle=True), dict(batch_sampler=[[0]], batch_size=2),
                                    dict(batch_sampler=[[0]], shuffle=True), dict(batch_sampler=[[0]], sampler=[0]),
                                    dict(batch_sampler=[[0]], drop_last=True), dict(num_workers=-1),
                                    dict(timeout=-1), dict(prefetch_factor=2), dict(persistent_workers=True)])
def test_the_dataloader_refuses_what_torch_refuses(kwargs):
    for lib, tensor in _libs():
        with pytest.raises(ValueError):  # before (ours): a TypeError (unexpected keyword) or nothing
            lib.DataLoader(lib.TensorDataset(tensor(np.arange(4))), **kwargs)
    message = {"sampler": "mutually exclusive", "batch_sampler": "mutually exclusive", "num_workers": ">= 0",
               "timeout": ">= 0", "prefetch_factor": "num_workers > 0", "persistent_workers": "num_workers > 0"}
    with pytest.raises(ValueError, match=message[next(iter(kwargs))]):
        tdata.DataLoader(tdata.TensorDataset(tg.tensor(np.arange(4))), **kwargs)


def test_batch_size_none_is_refused_naming_what_to_write():
    with pytest.raises(NotImplementedError, match="batch_size=None.*iterate the dataset"):
        tdata.DataLoader(tdata.TensorDataset(tg.tensor(np.arange(4))), batch_size=None)
    with pytest.raises(AttributeError, match="Generator.*numpy.random.default_rng"):
        tg.Generator


def test_generator_orders_the_shuffle_and_nothing_else():
    ds = tdata.TensorDataset(tg.tensor(np.arange(10)))
    orders = [_firsts(tdata.DataLoader(ds, batch_size=5, shuffle=True, generator=np.random.default_rng(seed)))
              for seed in (0, 0, 1)]
    assert orders[0] == orders[1] != orders[2]
    assert sorted(sum(orders[0], [])) == list(range(10))
    tg.manual_seed(5)
    expected = tg.get_rng().random()
    tg.manual_seed(5)
    _firsts(tdata.DataLoader(ds, batch_size=5, shuffle=True, generator=np.random.default_rng(0)))
    assert tg.get_rng().random() == expected  # the global generator is not drawn from
    # without shuffle the generator changes nothing, and worker_init_fn is not called (no workers), as torch's
    for lib, tensor in _libs():
        calls = []
        loader = lib.DataLoader(lib.TensorDataset(tensor(np.arange(10))), batch_size=5, worker_init_fn=calls.append,
                                generator=np.random.default_rng(0) if lib is tdata else torch.Generator())
        assert _firsts(loader) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]] and calls == []
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        tdata.RandomSampler(ds, generator=0)


def test_random_samplers_draw_as_torchs_do():
    ds = list(range(10))
    for lib, _ in _libs():
        sampler = lib.RandomSampler(ds)
        assert len(sampler) == 10 and sorted(sampler) == ds
        drawn = list(lib.RandomSampler(ds, num_samples=15))  # one permutation, then five of the next
        assert len(drawn) == 15 and sorted(drawn[:10]) == ds and len(set(drawn[10:])) == 5
        drawn = list(lib.RandomSampler(ds, replacement=True, num_samples=40))
        assert len(drawn) == 40 and set(drawn) <= set(ds)
        assert sorted(lib.SubsetRandomSampler([5, 6, 7])) == [5, 6, 7]
        drawn = list(lib.WeightedRandomSampler([0.0, 1.0, 0.0, 3.0], 50))
        assert len(drawn) == 50 and set(drawn) == {1, 3}
        assert sorted(lib.WeightedRandomSampler([1.0, 1.0, 0.0, 1.0], 3, replacement=False)) == [0, 1, 3]
        for bad in (dict(batch_size=0, drop_last=False), dict(batch_size=2, drop_last=1)):
            with pytest.raises(ValueError):
                lib.BatchSampler(ds, **bad)
    first = list(tdata.RandomSampler(ds, generator=np.random.default_rng(7)))
    assert first == list(tdata.RandomSampler(ds, generator=np.random.default_rng(7)))


def test_subset_and_random_split_as_torchs():
    for lib, tensor in _libs():
        ds = lib.TensorDataset(tensor(np.arange(11) * 10))
        sub = lib.Subset(ds, [1, 3])
        assert len(sub) == 2 and sub[1][0].item() == 30
        parts = lib.random_split(ds, [3, 8])
        assert [len(p) for p in parts] == [3, 8]
        assert sorted(parts[0].indices + parts[1].indices) == list(range(11))
        assert [len(p) for p in lib.random_split(ds, [0.5, 0.5])] == [6, 5]  # the remainder to the first, as torch's
        assert [len(p) for p in lib.random_split(ds, [0.2, 0.3, 0.5])] == [3, 3, 5]
        for bad in ([3, 3], [0.3, 0.3]):
            with pytest.raises(ValueError):
                lib.random_split(ds, bad)
        # a validation split trains on one Subset and checks on the other, each batched by a DataLoader
        train, val = lib.random_split(ds, [8, 3])
        seen = sorted(sum((b[0].tolist() for b in lib.DataLoader(train, batch_size=3, shuffle=True)), []) +
                      sum((b[0].tolist() for b in lib.DataLoader(val, batch_size=3)), []))
        assert seen == list(range(0, 110, 10))
    parts = [tdata.random_split(range(11), [4, 7], generator=np.random.default_rng(3))[0].indices for _ in range(2)]
    assert parts[0] == parts[1]
