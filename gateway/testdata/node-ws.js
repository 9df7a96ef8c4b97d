// A WebSocket peer for hookgate's tests, on the real npm `ws` package
// (testdata/package.json; npm install in this directory).
//
// MODE=server (the default): an HTTP server whose upgrades go to a ws
// echo server. Each message comes back as it came (text or binary); the
// text "close:<code>:<reason>" closes with that code and reason. An
// upgrade of /reject gets 400 with a JSON body. It prints:
//   listening PORT
//   upgrade PATH xff=<X-Forwarded-For> ext=<Sec-WebSocket-Extensions>
//                                        when a connection opens
//   closed CODE                          when one closes
//
// MODE=client URL=ws://...: connects, then checks, in order: a text echo,
// a binary echo of 1 MiB, a message sent in three fragments, a ping's
// pong, and a close with code 4001 and reason "bye" asked of the server.
// It prints one JSON line of what it saw and exits.
//
// Both exit when stdin closes.
'use strict';
const http = require('http');
const crypto = require('crypto');
const WebSocket = require('ws');

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

if ((process.env.MODE || 'server') === 'server') {
  const wss = new WebSocket.Server({ noServer: true, maxPayload: 64 << 20, perMessageDeflate: true });
  const server = http.createServer((req, res) => {
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end('{"error":{"id":"unknown-resource","message":"not a WebSocket"}}');
  });
  server.on('upgrade', (req, socket, head) => {
    const path = req.url.split('?')[0];
    if (path === '/reject') {
      const body = '{"error":{"id":"invalid-request-structure","message":"Transport unknown"}}';
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      process.stdout.write(`upgrade ${path} xff=${req.headers['x-forwarded-for'] || ''} ext=${req.headers['sec-websocket-extensions'] || ''}\n`);
      ws.on('message', (data, isBinary) => {
        const text = isBinary ? '' : data.toString();
        if (text.startsWith('close:')) {
          const [, code, reason] = text.split(':');
          ws.close(Number(code), reason);
          return;
        }
        ws.send(data, { binary: isBinary });
      });
      ws.on('close', (code) => process.stdout.write(`closed ${code}\n`));
    });
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
} else {
  const seen = {};
  const ws = new WebSocket(process.env.URL, { maxPayload: 64 << 20 });
  const timer = setTimeout(() => { seen.error = 'timed out'; done(); }, 20000);
  const done = () => { clearTimeout(timer); process.stdout.write(JSON.stringify(seen) + '\n'); };
  const big = crypto.randomBytes(1 << 20);
  const steps = [
    () => ws.send('hello'),
    () => ws.send(big),
    () => { ws.send('part1', { fin: false }); ws.send('part2', { fin: false }); ws.send('part3', { fin: true }); },
    () => ws.ping(),
    () => ws.send('close:4001:bye'),
  ];
  let step = 0;
  const next = () => steps[step++]();
  ws.on('open', next);
  ws.on('message', (data, isBinary) => {
    if (step === 1) seen.text = !isBinary && data.toString() === 'hello';
    if (step === 2) seen.binary = isBinary && Buffer.compare(Buffer.from(data), big) === 0;
    if (step === 3) seen.fragmented = !isBinary && data.toString() === 'part1part2part3';
    next();
  });
  ws.on('pong', () => { seen.pong = true; next(); });
  ws.on('close', (code, reason) => { seen.closeCode = code; seen.closeReason = reason.toString(); done(); });
  ws.on('error', (err) => { seen.error = String(err); });
}
