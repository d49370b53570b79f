#!/usr/bin/env node
'use strict';
// Interop test: drive the official sockjs-client (Debian's node-sockjs-client,
// 1.6.1) against a SockJS echo endpoint, once per transport configuration.
//
// Usage:
//   NODE_PATH=/usr/share/nodejs node sockjs-client-echo.js http://127.0.0.1:PORT/echo [config ...]
//
// Configs (default: all but websocket+deflate, in this order): websocket
// xhr-streaming xhr-polling eventsource default. "default" passes no
// `transports` option, so the client picks (websocket first when /info says
// websocket:true).
//
// Opt-in config "websocket+deflate" (only run when named on the command line):
// the websocket transport forced, but with sockjs-client's Node WebSocket
// driver (faye-websocket) replaced by Debian's `ws` library, which offers
// permessage-deflate like a browser's native WebSocket. The swap is done via
// require.cache before sockjs-client is loaded, and only when this config is
// requested; even then every other config still gets a faye-websocket Client.
// It FAILs unless permessage-deflate was negotiated and at least one
// compressed (RSV1) frame arrived from the server (the 64 KiB echo should be).
//
// Needs Debian packages: node-sockjs-client (pulls in node-faye-websocket for
// the websocket transport and node-eventsource for the eventsource transport);
// node-ws for websocket+deflate.
//
// Env: INTEROP_TIMEOUT_MS (per configuration, default 20000),
//      INTEROP_CONNECT_TIMEOUT_MS (sockjs-client `timeout` option, default 5000).
//
// Prints one PASS/FAIL line per configuration, then "N passed, M failed";
// exits 1 if anything failed, 2 on usage/setup errors.

require('./debian-node-path');

const DEFAULT_CONFIGS = ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource', 'default'];
const ALL_CONFIGS = DEFAULT_CONFIGS.concat(['websocket+deflate']);
const configs = process.argv.length > 3 ? process.argv.slice(3) : DEFAULT_CONFIGS;

// ---- websocket+deflate: swap sockjs-client's Node WebSocket driver ---------
// sockjs-client's lib/transport/driver/websocket.js is just
// `module.exports = require('faye-websocket').Client;`, and the websocket
// transport does `new WebsocketDriver(url, [], options)` and then uses
// onmessage/onclose/onerror/send/close. ws's WebSocket has the same
// browser-style API, so the adapter only records what we want to inspect.
// The cached driver is a switch: a ws-backed socket while `useWsDriver` is
// set (only during websocket+deflate), a faye-websocket Client otherwise.
let useWsDriver = false;
let lastWsDriver = null; // the ws socket created during the current config

function countFrames(ws) {
  // Count server->client frames (and those with RSV1 = compressed) by parsing
  // frame headers off the raw TCP socket alongside ws's own receiver. Called
  // from ws's 'open' event, i.e. before any post-handshake byte is delivered.
  let hdr = [];
  let skip = 0;
  ws._socket.on('data', (chunk) => {
    let off = 0;
    while (off < chunk.length) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - off);
        skip -= n;
        off += n;
        continue;
      }
      hdr.push(chunk[off++]);
      if (hdr.length < 2) continue;
      const len7 = hdr[1] & 0x7f;
      const extLen = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
      if (hdr.length < 2 + extLen + (hdr[1] & 0x80 ? 4 : 0)) continue;
      let len = len7;
      if (extLen) {
        len = 0;
        for (let i = 2; i < 2 + extLen; i++) len = len * 256 + hdr[i];
      }
      ws.framesIn++;
      if (hdr[0] & 0x40) ws.compressedFramesIn++;
      skip = len;
      hdr = [];
    }
  });
}

function installWsDriver() {
  const Module = require('module');
  let WebSocket;
  let driverPath;
  try {
    WebSocket = require('ws');
    driverPath = require.resolve('sockjs-client/lib/transport/driver/websocket');
  } catch (e) {
    console.error('websocket+deflate needs node-ws and node-sockjs-client: ' + e.message);
    process.exit(2);
  }

  class WsDriver extends WebSocket {
    constructor(url, protocols /* , sockjs transportOptions: faye-specific, ignored */) {
      super(url, protocols, { perMessageDeflate: true }); // ws's default, made explicit
      this.extensionsHeader = null; // raw Sec-WebSocket-Extensions of the 101 response
      this.framesIn = 0;
      this.compressedFramesIn = 0;
      this.once('upgrade', (res) => {
        this.extensionsHeader = res.headers['sec-websocket-extensions'] || '';
      });
      this.once('open', () => countFrames(this));
      // Like a browser: an 'error' with no handler (sockjs-client nulls its
      // handlers on cleanup) must not become an uncaught exception.
      this.on('error', () => {});
      lastWsDriver = this;
    }
  }

  let FayeClient = null;
  function SwitchingDriver(url, protocols, options) {
    if (useWsDriver) return new WsDriver(url, protocols);
    if (!FayeClient) FayeClient = require('faye-websocket').Client;
    return new FayeClient(url, protocols, options);
  }

  const m = new Module(driverPath, null);
  m.filename = driverPath;
  m.paths = Module._nodeModulePaths(require('path').dirname(driverPath));
  m.exports = SwitchingDriver;
  m.loaded = true;
  require.cache[driverPath] = m;
}

if (configs.includes('websocket+deflate')) installWsDriver();

let SockJS;
try {
  SockJS = require('sockjs-client');
} catch (e) {
  console.error('cannot load sockjs-client (apt-get install node-sockjs-client; ' +
    'set NODE_PATH=/usr/share/nodejs): ' + e.message);
  process.exit(2);
}

const url = process.argv[2];
if (!url || !/^https?:\/\//.test(url)) {
  console.error('usage: node sockjs-client-echo.js http://127.0.0.1:PORT/echo [config ...]');
  process.exit(2);
}

for (const c of configs) {
  if (!ALL_CONFIGS.includes(c)) {
    console.error(`unknown config ${c}; expected one of ${ALL_CONFIGS.join(', ')}`);
    process.exit(2);
  }
}

const TIMEOUT_MS = parseInt(process.env.INTEROP_TIMEOUT_MS || '20000', 10);
const CONNECT_TIMEOUT_MS = parseInt(process.env.INTEROP_CONNECT_TIMEOUT_MS || '5000', 10);
const QUIET_MS = 150; // after the last echo, wait this long for stray extra messages

// ---- hostile message set ---------------------------------------------------

function range(a, b) {
  let s = '';
  for (let c = a; c <= b; c++) s += String.fromCharCode(c);
  return s;
}

// 64 KiB of UTF-8 (65536 bytes exactly), deterministic mix of 1-4 byte chars.
function bigString() {
  const alphabet = [
    'a', 'b', 'Z', '0', '9', ' ', '.', '/', '"', '\\', '<', '>', '&', '%', '\'', '{', ']',
    'é', 'ß', 'Ж', 'ع', // 2 bytes
    '中', '文', '€', '☃', '\u2028', // 3 bytes
    '😀', '𝄞', // 4 bytes
  ];
  let seed = 12345;
  let out = '';
  let bytes = 0;
  const target = 65536;
  for (;;) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const ch = alphabet[(seed >>> 8) % alphabet.length];
    const n = Buffer.byteLength(ch, 'utf8');
    if (bytes + n > target) break;
    out += ch;
    bytes += n;
  }
  while (bytes < target) { out += 'x'; bytes++; }
  return out;
}

// Every code point SockJS (server or client) escapes, no lone surrogates.
function escapedCodePoints() {
  return range(0x0000, 0x001f) + range(0x007f, 0x009f) + '\u00ad' +
    range(0x0600, 0x0604) + '\u070f' + '\u17b4\u17b5' + range(0x200c, 0x200f) +
    range(0x2028, 0x202f) + range(0x2060, 0x206f) + '\ufeff' + range(0xfff0, 0xffff) +
    '"\\\'';
}

const MESSAGES = [
  ['empty string', ''],
  ['64 KiB mixed ASCII/multibyte', bigString()],
  ['NUL', 'a\u0000b\u0000'],
  ['U+2028', '\u2028'],
  ['U+2029', '\u2029'],
  ['U+2028/U+2029 in text', 'line\u2028separator\u2029paragraph "\u2028\u2029"'],
  ['astral + emoji', '😀𝄞🀄 emoji 👩‍👩‍👧‍👦 🇺🇦'],
  ['all SockJS-escaped code points', escapedCodePoints()],
  ['</script>', '</script>'],
  ['<!--', '<!--'],
  ['<script>alert(1)</script>', '<script>alert(1)</script>'],
  ['frame-like o', 'o'],
  ['frame-like h', 'h'],
  ['frame-like c[...]', 'c[3000,"Go away!"]'],
  ['frame-like a[...]', 'a["x"]'],
  ['frame-like ["x"]', '["x"]'],
  ['frame-like "x"', '"x"'],
  ['frame-like ]\\n[', ']\n['],
  // sockjs-client's eventsource receiver runs decodeURI() on every data line,
  // so a server must %-escape '%' (and CR/LF/NUL) in eventsource frames.
  ['percent signs', '100% %41 %zz %E2%82%AC %'],
  ['CR LF raw', 'a\r\nb\rc\n'],
];

// ---- diff helpers ----------------------------------------------------------

function esc(s) {
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0);
    if (ch === '\\') out += '\\\\';
    else if (ch === '"') out += '\\"';
    else if (cp >= 0x20 && cp < 0x7f) out += ch;
    else if (cp > 0xffff) out += '\\u{' + cp.toString(16) + '}';
    else out += '\\u' + cp.toString(16).padStart(4, '0');
  }
  return '"' + out + '"';
}

function describe(v) {
  if (typeof v !== 'string') return `${typeof v} ${JSON.stringify(v)}`.slice(0, 120);
  if (v.length <= 40) return esc(v);
  return `${esc(v.slice(0, 24))}... (length ${v.length})`;
}

function shortDiff(expected, got) {
  if (typeof got !== 'string') return `expected ${describe(expected)}, got ${describe(got)}`;
  let i = 0;
  while (i < expected.length && i < got.length && expected[i] === got[i]) i++;
  const from = Math.max(0, i - 8);
  const e = esc(expected.slice(from, i + 16));
  const g = esc(got.slice(from, i + 16));
  return `first difference at UTF-16 index ${i} (expected length ${expected.length}, got length ${got.length}); ` +
    `expected[${from}..] ${e}, got[${from}..] ${g}`;
}

// ---- one configuration -----------------------------------------------------

let currentFail = null; // hook for uncaught exceptions thrown inside sockjs-client

function runConfig(name) {
  return new Promise((resolve) => {
    const deflate = name === 'websocket+deflate';
    const transport = deflate ? 'websocket' : name;
    const forced = name === 'default' ? null : [transport];
    useWsDriver = deflate;
    lastWsDriver = null;
    const options = { timeout: CONNECT_TIMEOUT_MS };
    if (forced) options.transports = forced;

    let done = false;
    let used = null;
    let extInfo = '';
    let idx = 0;
    let phase = 'connecting';
    let quietTimer = null;
    let sock;

    const finish = (ok, detail) => {
      if (done) return;
      done = true;
      currentFail = null;
      useWsDriver = false;
      clearTimeout(timer);
      clearTimeout(quietTimer);
      if (sock) {
        sock.onopen = sock.onmessage = sock.onerror = null;
        sock.onclose = null;
        if (sock.readyState === SockJS.CONNECTING || sock.readyState === SockJS.OPEN) {
          try { sock.close(); } catch (e) { /* ignore */ }
        }
      }
      if (ok && deflate) {
        const ws = lastWsDriver;
        if (!ws) {
          ok = false;
          detail = 'no ws driver socket was created (driver swap not in effect)';
        } else if (ws.compressedFramesIn === 0) {
          ok = false;
          detail = `permessage-deflate negotiated (${ws.extensionsHeader}) but none of the ${ws.framesIn} ` +
            'server frames was compressed (RSV1)';
        } else {
          extInfo += `, compressed frames in: ${ws.compressedFramesIn}/${ws.framesIn}`;
        }
      }
      const line = ok
        ? `PASS ${name} (used: ${used}${extInfo}) ${MESSAGES.length} messages`
        : `FAIL ${name}${used ? ` (used: ${used})` : ''}: ${detail}`;
      // let sockets wind down before the next configuration starts
      setTimeout(() => resolve({ ok, line }), 200);
    };
    const fail = (detail) => finish(false, detail);
    currentFail = (err) => fail(`exception in client during ${phase}` +
      (phase === 'echo' ? ` (awaiting echo of message ${idx + 1} "${MESSAGES[idx][0]}")` : '') +
      `: ${err && err.stack ? err.stack.split('\n').slice(0, 2).join(' | ') : err}`);

    const timer = setTimeout(() => {
      fail(`timed out after ${TIMEOUT_MS} ms during ${phase}` +
        (phase === 'echo' ? ` (waiting for echo of message ${idx + 1} "${MESSAGES[idx][0]}")` : ''));
    }, TIMEOUT_MS);

    const sendNext = () => {
      if (idx >= MESSAGES.length) {
        phase = 'quiet period';
        quietTimer = setTimeout(() => {
          phase = 'closing';
          sock.close();
        }, QUIET_MS);
        return;
      }
      sock.send(MESSAGES[idx][1]);
    };

    try {
      sock = new SockJS(url, null, options);
    } catch (e) {
      fail(`constructor threw: ${e.message}`);
      return;
    }

    sock.onopen = () => {
      used = sock.transport;
      if (forced && used !== transport) {
        fail(`forced ${transport} but client opened with ${used}`);
        return;
      }
      if (deflate) {
        const ws = lastWsDriver;
        if (!ws) {
          fail('no ws driver socket was created (driver swap not in effect)');
          return;
        }
        // ws >= 8: `extensions` lists the negotiated extension names only;
        // the raw response header also shows the agreed parameters.
        const hdr = ws.extensionsHeader;
        extInfo = `, extensions: ${hdr || '(none)'}`;
        if (!/permessage-deflate/.test(ws.extensions)) {
          fail(`permessage-deflate not negotiated (ws.extensions ${JSON.stringify(ws.extensions)}, ` +
            `Sec-WebSocket-Extensions ${hdr ? JSON.stringify(hdr) : 'absent'})`);
          return;
        }
      }
      phase = 'echo';
      sendNext();
    };

    sock.onmessage = (e) => {
      if (phase !== 'echo') {
        fail(`unexpected extra message during ${phase}: ${describe(e.data)}`);
        return;
      }
      const [label, expected] = MESSAGES[idx];
      if (e.data !== expected) {
        fail(`message ${idx + 1} (${label}) differs: ${shortDiff(expected, e.data)}`);
        return;
      }
      idx++;
      sendNext();
    };

    sock.onerror = () => {
      // sockjs-client only fires 'error' when /info failed; the close event follows.
      phase = phase === 'connecting' ? 'connecting (error event)' : phase;
    };

    sock.onclose = (e) => {
      if (phase !== 'closing') {
        fail(`closed during ${phase}: code ${e.code} reason ${JSON.stringify(e.reason)} ` +
          `wasClean ${e.wasClean}` + (phase === 'echo' ? ` after ${idx} echoes` : ''));
        return;
      }
      if (e.code !== 1000 || e.wasClean !== true) {
        fail(`unclean close: code ${e.code} reason ${JSON.stringify(e.reason)} wasClean ${e.wasClean}`);
        return;
      }
      finish(true);
    };
  });
}

process.on('uncaughtException', (err) => {
  if (currentFail) currentFail(err);
  else { console.error('uncaught exception:', err); process.exit(2); }
});

(async () => {
  let passed = 0;
  let failed = 0;
  for (const name of configs) {
    const { ok, line } = await runConfig(name);
    console.log(line);
    if (ok) passed++; else failed++;
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
