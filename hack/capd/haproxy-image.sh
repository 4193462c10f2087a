#!/usr/bin/env bash
# Builds the load balancer image of the Cluster API Docker provider (CAPD)
# with no registry: Debian's haproxy in a debootstrap rootfs, the minimal
# configuration CAPD's load balancer starts with (it writes its own to
# /usr/local/etc/haproxy/haproxy.cfg and signals SIGHUP), the entrypoint
# and stop signal of the haproxy image CAPD expects.
#
#   hack/capd/haproxy-image.sh IMAGE     # e.g. nodecycle/haproxy:2.6
#
# A DockerCluster names it with spec.loadBalancer.imageRepository
# (nodecycle) and imageTag. Cached: an image with the same key is not built
# again; the rootfs tarball is kept under ~/.cache/nodecycle.
set -euo pipefail
cd "$(dirname "$0")/../.."
image=${1:?image name}
cache=${CACHE:-$HOME/.cache/nodecycle}
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=haproxy,procps

log() { echo "haproxy-image: $*" >&2; }
command -v docker >/dev/null || { echo "hack/capd/haproxy-image.sh: docker is not installed" >&2; exit 1; }
key=$( { echo "$suite $packages"; cat "$0"; } | sha256sum | cut -c1-16)
if [ "$(docker image inspect --format '{{index .Config.Labels "io.nodecycle.haproxy-key"}}' "$image" 2>/dev/null)" = "$key" ]; then
  log "$image is up to date (key $key)"
  exit 0
fi

rootfs_tar=$cache/haproxy-rootfs-$suite-$(echo "$suite $packages" | sha256sum | cut -c1-12).tar
if [ ! -f "$rootfs_tar" ]; then
  command -v debootstrap >/dev/null || { echo "hack/capd/haproxy-image.sh: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
  log "debootstrap $suite with $packages into $rootfs_tar (a minute or two, once)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  debootstrap --variant=minbase --include="$packages" "$suite" "$tmp/rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
    { tail -n 20 "$tmp/debootstrap.log" >&2; echo "hack/capd/haproxy-image.sh: debootstrap failed" >&2; exit 1; }
  rm -rf "$tmp/rootfs/var/cache/apt/archives/"*.deb "$tmp/rootfs/var/lib/apt/lists/"*
  mkdir -p "$tmp/rootfs/usr/local/etc/haproxy"
  cat >"$tmp/rootfs/usr/local/etc/haproxy/haproxy.cfg" <<'CFG'
# Until CAPD writes the cluster's configuration: a valid one, so that
# haproxy runs and can be told to reload.
frontend controlPlane
    bind 0.0.0.0:6443
    mode tcp
    default_backend kube-apiservers

backend kube-apiservers
    mode tcp
CFG
  mkdir -p "$cache"
  tar -C "$tmp/rootfs" --numeric-owner -cf "$rootfs_tar.part" .
  mv "$rootfs_tar.part" "$rootfs_tar"
fi
version=$(tar -xOf "$rootfs_tar" ./var/lib/dpkg/status | awk '/^Package: haproxy$/{p=1} p&&/^Version:/{print $2; p=0}')
base=nodecycle/haproxy-rootfs:$(echo "$suite $packages" | sha256sum | cut -c1-12)
docker image inspect "$base" >/dev/null 2>&1 || docker import "$rootfs_tar" "$base" >/dev/null
log "building $image from $base (haproxy $version)"
# CAPD's configuration says maxconn 100000, for which haproxy wants 200030
# file descriptors; on an engine whose containers' hard limit is lower and
# may not be raised (no CAP_SYS_RESOURCE), every reload fails ("Cannot
# raise FD limit"). CAPD starts the container with its own command
# (haproxy from PATH), so /usr/local/sbin/haproxy, first in PATH, runs
# Debian's haproxy with -n (which takes precedence over maxconn) within
# what the container may open; haproxy's master re-executes the same
# arguments on every reload.
ctx=$(mktemp -d)
cat >"$ctx/haproxy" <<'SH'
#!/bin/sh
hard=$(ulimit -Hn)
n=100000
if [ "$hard" != unlimited ] && [ $(((hard - 100) / 2)) -lt $n ]; then
  n=$(((hard - 100) / 2))
fi
exec /usr/sbin/haproxy -n "$n" "$@"
SH
chmod 0755 "$ctx/haproxy"
printf '%s\n' "FROM $base" \
  'COPY haproxy /usr/local/sbin/haproxy' \
  'STOPSIGNAL SIGUSR1' \
  'ENTRYPOINT ["haproxy", "-sf", "7", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]' \
  "LABEL io.nodecycle.haproxy-key=$key org.opencontainers.image.version=$version" >"$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build --quiet -t "$image" "$ctx" >/dev/null
rm -rf "$ctx"
log "built $image"
