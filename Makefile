# takedown: `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
FUZZTIME ?= 10s
export GOFLAGS ?= -buildvcs=false

.PHONY: help build test bench fuzz lint deps demo web-assets

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/takedown
	$(GO) build -o bin/takedown ./cmd/takedown

test: ## go vet, then every test with the race detector (TAKEDOWN_STRICT=1: missing tools fail)
	$(GO) vet ./...
	$(GO) test -race -timeout 20m ./...

bench: build ## run the benchmarks against their anchors (prints NAME project=X anchor=Y ratio=Z)
	@mkdir -p bench/results
	bash bench/run.sh

fuzz: ## run every fuzz target briefly (FUZZTIME=10s)
	bash scripts/fuzz.sh $(FUZZTIME)

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

deps: ## install the Debian packages the tests need (as root; otherwise print the apt-get line)
	bash scripts/deps.sh
	$(GO) mod download

demo: ## run the demo
	$(GO) run ./cmd/takedown demo

web-assets: ## rebuild the dashboard's committed assets from web/ (needs nodejs and npm)
	cd web && npm ci && npm run build
