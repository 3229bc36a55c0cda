# Routr v2 Registry (Go). `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
PKGS := ./gen/... ./services/registry/... ./tools/...
BREAKING_AGAINST ?= .git\#branch=main
TEST_FLAGS ?= -race -count=1 -timeout 12m

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

# GENTOOL runs a tool pinned in tools/generate/go.mod (buf, the protoc plugins, the
# linters): a module of `tool` directives only, kept out of go.work so that what the
# tools require (buf needs newer libraries than we ship) never reaches gen/, the service
# or tools/. `go tool -modfile=tools/generate/go.mod` cannot be used: the go command
# refuses -modfile in workspace mode, and with GOWORK=off it needs a go.mod in the current
# directory, which the repository root has not. So the tool is built in its own module
# (GOWORK=off, else go.work's modules would supply it), `go tool -n` prints where the
# binary is cached, and the tool runs from the repository root, where buf finds buf.yaml
# and the linters see the workspace. Use it in a recipe: $(call GENTOOL,buf) lint
GENTOOL = "$$(GOWORK=off $(GO) -C tools/generate tool -n $(1))"

.PHONY: generate
generate: ## Regenerate gen/ from proto/ with buf and the pinned local plugins (tools/generate/go.mod)
	$(call GENTOOL,buf) generate
	cd gen && GOWORK=off $(GO) mod tidy

.PHONY: check-generate
check-generate: generate ## Fail when generated code differs from what is committed
	@if [ -n "$$(git status --porcelain -- gen)" ]; then \
		echo "generated code is out of date: run 'make generate' and commit gen/"; \
		git status --porcelain -- gen; git --no-pager diff --stat -- gen; exit 1; fi

# LINTRUN runs a linter, $(1), and fails on any line of its output that LINT_EXCLUDE does
# not match, or when the linter fails without a word.
LINTRUN = echo "$(1) $(PKGS)"; out=$$($(call GENTOOL,$(1)) $(2) $(PKGS) 2>&1); rc=$$?; \
	left=$$(grep -Ev -e '^$$' $(LINT_EXCLUDE) <<<"$$out"); \
	n=$$(grep -v -e '^$$' <<<"$$out" | grep -Ec -e '^$$' $(LINT_EXCLUDE)); \
	if [ -n "$$left" ] || { [ $$rc -ne 0 ] && [ -z "$$out" ]; }; then echo "$$left"; echo "$(1) failed"; exit 1; fi; \
	if [ "$$n" -gt 0 ]; then echo "$(1): $$n finding(s) left out by LINT_EXCLUDE"; fi

# LINT_EXCLUDE would list findings left out of `make lint` (extended regexps, one
# "file:line:col: message" line each, line numbers left out): none today. Fix a finding
# rather than add one here.
LINT_EXCLUDE :=

.PHONY: lint
lint: ## go vet, buf lint, buf format check, gofmt, staticcheck, deadcode (pinned in tools/generate/go.mod)
	$(GO) vet $(PKGS)
	@gen=$$(GOWORK=off $(GO) -C tools/generate list -m -f '{{.Version}}' github.com/bufbuild/buf) && \
		tools=$$($(GO) -C tools list -m -f '{{.Version}}' github.com/bufbuild/buf) && \
		if [ "$$gen" != "$$tools" ]; then \
		echo "buf $$gen in tools/generate/go.mod but $$tools in tools/go.mod: pin one version"; exit 1; fi
	$(call GENTOOL,buf) lint
	$(call GENTOOL,buf) format -d --exit-code
	@out=$$(gofmt -l gen services tools); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@$(call LINTRUN,staticcheck,)
	@# deadcode starts from the main packages and, with -test, from every package's tests,
	@# so code that only tests use is not reported; generated files are skipped.
	@$(call LINTRUN,deadcode,-test)

.PHONY: standalone
standalone: ## Build gen and the registry module alone (GOWORK=off), as the Dockerfile does
	cd gen && GOWORK=off $(GO) build ./...
	cd services/registry && GOWORK=off CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/registry

.PHONY: breaking
breaking: ## buf breaking against main (skipped when there is no main to compare with)
	@if git rev-parse --verify -q main >/dev/null; then $(GO) tool buf breaking --against '$(BREAKING_AGAINST)'; \
	else echo "no main branch: breaking check skipped"; fi

.PHONY: build
build: ## Build the registry and the tools into bin/
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/registry ./services/registry/cmd/registry
	$(GO) build -o $(BIN)/ ./tools/cmd/...

.PHONY: setup
setup: ## Install and start what the tests need (Kamailio, sipp, Redis, pinned Go tools)
	./tools/ci/setup.sh

.PHONY: check
check: setup check-generate lint breaking standalone check-deploy test ## Everything CI runs: set-up, generate drift, lint, deploy checks, all tests

.PHONY: check-deploy
check-deploy: ## promtool: check the alert rules and the Prometheus example, and run the rules' unit tests
	promtool check rules deploy/prometheus/alerts.yaml
	promtool check config deploy/prometheus/prometheus.yaml
	promtool test rules deploy/prometheus/alerts_test.yaml

.PHONY: test
test: ## Run every test with the race detector (needs Redis, Kamailio: see .ci/run)
	$(GO) test $(TEST_FLAGS) $(PKGS)

.PHONY: demo
demo: build ## Run fakeapi + fakerequester + registry on an embedded default and show registrations
	./tools/demo/run.sh

.PHONY: bench
bench: build ## Benchmarks: prints the performance table
	$(GO) run ./tools/cmd/bench

.PHONY: clean
clean: ## Remove bin/
	rm -rf $(BIN)
