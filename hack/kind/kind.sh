#!/usr/bin/env bash
# Runs kind (built by make into the cache) on any Docker engine.
# Usage: hack/kind/kind.sh <kind arguments>, e.g. create cluster --image ...
#
# On an engine that refuses privileged containers (found out once per run by
# trying one), kind runs with hack/kind/bin/docker first in PATH, which
# turns kind's --privileged into the flags a node needs. On an engine whose
# storage driver is fuse-overlayfs, the nodes' containerd uses its overlayfs
# snapshotter on /var (a volume on the host's file system). Elsewhere kind
# runs as it is.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kind=${KIND:-kind}
probe_image=${KIND_PROBE_IMAGE:?KIND_PROBE_IMAGE names a local image to try a privileged container with (the node image)}

command -v docker >/dev/null || { echo "hack/kind/kind.sh: docker is not installed; kind needs a Docker engine" >&2; exit 1; }
timeout 30 docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
  { echo "hack/kind/kind.sh: the Docker engine does not answer (docker version failed); start dockerd" >&2; exit 1; }
docker image inspect "$probe_image" >/dev/null 2>&1 ||
  { echo "hack/kind/kind.sh: image $probe_image is not on this engine; build it with make e2e-image" >&2; exit 1; }

if ! out=$(docker run --rm --privileged --entrypoint /bin/true "$probe_image" 2>&1); then
  echo "kind: this engine refuses privileged containers ($(head -n1 <<<"$out")); using hack/kind/bin/docker" >&2
  export PATH="$here/bin:$PATH"
fi
if [ "$(docker info --format '{{.Driver}}')" = fuse-overlayfs ] && [ -z "${KIND_EXPERIMENTAL_CONTAINERD_SNAPSHOTTER:-}" ]; then
  export KIND_EXPERIMENTAL_CONTAINERD_SNAPSHOTTER=overlayfs
fi
exec "$kind" "$@"
