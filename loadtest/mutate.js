// Mutation load: POST events.create to TARGET (see common.js for the loop,
// rate and thresholds). Through hookgate every 201 means a change marker
// was written (and, with -durability=sync, fsynced) first.
import http from 'k6/http';
import { check } from 'k6';
import { loadOptions, target } from './common.js';

const body = JSON.stringify({ streamIds: ['diary'], type: 'note/txt', content: 'load' });
const params = { headers: { Authorization: 'alice-app', 'Content-Type': 'application/json' } };

export const options = loadOptions();

export default function () {
  const r = http.post(target + '/alice/events', body, params);
  check(r, { 'status 201': (x) => x.status === 201 });
}
