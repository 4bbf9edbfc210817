"""Two-class MNIST with one sigmoid output neuron: is this digit a 3 or an 8?

    python examples/binary.py                 # about a minute on a CPU
    python examples/binary.py --digits 4 9 --epochs 2

The network ends in Dense(1, activation='sigmoid'): its single output is the probability that
the image shows the second digit. Training uses binary cross-entropy on the logit (the output
before the sigmoid), which is the numerically stable form of the same loss.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a clone

import tinygrad_cnn as tg  # noqa: E402
from tinygrad_cnn import nn, optim  # noqa: E402
from tinygrad_cnn.data import DataLoader  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mnist import at_least_0, at_least_1, learning_rate_flag  # noqa: E402  (the same flag checks as the main example)
from tinygrad_cnn.datasets import mnist  # noqa: E402
from tinygrad_cnn.nn import functional as F  # noqa: E402


def build_model():
    return nn.Sequential([
        nn.Conv2D(16, (3, 3), padding="same", activation="relu"),
        nn.MaxPool2D((2, 2), strides=2),
        nn.Conv2D(32, (3, 3), padding="same", activation="relu"),
        nn.MaxPool2D((2, 2), strides=2),
        nn.Flatten(),
        nn.Dense(64, activation="relu"),
        nn.Dense(1, activation="sigmoid"),   # one neuron: P(second digit)
    ], input_shape=(1, 28, 28))


def two_digits(x, y, first, second):
    """Keep the images of two digits; label the first 0 and the second 1 (float, as BCE wants)."""
    keep = (y == first) | (y == second)
    return x[keep], (y[keep] == second).astype(np.float32)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--digits", type=int, nargs=2, default=(3, 8), metavar=("FIRST", "SECOND"))
    p.add_argument("--epochs", type=at_least_1, default=1)
    p.add_argument("--batch-size", type=at_least_1, default=64)
    p.add_argument("--lr", type=learning_rate_flag, default=1e-3)
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=at_least_0, default=0)
    p.add_argument("--limit-train", type=at_least_1, default=None, help="use only the first N training images")
    args = p.parse_args(argv)
    first, second = args.digits
    if first == second or not all(0 <= d <= 9 for d in args.digits):
        p.error(f"--digits needs two different digits from 0 to 9, got {first} and {second}")

    tg.manual_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x_train, y_train = two_digits(x_train, y_train, first, second)
    x_test, y_test = two_digits(x_test, y_test, first, second)
    x_train, y_train = x_train[:args.limit_train], y_train[:args.limit_train]
    print(f"{first} vs {second}: {len(x_train)} training and {len(x_test)} test images")

    model = build_model()
    model.to(tg.device.canonical_device(args.device))
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    for epoch in range(args.epochs):
        model.train()
        start, total = time.perf_counter(), 0.0
        loader = DataLoader(x_train, y_train, batch_size=args.batch_size, shuffle=True, seed=args.seed + epoch,
                            device=args.device, transform=mnist.to_float_images)
        for xb, yb in loader:
            logit = model.logits(xb).reshape(-1)      # (N,): the neuron's input to its sigmoid
            loss = F.binary_cross_entropy_with_logits(logit, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
        print(f"epoch {epoch + 1}: train BCE {total / len(x_train):.4f} ({time.perf_counter() - start:.1f} s)")

    model.eval()
    with tg.no_grad():
        xb = tg.Tensor(mnist.to_float_images(x_test), device=args.device)
        probability = model(xb).reshape(-1)           # the sigmoid output, in (0, 1)
        test_bce = F.binary_cross_entropy(probability, tg.Tensor(y_test, device=args.device)).item()
        accuracy = float(((probability.numpy() > 0.5) == (y_test == 1)).mean())
    print(f"test BCE {test_bce:.4f}, accuracy {accuracy:.4f} (predict {second} when P > 0.5)")
    return accuracy


if __name__ == "__main__":
    main()
