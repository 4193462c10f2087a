# nodecycle build, test and benchmark entry points.
# Tools (kube-apiserver, etcd, kubectl, controller-gen) are built from the Go
# module proxy once and cached under $(CACHE), keyed by version.

CACHE ?= $(HOME)/.cache/nodecycle
KUBE_VERSION := v1.37.2
# The cooperative-drain tests' control plane (kube-apiserver and
# kube-controller-manager): the first release whose controller manager turns
# EvictionRequests into Evictions. Built with the Go its go.mod names.
KUBE_NEXT_VERSION := v1.38.0-beta.0
ETCD_VERSION := v3.6.16
KWOK_VERSION := v0.8.0
CONTROLLER_GEN_VERSION := v0.23.0
GOLANGCI_LINT_VERSION := v2.15.0
HELM_VERSION := v3.22.0
# The kind node image (make e2e-image): kind, and what kubeadm v1.37.2 runs
# besides the Kubernetes binaries (kubeadm config images list).
KIND_VERSION := v0.33.0
NODE_ETCD_VERSION := v3.7.0
COREDNS_VERSION := v1.14.6
CRICTL_VERSION := v1.37.0
PAUSE_VERSION := 3.10.2
# Cluster API's core manager, run as a process by the in-place update tests
# (its RuntimeSDK client is internal to Cluster API): the go.mod version.
CAPI_VERSION := $(shell go list -m -f '{{.Version}}' sigs.k8s.io/cluster-api 2>/dev/null)

# "-versioned": built with the version stamped in (the API server reports
# it at /version, which clients such as clusterctl check).
KUBE_BUILD := $(KUBE_VERSION)-versioned
KUBE_DIR := $(CACHE)/kube-$(KUBE_BUILD)
ETCD_DIR := $(CACHE)/etcd-$(ETCD_VERSION)
KWOK := $(CACHE)/kwok-$(KWOK_VERSION)/kwok
CONTROLLER_GEN := $(CACHE)/controller-gen-$(CONTROLLER_GEN_VERSION)/controller-gen
GOLANGCI_LINT := $(CACHE)/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint
HELM := $(CACHE)/helm-$(HELM_VERSION)/helm
KIND := $(CACHE)/kind-$(KIND_VERSION)/kind
NODE_ETCD := $(CACHE)/etcd-$(NODE_ETCD_VERSION)/etcd
COREDNS := $(CACHE)/coredns-$(COREDNS_VERSION)/coredns
CRICTL := $(CACHE)/crictl-$(CRICTL_VERSION)/crictl
PAUSE := $(CACHE)/pause-$(PAUSE_VERSION)/pause
# Cluster API's providers for a management cluster of real nodes (core,
# kubeadm bootstrap and control plane, CAPD: the go.mod version, built
# static from hack/tools/capi) and CAPD's load balancer image
# (hack/capd/haproxy-image.sh).
CAPI_DIR := $(CACHE)/cluster-api-$(CAPI_VERSION)
CAPI_MANAGER := $(CAPI_DIR)/static/core
CAPI_PROVIDERS := $(CAPI_MANAGER) $(CAPI_DIR)/static/kubeadm-bootstrap $(CAPI_DIR)/static/kubeadm-control-plane $(CAPI_DIR)/static/capd
CAPD_HAPROXY_IMAGE ?= nodecycle/haproxy:2.6
CLUSTERCTL := $(CAPI_DIR)/clusterctl
# cert-manager's controllers and CA injector (hack/tools/certmanager).
CERT_MANAGER_VERSION := v1.21.2
CERT_MANAGER := $(CACHE)/cert-manager-$(CERT_MANAGER_VERSION)/cert-manager
# The node image's binaries, as links: kind, kubeadm's images, the node's own.
NODE_BIN := $(CACHE)/kind-node-bin-$(KUBE_BUILD)
NODE_KUBE_TOOLS := kubelet kubeadm kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy
E2E_NODE_IMAGE ?= nodecycle/kind-node:$(KUBE_VERSION)
ASSETS := $(CACHE)/assets-kube-$(KUBE_BUILD)-etcd-$(ETCD_VERSION)
KUBE_NEXT_DIR := $(CACHE)/kube-$(KUBE_NEXT_VERSION)-versioned
NEXT_ASSETS := $(CACHE)/assets-kube-$(KUBE_NEXT_VERSION)-versioned-etcd-$(ETCD_VERSION)

export KUBEBUILDER_ASSETS := $(ASSETS)

# The image `make image` builds: VERSION goes into the binaries and the
# image's labels; IMAGE_BASE is scratch unless a registry offers another.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE ?= ghcr.io/nodecycle/nodecycle:$(VERSION)
IMAGE_BASE ?= scratch

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec

.PHONY: capi capi-tools e2e-capi bench-capi docs bench-check all build image release e2e e2e-image e2e-api e2e-dockerfile kind kind-delete bench-kind test unit lint mutate mutate-ci ci-tools fuzz bench bench-fleet bench-scale sandbox generate manifests tools verify-generated clean-tools

all: build

build: generate
	go build -o bin/nodecycle-agent ./cmd/agent
	go build -o bin/nodecycle-manager ./cmd/manager

# Image: the manager and agent image from the Dockerfile, built with no
# registry (static binaries and Debian's busybox-static on FROM scratch).
image:
	hack/image.sh $(IMAGE) $(VERSION) $(IMAGE_BASE)

# Release: the clusterctl addon provider "nodecycle": out/addon-components.yaml
# (config/release, with ${VAR:=default} variables) and out/metadata.yaml.
# RELEASE_VERSION is the release's semantic version.
RELEASE_VERSION ?= v0.1.0
release: tools generate
	$(ASSETS)/kubectl kustomize config/release | go run ./hack/release $(RELEASE_VERSION) out

# Sandbox: a local control plane with kwok nodes, the real manager and
# agents, and a demo reboot. Extra flags: make sandbox ARGS="--reboot-all".
sandbox: tools generate
	go run ./cmd/sandbox $(ARGS)

# Test: unit tests and envtest suites on a real kube-apiserver and etcd.
test: tools generate
	go vet ./...
	go test -count=1 -timeout 20m ./...

# E2E: nodecycle installed with its Helm chart in a kind cluster of real
# kubelets (1 control plane, 2 workers) from the node image of e2e-image,
# rebooting real nodes; then the image tests (e2e-api).
e2e: e2e-image tools generate
	KIND_NODE_IMAGE=$(E2E_NODE_IMAGE) KIND=$(KIND) go test -count=1 -timeout 40m -tags e2e -v ./test/kind/ 2>&1 | grep --line-buffered -vE "^=== (RUN|PAUSE|CONT)"
	KIND_NODE_IMAGE=$(E2E_NODE_IMAGE) go test -count=1 -timeout 5m -tags e2e ./test/framework/dockerproxy/
	$(MAKE) e2e-api

# E2E of Cluster API mode as users run it: a kind management cluster,
# clusterctl init with Cluster API's providers, cert-manager and nodecycle
# (an addon provider) from images built here, CAPD workload clusters of real
# kubelets (test/capi).
e2e-capi: e2e-image capi-tools tools generate
	KIND_NODE_IMAGE=$(E2E_NODE_IMAGE) KIND=$(KIND) CLUSTERCTL=$(CLUSTERCTL) go test -count=1 -timeout 40m -tags e2e -v ./test/capi/ 2>&1 | grep --line-buffered -vE "^=== (RUN|PAUSE|CONT)"

# Bench-capi: the timelines of e2e-capi's scenarios on real Machines (each
# step from the watches of both clusters, nodecycle's own share noted),
# kept in bin/bench-capi.txt.
bench-capi: e2e-image capi-tools tools generate
	mkdir -p bin
	KIND_NODE_IMAGE=$(E2E_NODE_IMAGE) KIND=$(KIND) CLUSTERCTL=$(CLUSTERCTL) go test -count=1 -timeout 40m -tags e2e -v ./test/capi/ > bin/bench-capi.log 2>&1 || { tail -50 bin/bench-capi.log; exit 1; }
	sed -n '/^Timelines/,$$p' bin/bench-capi.log | grep -v "^\(PASS\|ok \)" > bin/bench-capi.txt
	cat bin/bench-capi.txt

# Capi: Cluster API mode to try: the management cluster of e2e-capi with a
# workload cluster of real kubelets and the sample workload, in the
# foreground until Ctrl-C, which deletes them.
capi: e2e-image capi-tools tools generate
	KIND_NODE_IMAGE=$(E2E_NODE_IMAGE) KIND=$(KIND) CLUSTERCTL=$(CLUSTERCTL) go run ./test/capi/cmd/capi-up

# E2E on an API server only: the image that `make image` builds, its
# metadata, and its manager and agent taking a simulated node through a
# reboot against a real API server.
e2e-api: tools generate
	go test -count=1 -timeout 30m -tags e2e ./test/image/

# The root Dockerfile (docker build .) built with local stand-ins for its Go
# and busybox images and compared with make image's (about 7 minutes: it
# compiles everything in a container without the host's build cache).
e2e-dockerfile: tools generate
	go test -count=1 -timeout 30m -tags e2e,dockerfile -run TestDockerfile -v ./test/image/

# The kind node image for Kubernetes $(KUBE_VERSION), built with no registry
# (hack/kind/node-image.sh); a second run with the same inputs takes seconds.
e2e-image: $(addprefix $(NODE_BIN)/,$(NODE_KUBE_TOOLS) etcd coredns pause kind crictl)
	hack/kind/node-image.sh $(E2E_NODE_IMAGE) $(NODE_BIN) $(KUBE_VERSION)

# Kind: a kind cluster of real kubelets named nodecycle with nodecycle
# installed by its Helm chart, left running (make kind-delete removes it).
kind: e2e-image tools generate
	KIND_NODE_IMAGE=$(E2E_NODE_IMAGE) KIND=$(KIND) go run ./test/kind/cmd/kind-up

kind-delete: $(KIND)
	KIND_PROBE_IMAGE=$(E2E_NODE_IMAGE) KIND=$(KIND) hack/kind/kind.sh delete cluster --name nodecycle

# Unit: the tests that need no API server (the NodeCycle state machine on
# a fake client and clock, flags, settings, drain and gate rules, the
# providers, the generators), in about 40 seconds; the notification, gate
# and provider tests talk to local peers from Debian (aiosmtpd,
# Alertmanager, ipmi_sim, libvirtd).
unit:
	go test -count=1 ./api/... ./controllers/... ./internal/... ./power/... ./hack/...

# Mutate: applies each safety-rule mutation of hack/mutate/mutations.txt
# to a copy of the repository and fails when one survives its tests.
# MUTATE_ONLY=text runs the rules containing text.
mutate: tools generate
	go run ./hack/mutate -only "$(MUTATE_ONLY)"

# The mutations marked "ci: yes", every rule whose tests are outside test/
# (hack/mutate's test keeps the mark right; about 9 minutes): .ci/run runs
# them on every change.
mutate-ci: tools generate
	go run ./hack/mutate -ci $(MUTATE_FLAGS)

# Fuzz: every fuzz target for FUZZTIME each (default 60s); make test runs
# their seed corpora (testdata/fuzz) only. A failure leaves its input in
# the package's testdata/fuzz: commit it with the fix.
FUZZTIME ?= 60s
fuzz:
	@set -e; for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for target in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "==> $$target ($$pkg) for $(FUZZTIME)"; \
	    go test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# Lint: golangci-lint with .golangci.yml, built once into $(CACHE).
lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	@echo "Building golangci-lint $(GOLANGCI_LINT_VERSION) into $(dir $@) (about 3 minutes, once)"
	GOBIN=$(dir $@) go install -ldflags "$(TOOL_LDFLAGS)" github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

# Benchmarks: prints a table and writes it to bin/bench.txt.
# BENCHTIME=5x runs each benchmark 5 times and reports the mean (the
# figures docs/benchmarks.md gives as "mean of 5").
BENCHTIME ?= 1x
bench: tools generate
	mkdir -p bin
	go test -count=1 -timeout 20m -run "^$$" -bench . -skip Fleet -benchtime $(BENCHTIME) ./test/bench/ ./test/cooperative/ | grep -E "^(Benchmark|goos|cpu|PASS|FAIL|ok)" | tee bin/bench.txt
	go test -count=1 -timeout 20m -run "^$$" -bench . -benchtime 20x ./power/... | grep -E "^(Benchmark|pkg|FAIL|ok)" | tee -a bin/bench.txt

# Bench check: the fast benchmarks against their targets (sentinel ->
# cordon, overhead per node, writes per cycle, detection), PASS or MISS per
# line; about a minute. It reports and never fails: CI runs it for its log.
bench-check: tools generate
	mkdir -p bin
	go test -count=1 -timeout 10m -run "^$$" -bench 'SentinelToCordon|ManagerDeadTime|WritesPerCycle|DetectionLatency' -benchtime 1x ./test/bench/ >bin/bench-check.txt 2>&1 || echo "the benchmarks failed" >>bin/bench-check.txt
	grep -E "^(Benchmark|FAIL|ok|the benchmarks)" bin/bench-check.txt || true
	go run ./hack/benchcheck <bin/bench-check.txt

# Fleet benchmark: the manager's memory and detection latency with
# FLEET_CLUSTERS (default 1000) workload clusters of FLEET_NODES (default 50);
# the last row again in a memory cgroup of FLEET_MEMORY_LIMIT (default 1Gi).
bench-fleet: tools generate
	mkdir -p bin
	FLEET_MEMORY_LIMIT=$${FLEET_MEMORY_LIMIT-1Gi} go test -count=1 -timeout 90m -run "^$$" -bench Fleet -benchtime 1x ./test/bench/ | grep -E "^(Benchmark|goos|cpu|PASS|FAIL|ok)|fleet_test.go" | tee bin/bench-fleet.txt

# Benchmark on real kubelets: the seed scenario on a kind cluster
# (KIND_BENCH_TIMES iterations, default 3), split into drain, the node's own
# reboot and nodecycle's overhead, with the manager's and agent's memory and CPU.
bench-kind: e2e-image tools generate
	mkdir -p bin
	KIND_NODE_IMAGE=$(E2E_NODE_IMAGE) KIND=$(KIND) go test -count=1 -timeout 40m -tags e2e -run "^$$" -bench KindReboot -benchtime $${KIND_BENCH_TIMES-3}x ./test/kind/ | grep -E "^(Benchmark|goos|cpu|PASS|FAIL|ok)|: total|bench_test.go|^--- FAIL" | tee bin/bench-kind.txt

# Scale benchmark on kwok nodes: SCALE_NODES (default 1000), SCALE_REBOOT (default 20).
bench-scale: tools generate
	mkdir -p bin
	go test -count=1 -timeout 60m -run "^$$" -bench Scale -benchtime 1x -v ./test/framework/sandbox/ | grep -E "^(Benchmark|goos|cpu|PASS|FAIL|ok)|scale_test.go" | tee bin/bench-scale.txt

generate: $(CONTROLLER_GEN) $(ASSETS)/kubectl
	$(CONTROLLER_GEN) object paths=./api/... paths=./internal/apis/...
	$(CONTROLLER_GEN) crd rbac:roleName=nodecycle-manager paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	$(ASSETS)/kubectl kustomize config/workload > controllers/agentinstall/nodecycle-agent.yaml
	$(ASSETS)/kubectl kustomize config/workload-least-privilege > controllers/agentinstall/nodecycle-agent-least-privilege.yaml
	$(ASSETS)/kubectl kustomize config/default | go run ./hack/chart charts/nodecycle
	go run ./hack/docs > docs/reference.md

# Docs: docs/reference.md (flags, names, reasons, metrics) from the code.
docs:
	go run ./hack/docs > docs/reference.md

# Tools are linked without symbol table and DWARF (-s -w): their links take
# a fraction of the time and memory, and nobody debugs them here.
TOOL_LDFLAGS := -s -w
KUBE_MINOR := $(word 2,$(subst ., ,$(KUBE_VERSION)))
KUBE_LDFLAGS := $(TOOL_LDFLAGS) $(foreach pkg,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	-X $(pkg).gitVersion=$(KUBE_VERSION) -X $(pkg).gitMajor=1 -X $(pkg).gitMinor=$(KUBE_MINOR) -X $(pkg).gitTreeState=clean)
KUBE_TOOLS := kube-apiserver kube-controller-manager kube-scheduler kubectl
# The built binaries are kept, never treated as intermediate files.
.PRECIOUS: $(addprefix $(KUBE_DIR)/,$(KUBE_TOOLS) $(NODE_KUBE_TOOLS)) $(KUBE_NEXT_DIR)/kube-apiserver $(KUBE_NEXT_DIR)/kube-controller-manager $(ETCD_DIR)/etcd $(KWOK) $(HELM) $(CAPI_MANAGER) $(KIND) $(NODE_ETCD) $(COREDNS) $(PAUSE) $(CRICTL)

# Everything .ci/run needs built, for one parallel make (make -j3 ci-tools):
# go builds leave a core idle while they link or download.
ci-tools: tools e2e-image $(GOLANGCI_LINT) $(CONTROLLER_GEN)

tools: $(ASSETS)/kube-apiserver $(ASSETS)/etcd $(ASSETS)/kubectl $(ASSETS)/kube-controller-manager $(ASSETS)/kube-scheduler $(ASSETS)/kwok $(ASSETS)/helm $(ASSETS)/cluster-api-manager \
	$(NEXT_ASSETS)/kube-apiserver $(NEXT_ASSETS)/kube-controller-manager $(NEXT_ASSETS)/etcd

# A Kubernetes version's binaries are built by one go build per group: one
# process compiles the packages they share once and links them in parallel
# (separate go builds run side by side would each compile them). The node
# image's own binaries come after the tests' ones, from their build cache.
KUBE_NODE_ONLY := $(filter-out $(KUBE_TOOLS),$(NODE_KUBE_TOOLS))

$(addprefix $(KUBE_DIR)/,$(KUBE_TOOLS)) &:
	@echo "Building $(KUBE_TOOLS) $(KUBE_VERSION) into $(KUBE_DIR) (about 15 minutes, once)"
	mkdir -p $(KUBE_DIR)
	cd hack/tools/kube && go build -ldflags "$(KUBE_LDFLAGS)" -o $(KUBE_DIR)/ $(addprefix k8s.io/kubernetes/cmd/,$(KUBE_TOOLS))

$(addprefix $(KUBE_DIR)/,$(KUBE_NODE_ONLY)) &: | $(addprefix $(KUBE_DIR)/,$(KUBE_TOOLS))
	@echo "Building $(KUBE_NODE_ONLY) $(KUBE_VERSION) into $(KUBE_DIR) (a few minutes, once)"
	cd hack/tools/kube && go build -ldflags "$(KUBE_LDFLAGS)" -o $(KUBE_DIR)/ $(addprefix k8s.io/kubernetes/cmd/,$(KUBE_NODE_ONLY))

KUBE_NEXT_MINOR := $(word 2,$(subst ., ,$(KUBE_NEXT_VERSION)))
KUBE_NEXT_LDFLAGS := $(TOOL_LDFLAGS) $(foreach pkg,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	-X $(pkg).gitVersion=$(KUBE_NEXT_VERSION) -X $(pkg).gitMajor=1 -X $(pkg).gitMinor=$(KUBE_NEXT_MINOR) -X $(pkg).gitTreeState=clean)

KUBE_NEXT_TOOLS := kube-apiserver kube-controller-manager
$(addprefix $(KUBE_NEXT_DIR)/,$(KUBE_NEXT_TOOLS)) &:
	@echo "Building $(KUBE_NEXT_TOOLS) $(KUBE_NEXT_VERSION) into $(KUBE_NEXT_DIR) (about 12 minutes, once)"
	mkdir -p $(KUBE_NEXT_DIR)
	cd hack/tools/kube-next && GOTOOLCHAIN=go1.27.3 go build -ldflags "$(KUBE_NEXT_LDFLAGS)" -o $(KUBE_NEXT_DIR)/ $(addprefix k8s.io/kubernetes/cmd/,$(KUBE_NEXT_TOOLS))

$(NEXT_ASSETS)/etcd: $(ETCD_DIR)/etcd
	mkdir -p $(NEXT_ASSETS) && ln -sf $< $@

$(NEXT_ASSETS)/%: $(KUBE_NEXT_DIR)/%
	mkdir -p $(NEXT_ASSETS) && ln -sf $< $@

$(ETCD_DIR)/etcd:
	@echo "Building etcd $(ETCD_VERSION) into $(ETCD_DIR) (about 1 minute, once)"
	cd hack/tools/etcd && go build -ldflags "$(TOOL_LDFLAGS)" -o $@ go.etcd.io/etcd/server/v3

$(KWOK):
	@echo "Building kwok $(KWOK_VERSION) into $(dir $(KWOK)) (about 3 minutes, once)"
	cd hack/tools/kwok && go build -ldflags "$(TOOL_LDFLAGS)" -o $@ sigs.k8s.io/kwok/cmd/kwok

$(HELM):
	@echo "Building helm $(HELM_VERSION) into $(dir $@) (about 3 minutes, once)"
	GOBIN=$(dir $@) go install -ldflags "$(TOOL_LDFLAGS)" helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

$(ASSETS)/helm: $(HELM)
	mkdir -p $(ASSETS) && ln -sf $< $@

# The providers of a real management cluster and cert-manager, built
# static, three at a time with make -j3, and their images (FROM scratch),
# clusterctl, and CAPD's load balancer image.
capi-tools: $(CAPI_PROVIDERS) $(CLUSTERCTL) $(CERT_MANAGER)
	hack/capd/haproxy-image.sh $(CAPD_HAPROXY_IMAGE)
	hack/capd/static-image.sh $(CAPI_DIR)/static/core nodecycle/capi-core:$(CAPI_VERSION)
	hack/capd/static-image.sh $(CAPI_DIR)/static/kubeadm-bootstrap nodecycle/capi-kubeadm-bootstrap:$(CAPI_VERSION)
	hack/capd/static-image.sh $(CAPI_DIR)/static/kubeadm-control-plane nodecycle/capi-kubeadm-control-plane:$(CAPI_VERSION)
	hack/capd/static-image.sh $(CAPI_DIR)/static/capd nodecycle/capd:$(CAPI_VERSION)
	hack/capd/static-image.sh $(CERT_MANAGER) nodecycle/cert-manager:$(CERT_MANAGER_VERSION)

$(CLUSTERCTL):
	cd hack/tools/capi && go build -ldflags "$(TOOL_LDFLAGS)" -o $@ sigs.k8s.io/cluster-api/cmd/clusterctl
$(CERT_MANAGER):
	cd hack/tools/certmanager && CGO_ENABLED=0 go build -ldflags "$(TOOL_LDFLAGS)" -o $@ .

# The core manager is also the in-process tests' (test/framework/localkube).
$(CAPI_MANAGER):
	@echo "Building Cluster API's core manager $(CAPI_VERSION) into $(dir $@) (about 5 minutes, once)"
	cd hack/tools/capi && CGO_ENABLED=0 go build -ldflags "$(TOOL_LDFLAGS)" -o $@ sigs.k8s.io/cluster-api/core
$(CAPI_DIR)/static/kubeadm-bootstrap:
	cd hack/tools/capi && CGO_ENABLED=0 go build -ldflags "$(TOOL_LDFLAGS)" -o $@ sigs.k8s.io/cluster-api/bootstrap/kubeadm
$(CAPI_DIR)/static/kubeadm-control-plane:
	cd hack/tools/capi && CGO_ENABLED=0 go build -ldflags "$(TOOL_LDFLAGS)" -o $@ sigs.k8s.io/cluster-api/controlplane/kubeadm
$(CAPI_DIR)/static/capd:
	cd hack/tools/capi && CGO_ENABLED=0 go build -ldflags "$(TOOL_LDFLAGS)" -o $@ sigs.k8s.io/cluster-api/test/infrastructure/docker

$(ASSETS)/cluster-api-manager: $(CAPI_MANAGER)
	mkdir -p $(ASSETS) && ln -sf $< $@

$(ASSETS)/kwok: $(KWOK)
	mkdir -p $(ASSETS) && ln -sf $< $@

$(ASSETS)/%: $(KUBE_DIR)/%
	mkdir -p $(ASSETS) && ln -sf $< $@

$(ASSETS)/etcd: $(ETCD_DIR)/etcd
	mkdir -p $(ASSETS) && ln -sf $< $@

$(KIND):
	@echo "Building kind $(KIND_VERSION) into $(dir $@) (about 1 minute, once)"
	cd hack/tools/kind && go build -ldflags "$(TOOL_LDFLAGS)" -o $@ sigs.k8s.io/kind

$(NODE_ETCD):
	@echo "Building etcd $(NODE_ETCD_VERSION) for the kind node image into $(dir $@) (about 1 minute, once)"
	cd hack/tools/etcd-node && go build -ldflags "$(TOOL_LDFLAGS)" -o $@ go.etcd.io/etcd/server/v3

$(COREDNS):
	@echo "Building CoreDNS $(COREDNS_VERSION) into $(dir $@) (a few minutes, once)"
	cd hack/tools/coredns && go build -ldflags "$(TOOL_LDFLAGS)" -o $@ github.com/coredns/coredns

$(CRICTL):
	@echo "Building crictl $(CRICTL_VERSION) into $(dir $@) (about 1 minute, once)"
	cd hack/tools/crictl && go build -ldflags "$(TOOL_LDFLAGS) -X sigs.k8s.io/cri-tools/pkg/version.Version=$(CRICTL_VERSION)" -o $@ sigs.k8s.io/cri-tools/cmd/crictl

# The pause container of kubeadm's images: Kubernetes' own pause.c, static.
$(PAUSE):
	mkdir -p $(dir $@)
	gcc -Os -Wall -Werror -static -DVERSION=v$(PAUSE_VERSION) -o $@ \
		$$(cd hack/tools/kube && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c

$(NODE_BIN)/kind: $(KIND)
	mkdir -p $(NODE_BIN) && ln -sf $< $@
$(NODE_BIN)/etcd: $(NODE_ETCD)
	mkdir -p $(NODE_BIN) && ln -sf $< $@
$(NODE_BIN)/coredns: $(COREDNS)
	mkdir -p $(NODE_BIN) && ln -sf $< $@
$(NODE_BIN)/crictl: $(CRICTL)
	mkdir -p $(NODE_BIN) && ln -sf $< $@
$(NODE_BIN)/pause: $(PAUSE)
	mkdir -p $(NODE_BIN) && ln -sf $< $@
$(NODE_BIN)/%: $(KUBE_DIR)/%
	mkdir -p $(NODE_BIN) && ln -sf $< $@

$(CONTROLLER_GEN):
	GOBIN=$(dir $@) go install -ldflags "$(TOOL_LDFLAGS)" sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)

# Fails when generated files are not committed.
# Fails when a generated file differs from what make generate writes (run
# before anything regenerates: .ci/run does it first).
GENERATED := api internal/apis config charts controllers/agentinstall docs/reference.md
verify-generated: generate
	@changed=$$(git status --porcelain -- $(GENERATED)); \
	if [ -n "$$changed" ]; then \
		echo "generated files are stale (make generate, then commit):"; echo "$$changed"; \
		git --no-pager diff --stat -- $(GENERATED); exit 1; \
	fi

clean-tools:
	rm -rf $(CACHE)
