"""Train: a network with two hidden layers in NumPy with SGD; prints loss and images/s per epoch,
the way BigGAN's train.py reports its progress."""
import argparse
import time

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--hidden", type=int, default=1024)
parser.add_argument("--out", required=True)
args = parser.parse_args()

data = np.load(args.data)
x, y = data["x_train"], data["y_train"]
rng = np.random.default_rng(0)
sizes = [x.shape[1], args.hidden, args.hidden, 10]
weights = [rng.normal(0, (2 / m) ** 0.5, (m, n)).astype(np.float32) for m, n in zip(sizes, sizes[1:])]
biases = [np.zeros(n, np.float32) for n in sizes[1:]]
lr = 0.05

for epoch in range(1, args.epochs + 1):
    start = time.perf_counter()
    order = rng.permutation(len(x))
    total = 0.0
    for i in range(0, len(x), args.batch_size):
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
    rate = len(x) / (time.perf_counter() - start)
    print(f"epoch {epoch}/{args.epochs} loss={total / len(x):.4f} {rate:.1f} img/s", flush=True)

np.savez(args.out, **{f"w{i}": w for i, w in enumerate(weights)}, **{f"b{i}": b for i, b in enumerate(biases)})
print(f"saved the model to {args.out}", flush=True)
