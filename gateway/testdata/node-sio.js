// A Pryv-like socket.io peer for hookgate's tests, on the real npm
// socket.io server and socket.io-client (testdata/package.json).
//
// MODE=server (the default): an HTTP server with
//   GET /{user}/access-info   alice-app (app), as node-upstream.js
//   socket.io, a namespace per user (/{user}) whose methods answer with
//   an acknowledgement, as Pryv's do: (err, result)
//     events.create   {event} or, with params.fail, an error
//     events.get      {events: []}
//     callBatch       {results: [...]} of the calls above
// It prints "listening PORT".
//
// MODE=client URL=http://host/{user} TRANSPORT=websocket|polling:
// connects, then calls events.create (acknowledged), events.create with
// fail (an error), events.get, a callBatch of a create and a get, and
// BURST events.create at once; it prints one JSON line of what the
// acknowledgements said, and exits.
//
// Both exit when stdin closes.
'use strict';
const http = require('http');

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

const meta = () => ({ apiVersion: '2.0.0', serverTime: Date.now() / 1000, serial: '2019061301' });

if ((process.env.MODE || 'server') === 'server') {
  const { Server } = require('socket.io');
  let n = 0;
  const server = http.createServer((req, res) => {
    const parts = req.url.split('?')[0].split('/');
    let status = 404;
    let out = { error: { id: 'unknown-resource', message: 'no such route' } };
    if (req.method === 'GET' && parts[2] === 'access-info' && req.headers.authorization === 'alice-app') {
      status = 200;
      out = { id: 'alice-app-id', type: 'app', name: 'app', permissions: [{ streamId: '*', level: 'manage' }] };
    }
    out.meta = meta();
    const b = JSON.stringify(out);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(b) });
    res.end(b);
  });
  const io = new Server(server);
  const call = (method, params) => {
    switch (method) {
      case 'events.create':
        if (params && params.fail) return [{ id: 'invalid-parameters-format', message: 'refused on purpose' }];
        n++;
        return [null, { event: { id: 'e' + n, streamIds: params.streamIds, type: params.type } }];
      case 'events.get':
        return [null, { events: [] }];
      default:
        return [{ id: 'unknown-method', message: method }];
    }
  };
  io.of(/^\/[a-z0-9-]+$/).on('connection', (socket) => {
    for (const method of ['events.create', 'events.get']) {
      socket.on(method, (params, ack) => ack(...call(method, params)));
    }
    socket.on('callBatch', (calls, ack) => {
      ack(null, { results: calls.map((c) => {
        const [err, res] = call(c.method, c.params);
        return err ? { error: err } : res;
      }) });
    });
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
} else {
  const { io } = require('socket.io-client');
  const socket = io(process.env.URL, { transports: [process.env.TRANSPORT || 'websocket'], reconnection: false });
  const seen = {};
  const timer = setTimeout(() => { seen.error = 'timed out'; finish(); }, 60000);
  const finish = () => { clearTimeout(timer); process.stdout.write(JSON.stringify(seen) + '\n'); socket.close(); };
  const emit = (method, params) => new Promise((resolve) => socket.emit(method, params, (err, res) => resolve([err, res])));
  const note = { streamIds: ['diary'], type: 'note/txt', content: 'hi' };
  socket.on('connect_error', (err) => { seen.error = String(err); finish(); });
  socket.on('connect', async () => {
    let [err, res] = await emit('events.create', note);
    seen.created = !err && !!res.event;
    [err] = await emit('events.create', { fail: true });
    seen.refused = !!err;
    [err, res] = await emit('events.get', {});
    seen.read = !err && Array.isArray(res.events);
    [err, res] = await emit('callBatch', [{ method: 'events.create', params: note }, { method: 'events.get', params: {} }]);
    seen.batch = !err && res.results.length === 2;
    const burst = Number(process.env.BURST || 0);
    const acks = await Promise.all(Array.from({ length: burst }, () => emit('events.create', note)));
    seen.burst = acks.filter(([e, r]) => !e && r.event).length;
    finish();
  });
}
