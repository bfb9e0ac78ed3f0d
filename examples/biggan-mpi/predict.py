"""Predict: classifies the held-out digits with the trained model and prints the accuracy,
as BigGAN's sample.py prints its quality scores."""
import argparse

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--model", required=True)
args = parser.parse_args()

data, model = np.load(args.data), np.load(args.model)
a = data["x_test"]
layers = len([k for k in model.files if k.startswith("w")])
for i in range(layers):
    a = a @ model[f"w{i}"] + model[f"b{i}"]
    if i < layers - 1:
        a = np.maximum(a, 0)
predicted = a.argmax(axis=1)
accuracy = float((predicted == data["y_test"]).mean())
print(f"classified {len(predicted)} images: accuracy={accuracy:.4f}", flush=True)
