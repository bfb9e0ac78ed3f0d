#!/usr/bin/env bash
# Every build of atlas gives the tests' and the demo's workflow images a new tag (the tag
# hashes the binary), and each keeps its layers: keep only the newest tag of each atlas
# image repository in podman's store (the base image, the pause image and the MooseFS images
# of scripts/moosefs-image, whose tags are versions, are left alone).
set -uo pipefail
podman images --format '{{.Repository}}' 2>/dev/null | sort -u | while read -r repo; do
  case "$repo" in
    localhost/atlas-base|*/atlas/pause|localhost/atlas-moosefs|*/atlas/moosefs) continue ;;
    localhost/atlas-*|127.0.0.1:5000/atlas*/*) ;;
    *) continue ;;
  esac
  podman images --sort created --format '{{.Repository}}:{{.Tag}}' "$repo" | tail -n +2 \
    | xargs -r podman rmi -f >/dev/null 2>&1
done
podman image prune -f >/dev/null 2>&1
echo "podman images pruned: $(podman images -q | wc -l) left"
