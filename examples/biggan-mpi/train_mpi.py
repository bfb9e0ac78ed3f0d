"""Train, data-parallel over MPI: the network of examples/biggan-mini/train.py, each rank taking
its own slice of every global batch and the gradients summed across ranks with one all-reduce per
step (mpi4py over Open MPI), so every rank keeps the same weights. Rank 0 prints the loss, the
images/s of all ranks together and where the ranks ran; 1 rank computes what train.py computes."""
import argparse
import socket
import time

import numpy as np
from mpi4py import MPI

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--batch-size", type=int, default=128, help="per rank")
parser.add_argument("--hidden", type=int, default=256)
parser.add_argument("--out", required=True)
args = parser.parse_args()

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
hosts = comm.gather(socket.gethostname(), root=0)
if rank == 0:
    print(f"ranks={size} hosts={len(set(hosts))} ({' '.join(sorted(set(hosts)))})", flush=True)

data = np.load(args.data)
x, y = data["x_train"], data["y_train"]
rng = np.random.default_rng(0)  # the same on every rank: the same order and initial weights
sizes = [x.shape[1], args.hidden, args.hidden, 10]
weights = [rng.normal(0, (2 / m) ** 0.5, (m, n)).astype(np.float32) for m, n in zip(sizes, sizes[1:])]
biases = [np.zeros(n, np.float32) for n in sizes[1:]]
params = weights + biases
flat = np.empty(sum(p.size for p in params), np.float32)
lr = 0.05
step_size = args.batch_size * size

for epoch in range(1, args.epochs + 1):
    comm.Barrier()
    start = time.perf_counter()
    order = rng.permutation(len(x))
    total = 0.0
    reduce_seconds = 0.0
    for i in range(0, len(x), step_size):
        idx = order[i : i + step_size][rank::size]
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
        grad /= max(len(order[i : i + step_size]), 1)
        grads_w, grads_b = [None] * len(weights), [None] * len(biases)
        for layer in range(len(weights) - 1, -1, -1):
            a = activations[layer]
            previous = (grad @ weights[layer].T) * (a > 0) if layer > 0 else None
            grads_w[layer] = a.T @ grad
            grads_b[layer] = grad.sum(axis=0)
            grad = previous
        # One all-reduce of every gradient, packed in one buffer.
        offset = 0
        for g in grads_w + grads_b:
            flat[offset : offset + g.size] = g.ravel()
            offset += g.size
        started = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        reduce_seconds += time.perf_counter() - started
        offset = 0
        for param in params:
            param -= lr * flat[offset : offset + param.size].reshape(param.shape)
            offset += param.size
    total = comm.allreduce(total, op=MPI.SUM)
    elapsed = time.perf_counter() - start
    if rank == 0:
        print(
            f"epoch {epoch}/{args.epochs} loss={total / len(x):.4f} {len(x) / elapsed:.1f} img/s "
            f"allreduce={reduce_seconds:.3f}s",
            flush=True,
        )

if rank == 0:
    np.savez(args.out, **{f"w{i}": w for i, w in enumerate(weights)}, **{f"b{i}": b for i, b in enumerate(biases)})
    print(f"saved the model to {args.out}", flush=True)
