"""A review of the PyTorch users' features against torch 2.13's behaviour: what a demanding PyTorch user's code
met (a scheduler's checkpoint, a dataset of dict samples, ...). Torch-free: the expected values are torch's
rules, written out."""
import numpy as np
import pytest

import tinygrad_cnn as tg
from conftest import DEVICES


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_save_load_a_checkpoint_with_a_plateau_scheduler(tmp_path, suffix):
    # torch.save({'model': ..., 'scheduler': sched.state_dict()}, path): ReduceLROnPlateau's state holds the
    # strings mode='min' and threshold_mode='rel'; before, save raised TypeError (dtype <U3)
    opt = tg.optim.SGD([tg.zeros(1, requires_grad=True)], lr=0.1)
    sched = tg.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", patience=0, threshold_mode="abs")
    for metric in (1.0, 0.5, 0.4):
        opt.step()
        sched.step(metric)
    path = tmp_path / f"ckpt{suffix}"
    tg.save({"epoch": 3, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "note": "best"}, path)
    loaded = tg.load(path)
    assert loaded["note"] == "best" and loaded["epoch"] == 3
    assert loaded["scheduler"]["mode"] == "max" and loaded["scheduler"]["threshold_mode"] == "abs"
    opt2 = tg.optim.SGD([tg.zeros(1, requires_grad=True)], lr=0.1)
    sched2 = tg.optim.lr_scheduler.ReduceLROnPlateau(opt2)
    opt2.load_state_dict(loaded["optimizer"])
    sched2.load_state_dict(loaded["scheduler"])
    for metric in (0.3, 2.0, 1.95):  # both go on alike: max mode, abs threshold, patience 0
        for o, s in ((opt, sched), (opt2, sched2)):
            o.step()
            s.step(metric)
        assert opt2.lr == opt.lr


def test_load_ignores_other_writers_metadata(tmp_path):
    from tinygrad_cnn import checkpoint
    path = tmp_path / "hub.safetensors"
    checkpoint.save_arrays(path, {"w": np.ones(2, np.float32)}, {"format": "pt"})
    assert list(tg.load(path)) == ["w"]


def test_dataloader_collates_dict_samples_as_torch():
    # a Dataset whose samples are dicts (the Hugging Face habit): torch's default collate batches each key;
    # before, TypeError 'a sample field is a dict'
    from tinygrad_cnn.utils.data import DataLoader, Dataset

    class Pairs(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return {"image": np.full((2, 2), i, np.float32), "label": i, "extra": (i, float(i))}

    batches = list(DataLoader(Pairs(), batch_size=2))
    assert [b["label"].numpy().tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    assert batches[1]["image"].shape == (2, 2, 2) and batches[1]["image"].numpy()[1, 0, 0] == 3
    assert batches[0]["extra"][1].dtype == np.float64 and batches[0]["label"].dtype == np.int64


class _BNNet(__import__("tinygrad_cnn.torch_nn", fromlist=["Module"]).Module):  # module level: pickle finds it
    def __init__(self):
        import tinygrad_cnn.torch_nn as nn
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Linear(3 * 4 * 4, 2)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).relu().flatten(1))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_model_with_batchnorm_and_adam_goes_on_alike_on_each_device(device, how):
    import copy
    import pickle
    tg.manual_seed(0)
    model = _BNNet().to(device)
    opt = tg.optim.Adam(model.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    x = tg.Tensor(rng.standard_normal((4, 1, 6, 6)).astype(np.float32), device=device)
    y = tg.Tensor(np.array([0, 1, 1, 0]), device=device)

    def train(m, o, steps):
        for _ in range(steps):
            o.zero_grad()
            tg.nn.functional.cross_entropy(m(x), y).backward()
            o.step()
    train(model, opt, 2)
    copier = copy.deepcopy if how == "deepcopy" else lambda o: pickle.loads(pickle.dumps(o))
    model2, opt2 = copier((model, opt))
    assert model2.bn.moving_variance.device == model.bn.moving_variance.device
    train(model, opt, 2)
    train(model2, opt2, 2)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(model2.state_dict()[k], v)
    model.eval()
    model2.eval()
    np.testing.assert_array_equal(model2(x).numpy(), model(x).numpy())


def test_batchnorm_and_dropout_attributes_set_after_construction_as_torch():
    # the YOLOv5 / EfficientNet habit, for m in model.modules(): m.eps = 1e-3; m.momentum = 0.03, and the ResNet
    # init loop nn.init.constant_(m.weight, 1). Before: bn.momentum read 0.9 (Keras' meaning) and setting it
    # took Keras' meaning silently; bn.eps and dropout.p were new attributes nothing read; weight raised
    import tinygrad_cnn.torch_nn as nn
    bn, drop = nn.BatchNorm2d(2), nn.Dropout(0.5)
    assert bn.momentum == 0.1 and bn.eps == 1e-5 and drop.p == 0.5
    bn.momentum, bn.eps, drop.p = 0.25, 0.5, 0.0
    nn.init.constant_(bn.weight, 2.0)
    nn.init.constant_(bn.bias, 1.0)
    x = np.random.default_rng(0).standard_normal((3, 2, 2, 2)).astype(np.float32)
    out = bn(tg.Tensor(x)).numpy()
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    # torch's rules: (x - mean) / sqrt(var + eps) * weight + bias; running = (1 - momentum) * running + momentum * batch
    expected = (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 0.5) * 2.0 + 1.0
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.numpy().ravel(), 0.25 * mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bn.running_var.numpy().ravel(), 0.75 + 0.25 * var * 12 / 11, rtol=1e-5)
    np.testing.assert_array_equal(drop(tg.Tensor(x)).numpy(), x)  # p = 0 in training mode: the input


def test_linear_and_conv2d_sizes_under_torch_names():
    # model.fc = nn.Linear(model.fc.in_features, 10), the fine-tuning habit; before: AttributeError
    import tinygrad_cnn.torch_nn as nn
    fc, conv = nn.Linear(7, 3), nn.Conv2d(2, 5, 3, stride=(1, 2), dilation=2)
    assert (fc.in_features, fc.out_features) == (7, 3)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.dilation, conv.padding) == \
        (2, 5, (3, 3), (1, 2), (2, 2), (0, 0))  # torch 2.13's values for the same layers
    with pytest.raises(AttributeError):
        conv.stride = 2  # read-only: a new stride would not rebuild anything


@pytest.mark.parametrize("device", DEVICES)
def test_a_tensordataset_of_a_tensor_that_requires_grad_gives_batches_in_the_graph(device):
    # torch: the batches of TensorDataset(x) with x.requires_grad carry the graph back to x (learning inputs,
    # adversarial examples); before, they were new leaves without requires_grad and x.grad stayed None, silently
    from tinygrad_cnn.utils.data import DataLoader, TensorDataset
    x = tg.tensor(np.arange(8, dtype=np.float32).reshape(4, 2), requires_grad=True, device=device)
    labels = tg.tensor(np.arange(4), device=device)
    (xb, yb), = list(DataLoader(TensorDataset(x, labels), batch_size=4, shuffle=True,
                                generator=np.random.default_rng(0)))
    assert xb.requires_grad and not yb.requires_grad
    (xb * yb.float()[:, None]).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.repeat(np.arange(4, dtype=np.float32)[:, None], 2, axis=1))


def test_calculate_gain_of_transposed_convs_and_batchnorms_cumulative_momentum_named():
    import tinygrad_cnn.torch_nn as nn
    # torch 2.13: 1 for every linear function, the transposed convolutions included (was ValueError 'unknown')
    assert [nn.init.calculate_gain(f"conv_transpose{d}d") for d in (1, 2, 3)] == [1.0, 1.0, 1.0]
    with pytest.raises(NotImplementedError, match="cumulative"):  # was 'must be a number in [0, 1], got None'
        nn.BatchNorm2d(3, momentum=None)


@pytest.mark.parametrize("device", DEVICES)
def test_maxpool2d_padding_pads_with_minus_inf_as_torch(device):
    # ResNet's stem nn.MaxPool2d(kernel_size=3, stride=2, padding=1); before: NotImplementedError advising x.pad,
    # whose zeros are a window's max where the inputs are negative (torch pads with -inf)
    import tinygrad_cnn.torch_nn as nn
    x = -np.arange(1, 26, dtype=np.float32).reshape(1, 1, 5, 5)
    out = nn.MaxPool2d(3, 2, 1)(tg.Tensor(x, device=device)).numpy()
    # torch 2.13 gives the max of each window's real pixels: windows at rows/cols {0,1}, {1,2,3}, {3,4}
    rows = [(0, 2), (1, 4), (3, 5)]
    expected = np.array([[x[0, 0, r0:r1, c0:c1].max() for c0, c1 in rows] for r0, r1 in rows])
    np.testing.assert_array_equal(out[0, 0], expected)
    assert nn.MaxPool2d((3, 5), padding=(1, 2))(tg.Tensor(np.zeros((1, 2, 4, 6), np.float32))).shape == (1, 2, 2, 2)
    with pytest.raises(ValueError, match="at most half the kernel"):
        nn.MaxPool2d(2, padding=2)
    from tinygrad_cnn import interop
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(3, 2, 1), nn.Flatten(), nn.Linear(2 * 3 * 3, 2))
    model(tg.Tensor(np.zeros((1, 1, 7, 7), np.float32)))  # built by a first call, as interop needs
    assert "torch.nn.MaxPool2d((3, 3), stride=(2, 2), padding=(1, 1))" in interop.torch_code(model)


@pytest.mark.parametrize("device", DEVICES)
def test_avgpool2d_padding_with_and_without_the_padded_zeros_counted_as_torch(device):
    # Inception's nn.AvgPool2d(3, stride=1, padding=1); before: NotImplementedError for any padding
    import tinygrad_cnn.torch_nn as nn
    from tinygrad_cnn import interop
    x = np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4)
    counted = nn.AvgPool2d(3, 1, 1)(tg.Tensor(x, device=device)).numpy()[0, 0]
    real = nn.AvgPool2d(3, 1, 1, count_include_pad=False)(tg.Tensor(x, device=device)).numpy()[0, 0]
    # torch's rules: the corner window holds 4 real pixels (1, 2, 5, 6) and 5 zeros
    assert counted[0, 0] == pytest.approx(14 / 9) and real[0, 0] == pytest.approx(14 / 4)
    assert counted[1, 1] == real[1, 1] == pytest.approx(x[0, 0, :3, :3].mean())
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(3, 2, 1, count_include_pad=False), nn.Flatten())
    model(tg.Tensor(np.zeros((1, 1, 7, 7), np.float32)))
    assert "AvgPool2d((3, 3), stride=(2, 2), padding=(1, 1), count_include_pad=False)" in interop.torch_code(model)
