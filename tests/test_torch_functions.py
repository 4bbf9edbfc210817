"""torch's top-level spellings that need no torch to test (tests/test_torch_users.py compares the rest with
torch): torch.save/torch.load of state dicts and training checkpoints, the lr_scheduler import path, the
errors that name what to write for torch's names not offered, and the gradients of the torch-named methods."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_cnn as tg
import tinygrad_cnn.torch_nn as nn
from tinygrad_cnn import optim
from tinygrad_cnn.checkpoint import CheckpointError
from tinygrad_cnn.nn import functional as F
from tinygrad_cnn.testing import gradcheck
from tinygrad_cnn.testing import strategies as S


def _data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _setup(seed=0):
    tg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.99))
    return model, opt, optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)


def _epoch(model, opt, sched, seed):
    x, y = tg.Tensor(_data(6, 4, seed=seed)), tg.Tensor(np.arange(6) % 3)
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()
    sched.step()


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_a_saved_checkpoint_resumes_as_if_never_stopped(tmp_path, suffix):
    model, opt, sched = _setup()
    for epoch in range(3):
        _epoch(model, opt, sched, epoch)
    path = tmp_path / f"checkpoint{suffix}"
    # before: AttributeError (module 'tinygrad_cnn' has no attribute 'save')
    tg.save({"epoch": 3, "loss": 0.25, "model_state_dict": model.state_dict(),
             "optimizer_state_dict": opt.state_dict(), "scheduler": sched.state_dict()}, path)
    tg.save(model.state_dict(), tmp_path / f"weights{suffix}")  # the plain torch.save(model.state_dict(), PATH)
    for epoch in range(3, 6):
        _epoch(model, opt, sched, epoch)

    fresh, fresh_opt, fresh_sched = _setup(seed=1)
    checkpoint = tg.load(path)
    assert checkpoint["epoch"] == 3 and type(checkpoint["epoch"]) is int and checkpoint["loss"] == 0.25
    fresh.load_state_dict(checkpoint["model_state_dict"])
    fresh_opt.load_state_dict(checkpoint["optimizer_state_dict"])
    fresh_sched.load_state_dict(checkpoint["scheduler"])
    for epoch in range(checkpoint["epoch"], 6):
        _epoch(fresh, fresh_opt, fresh_sched, epoch)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[k], v)
    assert fresh_sched.get_last_lr() == sched.get_last_lr() and fresh_opt.lr == opt.lr
    weights = tg.load(tmp_path / f"weights{suffix}")
    assert sorted(weights) == sorted(model.state_dict())
    fresh.load_state_dict(weights)


def test_save_refuses_pickles_by_name(tmp_path):
    model = nn.Linear(2, 2)
    with pytest.raises(CheckpointError, match=r"'.*m\.pt' is torch's pickle format.*\.safetensors"):
        tg.save(model.state_dict(), str(tmp_path / "m.pt"))
    with pytest.raises(TypeError, match="for a model save model.state_dict()"):
        tg.save(model, tmp_path / "m.safetensors")
    with pytest.raises(TypeError, match="keys must be strings without '/'"):
        tg.save({"a/b": np.zeros(1)}, tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="map_location must be None or 'cpu'"):
        tg.load(tmp_path / "m.safetensors", map_location="cuda:0")
    assert not list(tmp_path.iterdir())


def test_torch_import_paths_and_seeds():
    # before: ModuleNotFoundError ('tinygrad_cnn.optim' is not a package)
    from tinygrad_cnn.optim.lr_scheduler import StepLR
    assert StepLR is optim.StepLR
    tg.cuda.manual_seed_all(5)  # before: AttributeError; draws come from the one CPU generator, seeded
    first = tg.rand(3).numpy()
    tg.manual_seed(5)
    np.testing.assert_array_equal(tg.rand(3).numpy(), first)


@pytest.mark.parametrize("where, name, says", [
    (tg, "backends", "drop the torch.backends lines"), (tg, "jit", "no TorchScript"),
    (tg, "compile", "drop torch.compile"), (tg.Tensor([1.0]), "gather", r"arange\(n\), index\]"),
    (tg.Tensor([1.0]), "masked_fill", r"where\(mask, value, x\)"), (tg.Tensor([1.0]), "topk", r"x.argmax\(dim\)"),
    (tg.nn, "utils", r"tinygrad_cnn\.torch_nn\.utils"), (tg.nn, "CrossEntropyLoss", "torch_nn.CrossEntropyLoss")])
def test_torch_names_not_offered_say_what_to_write(where, name, says):
    with pytest.raises(AttributeError, match=says):
        getattr(where, name)
    assert not hasattr(where, name)


def test_other_missing_names_keep_python_s_error():
    with pytest.raises(AttributeError, match="'Tensor' object has no attribute 'no_such_thing'"):
        tg.Tensor([1.0]).no_such_thing
    with pytest.raises(AttributeError, match="module 'tinygrad_cnn' has no attribute 'no_such_thing'"):
        tg.no_such_thing


def _pair(n=3):
    return st.tuples(S.arrays((n,)), S.arrays((n,)), st.floats(-2, 2))


@given(_pair())
def test_torch_named_arithmetic_gradients_match_central_differences(args):
    a, b, alpha = args
    x, y = tg.Tensor(a, requires_grad=True), tg.Tensor(b, requires_grad=True)
    gradcheck(lambda x, y: x.add(y, alpha=alpha).sub(x, alpha=0.5).mul(y).div(1.5).pow(2), [x, y])


@given(S.away_from(S.arrays((4,)), kinks=(-0.5, 0.7)))
def test_clamp_gradient_matches_central_differences(a):
    gradcheck(lambda x: x.clamp(min=-0.5, max=0.7) * 3.0, [tg.Tensor(a, requires_grad=True)])
    gradcheck(lambda x: tg.clamp(x, min=-0.5), [tg.Tensor(a, requires_grad=True)])


@pytest.mark.parametrize("make, shape", [(lambda: nn.Linear(3, 2), (4, 3)), (lambda: nn.Conv2d(1, 2, 3), (2, 1, 5, 5)),
                                         (lambda: nn.BatchNorm2d(2), (2, 2, 3, 3))])
def test_torch_s_p_data_equals_a_tensor_is_named(make, shape):
    model = make()
    p = model.parameters()[0]
    p.data = tg.randn(*p.shape)  # torch's habit; here .data is the array itself
    # before: a NumPy ufunc TypeError (Linear), or no error at all and a Tensor inside a Tensor (Conv2d, BatchNorm2d)
    with pytest.raises(TypeError, match=r"\.data is a Tensor.*write p\.data = t\.data"):
        model(tg.randn(*shape))
