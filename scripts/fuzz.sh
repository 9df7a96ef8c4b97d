#!/usr/bin/env bash
# fuzz.sh TIME PKG TARGET...: runs each fuzz target of PKG for TIME.
#
# Go 1.26's fuzz coordinator can fail a target with a bare "context
# deadline exceeded" right at the end of -fuzztime, with no failing input
# (golang/go#75804, fixed in Go 1.27). Such a run is reported and counted
# as passed; any other failure, or a failing input written to testdata,
# fails.
set -uo pipefail
time=$1 pkg=$2
shift 2
status=0
for target in "$@"; do
	dir="$pkg/testdata/fuzz/$target"
	before=$(ls "$dir" 2>/dev/null | wc -l)
	out=$(mktemp)
	go test -run '^$' -timeout 10m -fuzz "^${target}\$" -fuzztime "$time" "$pkg" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	after=$(ls "$dir" 2>/dev/null | wc -l)
	if [ "$rc" -ne 0 ]; then
		if [ "$after" -eq "$before" ] && grep -q '^    context deadline exceeded$' "$out" && [ "$(grep -c -- '--- FAIL' "$out")" -eq 1 ]; then
			echo "fuzz.sh: $target hit Go's end-of-fuzztime race (golang/go#75804), no failing input: counted as passed" >&2
		else
			status=1
		fi
	fi
	rm -f "$out"
done
exit $status
