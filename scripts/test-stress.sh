#!/usr/bin/env bash
# test-stress.sh RUNS [B_TMPDIR]: clones HEAD twice into fresh folders, a
# and b, and runs `make test` in both at the same time, RUNS times in a
# row, so that every run shares the 2 cores with another full run. With
# B_TMPDIR, b's tests create their temporary folders (their Badger
# directories) there, e.g. on the slow-fsync mount of scripts/slowdisk.sh.
# Prints one line per run with both results and times, keeps the logs in
# the work folder, and exits 1 if any run failed.
set -uo pipefail
runs=${1:?usage: test-stress.sh RUNS [B_TMPDIR]}
data=${2:-}
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
rev=$(git -C "$repo" rev-parse --short HEAD)
work=$(mktemp -d /tmp/hookgate-stress.XXXXXX)
for side in a b; do git clone -q "$repo" "$work/$side"; done
echo "test-stress: $runs runs of two make test at once, commit $rev, logs in $work${data:+, b with TMPDIR=$data}"
failed=0
for i in $(seq 1 "$runs"); do
	declare -A took rc
	for side in a b; do
		(
			start=$(date +%s)
			cd "$work/$side" && if [ "$side" = b ] && [ -n "$data" ]; then TMPDIR="$data" make test; else make test; fi >"$work/run$i-$side.log" 2>&1
			code=$?
			echo "$code $(($(date +%s) - start))" >"$work/run$i-$side.rc"
		) &
	done
	wait
	line="run $i:"
	for side in a b; do
		read -r code secs <"$work/run$i-$side.rc"
		word=PASS
		if [ "$code" -ne 0 ]; then word=FAIL; failed=$((failed + 1)); fi
		line+=" $side $word ${secs}s"
	done
	echo "$line"
done
echo "test-stress: $((runs * 2 - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
