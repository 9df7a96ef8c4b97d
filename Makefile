# hookgate — make targets. Everything runs on 127.0.0.1.

GO        ?= go
BIN       := bin
RUN_DIR   ?= $(CURDIR)/data
LISTEN    ?= 127.0.0.1:8080
OPS       ?= 127.0.0.1:9090
UPSTREAM  ?= 127.0.0.1:3000

.PHONY: all build run test test-short fuzz bench vet fmt clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

## run: build, start the demo upstream and hookgate in front of it, show a change going through.
run: build
	@RUN_DIR="$(RUN_DIR)" LISTEN="$(LISTEN)" OPS="$(OPS)" UPSTREAM="$(UPSTREAM)" BIN="$(BIN)" bash cmd/demo-run.sh

## test: go vet, then every test with the race detector, then each fuzz target briefly.
test: vet
	$(GO) test -race -count=1 ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=10s

test-short: vet
	$(GO) test -count=1 ./...

FUZZTIME ?= 30s
## fuzz: run every fuzz target for FUZZTIME each.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzClassify$$' -fuzztime $(FUZZTIME) ./gateway/rules
	$(GO) test -run '^$$' -fuzz '^FuzzSplitUser$$' -fuzztime $(FUZZTIME) ./gateway
	$(GO) test -run '^$$' -fuzz '^FuzzBatchAndAccessInfo$$' -fuzztime $(FUZZTIME) ./gateway
	$(GO) test -run '^$$' -fuzz '^FuzzCreateUpdate$$' -fuzztime $(FUZZTIME) ./gateway/webhooks
	$(GO) test -run '^$$' -fuzz '^FuzzGuard$$' -fuzztime $(FUZZTIME) ./delivery
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeMarker$$' -fuzztime $(FUZZTIME) ./core
	$(GO) test -run '^$$' -fuzz '^FuzzAppendJSONString$$' -fuzztime $(FUZZTIME) ./core

BENCHTIME ?= 1s
BENCHCOUNT ?= 1
## bench: Go benchmarks: hot paths and end-to-end proxy paths with their baselines.
bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -count $(BENCHCOUNT) ./core/... ./gateway/... ./bench/...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN) $(RUN_DIR)
