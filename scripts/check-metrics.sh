#!/usr/bin/env bash
# check-metrics.sh HOOKGATE PROMTOOL: starts hookgate on free loopback
# ports, reads its /metrics, and lints hookgate's own families with
# promtool check metrics (HELP text, TYPE, naming). The Go runtime's and
# the process's families come from the metrics package as they are.
set -euo pipefail
hookgate=${1:?usage: check-metrics.sh HOOKGATE PROMTOOL} promtool=${2:?usage: check-metrics.sh HOOKGATE PROMTOOL}
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ops="127.0.0.1:$(free_port)"
"$hookgate" -listen "127.0.0.1:$(free_port)" -ops-listen "$ops" -data-dir "$work/data" >"$work/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
	curl -sf "http://$ops/metrics" >"$work/metrics" && break
	sleep 0.1
done
grep -E '^(# (HELP|TYPE) )?hookgate_' "$work/metrics" >"$work/hookgate"
families=$(grep -c '^# TYPE hookgate_' "$work/hookgate")
if [ "$families" -lt 20 ]; then
	echo "check-metrics: only $families hookgate families in /metrics" >&2
	exit 1
fi
"$promtool" check metrics <"$work/hookgate"
echo "check-metrics: $families hookgate families pass promtool check metrics"
