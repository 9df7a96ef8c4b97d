#!/usr/bin/env bash
# Started by `make run`: the demo upstream on $UPSTREAM, hookgate in front of
# it on $LISTEN (data in $RUN_DIR), one change sent through, then both keep
# running until Ctrl-C.
set -euo pipefail
: "${BIN:=bin}" "${RUN_DIR:=data}" "${LISTEN:=127.0.0.1:8080}" "${OPS:=127.0.0.1:9090}" "${UPSTREAM:=127.0.0.1:3000}"

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_for() { # url
	for _ in $(seq 1 100); do
		if curl -s -o /dev/null "$1"; then return 0; fi
		sleep 0.1
	done
	echo "timed out waiting for $1" >&2
	exit 1
}

"$BIN/demo-upstream" -listen "$UPSTREAM" &
pids+=($!)
wait_for "http://$UPSTREAM/"
"$BIN/hookgate" -listen "$LISTEN" -ops-listen "$OPS" -upstream "$UPSTREAM" -data-dir "$RUN_DIR" &
pids+=($!)
wait_for "http://$OPS/healthz"

echo
echo "== hookgate on http://$LISTEN in front of the demo API on http://$UPSTREAM"
echo "== creating an event through hookgate:"
echo "   curl -H 'Authorization: alice-app' -H 'Content-Type: application/json' \\"
echo "        -d '{\"streamIds\":[\"diary\"],\"type\":\"note/txt\",\"content\":\"hello\"}' http://$LISTEN/alice/events"
curl -s -H 'Authorization: alice-app' -H 'Content-Type: application/json' \
	-d '{"streamIds":["diary"],"type":"note/txt","content":"hello"}' "http://$LISTEN/alice/events"
echo
echo
echo "== the change was recorded durably before that answer:"
curl -s "http://$OPS/metrics" | grep -E '^hookgate_(markers_written_total|queue_depth) '
echo
echo "Try more (tokens above; accesses: alice-personal, alice-app, alice-shared):"
echo "   curl -H 'Authorization: alice-app' http://$LISTEN/alice/events"
echo "   curl -H 'Authorization: alice-app' -H 'Content-Type: application/json' \\"
echo "        -d '[{\"method\":\"streams.create\",\"params\":{\"name\":\"Work\"}},{\"method\":\"events.get\",\"params\":{}}]' http://$LISTEN/alice/"
echo "   curl http://$OPS/metrics | grep hookgate_"
echo
echo "Ctrl-C stops both."
wait
