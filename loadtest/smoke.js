// Smoke run of the whole path: setup creates a webhook pointing at the
// demo receiver; the load creates events through hookgate; teardown asks
// the receiver whether eventsChanged arrived. Loose latency thresholds
// (noisy machines) but a broken path fails: failed requests, or no
// notification at all.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';

const target = __ENV.TARGET || 'http://127.0.0.1:8080';
const receiver = __ENV.RECEIVER || 'http://127.0.0.1:4000';
const notified = new Counter('notified');

export const options = {
  discardResponseBodies: false,
  scenarios: { changes: { executor: 'constant-vus', vus: 8, duration: __ENV.DURATION || '20s' } },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    'http_req_duration{kind:change}': ['p(95)<1000'],
    checks: ['rate>0.99'],
    notified: ['count>0'],
  },
};

const json = { headers: { Authorization: 'alice-app', 'Content-Type': 'application/json' } };

export function setup() {
  const r = http.post(target + '/alice/webhooks', JSON.stringify({ url: receiver + '/smoke?user=alice' }), json);
  check(r, { 'webhook created': (x) => x.status === 201 || x.status === 409 });
}

export default function () {
  const r = http.post(target + '/alice/events',
    JSON.stringify({ streamIds: ['diary'], type: 'note/txt', content: 'smoke' }),
    Object.assign({ tags: { kind: 'change' } }, json));
  check(r, { 'event created': (x) => x.status === 201 });
  sleep(0.01);
}

export function teardown() {
  // The last window's trailing edge comes at most minIntervalMs later.
  for (let i = 0; i < 40; i++) {
    const s = http.get(receiver + '/_stats');
    const m = (s.json('messages') || {});
    if ((m.eventsChanged || 0) > 0) {
      notified.add(m.eventsChanged);
      return;
    }
    sleep(0.25);
  }
}
