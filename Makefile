# hookgate — make targets. Everything runs on 127.0.0.1.

GO        ?= go
BIN       := bin
RUN_DIR   ?= $(CURDIR)/data
LISTEN    ?= 127.0.0.1:8080
OPS       ?= 127.0.0.1:9090
UPSTREAM  ?= 127.0.0.1:3000

# make run-cluster: two hookgate instances (two addresses each), three NATS
# nodes (one address each), all comma-separated; none of make run's.
CLUSTER_DIR      ?= $(CURDIR)/data-cluster
CLUSTER_LISTEN   ?= 127.0.0.1:8181,127.0.0.1:8182
CLUSTER_OPS      ?= 127.0.0.1:9181,127.0.0.1:9182
CLUSTER_UPSTREAM ?= 127.0.0.1:3100
CLUSTER_RECEIVER ?= 127.0.0.1:4100
CLUSTER_FAILOVER ?= 3s
NATS_CLIENT      ?= 127.0.0.1:4222,127.0.0.1:4223,127.0.0.1:4224
NATS_ROUTE       ?= 127.0.0.1:6222,127.0.0.1:6223,127.0.0.1:6224
NATS_MONITOR     ?= 127.0.0.1:8222,127.0.0.1:8223,127.0.0.1:8224

.PHONY: promtool alerts all build run run-cluster nats-server test test-long test-short staticcheck fuzz bench bench-baseline bench-compare benchstat vet fmt clean k6 vegeta loadtest-deps loadtest loadtest-quick loadtest-smoke scale

all: build

# REVISION is stamped into hookgate (-version, hookgate_build_info) where
# the Go toolchain does not stamp it itself (GOFLAGS=-buildvcs=false).
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null)

build:
	$(GO) build -ldflags "-X main.revision=$(REVISION)" -o $(BIN)/ ./cmd/...

## run: build, start the demo upstream and hookgate in front of it, show a change going through.
run: build
	@RUN_DIR="$(RUN_DIR)" LISTEN="$(LISTEN)" OPS="$(OPS)" UPSTREAM="$(UPSTREAM)" BIN="$(BIN)" bash cmd/demo-run.sh

# nats-server at the version go.mod pins, from the Go module proxy.
nats-server:
	$(GO) build -o $(BIN)/nats-server github.com/nats-io/nats-server/v2

## run-cluster: build (nats-server too), start a JetStream cluster of three nats-server, the demo upstream and two hookgate instances in cluster mode; show a webhook shared, a change notified, and the failover after kill -9 of the instance that delivers it.
run-cluster: build nats-server
	@RUN_DIR="$(CLUSTER_DIR)" LISTEN="$(CLUSTER_LISTEN)" OPS="$(CLUSTER_OPS)" UPSTREAM="$(CLUSTER_UPSTREAM)" RECEIVER="$(CLUSTER_RECEIVER)" \
		FAILOVER="$(CLUSTER_FAILOVER)" NATS_CLIENT="$(NATS_CLIENT)" NATS_ROUTE="$(NATS_ROUTE)" NATS_MONITOR="$(NATS_MONITOR)" \
		BIN="$(BIN)" bash cmd/demo-run-cluster.sh

# A hung test fails its package after TEST_TIMEOUT, with every goroutine's
# stack, instead of holding CI until its own limit.
TEST_TIMEOUT ?= 6m

## test: go vet, gofmt and staticcheck, then every test with the race detector, then each fuzz target briefly.
test: vet
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=10s

## test-long: the same with 10 kill -9 cycles, and each fuzz target for 2 minutes.
test-long: vet
	HOOKGATE_CRASH_CYCLES=10 $(GO) test -race -count=1 -timeout 40m ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=2m

test-short: vet
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

FUZZTIME ?= 30s
## fuzz: run every fuzz target for FUZZTIME each.
fuzz:
	@bash scripts/fuzz.sh $(FUZZTIME) ./gateway/rules FuzzClassify FuzzTouches
	@bash scripts/fuzz.sh $(FUZZTIME) ./gateway FuzzSplitUser FuzzBatchAndAccessInfo FuzzValidHead FuzzStreamTree FuzzSocketIO
	@bash scripts/fuzz.sh $(FUZZTIME) ./gateway/wsframe FuzzReader
	@bash scripts/fuzz.sh $(FUZZTIME) ./gateway/webhooks FuzzCreateUpdate FuzzDecodeRecord FuzzDecodeCounters
	@bash scripts/fuzz.sh $(FUZZTIME) ./delivery FuzzGuard FuzzRetryAfter FuzzReceiverResponse
	@bash scripts/fuzz.sh $(FUZZTIME) ./core FuzzDecodeMarker FuzzAppendJSONString
	@bash scripts/fuzz.sh $(FUZZTIME) ./cmd/hookgate FuzzParseSize FuzzApplyConfig FuzzMoveLine
	@bash scripts/fuzz.sh $(FUZZTIME) ./loadtest FuzzParseWrk FuzzParseVegeta FuzzParseK6Summary FuzzParseReceiverStats FuzzParseReceiverReport FuzzParseClientResult
	@bash scripts/fuzz.sh $(FUZZTIME) ./internal/procstat FuzzParseProcStat

BENCHTIME ?= 1s
BENCHCOUNT ?= 1
BENCH_PKGS := ./core/... ./gateway/... ./delivery/... ./bench/...
## bench: Go benchmarks: hot paths and end-to-end proxy paths with their baselines.
bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -count $(BENCHCOUNT) $(BENCH_PKGS)

BENCHSTAT_VERSION ?= v0.0.0-20260908200009-22c9c6c9d4da
BENCHSTAT ?= $(shell $(GO) env GOPATH)/bin/benchstat

benchstat:
	@test -x $(BENCHSTAT) || (cd /tmp && $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION))

## bench-baseline: record bench/baseline.txt (6 samples of every benchmark, about 4 minutes).
bench-baseline:
	$(GO) test -run '^$$' -bench . -benchtime 500ms -count 6 $(BENCH_PKGS) | tee bench/baseline.txt

## bench-compare: run the benchmarks the same way and compare with the committed baseline.
bench-compare: benchstat
	$(GO) test -run '^$$' -bench . -benchtime 500ms -count 6 $(BENCH_PKGS) > bench/latest.txt
	$(BENCHSTAT) bench/baseline.txt bench/latest.txt

K6_VERSION ?= v1.8.1
K6 ?= $(shell $(GO) env GOPATH)/bin/k6

PROMTOOL_VERSION ?= v0.316.0
PROMTOOL ?= $(shell $(GO) env GOPATH)/bin/promtool

## promtool: install Prometheus's promtool ($(PROMTOOL_VERSION), from the Go module proxy: about 7 min the first time).
promtool:
	@test -x $(PROMTOOL) || (cd /tmp && $(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION))

## alerts: check and test the alert rules (deploy/prometheus), and lint hookgate's own families of a live /metrics with promtool.
alerts: promtool build
	$(PROMTOOL) check rules deploy/prometheus/alerts.yml
	cd deploy/prometheus && $(PROMTOOL) test rules alerts_test.yml
	@bash scripts/check-metrics.sh $(BIN)/hookgate $(PROMTOOL)

## k6: install k6 $(K6_VERSION) from the Go module proxy (about 75 s the first time).
k6:
	@test -x $(K6) && $(K6) version 2>/dev/null | grep -q $(K6_VERSION:v%=%) || (cd /tmp && $(GO) install go.k6.io/k6@$(K6_VERSION))

VEGETA_VERSION ?= v12.12.0
VEGETA ?= $(shell $(GO) env GOPATH)/bin/vegeta

## vegeta: install vegeta $(VEGETA_VERSION), the open-loop generator, from the Go module proxy (about 25 s the first time).
vegeta:
	@$(GO) version -m $(VEGETA) 2>/dev/null | awk '$$1 == "mod" {print $$3}' | grep -qx '$(VEGETA_VERSION)' || (cd /tmp && $(GO) install github.com/tsenart/vegeta/v12@$(VEGETA_VERSION))

# The Debian (bookworm) packages of the closed-loop generator and the
# baseline proxies, at exact versions; override when the mirror has moved on.
WRK_DEB     ?= wrk=4.1.0-3+b2
NGINX_DEB   ?= nginx-light=1.22.1-9+deb12u7
HAPROXY_DEB ?= haproxy=2.6.12-1+deb12u3

## loadtest-deps: k6 and vegeta (Go module proxy), wrk, nginx and haproxy (apt), each where missing.
loadtest-deps: k6 vegeta
	@missing=""; \
	command -v wrk >/dev/null || missing="$$missing $(WRK_DEB)"; \
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || missing="$$missing $(NGINX_DEB)"; \
	command -v haproxy >/dev/null || test -x /usr/sbin/haproxy || missing="$$missing $(HAPROXY_DEB)"; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

# LOADTEST_FLAGS adds flags of the runner (go run ./loadtest -h), e.g.
# LOADTEST_FLAGS="-scenarios reads,changes -rate 3000".
LOADTEST_FLAGS ?=

## loadtest: every scenario 3 times, interleaved (reads, changes, deliveries, latency, isolation, coalescing; about 20 minutes); tables at the end, rows and raw output kept in loadtest/results/.
loadtest: loadtest-deps
	$(GO) run ./loadtest -k6 $(K6) -vegeta $(VEGETA) $(LOADTEST_FLAGS) full

## loadtest-smoke: the whole path under light load (about 25 s); fails if a request fails or a change is never notified.
loadtest-smoke: k6
	K6=$(K6) bash loadtest/smoke.sh

## loadtest-quick: the same scenarios once, 4 s each (about 3 minutes).
loadtest-quick: loadtest-deps
	$(GO) run ./loadtest -k6 $(K6) -vegeta $(VEGETA) $(LOADTEST_FLAGS) quick

N ?= 1000000
M ?= 100
## scale: the state layer at scale (N webhooks imported, M created through the API): restart to ready, RSS per webhook, one flush of N dirty webhooks, the boot storm and its run records; figures next to their targets (N=1000000 takes 10-20 minutes).
scale: build
	$(BIN)/scale -n $(N) -api $(M) -hookgate $(BIN)/hookgate

STATICCHECK_VERSION ?= v0.8.2
STATICCHECK ?= $(shell $(GO) env GOPATH)/bin/staticcheck

## staticcheck: install staticcheck $(STATICCHECK_VERSION) from the Go module proxy if absent (about 20 s).
staticcheck:
	@test -x $(STATICCHECK) && $(STATICCHECK) -version 2>/dev/null | grep -q '($(STATICCHECK_VERSION:v%=%))' || (cd /tmp && $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION))

## vet: go vet, gofmt and staticcheck.
vet: staticcheck
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN) $(RUN_DIR) $(CLUSTER_DIR)
