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
