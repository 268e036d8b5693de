#!/usr/bin/env node
// Interop peer: the `ws` npm package as a client of a broadcast hub, driven
// line by line, for TestHubDeflate. It connects to URL, sends what stdin
// asks, and reports on stdout everything it receives, one JSON object per
// line:
//
//   {"event":"open","ws":"8.23.0","node":"v20...","extensionsHeader":S|null,"deflateParams":{...}|null}
//   {"event":"message","binary":B,"size":N,"sha256":HEX}
//   {"event":"error","error":S}
//   {"event":"close","code":N,"reason":S}
//
// extensionsHeader is the server's Sec-WebSocket-Extensions answer as it
// came, deflateParams the permessage-deflate parameters ws agreed to. stdin
// takes one JSON object per line:
//
//   {"binary":B,"base64":S}   send a message (a text is sent as its bytes)
//   {"close":N,"reason":S}    close with that code
//
// When stdin ends it closes with 1000 unless it closed already; it exits
// once the connection has closed: 0 after a close with 1000, else 1.
//
//   node hub.mjs [--deflate JSON | --no-deflate] URL

import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import WebSocket from 'ws';

const require = createRequire(import.meta.url);
const wsVersion = require('ws/package.json').version;
const usage = 'usage: node hub.mjs [--deflate JSON | --no-deflate] URL';

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      deflate: { type: 'string' },
      'no-deflate': { type: 'boolean', default: false },
    },
  });
} catch (err) {
  console.error(`${err.message}\n${usage}`);
  process.exit(2);
}
if (parsed.positionals.length !== 1) {
  console.error(usage);
  process.exit(2);
}
let perMessageDeflate = !parsed.values['no-deflate'];
if (parsed.values.deflate !== undefined) {
  try {
    perMessageDeflate = JSON.parse(parsed.values.deflate);
  } catch (err) {
    console.error(`--deflate wants a JSON object: ${err.message}\n${usage}`);
    process.exit(2);
  }
}

const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const errorText = (err) => String(err && err.message ? err.message : err);

// 64 MiB: the server's messages are bounded by the test, not here.
const ws = new WebSocket(parsed.positionals[0], { perMessageDeflate, maxPayload: 64 << 20 });
let extensionsHeader = null;
ws.on('upgrade', (res) => {
  const h = res.headers['sec-websocket-extensions'];
  extensionsHeader = h === undefined ? null : h;
});
ws.on('open', () => {
  const pmd = ws._extensions && ws._extensions['permessage-deflate'];
  emit({ event: 'open', ws: wsVersion, node: process.version, extensionsHeader, deflateParams: pmd ? pmd.params : null });
});
ws.on('message', (data, isBinary) => {
  emit({ event: 'message', binary: isBinary, size: data.length, sha256: createHash('sha256').update(data).digest('hex') });
});
ws.on('error', (err) => emit({ event: 'error', error: errorText(err) }));
ws.on('close', (code, reason) => {
  emit({ event: 'close', code, reason: reason.toString('utf8') });
  process.exitCode = code === 1000 ? 0 : 1;
  lines.close();
  process.stdin.destroy();
});

// Commands are run in order; those that come before the open wait for it.
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
let closing = false;
const opened = new Promise((resolve) => ws.once('open', resolve));
let queue = opened;
lines.on('line', (line) => {
  if (line.trim() === '') return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    emit({ event: 'error', error: `stdin: ${err.message}` });
    return;
  }
  queue = queue.then(() => run(cmd));
});
lines.on('close', () => {
  queue = queue.then(() => run({ close: 1000, reason: 'stdin ended' }));
});

function run(cmd) {
  if (ws.readyState !== WebSocket.OPEN) return;
  if (cmd.close !== undefined) {
    if (!closing) ws.close(cmd.close, cmd.reason || '');
    closing = true;
    return;
  }
  ws.send(Buffer.from(cmd.base64, 'base64'), { binary: Boolean(cmd.binary) }, (err) => {
    if (err) emit({ event: 'error', error: `send: ${errorText(err)}` });
  });
}
