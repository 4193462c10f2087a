#!/usr/bin/env bash
# Builds the nodecycle image with no registry: static binaries built here,
# Debian's busybox-static for the agent's reboot command, a FROM scratch
# Dockerfile (hack/image/Dockerfile). The root Dockerfile builds the same
# image where a Go and a busybox image can be pulled. Usage: hack/image.sh IMAGE VERSION [BASE]
# BUSYBOX=/path/to/a/static/busybox skips the Debian package.
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:?image name}
version=${2:?version}
base=${3:-scratch}
cache=${CACHE:-$HOME/.cache/nodecycle}

command -v docker >/dev/null || { echo "hack/image.sh: docker is not installed; the image is built with a Docker engine" >&2; exit 1; }
timeout 30 docker version --format "{{.Server.Version}}" >/dev/null 2>&1 ||
  { echo "hack/image.sh: the Docker engine does not answer (docker version failed); start dockerd" >&2; exit 1; }

# busybox-static, cached by its Debian version.
busybox=${BUSYBOX:-}
if [ -z "$busybox" ]; then
  command -v apt-get >/dev/null || { echo "hack/image.sh: not a Debian host; set BUSYBOX to a static busybox binary" >&2; exit 1; }
  deb_version=$(apt-cache show --no-all-versions busybox-static 2>/dev/null | awk '/^Version:/ {print $2; exit}')
  if [ -z "$deb_version" ]; then
    apt-get update >/dev/null
    deb_version=$(apt-cache show --no-all-versions busybox-static | awk '/^Version:/ {print $2; exit}')
  fi
  dir=$cache/busybox-static-${deb_version//:/_}
  busybox=$dir/bin/busybox
  if [ ! -x "$busybox" ]; then
    echo "Fetching Debian's busybox-static $deb_version into $dir (once)"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && apt-get download "busybox-static=$deb_version" >/dev/null 2>&1)
    mkdir -p "$dir/bin"
    dpkg-deb -x "$tmp"/busybox-static_*.deb "$tmp/x"
    install -m 0755 "$tmp/x/bin/busybox" "$busybox"
  fi
fi

rootfs=out/image/rootfs
rm -rf "$rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/bin" "$rootfs/usr/bin" "$rootfs/etc" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
ldflags="-s -w -X github.com/nodecycle/nodecycle/internal/version.Version=$version"
for cmd in manager agent; do
  CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "$ldflags" -o "$rootfs/usr/local/bin/nodecycle-$cmd" "./cmd/$cmd"
done
install -m 0755 "$busybox" "$rootfs/bin/busybox"
ln -s busybox "$rootfs/bin/sh"
ln -s ../../bin/busybox "$rootfs/usr/bin/nsenter"
printf 'root:x:0:0:root:/root:/bin/sh\nnodecycle:x:65532:65532:nodecycle:/nonexistent:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnodecycle:x:65532:\n' >"$rootfs/etc/group"

DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0} docker build --quiet -f hack/image/Dockerfile \
  --build-arg "BASE=$base" --build-arg "VERSION=$version" -t "$image" "$rootfs" >/dev/null
size=$(docker image inspect --format '{{.Size}}' "$image")
echo "Built $image ($((size / 1024 / 1024)) MiB, version $version, base $base)"
