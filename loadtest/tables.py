"""Prints the load test's tables from the rows run.sh collected.

    python3 loadtest/tables.py RESULTS DELIVERIES LATENCY COALESCE

Each argument is a tab-separated file, one row per repetition; a table
whose file is empty is left out. Figures are medians over the
repetitions; ±% is the spread of one column, (max - min) / median.
"""
import statistics as st
import sys


def read(path):
    return [line.rstrip("\n").split("\t") for line in open(path) if line.strip()]


def col(rs, i):
    return [float(r[i]) for r in rs]


def med(rs, i):
    return st.median(col(rs, i))


def spread(rs, i):
    v = col(rs, i)
    return (max(v) - min(v)) / max(st.median(v), 1e-9) * 100 if len(v) > 1 else 0.0


def group(rows, key):
    out = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out


def reads(rows):
    groups = group(rows, lambda r: (r[0], r[1], r[3], r[2]))
    print(f"{'scenario':8} {'upstream':8} {'loop':6} {'target':14} {'req/s':>9} {'±%':>5} {'x direct':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'CPU µs/req':>10} {'busy %':>6} {'fail':>6} reps")
    order = ["direct", "hookgate", "hookgate-sync", "nginx", "haproxy"]
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2], order.index(k[3]) if k[3] in order else 9)):
        rs = groups[key]
        base = groups.get((key[0], key[1], key[2], "direct"))
        ratio = med(rs, 6) / med(base, 6) if base else float("nan")
        print(f"{key[0]:8} {key[1]:8} {key[2]:6} {key[3]:14} {med(rs,6):9.0f} {spread(rs,6):5.1f} {ratio:8.2f} {med(rs,7):7.2f} {med(rs,8):7.2f} {med(rs,9):7.2f} {med(rs,10):10.1f} {med(rs,11):6.1f} {med(rs,12):6.3f} {len(rs)}")
    print()
    print("req/s, latency, CPU and busy are medians over the repetitions; ±% is the req/s spread (max-min)/median;")
    print("CPU µs/req is the server process's own CPU time (utime+stime) per request; busy % is the whole machine during the run;")
    print("open-loop runs hold a fixed arrival rate, so their req/s equal the rate: compare their latency and CPU.")


def deliveries(rows):
    print(f"{'webhooks':>8} {'delivered':>9} {'deliveries/s':>12} {'±%':>5} {'raw client/s':>12} {'x raw':>6} {'hookgate CPU µs/delivery':>24} {'busy %':>6} reps")
    by = group(rows, lambda r: int(r[0]))
    for n in sorted(by):
        rs = by[n]
        print(f"{n:8d} {int(min(col(rs, 2))):9d} {med(rs,3):12.0f} {spread(rs,3):5.1f} {med(rs,4):12.0f} {med(rs,3)/max(med(rs,4),1):6.2f} {med(rs,5):24.1f} {med(rs,6):6.1f} {len(rs)}")
    print()
    print("deliveries/s: notifications per second at the receiver, first to last arrival, one change per user (no coalescing);")
    print("±% is its spread over the repetitions; raw client/s: hookgate's own delivery client (bin/raw-post, 64 in flight,")
    print("one core) posting the same count straight to the receiver;")
    print("CPU per delivery includes proxying the change and creating the webhooks in setup; busy % is the whole machine.")


def latency(rows):
    print(f"{'latency':10} {'changes':>7} {'notified':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'p99 ±%':>6} {'busy %':>6} reps")
    by = group(rows, lambda r: r[0])
    for k in ("healthy", "isolation"):
        rs = by.get(k, [])
        if rs:
            print(f"{k:10} {int(min(col(rs, 2))):7d} {int(min(col(rs, 3))):8d} {med(rs,4):7.3f} {med(rs,5):7.3f} {med(rs,6):7.3f} {med(rs,7):7.3f} {spread(rs,6):6.1f} {med(rs,8):6.1f} {len(rs)}")
    print()
    print("latency: from the change's answer (as k6 saw it) to the notification's arrival at the receiver, per webhook,")
    print("1 change per idle webhook at 100 changes/s; isolation adds 10 webhooks timing out and 10 answering 500, changed")
    print("every second. changes and notified are the minimum over the repetitions (notified < changes fails the run).")


def coalescing(rs):
    print(f"{'coalescing':10} {'changes':>7} {'changes/s':>9} {'±%':>5} {'webhooks':>8} {'POSTs min-max':>13} {'POSTs/webhook/s':>15} {'min gap ms':>10} {'last after ms':>13} {'missing':>7} {'CPU µs/change':>13} {'busy %':>6} reps")
    print(f"{'1 user':10} {int(med(rs,1)):7d} {med(rs,2):9.0f} {spread(rs,2):5.1f} {int(med(rs,3)):8d} {int(min(col(rs, 4))):>6d}-{int(max(col(rs, 5))):<6d} {max(col(rs, 6)):15.3f} {min(col(rs, 7)):10.1f} {min(col(rs, 8)):13.1f} {int(max(col(rs, 9))):7d} {med(rs,10):13.1f} {med(rs,11):6.1f} {len(rs)}")
    print()
    print("coalescing: 10 webhooks with minIntervalMs 1000 on one user, every change answered 2xx; POSTs/webhook/s is the")
    print("highest rate any webhook saw (notifications after the first, over the first-to-last span); min gap is the")
    print("shortest time between two notifications to one webhook; last after is, over the webhooks, the least time")
    print("from the last change's answer to that webhook's last notification (negative would mean a change left")
    print("unnotified); missing counts webhooks without one.")


def main(paths):
    first = True
    for path, table in zip(paths, (reads, deliveries, latency, coalescing)):
        rows = read(path)
        if not rows:
            continue
        if not first:
            print()
        table(rows)
        first = False


if __name__ == "__main__":
    main(sys.argv[1:5])
