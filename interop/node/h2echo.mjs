#!/usr/bin/env node
// Interop peer: WebSockets over HTTP/2 (RFC 8441) from Node.js. Node's own
// http2 module (nghttp2) opens one HTTP/2 connection to ORIGIN, waits for
// the server's SETTINGS_ENABLE_CONNECT_PROTOCOL, and opens --sessions
// extended CONNECT streams (:protocol websocket) on it at once, to the
// paths of --paths in turn; the `ws` package frames the WebSocket over each
// stream (its Sender, masking, and Receiver, as a client). Beside them, on
// a connection of its own, a `ws` WebSocket opens the first path over
// HTTP/1.1. Every session, all at once: a text and a binary message of
// --size bytes come back the same, then the client closes with 1000 and
// the server must answer 1000 and end the stream. Prints one JSON report
// on stdout and exits 0 when every check passed, 1 when one failed, 2 on
// a usage error.
//
//   node h2echo.mjs [--sessions N] [--paths /echo,/events] [--size N] [--ca FILE] ORIGIN
//
// ORIGIN is http://HOST:PORT (cleartext HTTP/2 with prior knowledge, h2c)
// or https://HOST:PORT (h2 by ALPN; --ca trusts the PEM file's
// certificates). The binary payloads follow pattern(n): byte i is
// (i*31 + 7) & 0xff, as in the Go tests.

import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import WebSocket, { Receiver, Sender } from 'ws';

const require = createRequire(import.meta.url);
const wsVersion = require('ws/package.json').version;

const usage = 'usage: node h2echo.mjs [--sessions N] [--paths P,P] [--size N] [--ca FILE] [--timeout MS] http://HOST:PORT|https://HOST:PORT';
let args;
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      sessions: { type: 'string', default: '12' },
      paths: { type: 'string', default: '/echo,/events,/raw' },
      size: { type: 'string', default: '70000' },
      ca: { type: 'string' },
      timeout: { type: 'string', default: '15000' },
    },
  });
} catch (e) {
  console.error(`${e.message}\n${usage}`);
  process.exit(2);
}
if (args.positionals.length !== 1) {
  console.error(usage);
  process.exit(2);
}
const origin = args.positionals[0];
const sessions = Number(args.values.sessions);
const paths = args.values.paths.split(',');
const size = Number(args.values.size);
const timeout = Number(args.values.timeout);
const ca = args.values.ca ? readFileSync(args.values.ca) : undefined;

const report = { ok: false, node: process.versions.node, ws: wsVersion, origin, alpn: null, connectProtocol: null, h2: [], h1: null, checks: [], errors: [] };
const check = (name, ok, detail = '') => { report.checks.push({ name, ok: !!ok, detail: ok ? '' : detail }); };

function pattern(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

function withTimeout(p, what) {
  let t;
  return Promise.race([p, new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`${what}: no answer within ${timeout} ms`)), timeout); })])
    .finally(() => clearTimeout(t));
}

// A WebSocket session over one HTTP/2 stream: it resolves with what the
// server sent, once the stream has ended.
function h2Session(client, path, i) {
  return new Promise((resolve, reject) => {
    const got = { path, status: null, messages: [], close: null, streamEnded: false };
    const stream = client.request({
      ':method': 'CONNECT', ':protocol': 'websocket', ':path': path,
      'sec-websocket-version': '13', 'origin': origin,
    }, { endStream: false });
    const receiver = new Receiver({ isServer: false });
    const sender = new Sender(stream);
    stream.on('response', (headers) => {
      got.status = headers[':status'];
      if (got.status !== 200) {
        stream.close();
        return;
      }
      sender.send(`text ${i} to ${path} over HTTP/2, ünïcödé ✓`, { binary: false, fin: true, mask: true, compress: false });
      sender.send(pattern(size), { binary: true, fin: true, mask: true, compress: false });
    });
    stream.on('data', (chunk) => receiver.write(chunk));
    receiver.on('message', (data, isBinary) => {
      got.messages.push({ binary: isBinary, data: isBinary ? data : data.toString() });
      if (got.messages.length === 2) sender.close(1000, `done ${i}`, true);
    });
    receiver.on('ping', (data) => sender.pong(data, true));
    receiver.on('conclude', (code, reason) => {
      got.close = { code, reason: reason.toString() };
      stream.end(); // our side of the stream, after the close frame
    });
    receiver.on('error', reject);
    stream.on('end', () => { got.streamEnded = true; });
    stream.on('close', () => resolve(got));
    stream.on('error', reject);
  });
}

// The same over HTTP/1.1, with ws's client.
function h1Session(path) {
  return new Promise((resolve, reject) => {
    const got = { path, messages: [], close: null };
    const url = origin.replace(/^http/, 'ws') + path;
    const ws = new WebSocket(url, { ca, perMessageDeflate: false });
    ws.on('open', () => {
      ws.send('text over HTTP/1.1');
      ws.send(pattern(size));
    });
    ws.on('message', (data, isBinary) => {
      got.messages.push({ binary: isBinary, data: isBinary ? data : data.toString() });
      if (got.messages.length === 2) ws.close(1000, 'done h1');
    });
    ws.on('close', (code, reason) => { got.close = { code, reason: reason.toString() }; resolve(got); });
    ws.on('error', reject);
  });
}

function checkSession(name, got, text) {
  const want = pattern(size);
  check(`${name}: echo of the text`, got.messages[0] && !got.messages[0].binary && got.messages[0].data === text,
    `got ${JSON.stringify(got.messages[0] && { binary: got.messages[0].binary, length: got.messages[0].data.length })}`);
  check(`${name}: echo of ${size} bytes`, got.messages[1] && got.messages[1].binary && Buffer.compare(got.messages[1].data, want) === 0,
    `got ${got.messages[1] ? got.messages[1].data.length : 'nothing'}`);
  check(`${name}: close 1000`, got.close && got.close.code === 1000, `got ${JSON.stringify(got.close)}`);
}

async function main() {
  const client = http2.connect(origin, { ca });
  client.on('error', (e) => report.errors.push(`HTTP/2 connection: ${e.message}`));
  await withTimeout(new Promise((resolve, reject) => {
    client.once('remoteSettings', resolve);
    client.once('error', reject);
  }), 'the server\'s SETTINGS');
  report.alpn = client.alpnProtocol;
  report.connectProtocol = !!client.remoteSettings.enableConnectProtocol;
  check('the server advertises SETTINGS_ENABLE_CONNECT_PROTOCOL', report.connectProtocol);

  const h2 = [];
  for (let i = 0; i < sessions; i++) h2.push(withTimeout(h2Session(client, paths[i % paths.length], i), `HTTP/2 session ${i}`));
  const h1 = withTimeout(h1Session(paths[0]), 'the HTTP/1.1 session');
  const results = await Promise.allSettled([...h2, h1]);
  results.forEach((r, i) => {
    const name = i < sessions ? `HTTP/2 session ${i} to ${paths[i % paths.length]}` : `HTTP/1.1 session to ${paths[0]}`;
    if (r.status === 'rejected') {
      check(name, false, r.reason.message);
      return;
    }
    const got = r.value;
    if (i < sessions) {
      report.h2.push({ path: got.path, status: got.status, close: got.close, streamEnded: got.streamEnded });
      check(`${name}: status 200`, got.status === 200, `got ${got.status}`);
      checkSession(name, got, `text ${i} to ${got.path} over HTTP/2, ünïcödé ✓`);
      check(`${name}: the server ended the stream`, got.streamEnded);
    } else {
      report.h1 = { path: got.path, close: got.close };
      checkSession(name, got, 'text over HTTP/1.1');
    }
  });
  client.close();
}

try {
  await main();
} catch (e) {
  report.errors.push(e.stack || String(e));
}
report.ok = report.errors.length === 0 && report.checks.length > 0 && report.checks.every((c) => c.ok);
process.stdout.write(JSON.stringify(report) + '\n');
process.exit(report.ok ? 0 : 1);
