# What smoke.sh uses (sourced, from the repository root): k6, a work
# directory, the processes started, their cleanup on exit, and waiting
# for a port. The load test runner itself is the Go program of this
# directory (go run ./loadtest).

K6=${K6:-$(command -v k6 || echo "$HOME/go/bin/k6")}
[ -x "$K6" ] || { echo "k6 not found: run make k6" >&2; exit 1; }

WORK=$(mktemp -d)
pids=()

# stop_all stops every process started so far.
stop_all() {
	for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	pids=()
}
cleanup() {
	stop_all
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# wait_port HOST:PORT waits up to 5 s for a listener, else shows the logs
# in $WORK and exits.
wait_port() {
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "nothing listens on $1; logs:" >&2
	tail -n 20 "$WORK"/*.log >&2
	exit 1
}
