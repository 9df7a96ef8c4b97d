// Mutation load: POST events.create to TARGET, closed-loop with VUS users
// (or open-loop at RATE/s). Through hookgate every 201 means a change
// marker was written (and, with -durability=sync, fsynced) first.
import http from 'k6/http';
import { check } from 'k6';

const target = __ENV.TARGET || 'http://127.0.0.1:8080';
const rate = parseInt(__ENV.RATE || '0', 10);
const vus = parseInt(__ENV.VUS || '32', 10);
const duration = __ENV.DURATION || '10s';

export const options = {
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

const body = JSON.stringify({ streamIds: ['diary'], type: 'note/txt', content: 'load' });
const params = { headers: { Authorization: 'alice-app', 'Content-Type': 'application/json' } };

export default function () {
  const r = http.post(target + '/alice/events', body, params);
  check(r, { 'status 201': (x) => x.status === 201 });
}
