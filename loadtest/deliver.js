// Delivery throughput, for trying by hand (the load test runner sends
// these changes with vegeta, which leaves its core more headroom): setup
// creates one webhook per user (USERS users, user00001 on, from
// `demo-upstream -users`), pointing at the demo receiver at /d?u=I (skipped
// with SKIP_SETUP set, when they exist already); the load makes one change
// per user, so nothing coalesces and
// every change is one delivery; teardown waits for the receiver to count
// them all and records deliveries per second, from its first to its last
// arrival.
import http from 'k6/http';
import exec from 'k6/execution';
import { check, sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';

const target = __ENV.TARGET || 'http://127.0.0.1:8080';
const receiver = __ENV.RECEIVER || 'http://127.0.0.1:4000';
const users = parseInt(__ENV.USERS || '1000', 10);
const delivered = new Counter('delivered');
const perSecond = new Trend('deliveries_per_s');

export const options = {
  setupTimeout: '300s',
  teardownTimeout: '300s',
  scenarios: { changes: { executor: 'shared-iterations', vus: 32, iterations: users, maxDuration: '300s' } },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    delivered: [`count>=${users}`],
  },
};

const name = (i) => 'user' + String(i).padStart(5, '0');
const headers = (i) => ({ headers: { Authorization: `${name(i)}-app`, 'Content-Type': 'application/json' } });

export function setup() {
  if (__ENV.SKIP_SETUP) return;
  const all = [];
  for (let i = 1; i <= users; i++) {
    all.push(['POST', `${target}/${name(i)}/webhooks`, JSON.stringify({ url: `${receiver}/d?u=${i}` }), headers(i)]);
  }
  for (let k = 0; k < all.length; k += 100) {
    for (const r of http.batch(all.slice(k, k + 100))) {
      if (r.status !== 201) throw new Error(`creating a webhook: ${r.status} ${r.body}`);
    }
  }
}

export default function () {
  const i = exec.scenario.iterationInTest + 1;
  const r = http.post(`${target}/${name(i)}/events`, JSON.stringify({ streamIds: ['diary'], type: 'note/txt' }), headers(i));
  check(r, { 'event created': (x) => x.status === 201 });
}

export function teardown() {
  let s = {};
  for (let t = 0; t < 600; t++) {
    s = http.get(receiver + '/_stats').json();
    if (((s.messages || {}).eventsChanged || 0) >= users) break;
    sleep(0.1);
  }
  const n = (s.messages || {}).eventsChanged || 0;
  delivered.add(n);
  if (n > 0 && s.lastMs > s.firstMs) perSecond.add(n / ((s.lastMs - s.firstMs) / 1000));
}
