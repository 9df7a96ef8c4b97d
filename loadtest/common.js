// Options shared by the load scripts: open-loop at RATE requests/s
// (constant-arrival-rate) or, with RATE=0, closed-loop with VUS users, for
// DURATION; thresholds fail a run with failed requests or checks.
export const target = __ENV.TARGET || 'http://127.0.0.1:8080';

export function loadOptions() {
  const rate = parseInt(__ENV.RATE || '0', 10);
  const vus = parseInt(__ENV.VUS || '32', 10);
  const duration = __ENV.DURATION || '10s';
  return {
    discardResponseBodies: true,
    summaryTrendStats: ['avg', 'min', 'med', 'p(95)', 'p(99)', 'max'],
    scenarios: rate > 0
      ? { open: { executor: 'constant-arrival-rate', rate, timeUnit: '1s', duration, preAllocatedVUs: vus, maxVUs: vus * 4 } }
      : { closed: { executor: 'constant-vus', vus, duration } },
    thresholds: {
      http_req_failed: ['rate<0.01'],
      checks: ['rate>0.99'],
    },
  };
}

// edge waits for Date.now(), which counts whole milliseconds, to turn
// over, and returns the new millisecond: a request sent right after
// starts on a known edge.
export function edge() {
  const t0 = Date.now();
  let t = t0;
  while (t === t0) t = Date.now();
  return t;
}

// answeredAt returns, in Unix µs, when the answer r to a request started
// at the millisecond edge start had arrived, from k6's own timings.
export function answeredAt(start, r) {
  const t = r.timings;
  return Math.round((start + t.blocked + t.connecting + t.tls_handshaking + t.sending + t.waiting + t.receiving) * 1000);
}
