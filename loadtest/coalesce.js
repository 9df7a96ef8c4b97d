// Coalescing: CHANGES changes on one user (user00001) with HOOKS webhooks
// whose minIntervalMs is WINDOW_MS. Each webhook must get at most one
// notification per window, and a notification after the last change:
// none is missing. VUS users post the changes closed-loop; each user, on
// its last change, tells the receiver when it was answered (the receiver
// keeps the latest), and teardown waits for the trailing windows and
// checks the receiver's /_report.
import http from 'k6/http';
import exec from 'k6/execution';
import { check, sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { edge, answeredAt } from './common.js';

const target = __ENV.TARGET || 'http://127.0.0.1:8080';
const receiver = __ENV.RECEIVER || 'http://127.0.0.1:4000';
const changes = parseInt(__ENV.CHANGES || '100000', 10);
const hooks = parseInt(__ENV.HOOKS || '10', 10);
const windowMs = parseInt(__ENV.WINDOW_MS || '1000', 10);
const vus = parseInt(__ENV.VUS || '32', 10);
const perVU = Math.ceil(changes / vus);

const notifiedHooks = new Counter('notified_hooks');
const missing = new Counter('missing');
const minGap = new Trend('min_gap_ms');
const perHookPerS = new Trend('posts_per_hook_per_s');

export const options = {
  setupTimeout: '60s',
  teardownTimeout: '60s',
  discardResponseBodies: true,
  scenarios: { changes: { executor: 'per-vu-iterations', vus, iterations: perVU, maxDuration: '600s' } },
  thresholds: {
    'http_req_failed{kind:change}': ['rate<0.001'],
    checks: ['rate>0.999'],
    missing: ['count<1'],
    notified_hooks: [`count>=${hooks}`],
    // At most one notification per window; arrivals may bunch by a few ms
    // when one delivery takes longer than the next.
    min_gap_ms: [`min>=${windowMs * 0.95}`],
  },
};

const keys = Array.from({ length: hooks }, (_, k) => `u=w${k + 1}`).join('&');
const auth = { headers: { Authorization: 'user00001-app', 'Content-Type': 'application/json' } };

export function setup() {
  for (let k = 1; k <= hooks; k++) {
    const r = http.post(`${target}/user00001/webhooks`,
      JSON.stringify({ url: `${receiver}/c?u=w${k}`, minIntervalMs: windowMs }),
      Object.assign({ tags: { kind: 'setup' }, responseType: 'text' }, auth));
    if (r.status !== 201) throw new Error(`creating a webhook: ${r.status} ${r.body}`);
  }
}


const event = JSON.stringify({ streamIds: ['diary'], type: 'note/txt' });

export default function () {
  const last = exec.vu.iterationInScenario === perVU - 1;
  const start = last ? edge() : 0;
  const r = http.post(`${target}/user00001/events`, event, Object.assign({ tags: { kind: 'change' } }, auth));
  check(r, { 'event created': (x) => x.status === 201 });
  if (last) {
    const answered = answeredAt(start, r);
    http.post(`${receiver}/_answered?${keys}&t=${answered}`, null, { tags: { kind: 'mark' } });
  }
}

export function teardown() {
  // The last change is notified at most one window after it was answered.
  sleep(windowMs / 1000 + 1);
  const rep = http.get(receiver + '/_report', { tags: { kind: 'report' }, responseType: 'text' }).json();
  // A notification that covers the last change arrives after its answer;
  // one that raced the answer may arrive a hair before.
  let late = 0;
  for (const ms of rep.lateMs || []) if (ms >= -5) late++;
  notifiedHooks.add(late);
  missing.add(rep.answered - late);
  minGap.add(rep.minGapMs);
  if (rep.spanMs > 0) perHookPerS.add((rep.maxCount - 1) / (rep.spanMs / 1000));
}
