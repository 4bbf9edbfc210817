"""Train the tutorial's CNN on real MNIST and report its test accuracy.

    python examples/mnist.py                     # defaults: reaches >= 99% test accuracy on a CPU
    python examples/mnist.py --epochs 1 --limit-train 2000 --limit-test 1000   # a quick look
    python examples/mnist.py --device cuda       # the same code on a GPU (needs CuPy)
    python examples/mnist.py --resume runs/mnist.safetensors --epochs 6         # continue training
    mpirun -n 2 python examples/mnist.py         # one model on 2 processes (the `distributed` extra)
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a clone

import tinygrad_cnn as tg  # noqa: E402
from tinygrad_cnn import distributed as dist, nn, optim  # noqa: E402
from tinygrad_cnn.checkpoint import load_file, save_arrays  # noqa: E402
from tinygrad_cnn.data import DataLoader  # noqa: E402
from tinygrad_cnn.datasets import mnist  # noqa: E402
from tinygrad_cnn.nn import functional as F  # noqa: E402

# ---------------------------------------------------------------- config (flags override these)
EPOCHS = 6
BATCH_SIZE = 128
LR = 1e-3           # Adam, decayed to 0 over the run by a cosine schedule
SEED = 0
SAVE = "runs/mnist.safetensors"  # or .npz; Module.load reads its model part
METRICS = "runs/mnist_metrics.json"
PROGRESS_EVERY = 20  # batches between progress-bar updates (each reads the metrics: a sync on a GPU)


def build_model():
    """The tutorial's Keras model, in NCHW: 421,642 parameters."""
    return nn.Sequential([
        nn.Conv2D(32, (3, 3), padding="same", activation="relu"),
        nn.MaxPool2D((2, 2), strides=2),
        nn.Conv2D(64, (3, 3), padding="same", activation="relu"),
        nn.MaxPool2D((2, 2), strides=2),
        nn.Flatten(),
        nn.Dense(128, activation="relu"),
        nn.Dense(10, activation="softmax"),
    ], input_shape=(1, 28, 28))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=EPOCHS, help="total epochs (counted from the start when resuming)")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--lr", type=float, default=LR)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: $TINYGRAD_CNN_DEVICE or cpu)")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--limit-train", type=int, default=None, help="use only the first N training images")
    p.add_argument("--limit-test", type=int, default=None, help="use only the first N test images")
    p.add_argument("--save", default=SAVE, help="checkpoint written at the end of every epoch ('' to skip)")
    p.add_argument("--metrics", default=METRICS, help="metrics JSON written at the end ('' to skip)")
    p.add_argument("--resume", default=None, help="checkpoint to continue from (model, optimizer, epoch)")
    p.add_argument("--check-grads", action="store_true", help="float64 gradient check of the model first")
    p.add_argument("--data", default=None, help="folder with the four MNIST files (default: search)")
    p.add_argument("--no-progress", action="store_true", help="plain lines instead of a progress bar")
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size", "limit_train", "limit_test"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.lr <= 0:
        p.error(f"--lr must be positive, got {args.lr}")
    return args


def progress(iterable, total, desc, disable):
    """A tqdm bar when tqdm is installed (the `progress` extra), else the bare iterable."""
    try:
        from tqdm import tqdm
    except ImportError:
        disable = True
    if disable or not sys.stderr.isatty():  # redirected: the epoch lines only, not every bar refresh
        return iterable, None
    bar = tqdm(iterable, total=total, desc=desc, unit="batch", leave=True, dynamic_ncols=True)
    return bar, bar


def evaluate(model, x, y, device, batch_size=1000):
    """Mean loss and accuracy over a dataset, without building a graph (under MPI each rank takes
    every world_size-th image and the sums are added over the ranks)."""
    n, x, y = len(x), x[dist.rank()::dist.world_size()], y[dist.rank()::dist.world_size()]
    model.eval()
    metrics = Metrics()
    with tg.no_grad():
        for xb, yb in DataLoader(x, y, batch_size=batch_size, device=device, transform=mnist.to_float_images,
                                 on_device=device != "cpu"):
            logits = model.logits(xb)
            metrics.add(F.cross_entropy(logits, yb, reduction="sum"), logits, yb)
    total_loss, correct = metrics.read()
    return dist.allreduce(total_loss) / n, dist.allreduce(correct) / n


class Metrics:
    """An epoch's loss sum and correct count, summed where the model runs and read only when shown.

    NOTE: on a GPU each read is a blocking device->host sync; reading both values once per
    progress update (not twice per batch) lets the GPU run ahead of Python."""

    def __init__(self):
        self.totals, self.seen = None, 0

    def add(self, loss_sum, logits, yb):
        with tg.no_grad():
            correct = (logits.argmax(axis=1) == yb).sum().astype("float64")
            step = tg.stack([loss_sum.detach().astype("float64"), correct])
            self.totals = step if self.totals is None else self.totals + step
        self.seen += len(yb)

    def read(self):
        """(loss sum, correct count) so far: one device->host copy."""
        if self.totals is None:
            return 0.0, 0
        loss_sum, correct = self.totals.numpy().tolist()
        return loss_sum, int(correct)


def check_gradients(x, y, seed):
    """Gradient-check a float64 copy of the model on four images: one random direction per parameter.

    NOTE: MNIST's black background and zero initial biases put every ReLU exactly at its kink
    and tie every max-pool window, where no derivative exists; small random biases and pixel
    jitter move the check off those points."""
    from tinygrad_cnn.testing import gradcheck
    rng = np.random.default_rng(seed)
    model = build_model()
    device = model.parameters()[0].device  # the default device (TINYGRAD_CNN_DEVICE), perhaps a GPU
    for name, p in model.named_parameters():
        data = rng.uniform(-0.05, 0.05, p.shape) if name.endswith("bias") else p.numpy()
        p.data = tg.Tensor(data.astype("float64"), device=device).data  # on the model's device, not NumPy
    xb = tg.Tensor(mnist.to_float_images(x[:4]).astype("float64") + rng.uniform(0, 0.01, (4, 1, 28, 28)),
                   device=device)
    yb = tg.Tensor(y[:4].astype("int64"), device=device)
    gradcheck(lambda *params: F.cross_entropy(model.logits(xb), yb), model.parameters(), fast_mode=True,
              atol=1e-6, rtol=1e-4, seed=seed)
    print(f"gradient check passed for {len(model.parameters())} parameter tensors (float64, fast mode)")


def save_checkpoint(path, model, optimizer, epoch, history, config=None):
    """model/<name> and optim/<name> arrays; epoch, history and config as JSON strings in the metadata."""
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optim/{k}": v for k, v in optimizer.state_dict().items()})
    meta = {"epoch": str(epoch), "history": json.dumps(history), "config": json.dumps(config or {})}
    save_arrays(path, arrays, metadata=meta)


def load_checkpoint(path, model, optimizer):
    arrays, meta = load_file(path)
    if "meta/epoch" in arrays:  # an .npz from before the metadata (epoch and history were arrays)
        meta = {"epoch": str(arrays.pop("meta/epoch")), "history": str(arrays.pop("meta/history"))}
    if "epoch" not in meta:
        raise SystemExit(f"{path}: not a checkpoint written by examples/mnist.py (no epoch in its metadata)")
    model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
    optimizer.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("optim/")})
    return int(meta["epoch"]), json.loads(meta["history"])


def main(argv=None):
    args = parse_args(argv)
    world = dist.init()  # under mpirun: this process's rank in the MPI world; else a world of one
    device = dist.device_for_rank(args.device)  # cuda -> cuda:<local rank>
    if not world.is_root:
        sys.stdout = open(os.devnull, "w")  # only rank 0 prints
    try:
        batch_size = dist.local_batch_size(args.batch_size)  # each rank's share of the global batch
    except ValueError as e:
        raise SystemExit(f"--batch-size: {e}") from None
    tg.memory.keep_freed_memory()  # reuse freed host memory between steps: ~30% faster steps on our VMs
    tg.manual_seed(args.seed)

    (x_train, y_train), (x_test, y_test) = mnist.load_data(args.data)
    x_train, y_train = x_train[:args.limit_train], y_train[:args.limit_train]
    x_test, y_test = x_test[:args.limit_test], y_test[:args.limit_test]
    print(f"MNIST: {len(x_train)} training and {len(x_test)} test images; device {device}")

    if args.check_grads:
        check_gradients(x_train, y_train, args.seed)
    tg.manual_seed(args.seed)
    model = build_model()
    model.to(device)
    model.summary()
    dist.broadcast_parameters(model)
    optimizer = dist.DistributedOptimizer(optim.Adam(model.parameters(), lr=args.lr))  # averages gradients
    schedule = optim.CosineAnnealingLR(optimizer, T_max=args.epochs)

    start_epoch, history = 0, []
    if args.resume:
        start_epoch, history = dist.on_root(lambda: load_checkpoint(args.resume, model, optimizer))
        dist.broadcast_parameters(model)
        dist.broadcast_optimizer_state(optimizer)
        for _ in range(start_epoch):
            schedule.step()
        print(f"resumed from {args.resume} after epoch {start_epoch}")

    for epoch in range(start_epoch, args.epochs):
        model.train()
        loader = DataLoader(x_train, y_train, batch_size=batch_size, shuffle=True, seed=args.seed + epoch,
                            device=device, transform=mnist.to_float_images, rank=world.rank, world_size=world.size,
                            on_device=device != "cpu")  # a GPU holds the 47 MB of uint8 images and gathers there
        batches, bar = progress(loader, len(loader), f"epoch {epoch + 1}/{args.epochs}",
                                args.no_progress or not world.is_root)
        metrics, start = Metrics(), time.perf_counter()
        for step, (xb, yb) in enumerate(batches, 1):
            logits = model.logits(xb)
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

            metrics.add(loss * len(yb), logits, yb)
            if bar is not None and (step % PROGRESS_EVERY == 0 or step == len(loader)):
                loss_sum, correct = metrics.read()
                bar.set_postfix(loss=f"{loss_sum / metrics.seen:.4f}", acc=f"{correct / metrics.seen:.4f}",
                                img_s=f"{metrics.seen / (time.perf_counter() - start):.0f}")
        loss_sum, correct = metrics.read()
        train_time = time.perf_counter() - start
        seen, correct, loss_sum = dist.allreduce(metrics.seen), dist.allreduce(correct), dist.allreduce(loss_sum)
        schedule.step()
        test_loss, test_acc = evaluate(model, x_test, y_test, device)
        history.append(dict(epoch=epoch + 1, train_loss=loss_sum / seen, train_acc=correct / seen,
                            test_loss=test_loss, test_acc=test_acc, epoch_seconds=train_time,
                            images_per_second=seen / train_time))
        print(f"epoch {epoch + 1}: train loss {loss_sum / seen:.4f} acc {correct / seen:.4f} | "
              f"test loss {test_loss:.4f} acc {test_acc:.4f} | {train_time:.1f} s ({seen / train_time:.0f} img/s)")
        if args.save and world.is_root:
            save_checkpoint(args.save, model, optimizer, epoch + 1, history, vars(args))

    if args.save and history:
        print(f"checkpoint: {args.save}")
    if args.metrics and history and world.is_root:
        os.makedirs(os.path.dirname(os.path.abspath(args.metrics)), exist_ok=True)
        with open(args.metrics, "w") as f:
            json.dump(dict(config=vars(args), device=device, world_size=world.size, epochs=history), f, indent=2)
        print(f"metrics: {args.metrics}")
    if history:
        print(f"final test accuracy: {history[-1]['test_acc']:.4f}")
    return history


if __name__ == "__main__":
    main()
