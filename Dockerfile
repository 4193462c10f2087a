# The nodecycle image: both commands in one image; the manager Deployment
# and the agent DaemonSet choose theirs with `command`.
#
# The build context is the root filesystem that `make image` prepares in
# out/image/rootfs from binaries built on the host, so the image builds with
# no registry and no network:
#   usr/local/bin/nodecycle-manager, usr/local/bin/nodecycle-agent
#       static Go binaries (CGO_ENABLED=0)
#   bin/busybox and its links bin/sh, usr/bin/nsenter
#       Debian's busybox-static: the agent's default reboot command
#       (nsenter --target 1 --mount -- systemctl reboot) runs through sh
#   etc/passwd, etc/group
#       the non-root user nodecycle (65532) the manager runs as
#
# BASE defaults to scratch. With a registry, another base works too, for
# example: make image IMAGE_BASE=gcr.io/distroless/static-debian12
ARG BASE=scratch
FROM ${BASE}
ARG VERSION=dev
LABEL org.opencontainers.image.title="nodecycle" \
      org.opencontainers.image.description="Node reboots and replacements, one node at a time: manager and agent" \
      org.opencontainers.image.source="https://github.com/nodecycle/nodecycle" \
      org.opencontainers.image.version="${VERSION}"
COPY . /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/nodecycle-manager"]
