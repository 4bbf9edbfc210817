"""Inference images/s of two checkouts of the package and, optionally, TensorFlow/Keras, in rounds of
fresh processes whose order rotates, so that other work on the machine hits each side alike.

    python benchmarks/bench_infer.py --a /work/main --b . --rounds 6 --keras /work/tfenv/bin/python \\
        --json benchmarks/results/infer_peers_loaded.json

Each run is one benchmarks/epoch_child.py process: it trains the tutorial's CNN on --images images
(a user's loop, `--kind ours-user`, or Keras' fit) and then times predicting the 10,000 MNIST test
images at batch 1000 (`with tg.no_grad()`, model.logits, argmax; Keras' model.predict), which is the
figure compared here. Prints each round's images/s, then per side the median and the range, and the
ratios B/A and B/Keras per round (median and range)."""
import argparse
import json
import os
import statistics
import subprocess
import sys

from common import provenance

HERE = os.path.dirname(os.path.abspath(__file__))


def run(python, kind, checkout, images):
    """One epoch_child.py process: its JSON line as a dict."""
    out = subprocess.run([python, os.path.join(HERE, "epoch_child.py"), "--kind", kind, "--checkout",
                          os.path.abspath(checkout), "--images", str(images)],
                         capture_output=True, text=True, check=True, cwd=os.path.abspath(checkout))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", required=True, help="checkout A (e.g. /work/main)")
    p.add_argument("--b", required=True, help="checkout B")
    p.add_argument("--keras", default=None, help="a Python with TensorFlow/Keras (e.g. /work/tfenv/bin/python)")
    p.add_argument("--images", type=int, default=1280, help="training images before inference (short)")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    sides = {"A": (sys.executable, "ours-user", args.a), "B": (sys.executable, "ours-user", args.b)}
    if args.keras:
        sides["keras"] = (args.keras, "keras", args.b)
    names = list(sides)
    info = provenance(a=args.a, b=args.b)  # (the load average at the start)
    rates, loads = {name: [] for name in names}, []
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            rates[name].append(run(*sides[name], args.images)["inference_images_per_second"])
        loads.append(round(os.getloadavg()[0], 2))
        print(f"round {r + 1}: " + "   ".join(f"{n} {rates[n][-1]:7.0f}" for n in names)
              + f"   (load {loads[-1]})", flush=True)
    summary = {n: {"median": statistics.median(v), "min": min(v), "max": max(v)} for n, v in rates.items()}
    ratios = {"B/A": [b / a for a, b in zip(rates["A"], rates["B"])]}
    if args.keras:
        ratios["B/keras"] = [b / k for k, b in zip(rates["keras"], rates["B"])]
        ratios["A/keras"] = [a / k for k, a in zip(rates["keras"], rates["A"])]
    print()
    for n, s in summary.items():
        print(f"{n:6} images/s: median {s['median']:.0f} ({s['min']:.0f} to {s['max']:.0f})")
    for n, v in ratios.items():
        print(f"{n:8} per round: median {statistics.median(v):.3f} ({min(v):.3f} to {max(v):.3f})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({**info, "load_average_1min_per_round": loads, "a": args.a, "b": args.b, "keras": args.keras, "images": args.images,
                       "measured": "inference images/s: 10,000 MNIST test images, batch 1000 (epoch_child.py)",
                       "rounds": args.rounds, "images_per_second": rates, "summary": summary,
                       "ratios": ratios, "median_ratios": {n: statistics.median(v) for n, v in ratios.items()}},
                      f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
