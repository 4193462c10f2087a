# The nodecycle image: the manager and the agent in one image; the manager
# Deployment and the agent DaemonSet choose theirs with `command`.
#
#   docker build -t nodecycle .
#
# needs the Go and busybox images below from a registry. Without one,
# `make image` builds the same image from binaries built on the host
# (hack/image.sh, hack/image/Dockerfile).
#
# The final image holds:
#   /usr/local/bin/nodecycle-manager, /usr/local/bin/nodecycle-agent
#       static Go binaries (CGO_ENABLED=0)
#   /bin/busybox and its links /bin/sh, /usr/bin/nsenter
#       a static busybox: the agent's default reboot command
#       (nsenter --target 1 --mount -- systemctl reboot) runs through sh
#   /etc/passwd, /etc/group
#       the non-root user nodecycle (65532) the manager runs as
ARG GO_IMAGE=golang:1.26.8-bookworm
ARG BUSYBOX_IMAGE=busybox:1.37.0-musl
ARG BASE=scratch

FROM ${BUSYBOX_IMAGE} AS busybox

FROM ${GO_IMAGE} AS build
ARG GOPROXY
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api api
COPY cmd cmd
COPY controllers controllers
COPY internal internal
COPY providers providers
ARG VERSION=dev
RUN for cmd in manager agent; do \
      CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/nodecycle/nodecycle/internal/version.Version=${VERSION}" \
        -o /rootfs/usr/local/bin/nodecycle-$cmd ./cmd/$cmd || exit 1; \
    done
COPY --from=busybox /bin/busybox /rootfs/bin/busybox
RUN mkdir -p /rootfs/usr/bin /rootfs/etc /rootfs/tmp && chmod 1777 /rootfs/tmp \
 && ln -s busybox /rootfs/bin/sh && ln -s ../../bin/busybox /rootfs/usr/bin/nsenter \
 && printf 'root:x:0:0:root:/root:/bin/sh\nnodecycle:x:65532:65532:nodecycle:/nonexistent:/sbin/nologin\n' >/rootfs/etc/passwd \
 && printf 'root:x:0:\nnodecycle:x:65532:\n' >/rootfs/etc/group

FROM ${BASE}
ARG VERSION=dev
LABEL org.opencontainers.image.title="nodecycle" \
      org.opencontainers.image.description="Node reboots and replacements, one node at a time: manager and agent" \
      org.opencontainers.image.source="https://github.com/nodecycle/nodecycle" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /rootfs/ /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/nodecycle-manager"]
