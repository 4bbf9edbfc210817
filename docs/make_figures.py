"""Draw the tutorial's figures into docs/figures/ from real runs of tinygrad_cnn.

    python docs/make_figures.py                  # train the tutorial's model for 1 epoch (~1.5 min on 2 cores)
    python docs/make_figures.py --epochs 4       # the committed figures: examples/mnist.py's 4 epochs
    python docs/make_figures.py --checkpoint runs/mnist.npz --metrics runs/mnist_metrics.json
                                                 # reuse a run of examples/mnist.py instead of training

Needs matplotlib (`pip install -e ".[plot]"`). Every figure is computed here, by the library: the
convolution and pooling examples run F.conv2d and MaxPool2D, and the model figures come from the
tutorial's model (examples/mnist.py: build_model) trained by this script or loaded from a checkpoint.
A summary of the run (epochs, test accuracy) goes to docs/figures/run.json; tutorial.md quotes it.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a clone, like examples/mnist.py

import tinygrad_cnn as tg  # noqa: E402
from examples import mnist as example  # noqa: E402  (build_model, evaluate, save_checkpoint, defaults)
from tinygrad_cnn import Tensor, nn, optim  # noqa: E402
from tinygrad_cnn.checkpoint import load_arrays  # noqa: E402
from tinygrad_cnn.data import DataLoader  # noqa: E402
from tinygrad_cnn.datasets import mnist  # noqa: E402
from tinygrad_cnn.nn import functional as F  # noqa: E402

# ---------------------------------------------------------------- config (flags override these)
FIGURES = os.path.join(ROOT, "docs", "figures")
RUN_DIR = os.path.join(ROOT, "runs", "docs")      # where a fresh training run is saved for reuse
EPOCHS = 1
DPI = 100
LOG_EVERY = 20       # batches per point of the training curve
PROBES_PER_EPOCH = 6  # test-set checks per epoch (on PROBE_IMAGES images), besides the full one at the end
PROBE_IMAGES = 2000

# The worked examples of the tutorial (docs/tutorial.md uses the same numbers).
IMAGE = np.array([[1, 2, 3, 0, 1, 2],
                  [4, 5, 6, 1, 0, 3],
                  [7, 8, 9, 2, 4, 1],
                  [0, 2, 1, 5, 3, 0],
                  [3, 0, 2, 1, 6, 2],
                  [1, 4, 0, 3, 2, 7]], dtype=np.float32)
KERNEL = np.array([[1, 0, 1],
                   [0, 1, 1],
                   [1, 0, 1]], dtype=np.float32)
POOL_SEED = 3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=EPOCHS, help="epochs to train when no checkpoint is given")
    p.add_argument("--checkpoint", default=None,
                   help="reuse a trained model: a checkpoint of examples/mnist.py or a model.save() file")
    p.add_argument("--metrics", default=None,
                   help="metrics JSON of that run (examples/mnist.py --metrics, or one written by this script); "
                        "default: the history stored in the checkpoint")
    p.add_argument("--out", default=FIGURES, help="folder for the PNG files")
    p.add_argument("--run-dir", default=RUN_DIR, help="where a fresh run saves its checkpoint and metrics")
    p.add_argument("--limit-train", type=int, default=None, help="train on the first N images only (a quick look)")
    p.add_argument("--seed", type=int, default=example.SEED)
    p.add_argument("--device", default=None, help="cpu or cuda (default: $TINYGRAD_CNN_DEVICE or cpu)")
    args = p.parse_args(argv)
    if args.epochs < 1 or (args.limit_train is not None and args.limit_train < 1):
        p.error("--epochs and --limit-train must be at least 1")
    if args.metrics and not args.checkpoint:
        p.error("--metrics needs --checkpoint (the model of that run)")
    return args


# ---------------------------------------------------------------- the trained model

def train(args, data):
    """examples/mnist.py's recipe (Adam, cosine schedule, batch 128), logging a finer curve:
    the mean training loss every LOG_EVERY batches and a test probe a few times per epoch."""
    (x_train, y_train), (x_test, y_test) = data
    x_train, y_train = x_train[:args.limit_train], y_train[:args.limit_train]
    device = tg.device.canonical_device(args.device)
    tg.manual_seed(args.seed)
    model = example.build_model().to(device)
    optimizer = optim.Adam(model.parameters(), lr=example.LR)
    schedule = optim.CosineAnnealingLR(optimizer, T_max=args.epochs)
    history, steps = [], []
    for epoch in range(args.epochs):
        model.train()
        loader = DataLoader(x_train, y_train, batch_size=example.BATCH_SIZE, shuffle=True, seed=args.seed + epoch,
                            device=device, transform=mnist.to_float_images)
        probe_at = {round(len(loader) * k / PROBES_PER_EPOCH) for k in range(1, PROBES_PER_EPOCH)}
        seen = correct = 0
        loss_sum, window, start = 0.0, [], time.perf_counter()
        for batch, (xb, yb) in enumerate(loader, start=1):
            logits = model.logits(xb)
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            hits = int((logits.argmax(axis=1) == yb).numpy().sum())
            seen, correct, loss_sum = seen + len(yb), correct + hits, loss_sum + loss.item() * len(yb)
            window.append((loss.item(), hits / len(yb)))
            at = epoch + batch / len(loader)
            if len(window) == LOG_EVERY or batch == len(loader):
                losses, accs = zip(*window)
                steps.append(dict(epoch=at, train_loss=float(np.mean(losses)), train_acc=float(np.mean(accs))))
                window = []
            if batch in probe_at:
                probe_loss, probe_acc = example.evaluate(model, x_test[:PROBE_IMAGES], y_test[:PROBE_IMAGES], device)
                steps.append(dict(epoch=at, probe_loss=probe_loss, probe_acc=probe_acc))
                model.train()
        seconds = time.perf_counter() - start
        schedule.step()
        test_loss, test_acc = example.evaluate(model, x_test, y_test, device)
        history.append(dict(epoch=epoch + 1, train_loss=loss_sum / seen, train_acc=correct / seen,
                            test_loss=test_loss, test_acc=test_acc, epoch_seconds=seconds,
                            images_per_second=seen / seconds))
        print(f"epoch {epoch + 1}/{args.epochs}: train loss {loss_sum / seen:.4f} acc {correct / seen:.4f} | "
              f"test loss {test_loss:.4f} acc {test_acc:.4f} | {seconds:.0f} s")
    checkpoint = os.path.join(args.run_dir, "mnist.npz")
    metrics_path = os.path.join(args.run_dir, "mnist_metrics.json")
    example.save_checkpoint(checkpoint, model, optimizer, args.epochs, history)
    metrics = dict(config=dict(vars(args), batch_size=example.BATCH_SIZE, lr=example.LR), device=device,
                   epochs=history, steps=steps)
    with open(metrics_path, "w") as f:
        json.dump(metrics, f, indent=1)
    print(f"saved {checkpoint} and {metrics_path}; reuse them with "
          f"--checkpoint {os.path.relpath(checkpoint)} --metrics {os.path.relpath(metrics_path)}")
    return model.to("cpu"), metrics, "trained by docs/make_figures.py"


def load_run(args):
    """The model of an earlier run, and its metrics (from --metrics or the checkpoint's history)."""
    arrays = load_arrays(args.checkpoint)
    state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")} or arrays
    model = example.build_model()
    model.load_state_dict(state)
    if args.metrics:
        with open(args.metrics) as f:
            metrics = json.load(f)
    elif "meta/history" in arrays:
        metrics = dict(epochs=json.loads(str(arrays["meta/history"])))
    else:
        metrics = dict(epochs=[])
    trainer = "docs/make_figures.py" if "steps" in metrics else "examples/mnist.py"
    return model, metrics, f"loaded from {args.checkpoint} (trained by {trainer})"


def predict(model, x):
    """Class probabilities for uint8 images, in batches, without a graph."""
    model.eval()
    out = []
    with tg.no_grad():
        for xb in DataLoader(x, batch_size=1000, transform=mnist.to_float_images):
            out.append(model(xb).numpy())
    return np.concatenate(out)


# ---------------------------------------------------------------- drawing helpers

def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, out, name):
    path = os.path.join(out, name)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    _plt().close(fig)
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path) / 1024:.0f} KB)")
    return path


def _grid_numbers(ax, values, fmt="{:g}", color="black", weights=None, size=11):
    for (i, j), v in np.ndenumerate(values):
        weight = "normal" if weights is None else weights[i, j]
        ax.text(j, i, fmt.format(v), ha="center", va="center", color=color, fontsize=size, fontweight=weight)


def _clean(ax):
    ax.set_xticks([])
    ax.set_yticks([])


def _square(ax, top, left, size, color, width=3):
    from matplotlib.patches import Rectangle
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), size, size, fill=False, edgecolor=color, linewidth=width))


# ---------------------------------------------------------------- the worked examples

def figure_kernel(out):
    """A 3x3 0/1 kernel over the 6x6 image: the top-left window sums 1+3+5+6+7+9 = 31."""
    plt = _plt()
    result = F.conv2d(Tensor(IMAGE[None, None]), Tensor(KERNEL[None, None])).numpy()[0, 0]  # (4, 4)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), gridspec_kw=dict(width_ratios=[6, 3, 4]))
    ax = axes[0]
    ax.imshow(IMAGE, cmap="Greys", vmin=0, vmax=18)
    picked = np.zeros_like(IMAGE, dtype=object)
    picked[:] = "normal"
    picked[:3, :3] = np.where(KERNEL == 1, "bold", "normal")
    _grid_numbers(ax, IMAGE, weights=picked)
    for i, j in zip(*np.nonzero(KERNEL)):
        ax.add_patch(_plt().Circle((j, i), 0.36, fill=False, edgecolor="tab:orange", linewidth=2))
    _square(ax, 0, 0, 3, "tab:orange")
    ax.set_title("6x6 image, kernel over the top-left window")
    ax = axes[1]
    ax.imshow(KERNEL, cmap="Oranges", vmin=0, vmax=2)
    _grid_numbers(ax, KERNEL)
    ax.set_title("3x3 kernel")
    ax = axes[2]
    ax.imshow(result, cmap="Blues", vmin=0, vmax=60)
    _grid_numbers(ax, result, weights=np.where(np.arange(16).reshape(4, 4) == 0, "bold", "normal"))
    _square(ax, 0, 0, 1, "tab:orange")
    ax.set_title("output 4x4: 1+3+5+6+7+9 = 31")
    for ax in axes:
        _clean(ax)
    fig.suptitle("F.conv2d(image, kernel): slide, multiply, sum", y=1.02)
    return _save(fig, out, "kernel_over_image.png")


def pool_example():
    """The 8x8 image of the max-pool example: small integers drawn from a fixed seed."""
    return np.random.default_rng(POOL_SEED).integers(0, 10, size=(8, 8)).astype(np.float32)


def figure_max_pool(out):
    """Max-pooling an 8x8 image with 4x4 windows (stride 4) to 2x2."""
    plt = _plt()
    image = pool_example()
    pooled = nn.MaxPool2D(pool_size=4)(Tensor(image[None, None])).numpy()[0, 0]  # (2, 2)
    colors = np.array([[0, 1], [2, 3]])
    blocks = np.kron(colors, np.ones((4, 4)))  # which window each pixel belongs to
    cmap = plt.matplotlib.colors.ListedColormap(["#cfe2f3", "#fce5cd", "#d9ead3", "#ead1dc"])
    weights = np.full(image.shape, "normal", dtype=object)
    for bi in range(2):
        for bj in range(2):
            block = image[4 * bi:4 * bi + 4, 4 * bj:4 * bj + 4]
            i, j = np.unravel_index(np.argmax(block), block.shape)  # the first maximum, as backward routes it
            weights[4 * bi + i, 4 * bj + j] = "bold"
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), gridspec_kw=dict(width_ratios=[8, 3]))
    axes[0].imshow(blocks, cmap=cmap)
    _grid_numbers(axes[0], image, weights=weights)
    axes[0].set_title("8x8 image, four 4x4 windows")
    axes[1].imshow(colors, cmap=cmap)
    _grid_numbers(axes[1], pooled, weights=np.full((2, 2), "bold", dtype=object), size=16)
    axes[1].set_title("MaxPool2D(4): 2x2")
    for ax in axes:
        _clean(ax)
    return _save(fig, out, "max_pool.png")


# ---------------------------------------------------------------- what the model learned

def figure_filters(model, out):
    """The 32 kernels of the first convolution, each on its own symmetric colour scale."""
    plt = _plt()
    weight = model.layers[0].weight.numpy()[:, 0]  # (32, 3, 3)
    fig, axes = plt.subplots(4, 8, figsize=(8, 4.4))
    for k, ax in enumerate(axes.flat):
        w = weight[k]
        limit = np.abs(w).max()
        ax.imshow(w, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(str(k), fontsize=8)
        _clean(ax)
    fig.suptitle("First-layer filters (3x3; red positive, blue negative)")
    return _save(fig, out, "filters.png")


def _distinct_channels(maps, count, max_corr=0.75):
    """Up to `count` channels, most varied first, skipping ones that look like a channel already picked."""
    flat = maps.reshape(len(maps), -1)
    spread = flat.std(axis=1)
    alive = [int(c) for c in np.argsort(-spread) if spread[c] > 0]
    picked = []
    for c in alive:
        if len(picked) < count and all(abs(np.corrcoef(flat[c], flat[p])[0, 1]) < max_corr for p in picked):
            picked.append(c)
    picked += [c for c in alive if c not in picked][:count - len(picked)]
    return picked


def figure_feature_maps(model, image, label, out, channels=8):
    """One test digit through the network: the input, 8 channels after each conv layer (chosen to
    differ) and the same channels after the pooling that follows it, then the softmax output."""
    plt = _plt()
    model.eval()
    x = Tensor(mnist.to_float_images(image[None]))
    stages = [("input", x.numpy()[0], [0])]
    with tg.no_grad():
        for layer in model.layers[:4]:
            x = layer(x)
            maps = x.numpy()[0]
            shown = _distinct_channels(maps, channels) if isinstance(layer, nn.Conv2D) else stages[-1][2]
            stages.append((f"{layer.name}\n{tuple(x.shape[1:])}", maps, shown))
        probs = model(Tensor(mnist.to_float_images(image[None]))).numpy()[0]
    fig = plt.figure(figsize=(10, 8.2))
    grid = fig.add_gridspec(len(stages) + 1, channels, height_ratios=[1] * len(stages) + [1.3], hspace=0.45)
    for row, (title, maps, shown) in enumerate(stages):
        for col, c in enumerate(shown):
            ax = fig.add_subplot(grid[row, col])
            _clean(ax)
            ax.imshow(maps[c], cmap="gray" if row == 0 else "magma")
            if col == 0:
                ax.set_ylabel(title, fontsize=8, rotation=0, ha="right", va="center")
            if row > 0:
                ax.set_title(f"channel {c}", fontsize=7)
    ax = fig.add_subplot(grid[len(stages), 1:channels - 1])
    ax.bar(range(10), probs, color=["tab:green" if k == label else "tab:gray" for k in range(10)])
    ax.set_xticks(range(10))
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"softmax output (true label {label}, predicted {int(probs.argmax())}, p = {probs.max():.3f})")
    fig.suptitle("A test digit through each layer (ReLU outputs; each pooling row shows the channels above it)",
                 y=0.93)
    return _save(fig, out, "feature_maps.png")


def figure_curves(metrics, out):
    """Loss and error rate of training and test data: a point per LOG_EVERY batches and a few test
    probes per epoch when this script trained, per-epoch points for a run of examples/mnist.py.
    Both axes are logarithmic in y, so the climb from 90% to 99% accuracy stays visible."""
    plt = _plt()
    epochs = metrics.get("epochs", [])
    steps = metrics.get("steps", [])
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(10, 3.8))
    train = [s for s in steps if "train_loss" in s]
    probes = [s for s in steps if "probe_loss" in s]

    def plot(points, loss_key, acc_key, *style, **kw):
        t = [p["epoch"] for p in points]
        ax_loss.plot(t, [p[loss_key] for p in points], *style, **kw)
        ax_err.plot(t, [max(100 * (1 - p[acc_key]), 0.01) for p in points], *style, **kw)

    if train:
        plot(train, "train_loss", "train_acc", "-", color="tab:blue", lw=1,
             label=f"training (mean of {LOG_EVERY} batches)")
    elif epochs:
        plot(epochs, "train_loss", "train_acc", "o-", color="tab:blue", label="training (epoch mean)")
    if probes:
        plot(probes, "probe_loss", "probe_acc", "o--", color="tab:orange", ms=4, label=f"test, first {PROBE_IMAGES}")
    if epochs:
        plot(epochs, "test_loss", "test_acc", "s", color="tab:red", ms=7, label="test set (end of epoch)")
    ax_loss.set_ylabel("cross-entropy loss (log scale)")
    ax_err.set_ylabel("error rate, % (log scale)")
    for ax in (ax_loss, ax_err):
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    ticker = plt.matplotlib.ticker
    for ax in (ax_loss, ax_err):  # plain numbers (0.5, 2) instead of 5x10^-1; minor labels only on short axes
        low, high = ax.get_ylim()
        plain = ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain if high / low < 12 else ticker.NullFormatter())
    fig.subplots_adjust(wspace=0.3)
    final = f", final test accuracy {epochs[-1]['test_acc']:.2%}" if epochs else ""
    fig.suptitle(f"Training the tutorial's CNN ({len(epochs)} epoch{'s' if len(epochs) != 1 else ''}{final})")
    return _save(fig, out, "training_curves.png")


def figure_confusion(probs, labels, out):
    plt = _plt()
    predicted = probs.argmax(axis=1)
    matrix = np.zeros((10, 10), dtype=int)
    np.add.at(matrix, (labels, predicted), 1)
    fig, ax = plt.subplots(figsize=(6.2, 5.6))
    shown = np.where(np.eye(10, dtype=bool), 0, matrix)  # colour the mistakes; the diagonal would swamp them
    ax.imshow(shown, cmap="Reds")
    for (i, j), n in np.ndenumerate(matrix):
        if n:
            color = "tab:green" if i == j else "white" if n > 0.6 * shown.max() else "black"
            ax.text(j, i, str(n), ha="center", va="center", fontsize=8, color=color,
                    fontweight="bold" if i == j else "normal")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(f"Confusion matrix on the 10,000 test digits (accuracy {np.trace(matrix) / len(labels):.2%})")
    return _save(fig, out, "confusion_matrix.png")


def figure_mistakes(probs, images, labels, out, count=16):
    """The misclassified test digits the model was most sure about."""
    plt = _plt()
    predicted = probs.argmax(axis=1)
    wrong = np.nonzero(predicted != labels)[0]
    wrong = wrong[np.argsort(-probs[wrong, predicted[wrong]])][:count]
    fig, axes = plt.subplots(2, count // 2, figsize=(count * 0.62, 3.2))
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        ax.imshow(images[i], cmap="gray_r")
        ax.set_title(f"#{i}\ntrue {labels[i]}, said {predicted[i]}\np = {probs[i, predicted[i]]:.2f}", fontsize=7)
    fig.suptitle(f"The most confident of the {int((predicted != labels).sum())} misclassified test digits", y=1.04)
    return _save(fig, out, "misclassified.png")


# ---------------------------------------------------------------- main

def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    paths = [figure_kernel(args.out), figure_max_pool(args.out)]

    data = mnist.load_data()
    (_, _), (x_test, y_test) = data
    model, metrics, source = load_run(args) if args.checkpoint else train(args, data)
    model.eval()
    probs = predict(model, x_test)
    accuracy = float((probs.argmax(axis=1) == y_test).mean())
    paths += [figure_filters(model, args.out),
              figure_feature_maps(model, x_test[0], int(y_test[0]), args.out),
              figure_curves(metrics, args.out),
              figure_confusion(probs, y_test, args.out),
              figure_mistakes(probs, x_test, y_test, args.out)]
    config = metrics.get("config", {})
    summary = dict(source=source, epochs=len(metrics.get("epochs", [])),
                   recipe={k: config[k] for k in ("batch_size", "lr", "seed", "limit_train") if k in config},
                   test_accuracy=round(accuracy, 4),
                   misclassified=int((probs.argmax(axis=1) != y_test).sum()),
                   figures=sorted(os.path.basename(p) for p in paths))
    with open(os.path.join(args.out, "run.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    print(f"test accuracy {accuracy:.2%}; {len(paths)} figures in {time.perf_counter() - start:.0f} s")
    return summary


if __name__ == "__main__":
    main()
