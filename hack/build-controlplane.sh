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
k8s_version=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$tools/controlplane/go.mod")
etcd_version=$(awk '$1=="require" && $2=="go.etcd.io/etcd/server/v3" {print $3}' "$tools/etcd/go.mod")
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lethe/controlplane-${k8s_version}-etcd-${etcd_version}"
mkdir -p "$cache" "$root/bin"

# build <name> <module dir> <package>: builds once into the cache, with a
# progress line every 30 s so a long first build does not look hung.
build() {
  local name=$1 dir=$2 pkg=$3
  if [ -x "$cache/$name" ]; then
    echo "control plane: $name cached ($cache/$name)" >&2
    return
  fi
  echo "control plane: building $name from $pkg (first time only; this can take minutes)..." >&2
  local start=$SECONDS
  ( while sleep 30; do echo "control plane: still building $name ($((SECONDS - start))s)..." >&2; done ) &
  local ticker=$!
  trap 'kill $ticker 2>/dev/null || true' RETURN
  (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$cache/$name.tmp" "$pkg")
  mv "$cache/$name.tmp" "$cache/$name"
  echo "control plane: built $name in $((SECONDS - start))s" >&2
}

build etcd "$tools/etcd" .
build kube-apiserver "$tools/controlplane" k8s.io/kubernetes/cmd/kube-apiserver
build kubectl "$tools/controlplane" k8s.io/kubernetes/cmd/kubectl

ln -sfn "$cache" "$root/bin/k8s"
echo "$root/bin/k8s"
