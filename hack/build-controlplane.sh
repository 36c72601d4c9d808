#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver, etcd, kubectl) from Go
# modules, because nothing can be downloaded from release pages here.
#
# Binaries are cached outside the clone, keyed by version, in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/lethe/controlplane-<k8s>-etcd-<etcd>/
# and linked into bin/k8s/, so a fresh clone (CI) reuses them. The first build
# of kube-apiserver takes about 5-10 minutes on 2 cores; later runs are instant.
#
# Prints the directory to use as KUBEBUILDER_ASSETS on its last line.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/hack/tools"
# module_version <go.mod> <module>: the version a go.mod requires.
module_version() { awk -v m="$2" '{ for (i = 1; i < NF; i++) if ($i == m && $(i + 1) ~ /^v[0-9]/) { print $(i + 1); exit } }' "$1"; }
k8s_version=$(module_version "$tools/controlplane/go.mod" k8s.io/kubernetes)
etcd_version=$(module_version "$tools/etcd/go.mod" go.etcd.io/etcd/server/v3)
[ -n "$k8s_version" ] && [ -n "$etcd_version" ] || { echo "cannot read tool versions from hack/tools/*/go.mod" >&2; exit 1; }
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lethe/controlplane-${k8s_version}-etcd-${etcd_version}"
mkdir -p "$cache" "$root/bin"

# build <name> <module dir> <package>: builds once into the cache, with a
# progress line every 30 s so a long first build does not look hung.
build() {
  local name=$1 dir=$2 pkg=$3 ldflags="-s -w ${4:-}"
  if [ -x "$cache/$name" ]; then
    echo "control plane: $name cached ($cache/$name)" >&2
    return
  fi
  echo "control plane: building $name from $pkg (first time only; this can take minutes)..." >&2
  local start=$SECONDS
  ( while sleep 30; do echo "control plane: still building $name ($((SECONDS - start))s)..." >&2; done ) >/dev/null &
  local ticker=$!
  trap 'kill $ticker 2>/dev/null || true' RETURN
  (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="$ldflags" -o "$cache/$name.tmp" "$pkg")
  mv "$cache/$name.tmp" "$cache/$name"
  echo "control plane: built $name in $((SECONDS - start))s" >&2
}

build etcd "$tools/etcd" .
# Stamp the version the way release builds do, so `kubectl version` and
# discovery report it instead of v0.0.0-master.
minor=$(echo "$k8s_version" | cut -d. -f2)
stamp="-X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
stamp="$stamp -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
build kube-apiserver "$tools/controlplane" k8s.io/kubernetes/cmd/kube-apiserver "$stamp"
build kubectl "$tools/controlplane" k8s.io/kubernetes/cmd/kubectl "$stamp"

ln -sfn "$cache" "$root/bin/k8s"
echo "$root/bin/k8s"
