"""A review of the PyTorch users' features against torch 2.13's behaviour: what a demanding PyTorch user's code
met (a scheduler's checkpoint, a dataset of dict samples, ...). Torch-free: the expected values are torch's
rules, written out."""
import numpy as np
import pytest

import tinygrad_cnn as tg


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
