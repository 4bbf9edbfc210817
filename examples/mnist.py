"""Train the tutorial's CNN on real MNIST and report its test accuracy.

    python examples/mnist.py                     # defaults: reaches >= 99% test accuracy on a CPU
    python examples/mnist.py --epochs 1 --limit-train 2000 --limit-test 1000   # a quick look
    python examples/mnist.py --device cuda       # the same code on a GPU (needs CuPy)
    python examples/mnist.py --resume runs/mnist.safetensors --epochs 8         # train 2 more epochs
    python examples/mnist.py --nonfinite stop    # stop at a NaN/inf gradient (default: skip that step)
    mpirun -n 2 python examples/mnist.py         # one model on 2 processes (the `distributed` extra)
"""
import argparse
import json
import math
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a clone

import tinygrad_cnn as tg  # noqa: E402
from tinygrad_cnn import distributed as dist, nn, optim  # noqa: E402
from tinygrad_cnn.checkpoint import CheckpointError, check_writable, load_file, save_arrays  # noqa: E402
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


def at_least_1(text):
    """An argparse type: an int >= 1 (a count of epochs, images or a batch size)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def at_least_0(text):
    """An argparse type: an int >= 0 (a seed)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def learning_rate_flag(text):
    """An argparse type: a finite rate > 0 (nan, inf, 0 and negative rates cannot train)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def penalty_flag(text):
    """An argparse type: a finite weight >= 0 for the gradient penalty."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=at_least_1, default=EPOCHS,
                   help="total epochs, counted from the start when resuming. The rate follows a cosine from "
                        "--lr down to 0 at the last epoch; resuming with the same --epochs continues that "
                        "schedule, and a different --epochs re-plans the epochs left as a cosine from the rate "
                        "of the last trained epoch down to 0 at the new total, so the rate never rises")
    p.add_argument("--batch-size", type=at_least_1, default=BATCH_SIZE)
    p.add_argument("--lr", type=learning_rate_flag, default=LR,
                   help="Adam's starting rate (a resumed run keeps its checkpoint's schedule)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: $TINYGRAD_CNN_DEVICE or cpu)")
    p.add_argument("--seed", type=at_least_0, default=SEED)
    p.add_argument("--limit-train", type=at_least_1, default=None, help="use only the first N training images")
    p.add_argument("--limit-test", type=at_least_1, default=None, help="use only the first N test images")
    p.add_argument("--save", default=SAVE, help="checkpoint written at the end of every epoch ('' to skip); "
                                                "never with NaN or inf in it")
    p.add_argument("--metrics", default=METRICS, help="metrics JSON written at the end ('' to skip)")
    p.add_argument("--resume", default=None, help="checkpoint to continue from (model, optimizer, epoch)")
    p.add_argument("--nonfinite", choices=("skip", "stop"), default="skip",
                   help="a batch whose gradient holds NaN or inf: skip its step (counted and reported; the "
                        "default) or stop training (exit status 1)")
    p.add_argument("--check-grads", action="store_true", help="float64 gradient check of the model first")
    p.add_argument("--grad-penalty", type=penalty_flag, default=0.0, metavar="LAMBDA",
                   help="add LAMBDA * mean |d loss / d image|^2 to the loss (double backpropagation; 0: off)")
    p.add_argument("--data", default=None, help="folder with the four MNIST files (default: search)")
    p.add_argument("--no-progress", action="store_true", help="plain lines instead of a progress bar")
    args = p.parse_args(argv)
    # NOTE: checked now, not when the first epoch ends and the file is written
    for flag, path, suffix in (("--save", args.save, True), ("--metrics", args.metrics, False)):
        if path:
            try:
                check_writable(path, flag, suffix=suffix)
            except CheckpointError as e:
                p.error(str(e))
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
    # NOTE: the jitter makes a kink within eps rarer, not rare (with 10^5 ReLUs and max-pool windows some
    # direction often crosses one; weights from manual_seed(0) do): nonsmooth="skip" retries such a direction
    # with a smaller step or another direction, and says how many
    report = gradcheck(lambda *params: F.cross_entropy(model.logits(xb), yb), model.parameters(), fast_mode=True,
                       atol=1e-6, rtol=1e-4, seed=seed, nonsmooth="skip")
    print(f"gradient check passed for {len(model.parameters())} parameter tensors (float64, fast mode; "
          f"{report.kinks} of {report.checked} directions crossed a ReLU kink or max-pool tie within eps: "
          f"{report.redrawn} redrawn, the rest checked with a smaller step)")
    return report


def cosine_rate(schedule, epoch):
    """The rate epoch `epoch` (counted from 0) trains at: a cosine from schedule["lr"] at epoch
    schedule["from_epoch"] down to 0 at epoch schedule["epochs"] (a new run: from --lr at 0)."""
    first, total = schedule["from_epoch"], schedule["epochs"]
    return schedule["lr"] * (1 + math.cos(math.pi * (epoch - first) / (total - first))) / 2


def resumed_schedule(stored, trained, epochs):
    """The schedule of a run resumed after `trained` epochs with --epochs `epochs` (> trained).

    NOTE: the same total continues the stored cosine. A new total re-plans the epochs left as a cosine
    from the last trained epoch's rate down to 0 at the new total, so the rate never rises: redrawing
    the cosine over the new total would raise it (6 epochs, then 8: epoch 7 would train at 0.15x the
    first rate after 0.07x in epoch 6), and continuing the old one past its end (PyTorch's closed form)
    climbs back up from 0."""
    if epochs == stored["epochs"] or trained == 0:
        return dict(stored, epochs=epochs)
    return {"from_epoch": trained - 1, "lr": cosine_rate(stored, trained - 1), "epochs": epochs}


def checkpoint_arrays(model, optimizer):
    """model/<name> and optim/<name> host arrays, as a checkpoint holds them."""
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optim/{k}": v for k, v in optimizer.state_dict().items()})
    return arrays


def nonfinite_arrays(arrays):
    """Names of the floating-point arrays that hold a NaN or an infinity."""
    return [name for name, value in arrays.items()
            if np.asarray(value).dtype.kind == "f" and not np.isfinite(value).all()]


def save_checkpoint(path, model, optimizer, epoch, history, config=None, schedule=None):
    """model/<name> and optim/<name> arrays; epoch, history, config and the learning-rate schedule as
    JSON strings in the metadata. Refuses (ValueError, nothing written) when an array holds NaN or inf."""
    arrays = checkpoint_arrays(model, optimizer)
    bad = nonfinite_arrays(arrays)
    if bad:
        raise ValueError(f"not saving {path}: NaN or inf in {', '.join(bad[:3])}{' and more' if len(bad) > 3 else ''}")
    meta = {"epoch": str(epoch), "history": json.dumps(history), "config": json.dumps(config or {})}
    if schedule is not None:
        meta["schedule"] = json.dumps(schedule)
    save_arrays(path, arrays, metadata=meta)


def read_checkpoint(path):
    """(arrays, epochs trained, history, schedule) of a checkpoint of this script; a file that is
    none stops the script with a message naming it."""
    try:
        arrays, meta = load_file(path)
    except CheckpointError as e:
        raise SystemExit(f"--resume {path}: not a checkpoint ({e})") from None
    if "meta/epoch" in arrays:  # an .npz from before the metadata (epoch and history were arrays)
        meta = {"epoch": str(arrays.pop("meta/epoch")), "history": str(arrays.pop("meta/history"))}
    if "epoch" not in meta:
        raise SystemExit(f"--resume {path}: not a checkpoint written by examples/mnist.py (no epoch in its "
                         f"metadata; a model's weights alone cannot resume a run)")
    try:
        epoch, history, config = int(meta["epoch"]), json.loads(meta["history"]), json.loads(meta.get("config", "{}"))
        # checkpoints from before the schedule was stored ran one cosine over their --epochs
        schedule = (json.loads(meta["schedule"]) if "schedule" in meta else
                    {"from_epoch": 0, "lr": float(config.get("lr", LR)), "epochs": int(config.get("epochs", epoch))})
    except (ValueError, TypeError) as e:
        raise SystemExit(f"--resume {path}: its metadata is not that of examples/mnist.py ({e})") from None
    return arrays, epoch, history, schedule


def apply_checkpoint(path, arrays, model, optimizer):
    """Load a checkpoint's arrays into the model and the optimizer (all checked before any is changed)."""
    try:
        model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
        optimizer.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("optim/")})
    except (ValueError, TypeError) as e:
        raise SystemExit(f"--resume {path}: it does not fit this model: {e}") from None


def load_checkpoint(path, model, optimizer):
    """Load a checkpoint into the model and the optimizer: (epochs trained, history)."""
    arrays, epoch, history, _ = read_checkpoint(path)
    apply_checkpoint(path, arrays, model, optimizer)
    return epoch, history


def train_step(model, optimizer, xb, yb, grad_penalty=0.0):
    """One update: (loss, logits), or None when the optimizer skipped it (a non-finite gradient).

    grad_penalty > 0 adds grad_penalty * the mean over images of |d loss / d image|^2 to what is
    minimised (double backpropagation, Drucker and LeCun 1992): the loss's gradient in the images is
    recorded (create_graph=True) and differentiated again, in the weights. The returned loss is the
    cross-entropy alone, comparable with runs without the penalty."""
    if grad_penalty:
        xb = tg.Tensor(xb.data, device=xb.device, requires_grad=True)
    logits = model.logits(xb)
    loss = F.cross_entropy(logits, yb)
    optimizer.zero_grad()
    if grad_penalty:
        (gx,) = tg.grad(loss, xb, create_graph=True)  # (N, 1, 28, 28); loss is a mean: scale by N back
        per_image = gx * len(yb)
        penalty = (per_image * per_image).sum() * (grad_penalty / len(yb))
        (loss + penalty).backward()
    else:
        loss.backward()
    skipped = optimizer.skipped_steps
    with warnings.catch_warnings():  # NOTE: skipped steps are reported once per epoch, not one warning each
        warnings.filterwarnings("ignore", message=".*step skipped", category=RuntimeWarning)
        optimizer.step()
    return None if optimizer.skipped_steps > skipped else (loss, logits)


def main(argv=None):
    args = parse_args(argv)
    world = dist.init()  # under mpirun: this process's rank in the MPI world; else a world of one
    try:
        device = dist.device_for_rank(args.device)  # cuda -> cuda:<local rank>
        tg.device.array_module(device)  # NOTE: before MNIST is read, so a missing CuPy is said at once
    except (tg.DeviceError, ValueError, TypeError) as e:
        raise SystemExit(f"--device {args.device}: {e}") from None
    if not world.is_root:
        sys.stdout = open(os.devnull, "w")  # only rank 0 prints
    try:
        batch_size = dist.local_batch_size(args.batch_size)  # each rank's share of the global batch
    except ValueError as e:
        raise SystemExit(f"--batch-size: {e}") from None

    start_epoch, history, schedule = 0, [], {"from_epoch": 0, "lr": args.lr, "epochs": args.epochs}
    if args.resume:
        kept = {}  # the arrays stay on the root rank, which loads them into the model below

        def read():
            kept["arrays"], *info = read_checkpoint(args.resume)
            return info

        start_epoch, history, stored = dist.on_root(read)
        if start_epoch >= args.epochs:
            asked = f"{start_epoch} of {args.epochs}" if start_epoch == args.epochs else \
                f"{start_epoch} epochs, more than --epochs {args.epochs}"
            print(f"checkpoint {args.resume} already trained {asked} epochs; nothing to do, "
                  f"pass --epochs {start_epoch + 1} or more to train more")
            if history:
                print(f"stored final test accuracy: {history[-1]['test_acc']:.4f} "
                      f"(epoch {history[-1]['epoch']}, from the checkpoint)")
            return history
        schedule = resumed_schedule(stored, start_epoch, args.epochs)

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
    nonfinite = "raise" if args.nonfinite == "stop" else "skip"
    optimizer = dist.DistributedOptimizer(optim.Adam(model.parameters(), lr=args.lr, nonfinite=nonfinite))

    if args.resume:
        dist.on_root(lambda: apply_checkpoint(args.resume, kept.pop("arrays"), model, optimizer))
        dist.broadcast_parameters(model)
        dist.broadcast_optimizer_state(optimizer)
        replanned = "" if schedule["from_epoch"] == 0 else (
            f"; the rate goes on from {schedule['lr']:.3g} down to 0 at epoch {schedule['epochs']}")
        print(f"resumed from {args.resume} after epoch {start_epoch}{replanned}")

    def kept_file():
        return f"{args.save} is left as it was" if args.save and os.path.exists(args.save) else \
            "no checkpoint was written"

    for epoch in range(start_epoch, args.epochs):
        optimizer.lr = cosine_rate(schedule, epoch)
        model.train()
        loader = DataLoader(x_train, y_train, batch_size=batch_size, shuffle=True, seed=args.seed + epoch,
                            device=device, transform=mnist.to_float_images, rank=world.rank, world_size=world.size,
                            on_device=device != "cpu")  # a GPU holds the 47 MB of uint8 images and gathers there
        batches, bar = progress(loader, len(loader), f"epoch {epoch + 1}/{args.epochs}",
                                args.no_progress or not world.is_root)
        metrics, start, skipped_before = Metrics(), time.perf_counter(), optimizer.skipped_steps
        for step, (xb, yb) in enumerate(batches, 1):
            try:
                done = train_step(model, optimizer, xb, yb, args.grad_penalty)
            except optim.NonFiniteGradientError as e:
                raise SystemExit(f"epoch {epoch + 1}, batch {step}: {e}; training stopped (--nonfinite stop), "
                                 f"{kept_file()}") from None
            if done is not None:  # a skipped batch is left out of the epoch's loss and accuracy
                loss, logits = done
                metrics.add(loss * len(yb), logits, yb)
            if bar is not None and (step % PROGRESS_EVERY == 0 or step == len(loader)):
                loss_sum, correct = metrics.read()
                seen = max(metrics.seen, 1)
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}",
                                img_s=f"{metrics.seen / (time.perf_counter() - start):.0f}",
                                skipped=optimizer.skipped_steps - skipped_before)
        loss_sum, correct = metrics.read()
        train_time = time.perf_counter() - start
        seen, correct, loss_sum = dist.allreduce(metrics.seen), dist.allreduce(correct), dist.allreduce(loss_sum)
        skipped = optimizer.skipped_steps - skipped_before
        if skipped:
            print(f"epoch {epoch + 1}: {skipped} of {len(loader)} steps skipped: their gradient held NaN or inf "
                  f"(weights left unchanged, those batches not counted below)")
        test_loss, test_acc = evaluate(model, x_test, y_test, device)
        train_loss, train_acc = (loss_sum / seen, correct / seen) if seen else (math.nan, math.nan)
        history.append(dict(epoch=epoch + 1, lr=optimizer.lr, train_loss=train_loss, train_acc=train_acc,
                            test_loss=test_loss, test_acc=test_acc, skipped_steps=skipped, epoch_seconds=train_time,
                            images_per_second=seen / train_time))
        print(f"epoch {epoch + 1}: train loss {train_loss:.4f} acc {train_acc:.4f} | "
              f"test loss {test_loss:.4f} acc {test_acc:.4f} | {train_time:.1f} s ({seen / train_time:.0f} img/s)")
        bad = nonfinite_arrays(checkpoint_arrays(model, optimizer))  # NOTE: every rank checks (all hold the
        if bad:                                                         # same weights), so all stop together
            raise SystemExit(f"epoch {epoch + 1}: NaN or inf in {', '.join(bad[:3])}"
                             f"{' and more' if len(bad) > 3 else ''}; training stopped, {kept_file()}")
        if args.save and world.is_root:
            save_checkpoint(args.save, model, optimizer, epoch + 1, history, vars(args), schedule)

    if args.save:
        print(f"checkpoint: {args.save}")
    if args.metrics and world.is_root:
        os.makedirs(os.path.dirname(os.path.abspath(args.metrics)), exist_ok=True)
        with open(args.metrics, "w") as f:
            json.dump(dict(config=vars(args), device=device, world_size=world.size, epochs=history), f, indent=2)
        print(f"metrics: {args.metrics}")
    print(f"final test accuracy: {history[-1]['test_acc']:.4f}")
    return history


if __name__ == "__main__":
    main()
