"""The API of gradients of gradients: tg.grad and backward(create_graph=True), their errors, the
kernels' fallback, a Hessian-vector product of the tutorial model's loss against finite differences
of its gradient, and the MNIST example's gradient penalty."""
import importlib.util
import os

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import Tensor
from tinygrad_cnn.nn import functional as F

from conftest import DEVICES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_grad_returns_tensors_and_leaves_dot_grad_alone():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    (g,) = tg.grad((x ** 3).sum(), x)
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)
    assert x.grad is None and not g.requires_grad


def test_third_derivative_of_a_power():
    x = Tensor(np.array([0.5, -2.0]), requires_grad=True)
    (g1,) = tg.grad((x ** 4).sum(), x, create_graph=True)
    (g2,) = tg.grad(g1.sum(), x, create_graph=True)
    (g3,) = tg.grad(g2.sum(), x)
    np.testing.assert_allclose(g1.numpy(), 4 * x.numpy() ** 3)
    np.testing.assert_allclose(g2.numpy(), 12 * x.numpy() ** 2)
    np.testing.assert_allclose(g3.numpy(), 24 * x.numpy())


@pytest.mark.parametrize("device", DEVICES)
def test_backward_create_graph_gives_a_grad_that_can_be_differentiated(device):
    x = Tensor(np.array([0.3, -1.2]), device=device, requires_grad=True)
    y = (x.tanh() * x).sum()
    y.backward(create_graph=True)
    assert x.grad.requires_grad
    first = x.grad.numpy().copy()
    t = np.tanh(x.numpy())
    np.testing.assert_allclose(first, t + x.numpy() * (1 - t ** 2))
    gx = x.grad
    x.grad = None
    (gx * gx).sum().backward()  # d/dx |f'(x)|^2 = 2 f'(x) f''(x)
    second = 2 * (1 - t ** 2) - 2 * x.numpy() * t * (1 - t ** 2)
    np.testing.assert_allclose(x.grad.numpy(), 2 * first * second)


def test_without_create_graph_the_gradient_has_no_graph():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * x).sum().backward()
    assert not x.grad.requires_grad and x.grad.is_leaf


def test_backward_keeps_its_old_grad_keyword():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 2).backward(grad=np.array([1.0, 3.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 6.0])


def test_two_leaves_given_one_gradient_get_memory_of_their_own():
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = Tensor(np.array([2.0]), requires_grad=True)
    (x + y).sum().backward(create_graph=True)
    assert not np.shares_memory(x.grad.data, y.grad.data)


def test_grad_of_an_intermediate_and_of_its_input_together():
    x = Tensor(np.array([2.0]), requires_grad=True)
    h = x * x
    gh, gx = tg.grad((h * 3).sum(), [h, x])
    np.testing.assert_allclose(gh.numpy(), [3.0])
    np.testing.assert_allclose(gx.numpy(), [12.0])


# ---------------------------------------------------------------- bad input

def test_grad_of_a_non_scalar_without_grad_outputs_names_the_shape():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"grad_outputs\[0\] is needed: the output has shape \(3,\)"):
        tg.grad(x * 2, x)


def test_an_unused_input_is_an_error_unless_allowed():
    x, z = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(4), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"inputs\[1\] \(shape \(4,\)\) was not used"):
        tg.grad((x * 2).sum(), [x, z])
    gx, gz = tg.grad((x * 2).sum(), [x, z], allow_unused=True)
    assert gz is None and gx.shape == (2,)


def test_an_input_that_does_not_require_grad_is_named():
    x = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"inputs\[1\] \(shape \(2,\)\) does not require grad"):
        tg.grad((x * 2).sum(), [x, Tensor(np.ones(2))])


def test_a_second_pass_through_a_freed_graph_is_refused():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x.exp() * x).sum()
    tg.grad(y, x)  # retain_graph defaults to create_graph, False here: the graph is freed
    with pytest.raises(RuntimeError, match="freed by an earlier backward"):
        tg.grad(y, x)


def test_an_in_place_change_between_the_two_passes_is_refused():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    w = Tensor(np.array([3.0, 4.0]), requires_grad=True)
    (g,) = tg.grad((x * x * w).sum(), x, create_graph=True)  # 2 x w: a graph through x and w
    with tg.no_grad():
        w.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        tg.grad(g.sum(), [x, w])


class _ArraysOnly(tg.Function):
    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return 2 * g * self.x


def test_a_custom_function_without_a_differentiable_backward_is_named():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = _ArraysOnly.apply(x).sum()
    (g,) = tg.grad(y, x)  # first order works
    np.testing.assert_allclose(g.numpy(), [2.0, 4.0])
    with pytest.raises(RuntimeError, match="_ArraysOnly has no differentiable backward"):
        tg.grad(_ArraysOnly.apply(x).sum(), x, create_graph=True)


# ---------------------------------------------------------------- kernels fall back to their references

def _float64_model(seed=0):
    """The tutorial's model in float64, with small random biases (ReLUs off their kinks)."""
    examples = _load_example("mnist")
    tg.manual_seed(seed)
    model = examples.build_model()
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        data = rng.uniform(-0.05, 0.05, p.shape) if name.endswith("bias") else p.numpy()
        p.data = data.astype("float64")
    x = Tensor(rng.uniform(0, 1, (2, 1, 28, 28)))
    y = Tensor(np.array([3, 7]))
    return model, x, y


def _load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hvp(model, x, y, v):
    params = model.parameters()
    loss = F.cross_entropy(model.logits(x), y)
    grads = tg.grad(loss, params, create_graph=True)
    dot = sum(((g * Tensor(vi)).sum() for g, vi in zip(grads, v)), Tensor(np.zeros(())))
    return [h.numpy() for h in tg.grad(dot, params)]


def _gradient(model, x, y):
    return [g.numpy() for g in tg.grad(F.cross_entropy(model.logits(x), y), model.parameters())]


def test_hessian_vector_product_of_the_tutorial_model_matches_finite_differences():
    """H v of the loss in the weights against (grad(w + eps v) - grad(w - eps v)) / 2 eps, to 1e-6."""
    model, x, y = _float64_model()
    rng = np.random.default_rng(1)
    v = [rng.standard_normal(p.shape) for p in model.parameters()]
    hvp = _hvp(model, x, y, v)
    # NOTE: eps = 1e-7, not 1e-5: with 50,000 ReLUs and max-pool windows, a step of 1e-5 moves some across
    # their kink or tie, where the gradient jumps (relative error ~1 measured); at 1e-7 none crosses, and
    # rounding (1e-16 |grad| / eps) stays near 1e-9: the measured agreement is 1e-10
    eps, originals = 1e-7, [p.data.copy() for p in model.parameters()]
    sides = []
    for sign in (1, -1):
        for p, o, vi in zip(model.parameters(), originals, v):
            p.data = o + sign * eps * vi
        sides.append(_gradient(model, x, y))
    for p, o in zip(model.parameters(), originals):
        p.data = o
    numeric = np.concatenate([((a - b) / (2 * eps)).ravel() for a, b in zip(*sides)])
    analytic = np.concatenate([h.ravel() for h in hvp])
    assert np.linalg.norm(numeric) > 1e-3  # a curvature to find: the loss is not linear in the weights
    assert np.linalg.norm(analytic - numeric) <= 1e-6 * np.linalg.norm(numeric)


def test_the_kernels_hessian_vector_product_equals_the_references():
    model, x, y = _float64_model()
    v = [np.random.default_rng(2).standard_normal(p.shape) for p in model.parameters()]
    with tg.kernels.enabled():
        fast = _hvp(model, x, y, v)
    with tg.kernels.reference():
        reference = _hvp(model, x, y, v)
    for a, b in zip(fast, reference):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- the MNIST example's gradient penalty

def test_mnist_gradient_penalty_trains_on_a_few_hundred_images(tmp_path):
    examples = _load_example("mnist")
    common = ["--epochs", "1", "--limit-train", "256", "--limit-test", "100", "--batch-size", "64",
              "--save", "", "--metrics", "", "--no-progress"]
    history = examples.main(common + ["--grad-penalty", "0.01"])
    assert np.isfinite(history[-1]["train_loss"]) and history[-1]["test_acc"] > 0.1


def test_mnist_gradient_penalty_changes_the_update_by_its_own_gradient():
    """One step with the penalty against one without: the difference of the weights' gradients is
    lambda times the gradient of the penalty, computed separately."""
    examples = _load_example("mnist")
    model, x, y = _float64_model()
    x = Tensor(x.data.copy())
    lam = 0.5

    class Record:
        skipped_steps = 0

        def zero_grad(self):
            for p in model.parameters():
                p.grad = None

        def step(self):
            self.grads = [p.grad.numpy().copy() for p in model.parameters()]

    with_penalty, without = Record(), Record()
    examples.train_step(model, with_penalty, x, y, grad_penalty=lam)
    examples.train_step(model, without, x, y)
    xr = Tensor(x.data, requires_grad=True)
    loss = F.cross_entropy(model.logits(xr), y)
    (gx,) = tg.grad(loss, xr, create_graph=True)
    penalty = (gx * gx).sum() * len(y)  # mean over images of |d loss_i / d x_i|^2
    expected = [g.numpy() for g in tg.grad(penalty, model.parameters())]
    for a, b, e in zip(with_penalty.grads, without.grads, expected):
        np.testing.assert_allclose(a - b, lam * e, rtol=1e-7, atol=1e-12)
    assert max(np.abs(e).max() for e in expected) > 0


def test_a_broadcast_operand_gets_its_own_shape_with_create_graph():
    """The recorded walk sums a broadcast gradient back to its input's shape (autograd.sum_to on
    Tensors), and the second derivative goes through that sum: d/dx of sum_j d/db_j sum (x b)^2."""
    rng = np.random.default_rng(0)
    x = tg.Tensor(rng.random((3, 4)), requires_grad=True)
    b = tg.Tensor(rng.random(4), requires_grad=True)
    grad_b, = tg.grad(((x * b) ** 2).sum(), [b], create_graph=True)
    assert grad_b.shape == (4,)
    np.testing.assert_allclose(grad_b.numpy(), (2 * x.numpy() ** 2 * b.numpy()).sum(axis=0))
    grad_x, = tg.grad(grad_b.sum(), [x])
    np.testing.assert_allclose(grad_x.numpy(), 4 * x.numpy() * b.numpy())
