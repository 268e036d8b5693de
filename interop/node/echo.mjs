#!/usr/bin/env node
// Interop peer: the `ws` npm package as a WebSocket client against a server
// under test. Prints one JSON report on stdout and exits 0 when every check
// passed, 1 when one failed, 2 on a usage error.
//
//   node echo.mjs [--mode MODE] [options] URL
//
// Modes:
//   echo          (default) echo text (ASCII, multi-byte UTF-8, long) and binary
//                 (0, 1, 125, 126, 127, 65535, 65536 bytes and 1 MiB) messages,
//                 ping with payloads (expects pongs with the same payload), then
//                 close with --close-code/--close-reason and check the code of
//                 the server's close frame (--expect-code, default 1000).
//   server-close  read messages until the server closes; check them against
//                 --expect-text (repeatable, in order), the close code
//                 (--expect-code, default 1000) and --expect-reason if given.
//   oversize      send one binary message of --size bytes and expect the server
//                 to close with --expect-code (default 1009).
//   messages      echo the messages of --messages FILE one at a time, then all
//                 of them at once (every send before the first read), then
//                 close like echo. FILE is JSON: [{"name", "binary", "base64"}];
//                 a text message is sent as a string.
//
// Other options:
//   --timeout MS      time limit for each step (default 15000)
//   --no-deflate      do not offer permessage-deflate (ws offers it by default)
//   --deflate JSON    offer permessage-deflate with these options of ws's
//                     perMessageDeflate (such as {"threshold":0,
//                     "serverNoContextTakeover":true})
//   --messages FILE   the messages of the messages mode
//   --fragment N      in the messages mode, send each message of more than N
//                     bytes in fragments of N bytes (a text may be cut inside
//                     a UTF-8 sequence), with a ping after the first
//   --expect-extensions S   check the names of the negotiated extensions
//                     (ws.extensions, without parameters, joined with ", ")
//   --ca FILE         wss://: trust the certificates in this PEM file (ws's
//                     ca option, handed to tls.connect) instead of the
//                     system's; the server's certificate is verified
//   --max-tls V       wss://: offer at most TLS version V (tls.connect's
//                     maxVersion: TLSv1.2 or TLSv1.3)
//
// The report holds the server's Sec-WebSocket-Extensions response header as
// it came (extensionsHeader, null without one), ws's view of the
// permessage-deflate parameters it agreed to (deflateParams), and over
// wss:// the TLS version and cipher suite negotiated and whether the
// server's certificate was verified (tls, null over ws://).
//
// The binary payloads follow pattern(n): byte i is (i*31 + 7) & 0xff, the same
// as in the Go tests.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import WebSocket from 'ws';

const require = createRequire(import.meta.url);
const wsVersion = require('ws/package.json').version;

const usage = 'usage: node echo.mjs [--mode echo|server-close|oversize|messages] [--timeout MS] ' +
  '[--no-deflate] [--deflate JSON] [--messages FILE] [--fragment N] [--close-code N] [--close-reason S] [--expect-code N] [--expect-reason S] ' +
  '[--expect-text S]... [--expect-extensions S] [--size N] [--ca FILE] [--max-tls V] URL';

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      mode: { type: 'string', default: 'echo' },
      timeout: { type: 'string', default: '15000' },
      'no-deflate': { type: 'boolean', default: false },
      deflate: { type: 'string' },
      messages: { type: 'string' },
      fragment: { type: 'string', default: '0' },
      'close-code': { type: 'string', default: '1000' },
      'close-reason': { type: 'string', default: 'node ws done' },
      'expect-code': { type: 'string' },
      'expect-reason': { type: 'string' },
      'expect-text': { type: 'string', multiple: true, default: [] },
      'expect-extensions': { type: 'string' },
      size: { type: 'string', default: String((1 << 20) + 1) },
      ca: { type: 'string' },
      'max-tls': { type: 'string' },
    },
  });
} catch (err) {
  console.error(`${err.message}\n${usage}`);
  process.exit(2);
}
const opts = parsed.values;
if (parsed.positionals.length !== 1) {
  console.error(usage);
  process.exit(2);
}
const url = parsed.positionals[0];
const modes = { echo: runEcho, 'server-close': runServerClose, oversize: runOversize, messages: runMessages };
if (!(opts.mode in modes)) {
  console.error(`unknown mode ${JSON.stringify(opts.mode)}\n${usage}`);
  process.exit(2);
}
const stepTimeout = intOption('timeout');
let perMessageDeflate = !opts['no-deflate'];
if (opts.deflate !== undefined) {
  try {
    perMessageDeflate = JSON.parse(opts.deflate);
  } catch (err) {
    console.error(`--deflate wants a JSON object: ${err.message}\n${usage}`);
    process.exit(2);
  }
}
if (opts.mode === 'messages' && opts.messages === undefined) {
  console.error(`the messages mode needs --messages FILE\n${usage}`);
  process.exit(2);
}
const defaultExpectCode = opts.mode === 'oversize' ? 1009 : 1000;
const expectCode = opts['expect-code'] === undefined ? defaultExpectCode : intOption('expect-code');

function intOption(name) {
  const n = Number(opts[name]);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} wants a whole number, got ${JSON.stringify(opts[name])}\n${usage}`);
    process.exit(2);
  }
  return n;
}

const report = {
  peer: 'node-ws',
  ws: wsVersion,
  node: process.version,
  mode: opts.mode,
  url,
  ok: false,
  extensions: null,
  extensionsHeader: null,
  deflateParams: null,
  protocol: null,
  tls: null,
  checks: [],
  close: null,
  errors: [],
};

function check(name, ok, detail) {
  const entry = { name, ok: Boolean(ok) };
  if (detail !== undefined) entry.detail = detail;
  report.checks.push(entry);
  return entry.ok;
}

function pattern(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

function describe(buf) {
  if (buf.length === 0) return '0 bytes';
  if (buf.length <= 32) return `${buf.length} bytes ${buf.toString('hex')}`;
  return `${buf.length} bytes, first ${buf.subarray(0, 16).toString('hex')}`;
}

// extensionNames keeps the names of a list of extensions, without parameters,
// joined with ", " (ws.extensions joins the names with ",").
function extensionNames(s) {
  return String(s).split(',').map((e) => e.split(';')[0].trim()).filter(Boolean).join(', ');
}

// Every close event, error and message is recorded as it happens; the steps
// below wait on them with waitFor.
function open() {
  const options = { perMessageDeflate };
  if (opts.ca !== undefined) options.ca = readFileSync(opts.ca);
  if (opts['max-tls'] !== undefined) options.maxVersion = opts['max-tls'];
  const ws = new WebSocket(url, options);
  ws.on('upgrade', (res) => {
    const h = res.headers['sec-websocket-extensions'];
    report.extensionsHeader = h === undefined ? null : h;
  });
  ws.on('error', (err) => report.errors.push(String(err && err.message ? err.message : err)));
  ws.on('close', (code, reason) => {
    report.close = { code, reason: reason.toString('utf8') };
  });
  return ws;
}

// waitFor resolves with the arguments of the next `name` event of ws. It
// rejects when the step times out, and (unless it waits for 'close') when the
// connection closes or fails first.
function waitFor(ws, name, what) {
  return new Promise((resolve, reject) => {
    const onEvent = (...args) => { done(); resolve(args); };
    const onClose = (code, reason) => {
      done();
      reject(new Error(`connection closed while waiting for ${what}: code ${code}, reason ${JSON.stringify(reason.toString('utf8'))}`));
    };
    const onError = (err) => { done(); reject(new Error(`error while waiting for ${what}: ${err.message}`)); };
    const timer = setTimeout(() => { done(); reject(new Error(`no ${what} within ${stepTimeout} ms`)); }, stepTimeout);
    function done() {
      clearTimeout(timer);
      ws.off(name, onEvent);
      ws.off('close', onClose);
      ws.off('error', onError);
    }
    ws.once(name, onEvent);
    if (name !== 'close') {
      ws.on('close', onClose);
      ws.on('error', onError);
    }
  });
}

async function opened(ws) {
  await waitFor(ws, 'open', 'open');
  report.extensions = ws.extensions;
  report.protocol = ws.protocol;
  // Over wss:// the socket under ws is a tls.TLSSocket.
  const socket = ws._socket;
  if (socket && typeof socket.getProtocol === 'function') {
    const cipher = socket.getCipher();
    report.tls = { version: socket.getProtocol(), cipher: cipher ? cipher.standardName : null, authorized: socket.authorized };
  }
  // ws keeps the agreed parameters on its extension object; they show what
  // it will compress and inflate with.
  const pmd = ws._extensions && ws._extensions['permessage-deflate'];
  report.deflateParams = pmd ? pmd.params : null;
  if (opts['expect-extensions'] !== undefined) {
    const got = extensionNames(ws.extensions);
    check('extensions', got === opts['expect-extensions'],
      `got ${JSON.stringify(ws.extensions)}, want ${JSON.stringify(opts['expect-extensions'])}`);
  }
}

async function expectClose(ws, what) {
  const [code, reason] = await waitFor(ws, 'close', what);
  const r = reason.toString('utf8');
  check('close code', code === expectCode, `got ${code} (reason ${JSON.stringify(r)}), want ${expectCode}`);
  if (opts['expect-reason'] !== undefined) {
    check('close reason', r === opts['expect-reason'],
      `got ${JSON.stringify(r)}, want ${JSON.stringify(opts['expect-reason'])}`);
  }
}

async function runEcho() {
  const ws = open();
  await opened(ws);

  const texts = [
    ['text empty', ''],
    ['text ascii', 'hello, wskit'],
    ['text utf8', 'héllo wörld — Ελληνικά — 日本語 — 🦀🚀'],
    ['text 126 bytes', 'x'.repeat(126)],
    ['text utf8 65538 bytes', '€'.repeat(21846)],
  ];
  for (const [name, s] of texts) {
    ws.send(s);
    const [data, isBinary] = await waitFor(ws, 'message', `echo of ${name}`);
    const want = Buffer.from(s, 'utf8');
    check(name, !isBinary && Buffer.isBuffer(data) && data.equals(want),
      `got ${isBinary ? 'binary' : 'text'} ${describe(Buffer.from(data))}, want text ${describe(want)}`);
  }

  for (const n of [0, 1, 125, 126, 127, 65535, 65536, 1 << 20]) {
    const want = pattern(n);
    ws.send(want, { binary: true });
    const [data, isBinary] = await waitFor(ws, 'message', `echo of binary ${n}`);
    check(`binary ${n}`, isBinary && Buffer.isBuffer(data) && data.equals(want),
      `got ${isBinary ? 'binary' : 'text'} ${describe(Buffer.from(data))}, want binary ${describe(want)}`);
  }

  for (const [name, payload] of [
    ['ping empty', Buffer.alloc(0)],
    ['ping utf8', Buffer.from('ping ✓ wskit', 'utf8')],
    ['ping 125 bytes', pattern(125)],
  ]) {
    ws.ping(payload);
    const [data] = await waitFor(ws, 'pong', `pong for ${name}`);
    check(name, Buffer.isBuffer(data) && data.equals(payload),
      `got pong ${describe(Buffer.from(data))}, want ${describe(payload)}`);
  }

  ws.close(intOption('close-code'), opts['close-reason']);
  await expectClose(ws, 'close after the client close');
}

async function runServerClose() {
  const ws = open();
  const messages = [];
  ws.on('message', (data, isBinary) => {
    messages.push({ binary: isBinary, text: isBinary ? null : data.toString('utf8'), size: data.length });
  });
  await opened(ws);
  await expectClose(ws, 'close from the server');
  report.messages = messages;
  const want = opts['expect-text'];
  const got = messages.map((m) => (m.binary ? `<binary ${m.size}>` : m.text));
  check('messages before close', JSON.stringify(got) === JSON.stringify(want),
    `got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

async function runOversize() {
  const ws = open();
  await opened(ws);
  const n = intOption('size');
  ws.send(pattern(n), { binary: true }, () => {}); // a write error shows in the close code
  await expectClose(ws, `close after a ${n}-byte message`);
}

// runMessages echoes the messages of --messages: one at a time, then all at
// once. Each echo must be the same type and bytes as the message sent.
async function runMessages() {
  const messages = JSON.parse(readFileSync(opts.messages, 'utf8')).map((m) => {
    const bytes = Buffer.from(m.base64, 'base64');
    return { name: m.name, binary: m.binary, bytes, data: m.binary ? bytes : bytes.toString('utf8') };
  });
  const fragment = intOption('fragment');
  const ws = open();
  await opened(ws);
  const send = (m) => {
    if (fragment === 0 || m.bytes.length <= fragment) {
      ws.send(m.data, { binary: m.binary });
      return;
    }
    for (let off = 0; off < m.bytes.length; off += fragment) {
      ws.send(m.bytes.subarray(off, off + fragment), { binary: m.binary, fin: off + fragment >= m.bytes.length });
      if (off === 0) ws.ping(Buffer.from('between fragments'));
    }
  };
  const checkEcho = (phase, m, data, isBinary) => {
    const got = Buffer.from(data);
    check(`${phase} ${m.name}`, isBinary === m.binary && got.equals(m.bytes),
      `got ${isBinary ? 'binary' : 'text'} ${describe(got)}, want ${m.binary ? 'binary' : 'text'} ${describe(m.bytes)}`);
  };

  for (const m of messages) {
    send(m);
    const [data, isBinary] = await waitFor(ws, 'message', `echo of ${m.name}`);
    checkEcho('one-by-one', m, data, isBinary);
  }

  // All at once: the echoes queue up in order.
  const echoes = [];
  let wake = null;
  const onMessage = (data, isBinary) => {
    echoes.push([data, isBinary]);
    if (wake) wake();
  };
  ws.on('message', onMessage);
  for (const m of messages) send(m);
  for (const m of messages) {
    if (echoes.length === 0) {
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => { wake = null; reject(new Error(`no echo of ${m.name} (all at once) within ${stepTimeout} ms`)); }, stepTimeout);
        const onClose = (code) => { clearTimeout(timer); wake = null; reject(new Error(`closed (${code}) while waiting for the echo of ${m.name} (all at once)`)); };
        ws.once('close', onClose);
        wake = () => { clearTimeout(timer); wake = null; ws.off('close', onClose); resolve(); };
      });
    }
    const [data, isBinary] = echoes.shift();
    checkEcho('all-at-once', m, data, isBinary);
  }
  ws.off('message', onMessage);

  ws.close(intOption('close-code'), opts['close-reason']);
  await expectClose(ws, 'close after the client close');
}

const started = Date.now();
try {
  await modes[opts.mode]();
} catch (err) {
  report.errors.push(err.message);
  check('completed', false, err.message);
}
report.ms = Date.now() - started;
report.ok = report.checks.length > 0 && report.checks.every((c) => c.ok);
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
process.exitCode = report.ok ? 0 : 1;
// ws closes its socket itself; a stray timer or socket must not keep a failed
// run alive.
setTimeout(() => process.exit(), 1000).unref();
