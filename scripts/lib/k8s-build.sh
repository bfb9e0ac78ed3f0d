#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler and kubelet from Debian's own
# `kubernetes` source package with Debian's Go, once, into $ATLAS_K8S_CACHE (default
# /var/cache/atlas/k8s). Later calls find the binaries and return at once. Progress goes to
# stdout with the elapsed time, one line per step; the compiler's output goes to build.log.
#
# Why this version: bookworm ships 1.20.2 with its full vendor/ tree. Trixie has 1.32.3+ds, but
# that package builds only kubectl (its vendor/ is removed and the server's dependencies are not
# packaged), and it needs Go >= 1.23. docs/kubernetes.md has the details.
set -euo pipefail

cache=${ATLAS_K8S_CACHE:-/var/cache/atlas/k8s}
version=1.20.2
bin="$cache/v$version/bin"
components=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
started=$(date +%s)
say() { printf '[k8s-build %4ss] %s\n' "$(($(date +%s) - started))" "$*"; }

have_all() { for c in "${components[@]}"; do [ -x "$bin/$c" ] || return 1; done; }
if have_all; then exit 0; fi

mkdir -p "$cache/apt/lists/partial" "$cache/apt/archives/partial" "$bin"
log="$cache/build.log"
: > "$log"

"$(dirname "$0")/k8s-packages.sh"

src="$cache/src"
if [ ! -f "$src/.unpacked" ]; then
  say "fetching the kubernetes source package (bookworm, 34 MB) with a private apt list"
  printf 'deb-src http://deb.debian.org/debian bookworm main\n' > "$cache/apt/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$cache/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache=$cache/apt")
  apt-get "${apt_opts[@]}" update -q >>"$log" 2>&1
  rm -rf "$src" && mkdir -p "$src"
  (cd "$src" && apt-get "${apt_opts[@]}" source -q "kubernetes=1.20.5+really$version-1.1+deb12u1" \
    >>"$log" 2>&1)
  tree=$(find "$src" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -1)
  [ -n "$tree" ] || { say "error: no source tree unpacked; see $log"; exit 3; }
  # The vendored reflect2 1.0.1 crashes the API server under Go >= 1.18 ("fatal error: fault"
  # in reflect.mapiterinit) the first time it encodes a map; Debian's 1.0.2 does not.
  rm -rf "$tree/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$tree/vendor/github.com/modern-go/"
  touch "$src/.unpacked"
fi
tree=$(find "$src" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -1)

# Kubernetes 1.20 builds with Go 1.19 only in GOPATH mode.
gopath="$cache/gopath"
mkdir -p "$gopath/src/k8s.io"
ln -sfn "$tree" "$gopath/src/k8s.io/kubernetes"
export GO111MODULE=off GOPATH="$gopath" CGO_ENABLED=0 GOPROXY=off GOFLAGS=
export GOCACHE="$cache/gocache"
cd "$gopath/src/k8s.io/kubernetes"

if [ ! -f "$src/.generated" ]; then
  say "generating sources (make generated_files, about 2 minutes)"
  make generated_files >>"$log" 2>&1 || { say "error: make generated_files failed; see $log"; exit 3; }
  touch "$src/.generated"
fi

ldflags="-s -w"
for pkg in k8s.io/kubernetes/pkg/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version \
  k8s.io/kubernetes/vendor/k8s.io/component-base/version; do
  ldflags+=" -X $pkg.gitVersion=v$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=20"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
for c in "${components[@]}"; do
  [ -x "$bin/$c" ] && continue
  say "building $c (minutes the first time)"
  go build -ldflags "$ldflags" -o "$bin/$c.part" "./cmd/$c" >>"$log" 2>&1 \
    || { say "error: building $c failed; see $log"; exit 3; }
  mv "$bin/$c.part" "$bin/$c"
done
say "built ${components[*]} v$version into $bin"
