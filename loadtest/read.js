// Proxy read load: GET TARGET+PATH_ with a token (see common.js for the
// loop, rate and thresholds).
import http from 'k6/http';
import { check } from 'k6';
import { loadOptions, target } from './common.js';

const path = __ENV.PATH_ || '/alice/events?limit=20';
const params = { headers: { Authorization: 'alice-app' } };

export const options = loadOptions();

export default function () {
  const r = http.get(target + path, params);
  check(r, { 'status 200': (x) => x.status === 200 });
}
