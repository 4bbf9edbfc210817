"""torch.autograd.functional's spelling (tinygrad_cnn/autograd_functional.py): vjp, jvp, jacobian, hessian, vhp
and hvp against float64 central differences and analytic derivatives (no torch needed), their results' nesting
(a Tensor or a tuple per tuple, as torch's), create_graph=True (a Jacobian differentiated again), strict=True and
the options that are not offered; each torch comparison is the part of its test that needs torch."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn import Tensor
from tinygrad_cnn.autograd.functional import hessian, hvp, jacobian, jvp, vhp, vjp
from tinygrad_cnn.nn import functional as F

from conftest import DEVICES

EPS = 1e-6


def t64(array, requires_grad=False):
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=requires_grad)


def as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def outputs_of(func, arrays):
    """func's outputs at these arrays, as a tuple of NumPy arrays (no graph)."""
    with tg.no_grad():
        return tuple(o.numpy().astype(np.float64) for o in as_tuple(func(*(t64(a) for a in arrays))))


def numeric_jacobian(func, arrays):
    """J[i][k] of shape outputs[i].shape + arrays[k].shape by float64 central differences."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    shapes = [o.shape for o in outputs_of(func, arrays)]
    jac = [[np.zeros(s + a.shape) for a in arrays] for s in shapes]
    for k, a in enumerate(arrays):
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + EPS
            plus = outputs_of(func, arrays)
            a[idx] = old - EPS
            minus = outputs_of(func, arrays)
            a[idx] = old
            for i in range(len(shapes)):
                jac[i][k][(Ellipsis,) + idx] = (plus[i] - minus[i]) / (2 * EPS)
    return jac


def flat_jacobian(jac, out_shapes, in_shapes):
    """The nested Jacobian as one matrix (outputs flattened one after another, by inputs likewise)."""
    return np.block([[np.asarray(jac[i][k]).reshape(int(np.prod(o)), int(np.prod(s)))
                      for k, s in enumerate(in_shapes)] for i, o in enumerate(out_shapes)])


def assert_same_structure(ours, theirs, path="result"):
    """Ours nests as torch's: a tuple where torch gives one (same length), a Tensor of the same shape and
    values where torch gives a Tensor."""
    import torch
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs), (path, type(ours), len(theirs))
        for k, (a, b) in enumerate(zip(ours, theirs)):
            assert_same_structure(a, b, f"{path}[{k}]")
    else:
        assert isinstance(theirs, torch.Tensor) and isinstance(ours, Tensor), (path, type(ours))
        assert ours.shape == tuple(theirs.shape), (path, ours.shape, tuple(theirs.shape))
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-9, atol=1e-12, err_msg=path)


# ---------------------------------------------------------------- functions of one or two inputs

def cube_times(a, b):
    return a ** 3 * b.sum()


def two_outputs(a, b):
    return (a ** 3 * b.sum(), (a * 2).tanh())


def softmax_fn(a):
    return a.softmax(-1)


def scalar_of_two(a, b):
    return (a ** 3).sum() * (b * b).sum() + (a.sum() * b).exp().sum()


def torch_twin(fn):
    """The same function on torch tensors (softmax's axis is torch's dim)."""
    import torch
    return {softmax_fn: lambda a: torch.softmax(a, -1)}.get(fn, fn)


CASES = [  # (func, input shapes, inputs given as a tuple)
    (softmax_fn, [(4,)], False),            # one input, one output: a Tensor
    (softmax_fn, [(2, 3)], True),           # a tuple of one input
    (cube_times, [(3,), (2,)], True),       # tuple inputs, one output: a tuple over inputs
    (two_outputs, [(3,), (2,)], True),      # tuple inputs, tuple outputs: a tuple of tuples
    (lambda a: (a * a, a.sum()), [(3,)], False),  # one input, tuple outputs: a tuple over outputs
]


@pytest.mark.parametrize("func, shapes, is_tuple", CASES)
def test_jacobian_matches_central_differences_and_torch_nesting(func, shapes, is_tuple):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in shapes]
    inputs = tuple(t64(a) for a in arrays) if is_tuple else t64(arrays[0])
    ours = jacobian(func, inputs)
    out_shapes = [o.shape for o in outputs_of(func, arrays)]
    outputs_tuple = isinstance(func(*as_tuple(inputs)), tuple)
    nested = tuple(as_tuple(row) for row in as_tuple(ours)) if outputs_tuple else (as_tuple(ours),)
    assert isinstance(ours, tuple) == (is_tuple or outputs_tuple)
    for i, row in enumerate(nested):
        assert len(row) == len(shapes)
        for k, block in enumerate(row):
            assert isinstance(block, Tensor) and block.shape == out_shapes[i] + shapes[k]
            assert not block.requires_grad  # create_graph=False: detached, as torch's
    numeric = numeric_jacobian(func, arrays)
    np.testing.assert_allclose(flat_jacobian([[b.numpy() for b in row] for row in nested], out_shapes, shapes),
                               flat_jacobian(numeric, out_shapes, shapes), rtol=1e-6, atol=1e-8)
    torch = pytest.importorskip("torch")
    twin = torch_twin(func)
    theirs_inputs = tuple(torch.tensor(a) for a in arrays)
    theirs = torch.autograd.functional.jacobian(twin, theirs_inputs if is_tuple else theirs_inputs[0])
    assert_same_structure(ours, theirs)


def test_hessian_of_a_function_of_a_tuple_against_analytic_and_torch():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(3), rng.standard_normal(2)

    def f(x, y):
        return (x ** 3).sum() * (y * y).sum()

    h = hessian(f, (t64(a), t64(b)))
    assert isinstance(h, tuple) and all(isinstance(row, tuple) and len(row) == 2 for row in h)
    assert [[blk.shape for blk in row] for row in h] == [[(3, 3), (3, 2)], [(2, 3), (2, 2)]]
    s = (b * b).sum()
    np.testing.assert_allclose(h[0][0].numpy(), np.diag(6 * a) * s, rtol=1e-12)
    np.testing.assert_allclose(h[0][1].numpy(), np.outer(3 * a ** 2, 2 * b), rtol=1e-12)
    np.testing.assert_allclose(h[1][0].numpy(), np.outer(2 * b, 3 * a ** 2), rtol=1e-12)
    np.testing.assert_allclose(h[1][1].numpy(), 2 * np.eye(2) * (a ** 3).sum(), rtol=1e-12)
    single = hessian(lambda x: (x ** 3).sum(), t64(a))
    assert isinstance(single, Tensor) and single.shape == (3, 3)
    np.testing.assert_allclose(single.numpy(), np.diag(6 * a), rtol=1e-12)
    torch = pytest.importorskip("torch")
    assert_same_structure(h, torch.autograd.functional.hessian(f, (torch.tensor(a), torch.tensor(b))))
    assert_same_structure(single, torch.autograd.functional.hessian(lambda x: (x ** 3).sum(), torch.tensor(a)))


def test_hessian_of_a_mixed_function_against_central_differences_of_its_gradient():
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(3) * 0.5, rng.standard_normal(2) * 0.5]
    h = hessian(scalar_of_two, tuple(t64(a) for a in arrays))

    def gradient(x, y):
        return tg.grad(scalar_of_two(x, y), (x, y))

    def gradient_np(*arrs):
        with tg.enable_grad():
            return gradient(*(t64(a, requires_grad=True) for a in arrs))

    numeric = numeric_jacobian(gradient_np, arrays)
    shapes = [(3,), (2,)]
    np.testing.assert_allclose(flat_jacobian([[b.numpy() for b in row] for row in h], shapes, shapes),
                               flat_jacobian(numeric, shapes, shapes), rtol=1e-6, atol=1e-8)


def test_vjp_jvp_vhp_hvp_against_the_jacobian_and_hessian_and_torch():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(3), rng.standard_normal(2)
    u0, u1 = rng.standard_normal(3), rng.standard_normal(3)  # shaped as two_outputs' outputs
    va, vb = rng.standard_normal(3), rng.standard_normal(2)  # shaped as the inputs
    x, y = t64(a), t64(b)
    jac = jacobian(two_outputs, (x, y))
    out, back = vjp(two_outputs, (x, y), (t64(u0), t64(u1)))
    assert isinstance(out, tuple) and isinstance(back, tuple) and len(back) == 2
    np.testing.assert_allclose(out[0].numpy(), a ** 3 * b.sum())
    for k in range(2):
        want = u0 @ jac[0][k].numpy() + u1 @ jac[1][k].numpy()
        np.testing.assert_allclose(back[k].numpy(), want, rtol=1e-12, atol=1e-14)
    out, forward = jvp(two_outputs, (x, y), (t64(va), t64(vb)))
    assert isinstance(forward, tuple) and len(forward) == 2  # one per output
    for i in range(2):
        want = jac[i][0].numpy() @ va + jac[i][1].numpy() @ vb
        np.testing.assert_allclose(forward[i].numpy(), want, rtol=1e-12, atol=1e-14)
    h = hessian(scalar_of_two, (x, y))
    full = flat_jacobian([[blk.numpy() for blk in row] for row in h], [(3,), (2,)], [(3,), (2,)])
    v = np.concatenate([va, vb])
    value, left = vhp(scalar_of_two, (x, y), (t64(va), t64(vb)))
    value2, right = hvp(scalar_of_two, (x, y), (t64(va), t64(vb)))
    np.testing.assert_allclose(np.concatenate([t.numpy() for t in left]), v @ full, rtol=1e-12)
    np.testing.assert_allclose(np.concatenate([t.numpy() for t in right]), full @ v, rtol=1e-12)
    assert value.shape == () and value2.item() == value.item()
    torch = pytest.importorskip("torch")
    T = torch.autograd.functional
    ta, tb = torch.tensor(a), torch.tensor(b)
    assert_same_structure(vjp(two_outputs, (x, y), (t64(u0), t64(u1))),
                          T.vjp(two_outputs, (ta, tb), (torch.tensor(u0), torch.tensor(u1))))
    assert_same_structure(jvp(two_outputs, (x, y), (t64(va), t64(vb))),
                          T.jvp(two_outputs, (ta, tb), (torch.tensor(va), torch.tensor(vb))))
    assert_same_structure(vhp(scalar_of_two, (x, y), (t64(va), t64(vb))),
                          T.vhp(scalar_of_two, (ta, tb), (torch.tensor(va), torch.tensor(vb))))
    assert_same_structure(hvp(scalar_of_two, (x, y), (t64(va), t64(vb))),
                          T.hvp(scalar_of_two, (ta, tb), (torch.tensor(va), torch.tensor(vb))))
    # single tensors in, single out, v left out where the input or output has one element
    s = rng.standard_normal(1)
    assert_same_structure(vjp(lambda q: (q ** 2).sum(), t64(a)), T.vjp(lambda q: (q ** 2).sum(), ta))
    assert_same_structure(jvp(lambda q: q ** 2, t64(s)), T.jvp(lambda q: q ** 2, torch.tensor(s)))
    assert_same_structure(hvp(lambda q: (q ** 4).sum(), t64(s)), T.hvp(lambda q: (q ** 4).sum(), torch.tensor(s)))
    assert_same_structure(jvp(softmax_fn, t64(a), t64(va)), T.jvp(torch_twin(softmax_fn), ta, torch.tensor(va)))


def conv_loss(weight, bias):
    """A tiny conv layer's loss: cross-entropy of a 2x2 conv's flattened output on a fixed 1x1x3x3 image."""
    image = t64(np.linspace(-1.0, 1.0, 9).reshape(1, 1, 3, 3))
    logits = F.conv2d(image, weight, bias).reshape(1, -1)
    return F.cross_entropy(logits, Tensor(np.array([3])))


def test_jacobian_and_hessian_of_a_tiny_conv_layers_loss():
    rng = np.random.default_rng(4)
    w, b = rng.standard_normal((2, 1, 2, 2)) * 0.5, rng.standard_normal(2) * 0.5
    jac = jacobian(conv_loss, (t64(w), t64(b)))
    numeric = numeric_jacobian(conv_loss, [w, b])
    np.testing.assert_allclose(jac[0].numpy(), numeric[0][0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(jac[1].numpy(), numeric[0][1], rtol=1e-6, atol=1e-9)
    h = hessian(conv_loss, (t64(w), t64(b)))
    assert h[0][0].shape == (2, 1, 2, 2, 2, 1, 2, 2) and h[0][1].shape == (2, 1, 2, 2, 2)

    def gradient_np(ww, bb):
        with tg.enable_grad():
            ww, bb = t64(ww, requires_grad=True), t64(bb, requires_grad=True)
            return tg.grad(conv_loss(ww, bb), (ww, bb))

    numeric_h = numeric_jacobian(gradient_np, [w, b])
    shapes = [w.shape, b.shape]
    full = flat_jacobian([[blk.numpy() for blk in row] for row in h], shapes, shapes)
    np.testing.assert_allclose(full, flat_jacobian(numeric_h, shapes, shapes), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(full, full.T, atol=1e-12)
    torch = pytest.importorskip("torch")

    def theirs(weight, bias):
        image = torch.linspace(-1.0, 1.0, 9, dtype=torch.float64).reshape(1, 1, 3, 3)
        logits = torch.nn.functional.conv2d(image, weight, bias).reshape(1, -1)
        return torch.nn.functional.cross_entropy(logits, torch.tensor([3]))

    assert_same_structure(h, torch.autograd.functional.hessian(theirs, (torch.tensor(w), torch.tensor(b))))


@pytest.mark.parametrize("name", ["jacobian", "vjp", "jvp", "hessian", "vhp", "hvp"])
def test_create_graph_keeps_a_graph_that_differentiates_again(name):
    """d/dx of sum(result) at x, against the analytic third derivatives of f(x) = sum(x^4) (or x^3 elementwise)."""
    a = np.array([0.5, -1.5, 2.0])
    v = np.array([0.3, -0.7, 1.1])
    x = t64(a, requires_grad=True)
    cube, quartic = (lambda q: q ** 3), (lambda q: (q ** 4).sum())
    result, want = {
        "jacobian": lambda: (jacobian(cube, x, create_graph=True), 6 * a),                  # sum(diag(3x^2))
        "vjp": lambda: (vjp(cube, x, t64(v), create_graph=True)[1], 6 * a * v),              # sum(3x^2 v)
        "jvp": lambda: (jvp(cube, x, t64(v), create_graph=True)[1], 6 * a * v),
        "hessian": lambda: (hessian(quartic, x, create_graph=True), 24 * a),                 # sum(diag(12x^2))
        "vhp": lambda: (vhp(quartic, x, t64(v), create_graph=True)[1], 24 * a * v),          # sum(12x^2 v)
        "hvp": lambda: (hvp(quartic, x, t64(v), create_graph=True)[1], 24 * a * v),
    }[name]()
    assert result.requires_grad
    (g,) = tg.grad(result.sum(), x)
    np.testing.assert_allclose(g.numpy(), want, rtol=1e-12)
    assert x.grad is None


def test_results_without_create_graph_are_detached_and_leave_grad_alone():
    x = t64([1.0, 2.0], requires_grad=True)
    out, back = vjp(lambda q: (q * q).sum(), x)
    assert not out.requires_grad and not back.requires_grad and x.grad is None
    np.testing.assert_allclose(back.numpy(), [2.0, 4.0])


def test_the_import_paths_are_torchs():
    import tinygrad_cnn.autograd.functional as functional
    assert tg.autograd.functional is functional and functional.jacobian is jacobian
    assert tg.autograd_functional.hessian is hessian


# ---------------------------------------------------------------- a property test

FUNCTIONS = {
    "cube_times": (cube_times, 2),
    "softmax": (lambda a, b: (a * b.sum()).softmax(-1), 2),
    "tanh_exp": (lambda a, b: ((a * 0.5).tanh() * b.sum().exp(), (a * a).sum()), 2),
    "log_sigmoid": (lambda a: a.sigmoid().log(), 1),
}


@settings(deadline=None, max_examples=15)
@given(name=st.sampled_from(sorted(FUNCTIONS)), n=st.integers(1, 4), m=st.integers(1, 3),
       seed=st.integers(0, 2 ** 31 - 1))
def test_property_jacobian_and_vjp_match_central_differences(name, n, m, seed):
    func, arity = FUNCTIONS[name]
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-1.5, 1.5, n), rng.uniform(-1.0, 1.0, m)][:arity]
    shapes = [a.shape for a in arrays]
    inputs = tuple(t64(a) for a in arrays)
    out_shapes = [o.shape for o in outputs_of(func, arrays)]
    jac = jacobian(func, inputs)
    nested = jac if isinstance(func(*inputs), tuple) else (jac,)
    ours = flat_jacobian([[b.numpy() for b in row] for row in nested], out_shapes, shapes)
    numeric = flat_jacobian(numeric_jacobian(func, arrays), out_shapes, shapes)
    np.testing.assert_allclose(ours, numeric, rtol=1e-6, atol=1e-8)
    upstream = [rng.standard_normal(s) for s in out_shapes]  # a random upstream gradient
    outputs_tuple = isinstance(func(*inputs), tuple)
    v = tuple(t64(u) for u in upstream) if outputs_tuple else t64(upstream[0])
    _, back = vjp(func, inputs, v)
    flat_u = np.concatenate([u.reshape(-1) for u in upstream])
    np.testing.assert_allclose(np.concatenate([t.numpy().reshape(-1) for t in back]), flat_u @ numeric,
                               rtol=1e-6, atol=1e-8)
    direction = [rng.standard_normal(s) for s in shapes]
    _, forward = jvp(func, inputs, tuple(t64(d) for d in direction))
    flat_d = np.concatenate([d.reshape(-1) for d in direction])
    np.testing.assert_allclose(np.concatenate([t.numpy().reshape(-1) for t in as_tuple(forward)]),
                               numeric @ flat_d, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------- strict=True and the errors

def test_strict_refuses_an_output_independent_of_an_input_as_torch():
    x, y = t64([1.0, 2.0]), t64([3.0])
    loose = jacobian(lambda a, b: a * 2, (x, y))
    np.testing.assert_array_equal(loose[1].numpy(), np.zeros((2, 1)))
    with pytest.raises(RuntimeError, match="Output 0 of the user-provided function is independent of input 1"):
        jacobian(lambda a, b: a * 2, (x, y), strict=True)
    with pytest.raises(RuntimeError, match="does not require gradients"):
        jacobian(lambda a: tg.zeros(2, dtype=tg.float64), x, strict=True)
    np.testing.assert_array_equal(jacobian(lambda a: tg.zeros(2, dtype=tg.float64), x).numpy(), np.zeros((2, 2)))
    with pytest.raises(RuntimeError, match="independent of input 1"):
        vjp(lambda a, b: (a * a).sum(), (x, y), strict=True)
    with pytest.raises(RuntimeError, match="jacobian of the user-provided function with respect to input 0 is "
                                           "independent of the input"):
        hessian(lambda a: (a * 3).sum(), x, strict=True)  # linear: its gradient has no graph
    np.testing.assert_array_equal(hessian(lambda a: (a * 3).sum(), x).numpy(), np.zeros((2, 2)))
    torch = pytest.importorskip("torch")
    tx, ty = torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([3.0], dtype=torch.float64)
    for call in (lambda T, a, b: T.jacobian(lambda p, q: p * 2, (a, b), strict=True),
                 lambda T, a, b: T.vjp(lambda p, q: (p * p).sum(), (a, b), strict=True),
                 lambda T, a, b: T.hessian(lambda p: (p * 3).sum(), a, strict=True)):
        with pytest.raises(RuntimeError) as theirs:
            call(torch.autograd.functional, tx, ty)
        with pytest.raises(RuntimeError) as ours:
            call(tg.autograd.functional, x, y)
        assert str(ours.value) == str(theirs.value)


def test_options_not_offered_raise_naming_the_option():
    x = t64([1.0, 2.0])
    with pytest.raises(NotImplementedError, match='strategy="forward-mode"'):
        jacobian(lambda a: a * a, x, strategy="forward-mode")
    with pytest.raises(ValueError, match="strategy must be"):
        jacobian(lambda a: a * a, x, strategy="reverse")
    with pytest.raises(NotImplementedError, match='outer_jacobian_strategy="forward-mode"'):
        hessian(lambda a: (a * a).sum(), x, outer_jacobian_strategy="forward-mode")
    with pytest.raises(RuntimeError, match="`strict=True` and `vectorized=True`"):
        jacobian(lambda a: a * a, x, strict=True, vectorize=True)
    np.testing.assert_allclose(jacobian(lambda a: a * a, x, vectorize=True).numpy(), np.diag([2.0, 4.0]))


def test_bad_arguments_get_torchs_errors():
    x, y = t64([1.0, 2.0]), t64([3.0])
    cases = [
        (lambda T, a, b: T.vjp(lambda p: p * 2, a), "v can only be None"),
        (lambda T, a, b: T.jvp(lambda p: p * 2, a), "v can only be None"),
        (lambda T, a, b: T.vjp(lambda p: p * 2, a, (a, a)), "should contain a single Tensor"),
        (lambda T, a, b: T.vjp(lambda p, q: (p, q), (a, b), (a,)), "v is a tuple of invalid length"),
        (lambda T, a, b: T.vjp(lambda p: p * 2, a, b), "^v has invalid size: should be"),
        (lambda T, a, b: T.vjp(lambda p, q: (p, q), (a, b), (a, a)), "Entry 1 in v has invalid size: should be"),
        (lambda T, a, b: T.hessian(lambda p: p * 2, a), "should contain a single element"),
        (lambda T, a, b: T.hessian(lambda p: ((p * p).sum(),), a), "should return a single Tensor"),
        (lambda T, a, b: T.vhp(lambda p: p * p, a, a), "should contain a single element"),
        (lambda T, a, b: T.hvp(lambda p: p * p, a, a), "should contain a single element"),
    ]
    for call, message in cases:
        with pytest.raises(RuntimeError, match=message):
            call(tg.autograd.functional, x, y)
    with pytest.raises(TypeError, match="inputs given to jacobian must be either a Tensor or a tuple of Tensors but "
                                        "the given inputs has type list"):
        jacobian(lambda a: a, [x])
    with pytest.raises(TypeError, match="outputs of the user-provided function given to vjp .* has type float"):
        vjp(lambda a: 1.0, x)
    torch = pytest.importorskip("torch")
    tx, ty = torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([3.0], dtype=torch.float64)
    for call, message in cases:
        with pytest.raises(RuntimeError, match=message):
            call(torch.autograd.functional, tx, ty)


@pytest.mark.parametrize("device", DEVICES)
def test_jacobian_of_a_small_torch_style_model_on_each_device(device):
    """A Conv2d -> Tanh -> Flatten -> Linear model (the kernels on, as in training): the Jacobian of its
    outputs with respect to the image, against central differences, and torch's with the same weights."""
    from tinygrad_cnn import torch_nn as nn
    tg.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 2), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 2 * 2, 3)).to(tg.float64)
    model.to(device)
    image = np.random.default_rng(5).standard_normal((1, 1, 3, 3))
    jac = jacobian(model, Tensor(image, device=device))
    assert jac.shape == (1, 3, 1, 1, 3, 3) and jac.device == model[0].weight.device

    def on_cpu(x):
        return model.to("cpu")(x)

    numeric = numeric_jacobian(on_cpu, [image])[0][0]
    np.testing.assert_allclose(jac.numpy(), numeric, rtol=1e-6, atol=1e-9)
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 2), torch.nn.Tanh(), torch.nn.Flatten(),
                                 torch.nn.Linear(8, 3)).double()
    theirs.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in model.to("cpu").state_dict().items()})
    assert_same_structure(jac, torch.autograd.functional.jacobian(theirs, torch.tensor(image)))


def test_works_inside_no_grad_as_torchs():
    """torch's functions turn the graph on for their own walks; no_grad around them changes nothing."""
    x = t64([1.0, 2.0])
    with tg.no_grad():
        np.testing.assert_allclose(jacobian(lambda a: a ** 3, x).numpy(), np.diag([3.0, 12.0]))
        np.testing.assert_allclose(hvp(lambda a: (a ** 3).sum(), x, x)[1].numpy(), [6.0, 24.0])
        assert not tg.is_grad_enabled()
