"""Gradients written straight into the optimizer's flat buffer (kernels/optim.py _Flat's homes, kernels/homes.py),
on the CPU and on a GPU: never over a gradient, or a view of one, that something still holds."""
import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import nn, optim
from tinygrad_cnn.device import to_numpy
from tinygrad_cnn.nn import functional as F

from conftest import DEVICES


pytestmark = pytest.mark.kernels  # gradient homes are the kernel engine's


def _tiny_model_step(model, opt, seed, device="cuda"):
    rng = np.random.default_rng(seed)
    x = tg.Tensor(rng.random((4, 1, 8, 8), dtype=np.float32), device=device)
    opt.zero_grad()
    F.cross_entropy(model.logits(x), tg.Tensor(rng.integers(0, 3, 4), device=device)).backward()


def _tiny_model(device="cuda"):
    tg.manual_seed(0)
    model = nn.Sequential([nn.Conv2D(4, (3, 3), padding="same", activation="relu"), nn.MaxPool2D((2, 2)),
                           nn.Flatten(), nn.Dense(3)], input_shape=(1, 8, 8))
    model.to(device)
    return model


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_from_backward_are_the_optimizers_buffer_and_steps_match_gathered_ones(device):
    model, reference = _tiny_model(device), _tiny_model(device)
    opt, ref_opt = optim.Adam(model.parameters()), optim.Adam(reference.parameters())
    for seed in range(3):
        _tiny_model_step(model, opt, seed, device)
        _tiny_model_step(reference, ref_opt, seed, device)
        for p in reference.parameters():  # gradients set by hand: gathered by a copy
            p.grad = tg.Tensor(p.grad.numpy().copy(), device=device)
        if seed:
            assert all(p.grad.data is home for p, home in zip(opt.params, opt.engine._groups[0].homes))
        opt.step()
        ref_opt.step()
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


@pytest.mark.parametrize("device", DEVICES)
def test_a_gradient_still_held_is_not_overwritten_by_the_next_backward(device):
    model = _tiny_model(device)
    opt = optim.SGD(model.parameters(), lr=0.1)
    _tiny_model_step(model, opt, 0, device)
    opt.step()
    _tiny_model_step(model, opt, 1, device)
    held = [p.grad for p in opt.params]
    copies = [g.numpy().copy() for g in held]
    _tiny_model_step(model, opt, 2, device)  # zero_grad, another batch
    for g, c, p in zip(held, copies, opt.params):
        np.testing.assert_array_equal(g.numpy(), c)
        assert p.grad.data is not g.data
    before = [(p.numpy().copy(), p.grad.numpy().copy()) for p in opt.params]
    opt.step()  # from gradients outside the buffer: gathered, and still right
    for p, (value, grad) in zip(opt.params, before):
        np.testing.assert_allclose(p.numpy(), value - np.float32(0.1) * grad, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("device", DEVICES)
def test_a_view_of_a_gradient_still_held_is_not_overwritten_by_the_next_backward(device):
    model = _tiny_model(device)
    opt = optim.Adam(model.parameters())
    _tiny_model_step(model, opt, 0, device)
    opt.step()
    _tiny_model_step(model, opt, 1, device)
    assert opt.params[0].grad.data is opt.engine._groups[0].homes[0]
    row = opt.params[0].grad.data[0]  # a view of the optimizer's buffer
    kept = to_numpy(row).copy()
    _tiny_model_step(model, opt, 2, device)
    np.testing.assert_array_equal(to_numpy(row), kept)
    opt.step()
    del row
    _tiny_model_step(model, opt, 3, device)  # nothing holds a view now: the homes are used again
    assert all(p.grad.data is home for p, home in zip(opt.params, opt.engine._groups[0].homes))


@pytest.mark.gpu
def test_a_model_moved_after_the_optimizer_laid_it_out_gets_its_gradients_where_it_now_is():
    model = _tiny_model("cpu")
    opt = optim.Adam(model.parameters())
    _tiny_model_step(model, opt, 0, "cpu")
    opt.step()  # laid out on the CPU
    model.to("cuda")
    _tiny_model_step(model, opt, 1, "cuda")
    assert all(p.grad.device == p.device == "cuda:0" for p in model.parameters())
    opt.step()  # laid out again, on the GPU
    _tiny_model_step(model, opt, 2, "cuda")
    assert all(p.grad.data is home for p, home in zip(opt.params, opt.engine._groups[0].homes))
