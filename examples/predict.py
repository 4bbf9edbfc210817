"""Classify digits with a model trained by examples/mnist.py: the top 3 classes and their probabilities.

    python examples/predict.py --index 0 1 2                 # MNIST test images by index
    python examples/predict.py digit.png other.png           # your own images (needs Pillow)
    python examples/predict.py --checkpoint runs/mnist.safetensors --index 7

A PNG is made grey, resized to 28x28 and, when it is dark on light (ink on paper), inverted, since MNIST
digits are light on a dark background.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))  # run from a clone
sys.path.insert(0, HERE)

import tinygrad_cnn as tg  # noqa: E402
from tinygrad_cnn.datasets import mnist  # noqa: E402
from mnist import build_model  # noqa: E402  (examples/mnist.py: the model the checkpoint was trained as)

CHECKPOINT = "runs/mnist.safetensors"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", help="PNG (or any Pillow-readable) image files")
    p.add_argument("--index", type=int, nargs="+", default=[], help="MNIST test-set indices")
    p.add_argument("--checkpoint", default=CHECKPOINT, help="weights or a training checkpoint of examples/mnist.py")
    p.add_argument("--top", type=int, default=3, help="how many classes to print per image")
    p.add_argument("--data", default=None, help="folder with the four MNIST files (default: search)")
    args = p.parse_args(argv)
    if not args.images and not args.index:
        p.error("give image files or --index N ...")
    if not 1 <= args.top <= 10:
        p.error(f"--top must be between 1 and 10, got {args.top}")
    return args


def read_image(path):
    """A (28, 28) uint8 image, light digit on dark, from any file Pillow reads."""
    try:
        from PIL import Image
    except ImportError:
        raise SystemExit("reading image files needs Pillow (pip install pillow); --index works without it") from None
    try:
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L").resize((28, 28), Image.BILINEAR), dtype=np.uint8)
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: not an image Pillow can read ({e})") from None
    return 255 - grey if grey.mean() > 127 else grey  # NOTE: ink on paper -> MNIST's light on dark


def checkpoint_path(path):
    """The checkpoint to read: `path` itself, or for the default name, relative to the current directory
    first and then to the clone (where `python examples/mnist.py` run from the clone writes it). A missing
    one stops the script with the paths looked at and the command that makes one."""
    looked = [os.path.abspath(path)]
    if path == CHECKPOINT:
        looked.append(os.path.abspath(os.path.join(HERE, "..", CHECKPOINT)))
    for candidate in looked:
        if os.path.isfile(candidate):
            return candidate
    where = " or ".join(dict.fromkeys(looked))
    script = os.path.relpath(os.path.join(HERE, "mnist.py"))
    script = os.path.join(HERE, "mnist.py") if script.startswith("..") else script
    raise SystemExit(f"--checkpoint: no checkpoint at {where}. Train one with `python {script}` (it writes {CHECKPOINT} under the "
                     f"directory it runs in; --save PATH names another), or pass --checkpoint PATH")


def predict(model, images, top=3):
    """[(class, probability)] * top for each (28, 28) uint8 image, most probable first."""
    model.eval()
    with tg.no_grad():
        probs = model(tg.Tensor(mnist.to_float_images(np.stack(images)))).numpy()
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    return [[(int(c), float(p[c])) for c in row] for row, p in zip(order, probs)]


def main(argv=None):
    args = parse_args(argv)
    model = build_model()
    try:
        model.load(checkpoint_path(args.checkpoint))  # weights, or the model part of a training checkpoint
    except ValueError as e:  # CheckpointError, or weights of another model
        raise SystemExit(f"--checkpoint {args.checkpoint}: {e}") from None
    labels, images = [], []
    if args.index:
        (_, _), (x_test, y_test) = mnist.load_data(args.data)
        bad = [i for i in args.index if not 0 <= i < len(x_test)]
        if bad:
            raise SystemExit(f"--index {bad[0]}: the test set has images 0 to {len(x_test) - 1}")
        labels += [f"test image {i} (label {y_test[i]})" for i in args.index]
        images += [x_test[i] for i in args.index]
    labels += list(args.images)
    images += [read_image(path) for path in args.images]
    results = predict(model, images, args.top)
    for label, top in zip(labels, results):
        print(f"{label}: " + ", ".join(f"{c} ({p:.1%})" for c, p in top))
    return results


if __name__ == "__main__":
    main()
