#!/usr/bin/env bash
# The test cluster's keys and certificates, made once with openssl into $1 (kept across
# restarts): a cluster CA; the API server's serving certificate (localhost, 127.0.0.1 and the
# `kubernetes` Service's names); client certificates for the admin, the controller manager,
# the scheduler, the node's kubelet and the API server's calls to the kubelet; the kubelet's
# serving certificate; the service-account signing key. Nothing here leaves the machine.
set -euo pipefail
pki=$1
mkdir -p "$pki"
chmod 0700 "$pki"
cd "$pki"
[ -s ca.crt ] || openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
  -subj "/CN=atlas-test-cluster-ca" 2>/dev/null

# cert NAME SUBJECT [SUBJECT_ALT_NAMES]: a key and a CA-signed certificate, unless present.
cert() {
  local name=$1 subject=$2 san=${3:-}
  [ -s "$name.crt" ] && return 0
  openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subject" 2>/dev/null
  local ext
  ext=$(mktemp)
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$san"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } > "$ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$name.crt" \
    -days 3650 -extfile "$ext" 2>/dev/null
  rm -f "$name.csr" "$ext"
}

cert apiserver "/CN=kube-apiserver" \
  "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1"
cert admin "/O=system:masters/CN=atlas-admin"
cert controller-manager "/CN=system:kube-controller-manager"
cert scheduler "/CN=system:kube-scheduler"
cert kubelet-client "/O=system:nodes/CN=system:node:localhost"
cert kubelet-serving "/CN=localhost" "DNS:localhost,IP:127.0.0.1"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
[ -s sa.key ] || openssl genrsa -out sa.key 2048 2>/dev/null
[ -s sa.pub ] || openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
chmod 0600 ./*.key
