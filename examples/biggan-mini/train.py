"""Train: a network with two hidden layers in NumPy with SGD; prints loss and images/s per epoch,
the way BigGAN's train.py reports its progress.

With --checkpoint FILE it saves its whole state (weights, epoch, position in the epoch and its
shuffled order, the running loss, the random generator) at each epoch's end and, on SIGUSR1,
before its next batch; with ATLAS_RESUME=1 it starts from that file. A run frozen and resumed
computes the same numbers as one that was not: the same batches in the same order from the same
weights (float32 on one thread, OMP_NUM_THREADS=1), so the final model is bit-for-bit the same."""
import argparse
import json
import os
import signal
import time

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--hidden", type=int, default=1024)
parser.add_argument("--out", required=True)
parser.add_argument("--checkpoint", default=None)
args = parser.parse_args()

asked = False


def on_usr1(signum, frame):
    global asked
    asked = True


signal.signal(signal.SIGUSR1, on_usr1)

data = np.load(args.data)
x, y = data["x_train"], data["y_train"]
rng = np.random.default_rng(0)
sizes = [x.shape[1], args.hidden, args.hidden, 10]
weights = [rng.normal(0, (2 / m) ** 0.5, (m, n)).astype(np.float32) for m, n in zip(sizes, sizes[1:])]
biases = [np.zeros(n, np.float32) for n in sizes[1:]]
lr = 0.05


def save(epoch, first, order, total):
    """The state, written whole or not at all (a new name, then a rename). The new name is this
    process's own: runs of one project on local and Slurm share its directory, and with one
    name for all, one run's rename took the other's file away (FileNotFoundError, exit 1)."""
    tmp = f"{args.checkpoint}.{os.getpid()}.part.npz"
    np.savez(tmp, epoch=epoch, first=first, order=np.array([] if order is None else order),
             total=total, rng=json.dumps(rng.bit_generator.state),
             **{f"w{k}": w for k, w in enumerate(weights)}, **{f"b{k}": b for k, b in enumerate(biases)})
    os.replace(tmp, args.checkpoint)


start_epoch, first, order, total = 1, 0, None, 0.0
if args.checkpoint and os.environ.get("ATLAS_RESUME") == "1" and os.path.exists(args.checkpoint):
    state = np.load(args.checkpoint)
    weights = [state[f"w{k}"] for k in range(len(weights))]
    biases = [state[f"b{k}"] for k in range(len(biases))]
    rng.bit_generator.state = json.loads(str(state["rng"]))
    start_epoch, first, total = int(state["epoch"]), int(state["first"]), float(state["total"])
    order = state["order"] if state["order"].size else None
    print(f"resumed from {args.checkpoint} at epoch {start_epoch}, sample {first}", flush=True)

for epoch in range(start_epoch, args.epochs + 1):
    start = time.perf_counter()
    if order is None:
        order, first, total = rng.permutation(len(x)), 0, 0.0
    for i in range(first, len(x), args.batch_size):
        if asked and args.checkpoint:
            save(epoch, i, order, total)
            print(f"checkpoint saved at epoch {epoch}, sample {i}", flush=True)
            asked = False
        idx = order[i : i + args.batch_size]
        activations = [x[idx]]
        for w, b in zip(weights[:-1], biases[:-1]):
            activations.append(np.maximum(activations[-1] @ w + b, 0))
        logits = activations[-1] @ weights[-1] + biases[-1]
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        yb = y[idx]
        total += -np.log(p[np.arange(len(yb)), yb] + 1e-9).sum()
        grad = p
        grad[np.arange(len(yb)), yb] -= 1
        grad /= len(yb)
        for layer in range(len(weights) - 1, -1, -1):
            a = activations[layer]
            previous = (grad @ weights[layer].T) * (a > 0) if layer > 0 else None
            weights[layer] -= lr * a.T @ grad
            biases[layer] -= lr * grad.sum(axis=0)
            grad = previous
    rate = (len(x) - first) / (time.perf_counter() - start)
    print(f"epoch {epoch}/{args.epochs} loss={total / len(x):.4f} {rate:.1f} img/s", flush=True)
    order = None
    if args.checkpoint:
        save(epoch + 1, 0, None, 0.0)

np.savez(args.out, **{f"w{i}": w for i, w in enumerate(weights)}, **{f"b{i}": b for i, b in enumerate(biases)})
print(f"saved the model to {args.out}", flush=True)
