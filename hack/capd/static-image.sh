#!/usr/bin/env bash
# Builds an image of one static binary with no registry, FROM scratch with a
# /tmp (mode 1777), as Cluster API's providers' and cert-manager's own
# images are on their distroless base (CAPD saves images to preload into
# /tmp), user 65532:
#
#   hack/capd/static-image.sh BINARY IMAGE
#
# make capi-tools builds Cluster API's providers and cert-manager this way.
# An image whose binary has not changed is not built again.
set -euo pipefail
bin=${1:?static binary}
image=${2:?image name}

command -v docker >/dev/null || { echo "hack/capd/static-image.sh: docker is not installed" >&2; exit 1; }
[ -x "$bin" ] || { echo "hack/capd/static-image.sh: $bin is missing: make capi-tools builds it" >&2; exit 1; }
key=$( { sha256sum "$bin"; cat "$0"; } | sha256sum | cut -c1-16)
if [ "$(docker image inspect --format '{{index .Config.Labels "io.nodecycle.binary-key"}}' "$image" 2>/dev/null)" = "$key" ]; then
  echo "static-image: $image is up to date"
  exit 0
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$bin" "$ctx/manager"
mkdir -m 1777 "$ctx/tmp"
tar -C "$ctx" --owner=0 --group=0 -cf "$ctx/tmp.tar" tmp
printf '%s\n' 'FROM scratch' 'ADD tmp.tar /' 'COPY manager /manager' 'USER 65532:65532' 'ENTRYPOINT ["/manager"]' \
  "LABEL io.nodecycle.binary-key=$key" >"$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build --quiet -t "$image" "$ctx" >/dev/null
echo "static-image: built $image"
