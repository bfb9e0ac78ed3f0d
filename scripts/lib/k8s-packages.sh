#!/usr/bin/env bash
# Installs what the test cluster needs from Debian, when missing: Go 1.19, rsync and reflect2
# (the build), etcd, containerd, runc, the CNI plugins, the registry, kubectl, podman, openssl.
# The test command and the demo run this before starting scripts/k8s-up in the background, so
# no two apt-get ever wait on each other's lock.
set -euo pipefail
packages=()
command -v go >/dev/null || packages+=(golang-go)
command -v rsync >/dev/null || packages+=(rsync)
[ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || packages+=(golang-github-modern-go-reflect2-dev)
command -v etcd >/dev/null || packages+=(etcd-server)
command -v etcdctl >/dev/null || packages+=(etcd-client)
command -v containerd >/dev/null || packages+=(containerd)
command -v runc >/dev/null || packages+=(runc)
[ -x /usr/lib/cni/bridge ] || packages+=(containernetworking-plugins)
command -v docker-registry >/dev/null || packages+=(docker-registry)
command -v kubectl >/dev/null || packages+=(kubernetes-client)
command -v podman >/dev/null || packages+=(podman)
command -v openssl >/dev/null || packages+=(openssl)
command -v curl >/dev/null || packages+=(curl)
if [ ${#packages[@]} -gt 0 ]; then
  echo "installing ${packages[*]} (Debian) for the Kubernetes test cluster"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}" >/dev/null
fi
