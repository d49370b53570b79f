#!/usr/bin/env node
'use strict';
// sockjs-client (Debian's node-sockjs-client) over https://: one echo per transport, the server's
// certificate trusted through NODE_EXTRA_CA_CERTS (read by Node at start; nothing here turns
// verification off).
//
//   NODE_EXTRA_CA_CERTS=cert.pem node tls-sockjs-client.js https://127.0.0.1:PORT/echo [transport ...]
//
// Transports (default: websocket xhr-streaming xhr-polling). Prints one PASS/FAIL line each, exits 1
// if any failed.
require('./debian-node-path');
const SockJS = require('sockjs-client');

const url = process.argv[2];
const transports = process.argv.length > 3 ? process.argv.slice(3) : ['websocket', 'xhr-streaming', 'xhr-polling'];
if (!url || !url.startsWith('https://')) {
  console.error('usage: tls-sockjs-client.js https://127.0.0.1:PORT/echo [transport ...]');
  process.exit(2);
}

function run(transport) {
  return new Promise((resolve) => {
    const message = `over tls via ${transport} ✓`;
    const big = 'x'.repeat(40000);
    const expected = [message, big];
    const received = [];
    let opened = false;
    let finished = false;
    const sock = new SockJS(url, null, { transports: [transport], timeout: 5000 });
    const done = (ok, why) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      try { sock.close(); } catch (_) { /* closed already */ }
      resolve({ ok, why });
    };
    const timer = setTimeout(() => done(false, `timeout (opened: ${opened}, received ${received.length})`), 20000);
    sock.onopen = () => {
      opened = true;
      if (sock.transport !== transport) return done(false, `transport ${sock.transport}, not ${transport}`);
      expected.forEach((m) => sock.send(m));
    };
    sock.onmessage = (event) => {
      received.push(event.data);
      if (received.length === expected.length) {
        const same = received.every((m, i) => m === expected[i]);
        done(same, same ? `${received.length} messages echoed` : 'echo differs');
      }
    };
    sock.onclose = (event) => done(false, `closed ${event.code} ${event.reason} (opened: ${opened})`);
  });
}

(async () => {
  let failed = 0;
  for (const transport of transports) {
    const { ok, why } = await run(transport);
    if (!ok) failed += 1;
    console.log(`${ok ? 'PASS' : 'FAIL'} sockjs-client ${transport} over https: ${why}`);
  }
  process.exit(failed ? 1 : 0);
})();
