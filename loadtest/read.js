// Proxy read load: GET TARGET+PATH with a token, either open-loop at RATE
// requests per second (constant-arrival-rate) or, with RATE=0, closed-loop
// with VUS virtual users. Thresholds fail the run when requests fail.
import http from 'k6/http';
import { check } from 'k6';

const target = __ENV.TARGET || 'http://127.0.0.1:8080';
const path = __ENV.PATH_ || '/alice/events?limit=20';
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

const params = { headers: { Authorization: 'alice-app' } };

export default function () {
  const r = http.get(target + path, params);
  check(r, { 'status 200': (x) => x.status === 200 });
}
