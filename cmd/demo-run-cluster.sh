#!/usr/bin/env bash
# Started by `make run-cluster`: three nats-server nodes forming a JetStream
# cluster (clients on $NATS_CLIENT, routes on $NATS_ROUTE, monitoring on
# $NATS_MONITOR, each a comma-separated list, one address a node), the demo
# upstream on $UPSTREAM, the demo receiver on $RECEIVER, and two hookgate
# instances in cluster mode on $LISTEN and $OPS (two addresses each); the
# data of all in $RUN_DIR, the NATS stores emptied at each start, the
# secrets key kept. A webhook created through one instance is listed
# through the other, a change through the second is notified; then the
# instance that delivers alice's webhooks is killed with SIGKILL, and a
# change through the survivor is notified once it has taken alice's
# partition over. All the rest keep running until Ctrl-C.
set -euo pipefail
: "${BIN:=bin}" "${RUN_DIR:=data-cluster}" "${FAILOVER:=3s}"
: "${LISTEN:=127.0.0.1:8181,127.0.0.1:8182}" "${OPS:=127.0.0.1:9181,127.0.0.1:9182}"
: "${UPSTREAM:=127.0.0.1:3100}" "${RECEIVER:=127.0.0.1:4100}"
: "${NATS_CLIENT:=127.0.0.1:4222,127.0.0.1:4223,127.0.0.1:4224}"
: "${NATS_ROUTE:=127.0.0.1:6222,127.0.0.1:6223,127.0.0.1:6224}"
: "${NATS_MONITOR:=127.0.0.1:8222,127.0.0.1:8223,127.0.0.1:8224}"

# The users' partitions: hookgate's default, given explicitly because the
# demo computes alice's below.
partitions=16

IFS=, read -r -a listen <<<"$LISTEN"
IFS=, read -r -a ops <<<"$OPS"
IFS=, read -r -a nats_client <<<"$NATS_CLIENT"
IFS=, read -r -a nats_route <<<"$NATS_ROUTE"
IFS=, read -r -a nats_monitor <<<"$NATS_MONITOR"
if [ "${#listen[@]}" -ne 2 ] || [ "${#ops[@]}" -ne 2 ]; then
	echo "make run-cluster: CLUSTER_LISTEN and CLUSTER_OPS take two addresses each, comma-separated" >&2
	exit 1
fi
if [ "${#nats_client[@]}" -lt 3 ] || [ "${#nats_route[@]}" -ne "${#nats_client[@]}" ] || [ "${#nats_monitor[@]}" -ne "${#nats_client[@]}" ]; then
	echo "make run-cluster: NATS_CLIENT, NATS_ROUTE and NATS_MONITOR take one address per node, comma-separated, three nodes or more" >&2
	exit 1
fi
# -failover in milliseconds, for the waits below.
case $FAILOVER in
*ms) failover_ms=${FAILOVER%ms} unit=1 ;;
*s) failover_ms=${FAILOVER%s} unit=1000 ;;
*) failover_ms='' ;;
esac
if ! [[ $failover_ms =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
	echo "make run-cluster: CLUSTER_FAILOVER is a number of seconds or milliseconds (2s, 1.5s, 800ms)" >&2
	exit 1
fi
failover_ms=$(awk -v n="$failover_ms" -v u="$unit" 'BEGIN { printf "%d", n * u }')
# nats-server's monitoring listens on its client host (-a): -m is a port.
for i in "${!nats_client[@]}"; do
	if [ "${nats_monitor[i]%:*}" != "${nats_client[i]%:*}" ]; then
		echo "make run-cluster: each NATS_MONITOR address must be on the host of its NATS_CLIENT one (${nats_monitor[i]}, ${nats_client[i]})" >&2
		exit 1
	fi
done

pids=()      # the demo programs and hookgate: stopped first
nats_pids=() # the NATS nodes: stopped once hookgate is gone
watcher=''

gone() { # pid: whether it has exited (a zombie has)
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 0
	[[ $st == Z* ]]
}

stop() { # pid...: TERM each, and wait until all have exited: 20 s at most
	# (hookgate's -shutdown-timeout is 15 s), then KILL. It polls rather
	# than wait for each pid: a child that died along with the signal
	# that runs cleanup can leave bash's wait blocked on the others.
	local p alive
	for p in "$@"; do kill "$p" 2>/dev/null || true; done
	for _ in $(seq 1 200); do
		alive=''
		for p in "$@"; do
			if ! gone "$p"; then alive=1; fi
		done
		if [ -z "$alive" ]; then return 0; fi
		sleep 0.1
	done
	for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; done
}

cleanup() {
	if [ -n "$watcher" ]; then kill "$watcher" 2>/dev/null || true; fi
	stop "${pids[@]}"
	stop "${nats_pids[@]}"
	wait 2>/dev/null || true
}
# INT and TERM end the script (and so run cleanup once), wherever it is.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# make does not pass its SIGTERM on: stop with it, whoever started us.
parent=$PPID
( while kill -0 "$parent" 2>/dev/null; do sleep 1; done; kill -TERM $$ 2>/dev/null ) &
watcher=$!

# Each address must be free: something else answering there would pass
# for the demo.
for addr in "$UPSTREAM" "$RECEIVER" "${listen[@]}" "${ops[@]}" "${nats_client[@]}" "${nats_route[@]}" "${nats_monitor[@]}"; do
	if (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
		echo "make run-cluster: $addr is taken by another process; stop it, or set CLUSTER_UPSTREAM, CLUSTER_RECEIVER, CLUSTER_LISTEN, CLUSTER_OPS, NATS_CLIENT, NATS_ROUTE, NATS_MONITOR (make run-cluster CLUSTER_OPS=127.0.0.1:9281,127.0.0.1:9282)" >&2
		exit 1
	fi
done

wait_for() { # url [tries, 0.1 s apart; default 100]: until url answers at all
	for _ in $(seq 1 "${2:-100}"); do
		if curl -s -o /dev/null "$1"; then return 0; fi
		sleep 0.1
	done
	echo "timed out waiting for $1" >&2
	exit 1
}

wait_ok() { # url [tries, 0.1 s apart; default 100]: until url answers 200
	for _ in $(seq 1 "${2:-100}"); do
		if [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ]; then return 0; fi
		sleep 0.1
	done
	echo "timed out waiting for $1 to answer 200" >&2
	exit 1
}

ms() { # the wall clock in milliseconds
	local t=${EPOCHREALTIME//[!0-9]/}
	echo $((t / 1000))
}

metric() { # ops series: the value of series on ops' /metrics; 0 when absent
	local v
	v=$(curl -s "http://$1/metrics" | awk -v s="$2" '$1 == s { print $2 }') || true
	echo "${v:-0}"
}

notified() { # eventsChanged notifications the receiver got so far
	local n
	n=$(curl -s "http://$RECEIVER/_stats" | sed -n 's/.*"eventsChanged":\([0-9]*\).*/\1/p') || true
	echo "${n:-0}"
}

wait_notified() { # count: until the receiver got more than count eventsChanged
	for _ in $(seq 1 300); do
		if [ "$(notified)" -gt "$1" ]; then
			sleep 0.1 # the receiver's line before ours
			return 0
		fi
		sleep 0.1
	done
	echo "make run-cluster: no notification within 30 s" >&2
	exit 1
}

post_event() { # listen content: create an event for alice through listen
	local out
	out=$(curl -s -H 'Authorization: alice-app' -H 'Content-Type: application/json' \
		-d "{\"streamIds\":[\"diary\"],\"type\":\"note/txt\",\"content\":\"$2\"}" "http://$1/alice/events") || true
	echo "$out"
}

# The JetStream cluster: every node routes to every other. It starts
# empty each run: its stores, logs and hookgate's data directories under
# $RUN_DIR are removed first (streams restored from disk may take longer
# to elect their leaders than hookgate waits at its start).
mkdir -p "$RUN_DIR"
for i in "${!nats_client[@]}"; do rm -rf "$RUN_DIR/nats-$((i + 1))" "$RUN_DIR/nats-$((i + 1)).log"; done
rm -rf "$RUN_DIR/hookgate-1" "$RUN_DIR/hookgate-2"
routes='' nats_urls=''
for r in "${nats_route[@]}"; do routes+="${routes:+,}nats://$r"; done
for i in "${!nats_client[@]}"; do
	n=$((i + 1))
	c=${nats_client[i]} m=${nats_monitor[i]}
	# In a process group of its own (set -m): Ctrl-C reaches hookgate
	# while the node runs, and cleanup stops it once hookgate is gone.
	set -m
	"$BIN/nats-server" -n "hookgate-demo-$n" -a "${c%:*}" -p "${c##*:}" -m "${m##*:}" \
		--cluster "nats://${nats_route[i]}" --cluster_name hookgate-demo --routes "$routes" \
		-js -sd "$RUN_DIR/nats-$n" -l "$RUN_DIR/nats-$n.log" &
	nats_pids+=($!)
	set +m
	nats_urls+="${nats_urls:+,}nats://$c"
done
# /healthz answers 200 once the node's JetStream is current with the
# cluster's meta leader: JetStream answers.
for m in "${nats_monitor[@]}"; do wait_ok "http://$m/healthz" 300; done
echo "== JetStream cluster of ${#nats_client[@]} nats-server nodes ready on $nats_urls (logs: $RUN_DIR/nats-*.log)"

"$BIN/demo-upstream" -listen "$UPSTREAM" &
pids+=($!)
wait_for "http://$UPSTREAM/"
"$BIN/demo-receiver" -listen "$RECEIVER" &
pids+=($!)
wait_for "http://$RECEIVER/_stats"

# One after the other: the first creates the secrets key the second reads.
# The receiver is on loopback, which webhook URLs may not reach by default.
hookgate=()
for i in 0 1; do
	n=$((i + 1))
	"$BIN/hookgate" -listen "${listen[i]}" -ops-listen "${ops[i]}" -upstream "$UPSTREAM" \
		-data-dir "$RUN_DIR/hookgate-$n" -secrets-key-file "$RUN_DIR/secrets.key" -allow-cidrs 127.0.0.0/8 \
		-nats "$nats_urls" -nats-partitions "$partitions" -failover "$FAILOVER" -min-interval 1s &
	hookgate+=($!)
	pids+=($!)
	wait_for "http://${ops[i]}/healthz" 300
	if ! kill -0 "${hookgate[i]}" 2>/dev/null; then
		echo "make run-cluster: hookgate $n exited at start (its log is above)" >&2
		exit 1
	fi
done

echo
echo "== hookgate 1 on http://${listen[0]} and hookgate 2 on http://${listen[1]}, in front of the demo API"
echo "   on http://$UPSTREAM, their state in JetStream; the receiver on http://$RECEIVER"
echo
echo "== creating a webhook for alice's app access through hookgate 1:"
echo "   curl -H 'Authorization: alice-app' -H 'Content-Type: application/json' \\"
echo "        -d '{\"url\":\"http://$RECEIVER/notify?user=alice\"}' http://${listen[0]}/alice/webhooks"
hook=$(curl -s -H 'Authorization: alice-app' -H 'Content-Type: application/json' \
	-d "{\"url\":\"http://$RECEIVER/notify?user=alice\"}" "http://${listen[0]}/alice/webhooks")
echo "$hook"
echo
echo "== listing alice's webhooks at once through hookgate 2:"
echo "   curl -H 'Authorization: alice-app' http://${listen[1]}/alice/webhooks"
curl -s -H 'Authorization: alice-app' "http://${listen[1]}/alice/webhooks"
echo

# Alice's partition: FNV-1a (32 bits) of the username, modulo the
# partitions, as gateway/cluster.PartitionOf computes it.
h=2166136261
user=alice
for ((k = 0; k < ${#user}; k++)); do
	printf -v c '%d' "'${user:k:1}"
	h=$((((h ^ c) * 16777619) & 0xFFFFFFFF))
done
part=$((h % partitions))
series="hookgate_cluster_partition_owned{partition=\"$part\"}"

# Which instance delivers alice's webhooks: wait until the instances
# share the partitions steadily (each owned once, the same for a failover
# period and five seconds: instances hand partitions over to balance them
# after a start, every failover period once what they own was gained 4 s
# before), then the one whose series is 1.
echo
echo "== waiting until the two instances share the $partitions partitions steadily (alice's is $part):"
steady='' since=0 owner=''
for _ in $(seq 1 300); do
	o1=$(metric "${ops[0]}" hookgate_cluster_partitions_owned) o2=$(metric "${ops[1]}" hookgate_cluster_partitions_owned)
	p1=$(metric "${ops[0]}" "$series") p2=$(metric "${ops[1]}" "$series")
	now=$(ms)
	if [ $((o1 + o2)) -ne "$partitions" ] || [ $((p1 + p2)) -ne 1 ]; then
		steady=''
	elif [ "$o1 $o2 $p1" != "$steady" ]; then
		steady="$o1 $o2 $p1" since=$now
	elif [ $((now - since)) -ge $((failover_ms + 5000)) ]; then
		owner=$((p1 == 1 ? 0 : 1))
		break
	fi
	sleep 0.2
done
if [ -z "$owner" ]; then
	echo "make run-cluster: the instances did not share the partitions steadily within 60 s" >&2
	exit 1
fi
for i in 0 1; do
	echo "   hookgate $((i + 1)): hookgate_cluster_partitions_owned $(metric "${ops[i]}" hookgate_cluster_partitions_owned), $series $(metric "${ops[i]}" "$series")"
done

echo
echo "== creating an event through hookgate 2: the change is recorded in JetStream before the"
echo "   answer, and hookgate $((owner + 1)), which delivers alice's partition $part, notifies the webhook"
echo "   (the receiver prints eventsChanged):"
echo "   curl -H 'Authorization: alice-app' -H 'Content-Type: application/json' \\"
echo "        -d '{\"streamIds\":[\"diary\"],\"type\":\"note/txt\",\"content\":\"hello\"}' http://${listen[1]}/alice/events"
before=$(notified)
post_event "${listen[1]}" hello
wait_notified "$before"

# The owner again, right before the kill: instances balancing their
# shares may have moved the partition since.
a=$(metric "${ops[0]}" "$series") b=$(metric "${ops[1]}" "$series")
if [ "$a" = 1 ] && [ "$b" != 1 ]; then owner=0; elif [ "$b" = 1 ] && [ "$a" != 1 ]; then owner=1; fi
survivor=$((1 - owner))
echo
echo "== kill -9 of hookgate $((owner + 1)), the owner of alice's partition $part; then an event"
echo "   through hookgate $((survivor + 1)), notified once it has taken the partition over (-failover $FAILOVER):"
killed=$(ms)
kill -9 "${hookgate[owner]}"
wait "${hookgate[owner]}" 2>/dev/null || true
before=$(notified)
echo "   curl -H 'Authorization: alice-app' -H 'Content-Type: application/json' \\"
echo "        -d '{\"streamIds\":[\"diary\"],\"type\":\"note/txt\",\"content\":\"after the failover\"}' http://${listen[survivor]}/alice/events"
post_event "${listen[survivor]}" "after the failover"
# Until the receiver has the notification; meanwhile, when the
# survivor's metric first shows alice's partition (as read every 50 ms).
taken='' done_at=''
for _ in $(seq 1 $(((3 * failover_ms + 10000) / 50))); do
	if [ -z "$taken" ] && [ "$(metric "${ops[survivor]}" "$series")" = 1 ]; then taken=$(ms); fi
	if [ "$(notified)" -gt "$before" ]; then
		# When the receiver got it, by its own clock (this machine's).
		done_at=$(curl -s "http://$RECEIVER/_stats" | sed -n 's/.*"lastMs":\([0-9]*\).*/\1/p') || true
		break
	fi
	sleep 0.05
done
if [ -z "$done_at" ]; then
	echo "make run-cluster: no notification through hookgate $((survivor + 1)) within 3 failover periods and 10 s" >&2
	exit 1
fi
sleep 0.1 # the receiver's line before ours
echo
echo "== failover: the change through hookgate $((survivor + 1)) was notified $((done_at - killed)) ms after the kill -9"
echo "   of hookgate $((owner + 1)) (-failover $FAILOVER)"
if [ -n "$taken" ]; then
	echo "   hookgate $((survivor + 1)) showed $series 1 at +$((taken - killed)) ms (read every 50 ms)"
fi
echo "   hookgate $((survivor + 1)): hookgate_cluster_partitions_owned $(metric "${ops[survivor]}" hookgate_cluster_partitions_owned) of $partitions"
echo
s=$survivor
echo "Try more through hookgate $((s + 1)) (accesses: alice-personal, alice-app, alice-shared):"
echo "   curl -H 'Authorization: alice-personal' http://${listen[s]}/alice/webhooks"
echo "   curl -H 'Authorization: alice-app' -H 'Content-Type: application/json' \\"
echo "        -d '{\"streamIds\":[\"diary\"],\"type\":\"note/txt\",\"content\":\"more\"}' http://${listen[s]}/alice/events"
echo "   curl http://${ops[s]}/metrics | grep hookgate_cluster_"
echo "   curl http://${nats_monitor[0]}/jsz"
echo
echo "Ctrl-C stops them all."
wait
