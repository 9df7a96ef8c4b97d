// Baseline for deliver.js: the same number of notification POSTs straight
// from k6 to the demo receiver, 32 at a time.
import http from 'k6/http';
import { check } from 'k6';

const receiver = __ENV.RECEIVER || 'http://127.0.0.1:4000';
const n = parseInt(__ENV.USERS || '1000', 10);
const body = JSON.stringify({ messages: ['eventsChanged'], meta: { apiVersion: '1.9.3', serverTime: 1795436682.278, serial: 'hookgate' } });

export const options = {
  discardResponseBodies: true,
  scenarios: { raw: { executor: 'shared-iterations', vus: 32, iterations: n, maxDuration: '300s' } },
  thresholds: { http_req_failed: ['rate<0.01'] },
};

export default function () {
  const r = http.post(receiver + '/raw', body, { headers: { 'Content-Type': 'application/json' } });
  check(r, { 'status 200': (x) => x.status === 200 });
}
