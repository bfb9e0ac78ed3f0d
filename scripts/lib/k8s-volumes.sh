#!/usr/bin/env bash
# The test cluster's volume pool: hostPath PersistentVolumes (any access mode; one node), each
# over its own directory under $2, group 0 and group-writable so a pod's arbitrary UID can
# write. A volume whose claim was deleted (Released) is wiped and made Available again, so the
# pool never runs dry between test runs. 1.20 has no local dynamic provisioner in-tree; this is
# the documented stand-in for one (docs/kubernetes.md).
set -euo pipefail
kubeconfig=$1
dir=$2
count=${ATLAS_K8S_VOLUMES:-12}
k=(kubectl --kubeconfig="$kubeconfig")
for i in $(seq "$count"); do
  name="atlas-pool-$i"
  phase=$("${k[@]}" get pv "$name" -o jsonpath='{.status.phase}' 2>/dev/null || true)
  case "$phase" in
    Available|Bound|Pending) continue ;;
    Released|Failed) "${k[@]}" delete pv "$name" --wait=true >/dev/null ;;
  esac
  rm -rf "${dir:?}/$name"
  mkdir -p "$dir/$name"
  chgrp 0 "$dir/$name"
  chmod 0775 "$dir/$name"
  "${k[@]}" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $name
  labels:
    app.kubernetes.io/managed-by: atlas
spec:
  capacity:
    storage: 20Gi
  accessModes: [ReadWriteOnce, ReadOnlyMany, ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  hostPath:
    path: $dir/$name
    type: Directory
YAML
done
echo "volume pool: $("${k[@]}" get pv -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | sort | uniq -c | tr -s ' \n' ' ')"
