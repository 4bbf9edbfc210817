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
            numeric[i] = (_penalty(tg, nn, up, real, fake, alpha)[0] - _penalty(tg, nn, down, real, fake, alpha)[0]) / (2 * h)
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
