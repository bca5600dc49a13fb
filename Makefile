# Pulsewire — see README.md. Every target works on a fresh Debian machine with Go.
GO        ?= go
DATA_DIR  ?= data
ADDR      ?= 127.0.0.1:8080
EXAMPLES  ?= $(CURDIR)/.cache/fhir-examples
STATICCHECK_VERSION = v0.8.2
export PULSEWIRE_EXAMPLES = $(EXAMPLES)

.PHONY: run sample test test-short lint generate fetch-examples services bench build clean fuzz browser-deps

## run: start the server on the embedded default (SQLite in ./data, in-process cache)
run:
	$(GO) run ./server/cmd/pulsewire serve --data-dir $(DATA_DIR) --addr $(ADDR) --auth off

## sample: load synthetic sample data into the server started by 'make run'
sample:
	$(GO) run ./server/cmd/pulsewire load-sample --url http://$(ADDR)

## build: build the binary into bin/
build:
	$(GO) build -o bin/pulsewire ./server/cmd/pulsewire

## test: the full suite; starts PostgreSQL, NATS, Mosquitto (and Redis) when down (see .ci/services)
test: services fetch-examples
	$(GO) test -count=1 -timeout 20m ./...
	@echo "REST suite again on PostgreSQL:"
	PULSEWIRE_TEST_STORE=postgres $(GO) test -count=1 -timeout 10m ./server/rest

## test-short: the suite without the services and the examples corpus
test-short:
	$(GO) test -count=1 -short ./...

## lint: gofmt, go vet, staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

## generate: regenerate generated code: graph/'s gqlgen code and composed supergraphs (wgc via npx; graph/generate.sh)
generate:
	$(GO) generate ./...

## fetch-examples: fetch the official FHIR R4 examples (npm hl7.fhir.r4.examples@4.0.1, CC0) into .cache
fetch-examples:
	@bash conformance/fetch-examples.sh $(EXAMPLES) || { if [ -n "$$CI" ]; then exit 1; fi; echo "SKIPPED: could not fetch the FHIR examples (npm); the examples corpus test will skip"; }

## services: start PostgreSQL, NATS, Mosquitto and Redis when they are down
services:
	@bash .ci/services

## browser-deps: install headless Chromium and ChromeDriver (Debian) for the browser test of the login pages
browser-deps:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then echo "browser-deps: chromium and chromedriver are installed"; \
	else apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; fi

## bench: load benchmarks against a server on PostgreSQL (see README)
bench: services
	$(GO) run ./server/cmd/pwbench $(ARGS)
	@if [ -z "$(ARGS)" ]; then \
	  echo; echo "ORU^R01 build rate (mappings/oru) and MLLP delivery with ACKs to a loopback engine (PostgreSQL outbox):"; \
	  $(GO) test -run '^$$' -bench BenchmarkBuildORU ./mappings/oru/ && \
	  $(GO) test -run '^$$' -bench BenchmarkDeliveryMLLP -benchtime 10000x ./adapters/postgres/ && \
	  echo && echo "Authorization decisions (server/authz): L1 hit, Redis L2 hit, miss (SQLite Consents + Redis):" && \
	  $(GO) test -run '^$$' -bench 'BenchmarkDecide(L1Hit|L2Hit|Miss)$$' -benchtime 5000x ./server/authz/; fi

## fuzz: run every fuzz target for FUZZTIME each (their seed corpora also run in make test)
FUZZTIME ?= 30s
FUZZ_TARGETS = ./server/authz:FuzzParseScope ./server/search:FuzzParse ./server/search:FuzzExtract ./conformance/validate:FuzzValidate \
  ./mappings/device:FuzzEvaluate ./mappings/device:FuzzExpression ./mappings/hl7v2:FuzzParse ./adapters/mllp:FuzzReader \
  ./mappings/oru:FuzzFastDecode
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "fuzzing $$fn in $$pkg for $(FUZZTIME)"; \
	  $(GO) test $$pkg -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME); done

clean:
	rm -rf bin .cache
