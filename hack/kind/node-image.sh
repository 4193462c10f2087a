#!/usr/bin/env bash
# Builds a kind node image for Kubernetes with no registry.
# Usage: hack/kind/node-image.sh IMAGE BIN_DIR KUBE_VERSION
#
# BIN_DIR holds binaries built here from source (make e2e-image builds them):
# kubelet, kubeadm, kubectl, kube-apiserver, kube-controller-manager,
# kube-scheduler, kube-proxy, etcd, coredns, pause, crictl and kind (whose
# module holds kind's node files). The image is:
#   - a Debian rootfs made by debootstrap (systemd, Debian's containerd, runc
#     and CNI plugins), cached as a tarball in $CACHE;
#   - kubelet, kubeadm, kubectl and crictl (CAPD runs it in a new node);
#   - kind's node files (entrypoint, kubelet and containerd units) from the
#     kind module, and hack/kind/node (nodecycle's entrypoint step, the pod
#     network, the containerd configuration);
#   - every image kubeadm asks for (kubeadm config images list), built here
#     from those binaries on the same Debian rootfs and preloaded into the
#     node's containerd (namespace k8s.io), as kind's own node images are.
# The result carries a label with a key of its inputs; a second run with the
# same inputs takes seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
image=${1:?image name}
bin=$(cd "${2:?binary directory}" && pwd)
kube_version=${3:?Kubernetes version}
cache=${CACHE:-$HOME/.cache/nodecycle}
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=systemd,dbus,containerd,runc,containernetworking-plugins,iproute2,iptables,nftables,mount,procps,util-linux,kmod,ca-certificates,conntrack,ethtool,socat,libseccomp2,e2fsprogs

log() { echo "node-image: $*" >&2; }
# docker build with the classic builder (no BuildKit needed), quiet unless it fails.
quiet_build() {
  local out
  out=$(DOCKER_BUILDKIT=0 docker build --quiet "$@" 2>&1) || { echo "$out" >&2; return 1; }
}
command -v docker >/dev/null || { echo "hack/kind/node-image.sh: docker is not installed; the node image is built with a Docker engine" >&2; exit 1; }
timeout 30 docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
  { echo "hack/kind/node-image.sh: the Docker engine does not answer (docker version failed); start dockerd" >&2; exit 1; }
for b in kubelet kubeadm kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd coredns pause kind crictl; do
  [ -x "$bin/$b" ] || { echo "hack/kind/node-image.sh: $bin/$b is missing (make e2e-image builds it)" >&2; exit 1; }
done
kind_dir=$(cd hack/tools/kind && go list -m -f '{{.Dir}}' sigs.k8s.io/kind)/images/base/files

# The key of every input: a node image with this key is not built again.
key=$( { echo "$suite $packages $kube_version"; cat "$0" hack/kind/node/*; "$bin/kind" version; "$bin/etcd" --version | sed -n 1p; "$bin/coredns" -version | sed -n 1p; "$bin/crictl" --version; } | sha256sum | cut -c1-16)
if [ "$(docker image inspect --format '{{index .Config.Labels "io.nodecycle.kind-node-key"}}' "$image" 2>/dev/null)" = "$key" ]; then
  log "$image is up to date (key $key)"
  exit 0
fi

# 1. The Debian rootfs, once per package list.
rootfs_key=$(echo "$suite $packages" | sha256sum | cut -c1-12)
rootfs_tar=$cache/kind-rootfs-$suite-$rootfs_key.tar
base=nodecycle/kind-rootfs:$rootfs_key
if [ ! -f "$rootfs_tar" ]; then
  command -v debootstrap >/dev/null || { echo "hack/kind/node-image.sh: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
  log "debootstrap $suite into $rootfs_tar (a few minutes, once)"
  tmp=$(mktemp -d)
  debootstrap --variant=minbase --include="$packages" "$suite" "$tmp/rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
    { tail -n 20 "$tmp/debootstrap.log" >&2; echo "hack/kind/node-image.sh: debootstrap failed" >&2; exit 1; }
  rm -rf "$tmp/rootfs/var/cache/apt/archives/"*.deb "$tmp/rootfs/var/lib/apt/lists/"*
  mkdir -p "$cache"
  tar -C "$tmp/rootfs" --numeric-owner -cf "$rootfs_tar.part" .
  mv "$rootfs_tar.part" "$rootfs_tar"
  rm -rf "$tmp"
fi
if ! docker image inspect "$base" >/dev/null 2>&1; then
  log "importing $rootfs_tar as $base"
  docker import "$rootfs_tar" "$base" >/dev/null
fi

work=$(mktemp -d)
build_container=""
cleanup() {
  [ -z "$build_container" ] || docker rm -f "$build_container" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# 2. The images kubeadm asks for, each a binary on the Debian rootfs.
images=()
while read -r ref; do
  name=${ref%:*}
  case "${name##*/}" in
    kube-apiserver|kube-controller-manager|kube-scheduler|kube-proxy|etcd)
      b=${name##*/}; entry="[\"/usr/local/bin/$b\"]" ;;
    coredns) b=coredns; entry='["/usr/local/bin/coredns"]' ;;
    pause) b=pause; entry='["/usr/local/bin/pause"]' ;;
    *) echo "hack/kind/node-image.sh: kubeadm asks for $ref, which this script does not build" >&2; exit 1 ;;
  esac
  mkdir -p "$work/$b"
  cp "$bin/$b" "$work/$b/$b"
  printf 'FROM %s\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nCOPY %s /usr/local/bin/%s\nENTRYPOINT %s\n' \
    "$base" "$b" "$b" "$entry" >"$work/$b/Dockerfile"
  quiet_build -t "$ref" "$work/$b"
  images+=("$ref")
  log "built $ref"
done < <("$bin/kubeadm" config images list --kubernetes-version "$kube_version" 2>/dev/null)
docker save "${images[@]}" -o "$work/images.tar"

# 3. The node: Debian rootfs, kind's node files, nodecycle's, the binaries.
ctx=$work/node
mkdir -p "$ctx/kind/bin" "$ctx/kind/manifests" "$ctx/usr/local/bin" "$ctx/usr/bin" "$ctx/etc/systemd/system/kubelet.service.d" "$ctx/etc/containerd" "$ctx/etc/default" "$ctx/etc/sysctl.d"
cp "$kind_dir/usr/local/bin/entrypoint" "$ctx/usr/local/bin/entrypoint"
cp "$kind_dir/kind/bin/"*.sh "$ctx/kind/bin/"
cp "$kind_dir/etc/crictl.yaml" "$ctx/etc/"
cp "$kind_dir/etc/default/kubelet" "$ctx/etc/default/"
cp "$kind_dir/etc/sysctl.d/"* "$ctx/etc/sysctl.d/"
cp "$kind_dir/etc/systemd/system/"{containerd.service,kubelet.service,kubelet.slice,undo-mount-hacks.service} "$ctx/etc/systemd/system/"
cp "$kind_dir/etc/systemd/system/kubelet.service.d/"* "$ctx/etc/systemd/system/kubelet.service.d/"
cp hack/kind/node/nodecycle-entrypoint "$ctx/usr/local/bin/"
cp hack/kind/node/node-network.sh "$ctx/kind/bin/"
cp hack/kind/node/nodecycle-node-network.service "$ctx/etc/systemd/system/"
cp hack/kind/node/containerd.toml "$ctx/etc/containerd/config.toml"
cp hack/kind/node/default-cni.yaml "$ctx/kind/manifests/default-cni.yaml"
echo "$kube_version" >"$ctx/kind/version"
for b in kubelet kubeadm kubectl; do cp "$bin/$b" "$ctx/usr/bin/$b"; done
cp "$bin/crictl" "$ctx/usr/local/bin/crictl"
chmod -R a+rX "$ctx"
cat >"$work/Dockerfile" <<EOF
FROM $base
COPY node/ /
RUN chmod 0755 /usr/local/bin/* /kind/bin/* /usr/bin/kubelet /usr/bin/kubeadm /usr/bin/kubectl \\
 && ln -sf /usr/bin/containerd /usr/local/bin/containerd \\
 && mkdir -p /opt/cni && ln -sfn /usr/lib/cni /opt/cni/bin \\
 && find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete \\
 && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \\
    /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \\
    /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \\
 && echo "ReadKMsg=no" >>/etc/systemd/journald.conf \\
 && ln -sf /usr/lib/systemd/systemd /sbin/init \\
 && systemctl enable kubelet.service containerd.service undo-mount-hacks.service nodecycle-node-network.service \\
 && systemctl mask systemd-binfmt.service \\
 && mkdir -p /etc/kubernetes/manifests \\
 && echo nodecycle-kind-node >/etc/hostname
ENV container=docker
STOPSIGNAL SIGRTMIN+3
EOF
quiet_build -t "$image-stage" "$work"
log "node filesystem built; preloading ${#images[@]} images"

# 4. Preload the images into the node's containerd, then commit.
build_container=$(docker run -d --tmpfs /run --tmpfs /tmp --entrypoint /usr/bin/containerd "$image-stage")
for _ in $(seq 1 50); do
  docker exec "$build_container" ctr version >/dev/null 2>&1 && break
  sleep 0.2
done
docker exec -i "$build_container" ctr -n k8s.io images import --no-unpack --all-platforms - <"$work/images.tar" >/dev/null
docker exec "$build_container" ctr -n k8s.io images ls -q | sort >"$work/loaded"
for ref in "${images[@]}"; do
  grep -qx "$ref" "$work/loaded" || { echo "hack/kind/node-image.sh: $ref did not load into the node's containerd" >&2; exit 1; }
done
docker stop -t 10 "$build_container" >/dev/null
old_id=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
docker commit \
  --change 'ENTRYPOINT ["/usr/local/bin/nodecycle-entrypoint", "/usr/local/bin/entrypoint", "/sbin/init"]' \
  --change 'CMD []' \
  --change "LABEL io.nodecycle.kind-node-key=$key io.nodecycle.kubernetes-version=$kube_version" \
  "$build_container" "$image" >/dev/null
docker rm -f "$build_container" >/dev/null && build_container=""
# The image this one replaces, if any, is not kept.
[ -z "$old_id" ] || [ "$old_id" = "$(docker image inspect --format '{{.Id}}' "$image")" ] || docker rmi "$old_id" >/dev/null 2>&1 || true
docker rmi "$image-stage" "${images[@]}" >/dev/null 2>&1 || true
size=$(docker image inspect --format '{{.Size}}' "$image")
log "built $image (Kubernetes $kube_version, $((size / 1024 / 1024)) MiB, key $key)"
