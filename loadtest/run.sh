#!/usr/bin/env bash
# The load test runner behind `make loadtest`. It starts the demo upstream,
# hookgate, nginx and haproxy on 127.0.0.1, pins the servers to one CPU and
# k6 to the other, runs the scenarios, and prints one summary table.
#
#   loadtest/run.sh [full|quick]   full: 3 repetitions of 15 s; quick: 1 of 4 s
#
# Environment: RATE (open-loop requests/s, default 2000), VUS (closed-loop
# users, default 32), DELIVER_USERS (webhook counts of the delivery runs),
# LAT_USERS (idle webhooks of the latency runs), CHANGES (changes of the
# coalescing run), SCENARIOS (a subset of "reads mutations deliveries
# latency coalescing", all by default), K6 (path to k6). Every process started here is
# stopped on exit; all traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-full}
case "$MODE" in
full) DUR=${DUR:-15s} REPS=${REPS:-3} DELIVER_USERS=${DELIVER_USERS:-"1000 10000"} LAT_USERS=${LAT_USERS:-1000} CHANGES=${CHANGES:-100000} ;;
quick) DUR=${DUR:-4s} REPS=${REPS:-1} DELIVER_USERS=${DELIVER_USERS:-1000} LAT_USERS=${LAT_USERS:-300} CHANGES=${CHANGES:-10000} ;;
*) echo "usage: $0 [full|quick]" >&2; exit 2 ;;
esac
RATE=${RATE:-2000}
SCENARIOS=${SCENARIOS:-"reads mutations deliveries latency coalescing"}
VUS=${VUS:-32}
for bin in nginx haproxy; do
	command -v $bin >/dev/null || [ -x /usr/sbin/$bin ] || { echo "$bin not found: run make loadtest-deps" >&2; exit 1; }
done
export PATH="$PATH:/usr/sbin"

source loadtest/lib.sh
RESULTS="$WORK/results.tsv"
: >"$RESULTS"

if [ "$(nproc)" -ge 2 ]; then LOAD_CPU=0 SERVER_CPU=1 PIN=1; else PIN=0; fi
pin() { # cpu command...
	local cpu=$1
	shift
	if [ "$PIN" = 1 ]; then taskset -c "$cpu" "$@"; else "$@"; fi
}

UP=127.0.0.1:18000 HG=127.0.0.1:18080 NGX=127.0.0.1:18081 HAP=127.0.0.1:18082 RCV=127.0.0.1:18040

# start NAME COMMAND...: a server on the server CPU, one Go thread; sets
# LAST_PID to the server's own pid (taskset execs it).
start() {
	local name=$1
	shift
	if [ "$PIN" = 1 ]; then
		GOMAXPROCS=1 taskset -c "$SERVER_CPU" "$@" >"$WORK/$name.log" 2>&1 &
	else
		GOMAXPROCS=1 "$@" >"$WORK/$name.log" 2>&1 &
	fi
	LAST_PID=$!
	pids+=("$LAST_PID")
}

write_nginx() {
	mkdir -p "$WORK/nginx"
	cat >"$WORK/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $WORK/nginx;
	proxy_temp_path $WORK/nginx;
	upstream api { server $UP; keepalive 256; }
	server {
		listen $NGX;
		location / {
			proxy_pass http://api;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host \$host;
			proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
			proxy_buffering on;
		}
	}
}
CONF
}

write_haproxy() {
	cat >"$WORK/haproxy.cfg" <<CONF
global
	nbthread 1
	maxconn 8192
defaults
	mode http
	timeout connect 3s
	timeout client 60s
	timeout server 60s
	option http-keep-alive
	option forwardfor
frontend f
	bind $HAP
	default_backend b
backend b
	http-reuse always
	server up $UP maxconn 1024
CONF
}

ticks() {
	if [ ! -r "/proc/$1/stat" ]; then
		echo "a server died; its logs:" >&2
		tail -n 20 "$WORK"/*.log >&2
		exit 1
	fi
	awk '{print $14+$15}' "/proc/$1/stat"
}
machine() { awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print t, $5+$6}' /proc/stat; }
CLK=$(getconf CLK_TCK)

# report ARGS... <<PY: runs the Python on stdin with the receiver's
# /_report as r, the ARGS as args (the 3rd and 4th are machine() samples
# taken around the run) and busy, the machine's busy % between them.
report() {
	{
		cat <<PRE
import json, sys, urllib.request
args = sys.argv[1:]
r = json.load(urllib.request.urlopen("http://$RCV/_report"))
m0, m1 = [list(map(int, x.split())) for x in args[2:4]]
busy = round(100.0 * (1 - (m1[1] - m0[1]) / max(m1[0] - m0[0], 1)), 1)
PRE
		cat
	} >"$WORK/report.py"
	python3 "$WORK/report.py" "$@"
}

# run SCENARIO UPSTREAM TARGETNAME URL PID SCRIPT LOOP REP
run() {
	local scen=$1 upk=$2 name=$3 url=$4 pid=$5 script=$6 loop=$7 rep=$8
	local rate=0
	[ "$loop" = open ] && rate=$RATE
	local t0 t1 m0 m1
	t0=$(ticks "$pid")
	m0=$(machine)
	k6run "$scen/$upk/$name/$loop" --summary-export="$WORK/s.json" \
		-e TARGET="$url" -e RATE="$rate" -e VUS="$VUS" -e DURATION="$DUR" "$script"
	t1=$(ticks "$pid")
	m1=$(machine)
	python3 - "$WORK/s.json" "$scen" "$upk" "$name" "$loop" "$rep" "$t0" "$t1" "$CLK" "$m0" "$m1" >>"$RESULTS" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["metrics"]
scen, upk, name, loop, rep = sys.argv[2:7]
t0, t1, clk = int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])
m0, m1 = [list(map(int, x.split())) for x in sys.argv[10:12]]
n = s["http_reqs"]["count"]
d = s["http_req_duration"]
cpu_us = (t1 - t0) * 1e6 / clk / max(n, 1)
busy = 100.0 * (1 - (m1[1] - m0[1]) / max(m1[0] - m0[0], 1))
print("\t".join(map(str, [scen, upk, name, loop, rep, n, round(s["http_reqs"]["rate"], 1),
    round(d["med"], 3), round(d["p(95)"], 3), round(d["p(99)"], 3), round(cpu_us, 2), round(busy, 1),
    round(s["http_req_failed"].get("value", s["http_req_failed"].get("rate", 0)), 4)])))
PY
}

# k6run NAME ARGS...: k6 on the load CPU; on failure (thresholds or errors)
# show its output and stop.
k6run() {
	local name=$1
	shift
	pin "$LOAD_CPU" "$K6" run --quiet --no-color "$@" >"$WORK/k6.log" 2>&1 || {
		echo "k6 failed for $name (thresholds or errors):" >&2
		tail -20 "$WORK/k6.log" >&2
		exit 1
	}
}

make_bins() { go build -o bin/ ./cmd/... ; }
make_bins

echo "hookgate load test: $MODE ($REPS x $DUR), k6 on CPU ${LOAD_CPU:-any}, servers on CPU ${SERVER_CPU:-any}, open-loop $RATE req/s, closed-loop $VUS users" >&2

DELIVERIES="$WORK/deliveries.tsv" LATENCY="$WORK/latency.tsv" COALESCE="$WORK/coalesce.tsv"
: >"$DELIVERIES"; : >"$LATENCY"; : >"$COALESCE"

# start_delivery USERS DATADIR HOOKGATE_FLAGS...: the demo upstream with
# USERS users, the demo receiver, and hookgate allowed to reach it; sets
# HGPID.
start_delivery() {
	local users=$1 data=$2
	shift 2
	start upstream bin/demo-upstream -quiet -users "$users" -listen $UP
	start receiver bin/demo-receiver -quiet -listen $RCV
	wait_port $UP
	wait_port $RCV
	start hookgate bin/hookgate -listen $HG -ops-listen "" -upstream $UP -data-dir "$data" \
		-allow-cidrs 127.0.0.1/32 -log-level warn "$@"
	HGPID=$LAST_PID
	wait_port $HG
}

# Proxy reads, against a trivial upstream and one doing 1 ms of work.
scenario_reads() {
	for upk in trivial work; do
		upflags=(-trivial)
		[ "$upk" = work ] && upflags=(-service-time 1ms)
		start upstream bin/demo-upstream -quiet -listen $UP "${upflags[@]}"
		UPID=$LAST_PID
		wait_port $UP
		start hookgate bin/hookgate -listen $HG -ops-listen "" -upstream $UP -data-dir "$WORK/hg-$upk" -log-level warn
		HGPID=$LAST_PID
		write_nginx
		start nginx nginx -c "$WORK/nginx/nginx.conf"
		NGPID=$LAST_PID
		write_haproxy
		start haproxy haproxy -db -f "$WORK/haproxy.cfg"
		HAPID=$LAST_PID
		wait_port $HG
		wait_port $NGX
		wait_port $HAP
		for rep in $(seq 1 "$REPS"); do
			for loop in closed open; do
				run read "$upk" direct "http://$UP" "$UPID" loadtest/read.js "$loop" "$rep"
				run read "$upk" hookgate "http://$HG" "$HGPID" loadtest/read.js "$loop" "$rep"
				run read "$upk" nginx "http://$NGX" "$NGPID" loadtest/read.js "$loop" "$rep"
				run read "$upk" haproxy "http://$HAP" "$HAPID" loadtest/read.js "$loop" "$rep"
			done
		done
		stop_all
	done
}

# Mutations: events.create direct, and through hookgate with fsynced markers.
scenario_mutations() {
	start upstream bin/demo-upstream -quiet -listen $UP -trivial
	UPID=$LAST_PID
	wait_port $UP
	start hookgate bin/hookgate -listen $HG -ops-listen "" -upstream $UP -data-dir "$WORK/hg-mut" -durability sync -log-level warn
	HGPID=$LAST_PID
	wait_port $HG
	for rep in $(seq 1 "$REPS"); do
		run mutate trivial direct "http://$UP" "$UPID" loadtest/mutate.js closed "$rep"
		run mutate trivial hookgate-sync "http://$HG" "$HGPID" loadtest/mutate.js closed "$rep"
	done
	stop_all
}

# Deliveries: USERS users with one webhook each, one change per user, so
# nothing coalesces and every change is one delivery; next to the same
# number of notifications posted straight to the same receiver by
# hookgate's own delivery client (bin/raw-post), on the load CPU.
scenario_deliveries() {
	for n in $DELIVER_USERS; do
		for rep in $(seq 1 "$REPS"); do
			start_delivery "$n" "$WORK/hg-del-$n-$rep"
			t0=$(ticks "$HGPID")
			m0=$(machine)
			k6run "deliveries/$n" --summary-export="$WORK/d.json" \
				-e TARGET="http://$HG" -e RECEIVER="http://$RCV" -e USERS="$n" loadtest/deliver.js
			m1=$(machine)
			t1=$(ticks "$HGPID")
			pin "$LOAD_CPU" env GOMAXPROCS=1 bin/raw-post -url "http://$RCV/raw" -n "$n" -c 64 >"$WORK/r.json" || {
				echo "raw-post failed for $n" >&2
				exit 1
			}
			python3 - "$WORK/d.json" "$WORK/r.json" "$n" "$rep" "$t0" "$t1" "$CLK" "$m0" "$m1" >>"$DELIVERIES" <<-'PY'
	import json, sys
	d = json.load(open(sys.argv[1]))["metrics"]
	r = json.load(open(sys.argv[2]))
	n, rep, t0, t1, clk = int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
	m0, m1 = [list(map(int, x.split())) for x in sys.argv[8:10]]
	busy = 100.0 * (1 - (m1[1] - m0[1]) / max(m1[0] - m0[0], 1))
	per_s = d.get("deliveries_per_s", {}).get("avg", 0)
	print("\t".join(map(str, [n, rep, d["delivered"]["count"], round(per_s), round(r["rate"]),
	    round((t1 - t0) * 1e6 / clk / n, 1), round(busy, 1)])))
	PY
			stop_all
		done
	done
}

# Change -> notification latency for LAT_USERS idle webhooks at 100
# changes/s, all healthy, then next to 10 webhooks that time out
# (-delivery-timeout 2s, the receiver answers after 3 s) and 10 that
# answer 500, all changed once a second.
scenario_latency() {
	for rep in $(seq 1 "$REPS"); do
		for kind in healthy isolation; do
			bad=0
			[ "$kind" = isolation ] && bad=10
			start_delivery $((LAT_USERS + 20)) "$WORK/hg-lat-$kind-$rep" -delivery-timeout 2s
			m0=$(machine)
			k6run "latency/$kind" -e TARGET="http://$HG" -e RECEIVER="http://$RCV" -e USERS="$LAT_USERS" \
				-e SLOW=$bad -e FAILING=$bad loadtest/latency.js
			m1=$(machine)
			report "$kind" "$rep" "$m0" "$m1" >>"$LATENCY" <<-'PY'
	import statistics as st
	lat = r["latencyMs"]
	q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
	print("\t".join(map(str, [args[0], args[1], r["answered"], r["notified"], round(q(0.5), 3), round(q(0.95), 3),
	    round(q(0.99), 3), round(lat[-1] if lat else float("nan"), 3), busy])))
	PY
			stop_all
		done
	done
}

# Coalescing: CHANGES changes on one user, 10 webhooks with a 1 s window.
scenario_coalescing() {
	for rep in $(seq 1 "$REPS"); do
		start_delivery 1 "$WORK/hg-coal-$rep"
		t0=$(ticks "$HGPID")
		m0=$(machine)
		k6run coalesce --summary-export="$WORK/c.json" -e TARGET="http://$HG" -e RECEIVER="http://$RCV" \
			-e CHANGES="$CHANGES" -e HOOKS=10 -e WINDOW_MS=1000 loadtest/coalesce.js
		m1=$(machine)
		t1=$(ticks "$HGPID")
		report coalesce "$rep" "$m0" "$m1" "$WORK/c.json" "$t0" "$t1" "$CLK" >>"$COALESCE" <<-'PY'
	c = json.load(open(args[4]))["metrics"]
	n = c["iterations"]["count"]
	print("\t".join(map(str, [args[1], n, round(c["iterations"]["rate"]), r["keys"], r["minCount"], r["maxCount"],
	    round((r["maxCount"] - 1) / max(r["spanMs"] / 1000, 1e-9), 3), round(r["minGapMs"], 1),
	    round(min(r["lateMs"]) if r["lateMs"] else float("nan"), 1), r["answered"] - sum(1 for x in r["lateMs"] if x >= -5),
	    round((int(args[6]) - int(args[5])) * 1e6 / int(args[7]) / n, 1), busy])))
	PY
		stop_all
	done
}

for s in $SCENARIOS; do
	type "scenario_$s" >/dev/null 2>&1 || { echo "unknown scenario $s (reads mutations deliveries latency coalescing)" >&2; exit 2; }
done
for s in $SCENARIOS; do "scenario_$s"; done

python3 loadtest/tables.py "$RESULTS" "$DELIVERIES" "$LATENCY" "$COALESCE"
