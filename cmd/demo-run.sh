#!/usr/bin/env bash
# Started by `make run`: the demo upstream on $UPSTREAM, the demo receiver on
# $RECEIVER, hookgate in front of the upstream on $LISTEN (data in $RUN_DIR);
# a change and a webhook go through, then all keep running until Ctrl-C.
set -euo pipefail
: "${BIN:=bin}" "${RUN_DIR:=data}" "${LISTEN:=127.0.0.1:8080}" "${OPS:=127.0.0.1:9090}" "${UPSTREAM:=127.0.0.1:3000}" "${RECEIVER:=127.0.0.1:4000}"

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# make does not pass its SIGTERM on: stop with it, whoever started us.
parent=$PPID
( while kill -0 "$parent" 2>/dev/null; do sleep 1; done; kill -TERM $$ 2>/dev/null ) &
pids+=($!)

# Each address must be free: something else answering there would pass
# for the demo.
for addr in "$UPSTREAM" "$RECEIVER" "$LISTEN" "$OPS"; do
	if (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
		echo "make run: $addr is taken by another process; stop it, or set UPSTREAM, LISTEN, OPS (make run OPS=127.0.0.1:9191)" >&2
		exit 1
	fi
done

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
"$BIN/demo-receiver" -listen "$RECEIVER" &
pids+=($!)
# The receiver is on loopback, which webhook URLs may not reach by default.
"$BIN/hookgate" -listen "$LISTEN" -ops-listen "$OPS" -upstream "$UPSTREAM" -data-dir "$RUN_DIR" -allow-cidrs 127.0.0.0/8 &
hookgate=$!
pids+=($hookgate)
wait_for "http://$OPS/healthz"
if ! kill -0 "$hookgate" 2>/dev/null; then
	echo "make run: hookgate exited at start (its log is above)" >&2
	exit 1
fi

echo
echo "== hookgate on http://$LISTEN in front of the demo API on http://$UPSTREAM"
echo
echo "== creating a webhook for alice's app access, pointing at the demo receiver:"
echo "   curl -H 'Authorization: alice-app' -H 'Content-Type: application/json' \\"
echo "        -d '{\"url\":\"http://$RECEIVER/notify?user=alice\"}' http://$LISTEN/alice/webhooks"
hook=$(curl -s -H 'Authorization: alice-app' -H 'Content-Type: application/json' \
	-d "{\"url\":\"http://$RECEIVER/notify?user=alice\"}" "http://$LISTEN/alice/webhooks")
echo "$hook"
id=$(printf '%s' "$hook" | sed -n 's/.*"id":"\([a-z0-9]*\)".*/\1/p')
if [ -z "$id" ]; then # already there from an earlier run
	id=$(curl -s -H 'Authorization: alice-app' "http://$LISTEN/alice/webhooks" | sed -n 's/.*"id":"\([a-z0-9]*\)".*/\1/p' | head -1)
fi
echo
echo "== sending it the test notification (the receiver prints it):"
echo "   curl -X POST -H 'Authorization: alice-app' http://$LISTEN/alice/webhooks/$id/test"
curl -s -o /dev/null -w '   -> HTTP %{http_code}\n' -X POST -H 'Authorization: alice-app' "http://$LISTEN/alice/webhooks/$id/test"
sleep 0.2
echo
echo "== creating an event through hookgate: the change is recorded durably before"
echo "   the answer, and the webhook is notified (the receiver prints eventsChanged):"
echo "   curl -H 'Authorization: alice-app' -H 'Content-Type: application/json' \\"
echo "        -d '{\"streamIds\":[\"diary\"],\"type\":\"note/txt\",\"content\":\"hello\"}' http://$LISTEN/alice/events"
# The answer ends its own line (-w): the receiver prints as soon as it is
# notified, often before a separate echo would run.
curl -s -w '\n' -H 'Authorization: alice-app' -H 'Content-Type: application/json' \
	-d '{"streamIds":["diary"],"type":"note/txt","content":"hello"}' "http://$LISTEN/alice/events"
sleep 0.5
echo
curl -s "http://$OPS/metrics" | grep -E '^hookgate_(markers_written_total|deliveries_total)'
echo
echo "Try more (tokens above; accesses: alice-personal, alice-app, alice-shared):"
echo "   curl -H 'Authorization: alice-personal' http://$LISTEN/alice/webhooks"
echo "   curl -H 'Authorization: alice-app' http://$LISTEN/alice/events"
echo "   curl -H 'Authorization: alice-app' -H 'Content-Type: application/json' \\"
echo "        -d '[{\"method\":\"streams.create\",\"params\":{\"name\":\"Work\"}},{\"method\":\"events.get\",\"params\":{}}]' http://$LISTEN/alice/"
echo "   curl http://$OPS/metrics | grep hookgate_"
echo
echo "Ctrl-C stops all three."
wait
