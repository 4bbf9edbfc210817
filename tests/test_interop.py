"""PyTorch interop (issue 15 item 2): our weights under torch.nn.Sequential's names give the same outputs in
torch, torch's weights the same outputs here (to 1e-5), channels-last Flatten order included. The name mapping
and round trips are checked without torch; the equivalence tests skip where torch is not installed."""
import os
import sys

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import interop, keras, nn, optim
from tinygrad_cnn.datasets import mnist
from tinygrad_cnn.nn import functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tutorial_model():
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        import mnist as example
    finally:
        sys.path.remove(os.path.join(ROOT, "examples"))
    return example.build_model()


def keras_model():
    """tinygrad_cnn.keras: channels-last layers, Flatten in (H, W, C) order."""
    return keras.models.Sequential([
        keras.layers.Conv2D(4, (3, 3), activation="relu", input_shape=(12, 12, 1)),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Conv2D(6, (3, 3), padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(10, activation="softmax"),
    ])


def models():
    return {
        "tutorial": (tutorial_model, (1, 28, 28)),
        "keras channels-last": (keras_model, (12, 12, 1)),
        "flatten channels_first": (lambda: nn.Sequential([
            nn.Conv2D(3, 3, strides=2, padding=1, dilation_rate=1), nn.ReLU(), nn.AvgPool2D(2),
            nn.Flatten("channels_first"), nn.Dense(5, activation="tanh"), nn.Dense(2), nn.Sigmoid()],
            input_shape=(2, 11, 11)), (2, 11, 11)),
        "dilated, no bias": (lambda: nn.Sequential([
            nn.Conv2D(3, (3, 2), dilation_rate=2, use_bias=False, activation="sigmoid"), nn.MaxPool2D(2, strides=1),
            nn.Flatten(), nn.Dense(4, use_bias=False), nn.Softmax()], input_shape=(1, 9, 9)), (1, 9, 9)),
        "batchnorm, global pooling (keras)": (lambda: keras.models.Sequential([
            keras.layers.Conv2D(4, 3, input_shape=(8, 8, 2)), keras.layers.BatchNormalization(),
            keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(), keras.layers.BatchNormalization(),
            keras.layers.Dense(3)]), (8, 8, 2)),
        "batchnorm, global max (channels first)": (lambda: nn.Sequential([
            nn.Conv2D(3, 3), nn.BatchNormalization(momentum=0.9, epsilon=1e-5), nn.GlobalMaxPooling2D(keepdims=True),
            nn.Flatten(), nn.Dense(2)], input_shape=(2, 7, 7)), (2, 7, 7)),
    }


def test_batch_normalization_maps_to_torchs_names_and_momentum():
    tg.manual_seed(0)
    model = models()["batchnorm, global max (channels first)"][0]()
    assert interop.torch_names(model) == {
        "layers.0.weight": "0.weight", "layers.0.bias": "0.bias", "layers.1.gamma": "1.weight",
        "layers.1.beta": "1.bias", "layers.1.moving_mean": "1.running_mean",
        "layers.1.moving_variance": "1.running_var", "layers.4.weight": "4.weight", "layers.4.bias": "4.bias"}
    assert "torch.nn.BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True)" in interop.torch_code(model)
    state = interop.to_torch_state_dict(model)
    state["1.num_batches_tracked"] = np.array(7)  # torch's counter is accepted and ignored
    interop.from_torch_state_dict(model, state)


def test_the_tutorial_models_names_map_as_in_torch():
    assert interop.torch_names(tutorial_model()) == {
        "layers.0.weight": "0.weight", "layers.0.bias": "0.bias", "layers.2.weight": "3.weight",
        "layers.2.bias": "3.bias", "layers.5.weight": "7.weight", "layers.5.bias": "7.bias",
        "layers.6.weight": "9.weight", "layers.6.bias": "9.bias"}


@pytest.mark.parametrize("name", list(models()))
def test_to_and_from_torch_names_round_trip(name):
    make, _ = models()[name]
    tg.manual_seed(0)
    model = make()
    exported = interop.to_torch_state_dict(model)
    tg.manual_seed(1)
    fresh = make()
    interop.from_torch_state_dict(fresh, exported)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[key], value, err_msg=key)


def test_the_dense_after_a_channels_last_flatten_is_permuted_to_chw_order():
    model = keras_model()
    dense = model.layers[-1]
    exported = interop.to_torch_state_dict(model)[f"{interop.torch_names(model)['layers.5.weight']}"]
    h, w, c = model[:3].compute_output_shape((12, 12, 1))  # what reaches the Flatten, (H, W, C)
    ours = dense.weight.numpy().reshape(10, h, w, c)
    np.testing.assert_array_equal(exported.reshape(10, c, h, w), ours.transpose(0, 3, 1, 2))


def test_a_torch_state_that_does_not_fit_names_the_problem_and_changes_nothing():
    model = tutorial_model()
    before = model.state_dict()
    state = interop.to_torch_state_dict(model)
    state["11.weight"] = state.pop("9.weight")
    with pytest.raises(ValueError, match=r"missing \['9.weight'\], unexpected \['11.weight'\]"):
        interop.from_torch_state_dict(model, state)
    state = interop.to_torch_state_dict(model)
    state["7.weight"] = state["7.weight"][:, :100]
    with pytest.raises(ValueError, match="'7.weight'"):
        interop.from_torch_state_dict(model, state)
    for key, value in before.items():
        np.testing.assert_array_equal(model.state_dict()[key], value)
    with pytest.raises(ValueError, match="built"):
        interop.to_torch_state_dict(nn.Sequential([nn.Dense(3)]))


def test_layers_torch_cannot_express_are_named():
    model = nn.Sequential([nn.Conv2D(2, 2, padding="same"), nn.Flatten()], input_shape=(1, 5, 5))
    with pytest.raises(ValueError, match=r"layer 0 \(.*conv2d.*\).*cannot express"):
        interop.torch_code(model)
    model = nn.Sequential([nn.MaxPool2D(2, padding="same"), nn.Flatten()], input_shape=(1, 5, 5))
    with pytest.raises(ValueError, match="layer 0.*no torch pooling equivalent"):
        interop.torch_code(model)


# ---------------------------------------------------------------- against torch itself

def torch_model(torch, model):
    module = eval(interop.torch_code(model), {"torch": torch})  # noqa: S307 - our own generated source
    return module.eval()


def images(shape, n=16, seed=0):
    if shape == (1, 28, 28):
        (_, _), (x, _) = mnist.load_data()
        return mnist.to_float_images(x[:n])
    return np.random.default_rng(seed).standard_normal((n,) + shape).astype(np.float32)


def nchw(x, model):
    channels_last = any(getattr(layer, "data_format", None) == "channels_last" for layer in model.layers)
    return x.transpose(0, 3, 1, 2) if channels_last else x


def train_a_little(model, shape):
    """A few Adam steps, so that the weights compared are trained ones (not the initialiser's)."""
    x = images(shape, n=64, seed=1)
    y = np.arange(64) % model.compute_output_shape(shape)[-1]
    opt = optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        loss = F.cross_entropy(model.logits(tg.Tensor(x)), tg.Tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("name", list(models()))
def test_our_trained_weights_give_the_same_outputs_in_torch(name):
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
    make, shape = models()[name]
    tg.manual_seed(0)
    model = make()
    train_a_little(model, shape)
    model.eval()
    theirs = torch_model(torch, model)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in interop.to_torch_state_dict(model).items()})
    x = images(shape)
    with tg.no_grad():
        ours = model(tg.Tensor(x)).numpy()
    with torch.no_grad():
        out = theirs(torch.from_numpy(np.ascontiguousarray(nchw(x, model)))).numpy()
    np.testing.assert_allclose(out, ours, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", list(models()))
def test_torchs_weights_give_the_same_outputs_here(name):
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
    make, shape = models()[name]
    model = make()
    torch.manual_seed(0)
    theirs = torch_model(torch, model)
    interop.from_torch_state_dict(model, theirs.state_dict())
    model.eval()
    x = images(shape, seed=2)
    with tg.no_grad():
        ours = model(tg.Tensor(x)).numpy()
    with torch.no_grad():
        out = theirs(torch.from_numpy(np.ascontiguousarray(nchw(x, model)))).numpy()
    np.testing.assert_allclose(ours, out, atol=1e-5, rtol=0)
