#!/usr/bin/env bash
# make loadtest-smoke: the demo upstream, the demo receiver and hookgate on
# 127.0.0.1, then loadtest/smoke.js for DURATION (20 s). Fails when
# requests fail or no notification reaches the receiver. Stops everything
# it started.
set -euo pipefail
cd "$(dirname "$0")/.."
K6=${K6:-$(command -v k6 || echo "$HOME/go/bin/k6")}
[ -x "$K6" ] || { echo "k6 not found: run make k6" >&2; exit 1; }
WORK=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
UP=127.0.0.1:18100 HG=127.0.0.1:18180 RCV=127.0.0.1:18140
wait_port() {
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "nothing listens on $1; logs:" >&2
	tail -n 20 "$WORK"/*.log >&2
	exit 1
}
go build -o bin/ ./cmd/...
bin/demo-upstream -quiet -listen $UP >"$WORK/upstream.log" 2>&1 &
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
