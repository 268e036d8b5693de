#!/usr/bin/env node
// Interop peer: the `ws` npm package as a WebSocket echo server, for wskit's
// client. It listens on 127.0.0.1 (a free port), sends every message back
// with its type, and prints one JSON object per line on stdout:
//
//   {"event":"listening","port":N,"ws":"8.23.0","node":"v20...","perMessageDeflate":...}
//   {"event":"open","id":N,"offer":S|null,"extensions":S|null,"deflateParams":{...}|null}
//   {"event":"close","id":N,"code":N,"reason":S,"messages":N,"bytes":N}
//   {"event":"error","id":N,"error":S}
//
// offer is the client's Sec-WebSocket-Extensions header, extensions the
// server's answer as it was sent, deflateParams the permessage-deflate
// parameters ws agreed to. It exits when its stdin ends.
//
//   node server.mjs [--deflate JSON | --no-deflate]
//
// --deflate takes ws's perMessageDeflate options (such as {"threshold":0});
// without it, ws's own default for a server applies: no permessage-deflate.

import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { WebSocketServer } from 'ws';

const require = createRequire(import.meta.url);
const wsVersion = require('ws/package.json').version;
const usage = 'usage: node server.mjs [--deflate JSON | --no-deflate]';

let opts;
try {
  opts = parseArgs({
    options: {
      deflate: { type: 'string' },
      'no-deflate': { type: 'boolean', default: false },
    },
  }).values;
} catch (err) {
  console.error(`${err.message}\n${usage}`);
  process.exit(2);
}
let perMessageDeflate = false;
if (opts.deflate !== undefined && !opts['no-deflate']) {
  try {
    perMessageDeflate = JSON.parse(opts.deflate);
  } catch (err) {
    console.error(`--deflate wants a JSON object: ${err.message}\n${usage}`);
    process.exit(2);
  }
}

const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

// 64 MiB: the client's messages are bounded by the test, not here.
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate, maxPayload: 64 << 20 });

// The answer ws sends, taken from the response headers it is about to write.
wss.on('headers', (headers, req) => {
  const line = headers.find((h) => h.toLowerCase().startsWith('sec-websocket-extensions:'));
  req.extensionsAnswer = line === undefined ? null : line.slice(line.indexOf(':') + 1).trim();
});

let nextID = 1;
wss.on('connection', (ws, req) => {
  const id = nextID++;
  const pmd = ws._extensions && ws._extensions['permessage-deflate'];
  const offer = req.headers['sec-websocket-extensions'];
  emit({
    event: 'open',
    id,
    offer: offer === undefined ? null : offer,
    extensions: req.extensionsAnswer === undefined ? null : req.extensionsAnswer,
    deflateParams: pmd ? pmd.params : null,
  });
  let messages = 0;
  let bytes = 0;
  ws.on('message', (data, isBinary) => {
    messages++;
    bytes += data.length;
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', (err) => emit({ event: 'error', id, error: String(err && err.message ? err.message : err) }));
  ws.on('close', (code, reason) => emit({ event: 'close', id, code, reason: reason.toString('utf8'), messages, bytes }));
});

wss.on('listening', () => {
  emit({ event: 'listening', port: wss.address().port, ws: wsVersion, node: process.version, perMessageDeflate });
});

// The test ends the server by closing its stdin.
process.stdin.on('end', () => {
  wss.close();
  for (const ws of wss.clients) ws.terminate();
  setTimeout(() => process.exit(0), 100).unref();
});
process.stdin.resume();
