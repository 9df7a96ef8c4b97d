// A Pryv-like upstream for hookgate's tests: a real Node HTTP server,
// with Node's own keep-alive handling. KEEPALIVE_MS sets its
// keepAliveTimeout (Node's default, 5000, otherwise).
//
// It prints one line per event on stdout, which the test reads:
//   listening PORT         once it listens
//   open N                 when a connection opens or closes: N are open
//   request METHOD PATH    once a request is answered
// It exits when its stdin closes.
'use strict';
const http = require('http');

let open = 0;
let served = 0;
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    served++;
    const path = req.url.split('?')[0];
    const resource = path.split('/')[2] || '';
    let status = 200;
    const out = {};
    if (req.method === 'POST' && resource === 'events') {
      status = 201;
      out.event = { id: 'e' + served, streamIds: ['s'], type: 'note/txt', content: body.length };
    }
    out.meta = { apiVersion: '2.0.0', serverTime: Date.now() / 1000, serial: '2019061301' };
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
