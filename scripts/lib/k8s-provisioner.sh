#!/usr/bin/env bash
# The test cluster's volume provisioner (1.20 has no local dynamic provisioner in-tree),
# started by scripts/k8s-up as a daemon and stopped by k8s-down by PID. Once a second:
# - every PersistentVolumeClaim still Pending without a volume gets a hostPath
#   PersistentVolume `pvc-UID` of the size it asks for, bound to it (claimRef), over its own
#   directory under $2, group 0 and group-writable so a pod's arbitrary UID can write;
# - every such volume whose claim was deleted (Released, or Failed) is deleted with its
#   directory.
# Only volumes it made (label atlas.dev/provisioner=hostpath) are ever touched.
set -uo pipefail
kubeconfig=$1
dir=$2
k=(kubectl --kubeconfig="$kubeconfig")
label=atlas.dev/provisioner=hostpath
uid_rule='^[0-9a-f-]{36}$'

provision() {
  local ns=$1 name=$2 uid=$3 size=$4 modes=$5
  [[ $uid =~ $uid_rule ]] || return 0
  local pv="pvc-$uid" path="$dir/pvc-$uid"
  mkdir -p "$path" && chgrp 0 "$path" && chmod 0775 "$path"
  "${k[@]}" create -f - >/dev/null 2>&1 <<YAML
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $pv
  labels:
    app.kubernetes.io/managed-by: atlas
    atlas.dev/provisioner: hostpath
spec:
  capacity:
    storage: ${size:-1Gi}
  accessModes: [${modes:-ReadWriteOnce}]
  persistentVolumeReclaimPolicy: Retain
  claimRef:
    namespace: $ns
    name: $name
    uid: $uid
  hostPath:
    path: $path
    type: Directory
YAML
  echo "$(date -u +%FT%TZ) provisioned $pv for $ns/$name ($size)"
}

reclaim() {
  local pv=$1
  local uid=${pv#pvc-}
  [[ $uid =~ $uid_rule ]] || return 0
  "${k[@]}" delete pv "$pv" --wait=false >/dev/null 2>&1
  rm -rf "${dir:?}/pvc-$uid"
  echo "$(date -u +%FT%TZ) reclaimed $pv"
}

while true; do
  "${k[@]}" get pvc -A -o jsonpath='{range .items[?(@.status.phase=="Pending")]}{.metadata.namespace} {.metadata.name} {.metadata.uid} {.spec.resources.requests.storage} {.spec.accessModes} {.spec.volumeName}{"\n"}{end}' 2>/dev/null \
    | while read -r ns name uid size modes volume; do
        # A claim that names its volume is left to the binder.
        [ -z "$volume" ] || continue
        modes=$(printf '%s' "$modes" | tr -d '[]"')
        "${k[@]}" get pv "pvc-$uid" >/dev/null 2>&1 || provision "$ns" "$name" "$uid" "$size" "$modes"
      done
  for phase in Released Failed; do
    "${k[@]}" get pv -l "$label" -o jsonpath="{range .items[?(@.status.phase==\"$phase\")]}{.metadata.name}{\"\\n\"}{end}" 2>/dev/null \
      | while read -r pv; do reclaim "$pv"; done
  done
  sleep 1
done
