#!/usr/bin/env bash
# The demo's storage step (scripts/demo, step 9e; issue 20): `atlas operator --local` brings up
# the MooseFS service of examples/storage/scratch.yaml as podman containers and keeps it
# healthy (a chunk server killed is restarted), pushing its status to the dashboard's services
# page; the file system is mounted at /mnt/atlas-scratch and examples/data-access reads its
# dataset from there and from the local disk, on the host and in containers, as one
# experiment. Leaves the operator running (its pid in OUT/operator.pid) and the mount.
# Usage: scripts/lib/demo-storage.sh ATLAS OUT DASHBOARD_URL
set -euo pipefail
atlas=$(realpath "$1") out=$2 url=$3
service=examples/storage/scratch.yaml mount=/mnt/atlas-scratch
phase() { python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ''))" "$out/scratch.json" "$1" 2>/dev/null || true; }
restarts() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['restarts'].get('chunkserver-1', 0))" "$out/scratch.json" 2>/dev/null || echo 0; }
wait_for() { # WHAT CONDITION...: waits up to 3 minutes
  local what=$1; shift
  for _ in $(seq 360); do "$@" && return 0; sleep 0.5; done
  echo "error: $what did not happen in 3 minutes (see $out/operator.log)" >&2
  exit 3
}
healthy() { [ "$(phase phase)" = Healthy ] && [ "$(phase readyChunkServers)" = 3 ]; }
restarted() { [ "$(restarts)" -gt "$restarts_before" ]; }

echo "\$ cat $service"
grep -v '^#' "$service"
echo "\$ atlas operator --local $service --server ${url%/} --status-file $out/scratch.json &"
rm -f "$out/scratch.json"
(exec "$atlas" operator --local "$service" --server "${url%/}" --status-file "$out/scratch.json" > "$out/operator.log" 2>&1) &
echo $! > "$out/operator.pid"
wait_for "the service's start" healthy
sed 's/^/  /' "$out/operator.log"
master=$(phase masterAddress)
mkdir -p "$mount"
if ! mountpoint -q "$mount"; then
  mfsmount "$mount" -H "${master%:*}" -P "${master#*:}" >/dev/null 2>&1
fi
echo "\$ mfsmount $mount -H ${master%:*} -P ${master#*:}   # the file system, here"
df -h "$mount" | tail -1
echo "\$ podman kill atlas-mfs-scratch-chunkserver-1   (a crash: the operator restarts it on its data)"
restarts_before=$(restarts)
podman kill atlas-mfs-scratch-chunkserver-1 >/dev/null
before=$(wc -l < "$out/operator.log")
wait_for "the restart" restarted
wait_for "the service's recovery" healthy
tail -n +"$((before + 1))" "$out/operator.log" | sed 's/^/  /'
echo "(the dashboard's services page shows it live: ${url}services)"

echo "\$ examples/data-access/make-dataset.sh 128"
examples/data-access/make-dataset.sh 128
echo "\$ atlas run atlas.yaml --on local --on mfs --on podman --on podman-mfs --repeat 3   (examples/data-access: the local disk and the MooseFS mount, on the host and in containers)"
if ! (cd examples/data-access && "$atlas" run atlas.yaml --on local --on mfs --on podman --on podman-mfs --repeat 3 > "$out/data-access.log" 2>&1); then
  cat "$out/data-access.log" >&2
  echo "error: the data-access runs failed (above)" >&2
  exit 3
fi
grep -E '^experiment ' "$out/data-access.log"
experiment=$("$atlas" runs --target podman-mfs --limit 1 --format json | sed -n 's/.*"experimentId": "\(e-[0-9a-f]*\)".*/\1/p' | head -1)
echo "\$ atlas compare $experiment   (where the data lay, and what each job read per second)"
(cd examples/data-access && "$atlas" compare "$experiment") \
  | awk '/where the data lay/ {print} /^(time to completion|phase (scan|shuffle): read by the job per second)/ {on=1; print; next} /^[^ ]/ {on=0} on && /^ / {print}'
rm -rf examples/data-access/data examples/data-access/dataset.bin
