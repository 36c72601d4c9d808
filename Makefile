# Lethe — a Kubernetes operator that enforces data-retention promises.
# `make help` lists the targets.

IMG ?= ghcr.io/lethe-dev/lethe:dev
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
# Prometheus v3.x is published as Go module version v0.3xx.y.
PROMTOOL_VERSION ?= v0.316.0

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

ROOT := $(shell pwd)
BIN := $(ROOT)/bin
# Built tools live in a cache outside the clone, keyed by version, and are
# linked into bin/, so a fresh clone (CI) reuses them.
TOOLS_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/lethe
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUBECTL := $(BIN)/k8s/kubectl
export KUBEBUILDER_ASSETS := $(BIN)/k8s

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC from the API types and kubebuilder markers, and copy them into the Helm chart.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@{ echo "# Generated from config/rbac/role.yaml by \`make manifests\`: the same rules as a namespaced"; \
	   echo "# Role, for a manager run with --watch-namespaces (one Role and RoleBinding per watched namespace)."; \
	   sed -e 's/^kind: ClusterRole$$/kind: Role/' -e 's/^  name: manager-role$$/  name: lethe-manager-role/' config/rbac/role.yaml; } > config/rbac-namespaced/role.yaml
	go run ./hack/chart sync

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code and the time zone list.
	go run ./hack/gen-timezones api/v1alpha1/timezone_generated.go
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: api-docs
api-docs: ## Generate the API reference docs/api.md from the Go types in api/v1alpha1 (hack/api-docs).
	go run ./hack/api-docs docs/api.md

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: ## Run golangci-lint (.golangci.yml), built once from its Go module and cached.
	@hack/build-golangci-lint.sh $(GOLANGCI_LINT_VERSION) >/dev/null
	$(BIN)/golangci-lint run ./...

.PHONY: helm-lint
helm-lint: ## Lint the Helm chart (charts/lethe) as helm lint --strict does, with Helm's Go library.
	go run ./hack/chart lint

.PHONY: promtool
promtool: ## Build (once, cached) promtool, which tests the alerts (config/prometheus).
	@hack/build-promtool.sh $(PROMTOOL_VERSION) >/dev/null

.PHONY: test-alerts
test-alerts: promtool ## Unit-test the alerts with promtool test rules.
	$(BIN)/promtool check rules config/prometheus/alerts.yaml
	cd config/prometheus && $(BIN)/promtool test rules *_test.yaml

.PHONY: verify-generated
verify-generated: manifests generate api-docs ## Fail if generated code, manifests or the API reference differ from what is committed.
	@if [ -n "$$(git status --porcelain -- api config charts docs/api.md)" ]; then \
		echo "generated files are stale; run 'make manifests generate api-docs' and commit:"; \
		git status --porcelain -- api config charts docs/api.md; git --no-pager diff --stat -- api config charts docs/api.md; exit 1; \
	fi

.PHONY: controlplane
controlplane: ## Build (once, cached) kube-apiserver, etcd and kubectl from Go modules.
	@hack/build-controlplane.sh >/dev/null

.PHONY: versitygw
versitygw: ## Build (once, cached) the versitygw S3 server the datastore tests start.
	@hack/build-versitygw.sh >/dev/null

# The fast tests: every package whose test binary links neither
# internal/testenv (it starts a kube-apiserver) nor internal/testharness (it
# starts throwaway datastore servers). A new package is sorted by what it
# imports, so no list is kept by hand.
UNIT_PKGS = $(shell go list -test -f '{{.ImportPath}} {{join .Deps " "}}' ./... | \
	awk '$$1 ~ /\.test$$/ && !/lethe\/internal\/(testenv|testharness)( |$$)/ { sub(/\.test$$/, "", $$1); print $$1 }')

.PHONY: test-unit
test-unit: ## Run the fast tests: no control plane, no datastore servers, in seconds.
	go test $(UNIT_PKGS) -count=1 -timeout 5m

.PHONY: test
test: verify-generated vet controlplane versitygw promtool ## Regenerate and verify, then run every test against a real control plane and real datastores.
	hack/test.sh

##@ Build

.PHONY: build
build: generate ## Build the manager binary into bin/manager.
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/manager .

.PHONY: plugin
plugin: ## Build the kubectl plugin into bin/kubectl-lethe (put it on PATH: kubectl lethe status).
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/kubectl-lethe ./cmd/kubectl-lethe

.PHONY: run
run: manifests generate ## Run the manager against the cluster of the current kubeconfig.
	go run . --leader-elect=false

.PHONY: docker-build
docker-build: ## Build the container image IMG (needs a Docker engine).
	docker build -t $(IMG) .

# make demo KEEP=1 leaves everything running until Ctrl-C; DEMO_USERS sizes the data.
DEMO_USERS ?= 20000

.PHONY: demo
demo: controlplane ## Start a local control plane and datastores, apply the samples and show what Lethe did (KEEP=1: leave it running).
	@mkdir -p $(BIN)/demo
	@echo "demo: building hack/demo (cached after the first time)..."
	@go build -o $(BIN)/demo/lethe-demo ./hack/demo
	@$(BIN)/demo/lethe-demo -users $(DEMO_USERS) -manager-log $(BIN)/demo/manager.log $(if $(filter-out 0 false no,$(KEEP)),-keep)

# FUZZ_CASES sizes make fuzz-erasure; FUZZ_SEED picks the first seed.
FUZZ_CASES ?= 2000
FUZZ_SEED ?= 1000

.PHONY: fuzz-erasure
fuzz-erasure: ## Run the erasure property test over FUZZ_CASES generated schemas (PostgreSQL; a fifth as many on MariaDB).
	LETHE_PROPERTY_CASES=$(FUZZ_CASES) LETHE_PROPERTY_SEED=$(FUZZ_SEED) go test ./test/erasure -count=1 -v -timeout 3h -run 'TestErasureProperty'

.PHONY: bench
bench: controlplane versitygw ## Run the benchmarks and print ratios against baselines measured in the same run.
	@hack/bench.sh

##@ Deployment

.PHONY: install
install: manifests controlplane ## Install the CRDs into the cluster of the current kubeconfig.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: manifests controlplane ## Remove the CRDs (and every Lethe object) from the cluster.
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: manifests controlplane ## Deploy the manager with image IMG into the cluster.
	cd config/manager && $(KUBECTL) kustomize . >/dev/null
	$(KUBECTL) kustomize config/default | sed 's|image: controller:latest|image: $(IMG)|' | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: controlplane ## Remove the manager from the cluster.
	$(KUBECTL) delete --ignore-not-found -k config/default

##@ Tools

$(CONTROLLER_GEN):
	@mkdir -p $(BIN) $(TOOLS_CACHE)
	@if [ ! -x $(TOOLS_CACHE)/controller-gen-$(CONTROLLER_TOOLS_VERSION) ]; then \
		echo "building controller-gen $(CONTROLLER_TOOLS_VERSION) (first time only)..."; \
		GOBIN=$(TOOLS_CACHE)/gobin-$(CONTROLLER_TOOLS_VERSION) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION); \
		mv $(TOOLS_CACHE)/gobin-$(CONTROLLER_TOOLS_VERSION)/controller-gen $(TOOLS_CACHE)/controller-gen-$(CONTROLLER_TOOLS_VERSION); \
	fi
	ln -sf $(TOOLS_CACHE)/controller-gen-$(CONTROLLER_TOOLS_VERSION) $(CONTROLLER_GEN)
