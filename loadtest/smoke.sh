#!/usr/bin/env bash
# make loadtest-smoke: the demo upstream, the demo receiver and hookgate on
# 127.0.0.1, then loadtest/smoke.js for DURATION (20 s), then
# loadtest/latency.js for 100 idle webhooks next to 2 slow and 2 failing
# ones (2 s). Fails when requests fail, a change is never notified, or
# notifications take more than a second. Stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
UP=127.0.0.1:18100 HG=127.0.0.1:18180 RCV=127.0.0.1:18140
go build -o bin/ ./cmd/...
bin/demo-upstream -quiet -users 104 -listen $UP >"$WORK/upstream.log" 2>&1 &
pids+=($!)
bin/demo-receiver -listen $RCV >"$WORK/receiver.log" 2>&1 &
pids+=($!)
wait_port $UP
wait_port $RCV
bin/hookgate -listen $HG -ops-listen "" -upstream $UP -data-dir "$WORK/data" -allow-cidrs 127.0.0.0/8 \
	-min-interval 1s -log-level warn >"$WORK/hookgate.log" 2>&1 &
pids+=($!)
wait_port $HG
"$K6" run --no-color -e TARGET="http://$HG" -e RECEIVER="http://$RCV" -e DURATION="${DURATION:-20s}" loadtest/smoke.js
"$K6" run --no-color --quiet -e TARGET="http://$HG" -e RECEIVER="http://$RCV" -e USERS=100 -e RATE=50 \
	-e SLOW=2 -e FAILING=2 -e SLOW_MS=300 loadtest/latency.js
