"""Preprocess: builds the training file from scikit-learn's bundled digits (no download),
as BigGAN's make_hdf5 builds ImageNet's: pixels scaled to [0, 1], a fixed train/test split."""
import argparse

import numpy as np
from sklearn.datasets import load_digits

parser = argparse.ArgumentParser()
parser.add_argument("--out", required=True)
args = parser.parse_args()

digits = load_digits()
x = (digits.images.reshape(len(digits.images), -1) / 16.0).astype(np.float32)
y = digits.target.astype(np.int64)
order = np.random.default_rng(0).permutation(len(x))
x, y = x[order], y[order]
# Augment with shifted copies (as image pipelines do), so training is long enough to watch.
shifted = [np.roll(x.reshape(-1, 8, 8), s, axis=a).reshape(len(x), -1) for s in (-2, -1, 1, 2) for a in (1, 2)]
split = int(0.8 * len(x))
x_train = np.concatenate([x[:split]] + [s[:split] for s in shifted])
y_train = np.concatenate([y[:split]] * (1 + len(shifted)))
np.savez(args.out, x_train=x_train, y_train=y_train, x_test=x[split:], y_test=y[split:])
print(f"wrote {len(x_train) + len(x) - split} samples to {args.out}", flush=True)
