// Change -> notification latency for idle webhooks, and isolation.
//
// Setup gives each of USERS users (user00001 on, from `demo-upstream
// -users`) one webhook pointing at the demo receiver. The load changes
// each user once, at RATE changes/s, so every webhook is idle when its
// change comes. After each answer the script tells the receiver when the
// change was answered (POST /_answered); the receiver notes when the
// notification arrived, and GET /_report gives the latencies.
//
// Isolation: with SLOW and FAILING > 0, as many more users get webhooks
// that answer after SLOW_MS (past hookgate's -delivery-timeout) or answer
// 500, and a second scenario changes each of them once a second for the
// whole run, so they keep failing and retrying next to the healthy ones.
//
// Timing: Date.now() counts whole milliseconds, so each change waits for
// the millisecond to turn over and starts on its edge; the answer time is
// that edge plus k6's own timings of the request, good to some tens of µs.
import http from 'k6/http';
import exec from 'k6/execution';
import { check, sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { edge, answeredAt } from './common.js';

const target = __ENV.TARGET || 'http://127.0.0.1:8080';
const receiver = __ENV.RECEIVER || 'http://127.0.0.1:4000';
const users = parseInt(__ENV.USERS || '1000', 10);
const rate = parseInt(__ENV.RATE || '100', 10);
const slow = parseInt(__ENV.SLOW || '0', 10);
const failing = parseInt(__ENV.FAILING || '0', 10);
const slowMs = parseInt(__ENV.SLOW_MS || '3000', 10);
const seconds = Math.ceil(users / rate);

const latency = new Trend('notification_ms');
const notified = new Counter('notified');
const missing = new Counter('missing');

const scenarios = {
  changes: {
    executor: 'constant-arrival-rate', exec: 'change', rate, timeUnit: '1s', duration: `${seconds}s`,
    preAllocatedVUs: 16, maxVUs: 64,
  },
};
if (slow + failing > 0) {
  scenarios.bad = {
    executor: 'constant-arrival-rate', exec: 'changeBad', rate: slow + failing, timeUnit: '1s',
    duration: `${seconds}s`, preAllocatedVUs: 4, maxVUs: 16,
  };
}

export const options = {
  setupTimeout: '300s',
  teardownTimeout: '120s',
  summaryTrendStats: ['avg', 'min', 'med', 'p(95)', 'p(99)', 'max'],
  scenarios,
  thresholds: {
    'http_req_failed{kind:change}': ['rate<0.01'],
    checks: ['rate>0.99'],
    missing: ['count<1'],
    notified: ['count>0'],
    // Loose, for noisy machines: a path that works answers in about a
    // millisecond.
    notification_ms: ['p(95)<1000'],
  },
};

const name = (i) => 'user' + String(i).padStart(5, '0');
const auth = (i) => ({ headers: { Authorization: `${name(i)}-app`, 'Content-Type': 'application/json' }, tags: { kind: 'setup' } });

export function setup() {
  const all = [];
  for (let i = 1; i <= users + slow + failing; i++) {
    let url = `${receiver}/l?u=${i}`;
    const body = { url };
    if (i > users) {
      body.url = i <= users + slow ? `${receiver}/l?u=slow${i}&_delayMs=${slowMs}` : `${receiver}/l?u=failing${i}&_status=500`;
      body.maxRetries = 20; // keep failing for the whole run instead of turning inactive
      body.minIntervalMs = 1000;
    }
    all.push(['POST', `${target}/${name(i)}/webhooks`, JSON.stringify(body), auth(i)]);
  }
  for (let k = 0; k < all.length; k += 100) {
    for (const r of http.batch(all.slice(k, k + 100))) {
      if (r.status !== 201) throw new Error(`creating a webhook: ${r.status} ${r.body}`);
    }
  }
}


const event = JSON.stringify({ streamIds: ['diary'], type: 'note/txt' });

export function change() {
  const i = exec.scenario.iterationInTest + 1;
  if (i > users) return;
  const start = edge();
  const r = http.post(`${target}/${name(i)}/events`, event,
    { headers: { Authorization: `${name(i)}-app`, 'Content-Type': 'application/json' }, tags: { kind: 'change' } });
  const answered = answeredAt(start, r);
  if (!check(r, { 'event created': (x) => x.status === 201 })) return;
  http.post(`${receiver}/_answered?u=${i}&t=${answered}`, null, { tags: { kind: 'mark' } });
}

export function changeBad() {
  const i = users + 1 + (exec.scenario.iterationInTest % (slow + failing));
  const r = http.post(`${target}/${name(i)}/events`, event,
    { headers: { Authorization: `${name(i)}-app`, 'Content-Type': 'application/json' }, tags: { kind: 'change' } });
  check(r, { 'event created': (x) => x.status === 201 });
}

export function teardown() {
  let rep = {};
  for (let t = 0; t < 200; t++) {
    rep = http.get(receiver + '/_report', { tags: { kind: 'report' } }).json();
    if (rep.answered > 0 && rep.missing === 0) break;
    sleep(0.1);
  }
  for (const ms of rep.latencyMs || []) latency.add(ms);
  notified.add(rep.notified || 0);
  missing.add(rep.missing || 0);
}
