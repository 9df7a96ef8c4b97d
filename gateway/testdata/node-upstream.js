// A Pryv-like upstream for hookgate's tests: a real Node HTTP server,
// with Node's own HTTP parsing and keep-alive handling, and the CORS
// middleware of Pryv.io's API server. KEEPALIVE_MS sets its
// keepAliveTimeout (Node's default, 5000, otherwise).
//
// Routes, under /{username}:
//   GET  /access-info   tokens alice-app (app), alice-personal (personal),
//                       alice-shared (shared), alice-diary (app, reads
//                       only the diary stream); any other: 403
//   GET  /streams       the stream tree the token can read: diary
//                       (diary-work below it) and health (health-mass)
//   POST /events        201 {"event": {...}}
//   POST /streams       201 {"stream": {...}}
//   POST /              a batch of events.create and streams.create
//   anything else       200 {}
// GET /reg/service/info answers the service info. Every answer carries
// meta {apiVersion: 2.0.0, serial: 2019061301}.
//
// It prints one line per event on stdout, which the test reads:
//   listening PORT         once it listens
//   open N                 when a connection opens or closes: N are open
//   request METHOD PATH    once a request is answered
// It exits when its stdin closes.
'use strict';
const http = require('http');

const meta = () => ({ apiVersion: '2.0.0', serverTime: Date.now() / 1000, serial: '2019061301' });
const accesses = {
  'alice-app': { id: 'alice-app-id', type: 'app', name: 'app' },
  'alice-personal': { id: 'alice-personal-id', type: 'personal', name: 'personal' },
  'alice-shared': { id: 'alice-shared-id', type: 'shared', name: 'shared' },
  'alice-diary': { id: 'alice-diary-id', type: 'app', name: 'diary', permissions: [{ streamId: 'diary', level: 'read' }] },
};

const stream = (id, parentId, children) => ({ id, name: id, parentId, children });
const tree = [
  stream('diary', null, [stream('diary-work', 'diary', [])]),
  stream('health', null, [stream('health-mass', 'health', [])]),
];

let open = 0;
let served = 0;

// cors is Pryv.io's middleware: every answer, and OPTIONS at once.
function cors(req, res) {
  res.setHeader('Access-Control-Allow-Origin', req.headers.origin || '*');
  res.setHeader('Access-Control-Allow-Methods', req.headers['access-control-request-method'] || 'POST, GET, PUT, DELETE, OPTIONS');
  res.setHeader('Access-Control-Allow-Headers', req.headers['access-control-request-headers'] || 'Authorization, Content-Type');
  res.setHeader('Access-Control-Expose-Headers', 'API-Version');
  res.setHeader('Access-Control-Max-Age', (60 * 60 * 24 * 365).toString());
  res.setHeader('Access-Control-Allow-Credentials', 'true');
  res.setHeader('API-Version', '2.0.0');
}

function call(method, params) {
  served++;
  switch (method) {
    case 'events.create':
      if (!params || !Array.isArray(params.streamIds) || typeof params.type !== 'string') {
        return { error: { id: 'invalid-parameters-format', message: 'streamIds and type are required' } };
      }
      return { event: Object.assign({ id: 'e' + served, time: Date.now() / 1000 }, params) };
    case 'streams.create':
      return { stream: Object.assign({ id: 's' + served }, params) };
    default:
      return { error: { id: 'unknown-method', message: 'unknown method ' + method } };
  }
}

const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    const path = req.url.split('?')[0];
    const parts = path.split('/');
    const resource = parts[2] || '';
    let status = 200;
    let out = {};
    let parsed;
    try { parsed = body ? JSON.parse(body) : undefined; } catch (e) { parsed = e; }
    cors(req, res);
    if (req.method === 'OPTIONS') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('OK');
      process.stdout.write(`request ${req.method} ${path}\n`);
      return;
    }
    if (path === '/reg/service/info') {
      out = { name: 'node-upstream', api: 'http://127.0.0.1/{username}/' };
    } else if (parsed instanceof Error) {
      status = 400;
      out = { error: { id: 'invalid-request-structure', message: 'malformed JSON' } };
    } else if (req.method === 'GET' && resource === 'access-info') {
      const a = accesses[req.headers.authorization];
      if (a) {
        out = Object.assign({ permissions: [{ streamId: '*', level: 'manage' }] }, a);
      } else {
        status = 403;
        out = { error: { id: 'invalid-access-token', message: 'Cannot find access from token.' } };
      }
    } else if (req.method === 'GET' && resource === 'streams') {
      const a = accesses[req.headers.authorization];
      if (a) {
        out = { streams: a.permissions ? tree.filter((s) => a.permissions.some((p) => p.streamId === s.id)) : tree };
      } else {
        status = 403;
        out = { error: { id: 'invalid-access-token', message: 'Cannot find access from token.' } };
      }
    } else if (req.method === 'POST' && resource === 'events') {
      out = call('events.create', parsed);
      status = out.error ? 400 : 201;
    } else if (req.method === 'POST' && resource === 'streams') {
      out = call('streams.create', parsed);
      status = out.error ? 400 : 201;
    } else if (req.method === 'POST' && resource === '' && Array.isArray(parsed)) {
      out = { results: parsed.map((c) => call(c.method, c.params)) };
    }
    out.meta = meta();
    const b = JSON.stringify(out);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(b) });
    res.end(b);
    process.stdout.write(`request ${req.method} ${path}\n`);
  });
});
server.keepAliveTimeout = Number(process.env.KEEPALIVE_MS || 5000);
server.on('connection', (s) => {
  open++;
  process.stdout.write(`open ${open}\n`);
  s.on('close', () => {
    open--;
    process.stdout.write(`open ${open}\n`);
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
