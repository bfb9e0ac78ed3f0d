#!/usr/bin/env bash
# Writes the example's dataset (dataset.bin, SIZE MiB of random bytes, 128 by default) next to
# this script; the workflow reads it.
set -euo pipefail
cd "$(dirname "$0")"
size=${1:-128}
head -c "$((size << 20))" /dev/urandom > dataset.bin.partial
mv dataset.bin.partial dataset.bin
echo "dataset.bin: $size MiB"
