# One image with both commands: the manager Deployment and the agent
# DaemonSet choose theirs with `command`. The agent's default reboot command
# needs /bin/sh and nsenter (util-linux), hence a small Debian base.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY providers/ providers/
RUN CGO_ENABLED=0 go build -trimpath -ldflags=-s -o /out/nodecycle-agent ./cmd/agent && \
    CGO_ENABLED=0 go build -trimpath -ldflags=-s -o /out/nodecycle-manager ./cmd/manager

FROM debian:bookworm-slim
COPY --from=build /out/nodecycle-agent /out/nodecycle-manager /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/nodecycle-manager"]
