#!/usr/bin/env node
'use strict';
// Bridge interop: the official sockjs-client (Debian's node-sockjs-client) through `sockway serve
// --upstream ws://…` (Python `websockets`) and `--route /tcp=tcp://…` (an asyncio TCP echo), once per
// transport: a message there and back, the client's address as the upstream saw it (X-Forwarded-For,
// Forwarded; WebSocket upstream only), and the upstream's close reaching the client with its code
// and reason. The upstreams are scripts/interop/bridge_upstreams.py.
//
// Usage: node bridge-sockjs-client.js http://127.0.0.1:PORT [transport ...]
// Prints one PASS/FAIL line per case; exits 1 if any failed.

require('./debian-node-path');
const SockJS = require('sockjs-client');

const TRANSPORTS = ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource'];
const base = process.argv[2];
const transports = process.argv.length > 3 ? process.argv.slice(3) : TRANSPORTS;
if (!base) {
  console.error('usage: bridge-sockjs-client.js http://127.0.0.1:PORT [transport ...]');
  process.exit(2);
}

// Opens a session on `path` over `transport`, runs `steps` (each: a message to send and a check of
// the reply, or a close expected), and resolves with null or an error text.
function run(path, transport, steps) {
  return new Promise((resolve) => {
    const sock = new SockJS(base + path, null, { transports: [transport], timeout: 5000 });
    let index = 0;
    let done = false;
    const finish = (error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try { sock.close(); } catch (e) { /* closed already */ }
      resolve(error);
    };
    const timer = setTimeout(() => finish(`timed out at step ${index}`), 15000);
    const next = () => {
      const step = steps[index];
      if (!step) return finish(null);
      sock.send(step.send);
    };
    sock.onopen = () => {
      if (sock.transport !== transport) return finish(`opened over ${sock.transport}`);
      next();
    };
    sock.onmessage = (event) => {
      const step = steps[index];
      if (!step || !step.reply) return finish(`unexpected message ${JSON.stringify(event.data).slice(0, 80)}`);
      const problem = step.reply(event.data);
      if (problem) return finish(problem);
      index += 1;
      next();
    };
    sock.onclose = (event) => {
      const step = steps[index];
      if (step && step.close) {
        const problem = step.close(event);
        return finish(problem || null);
      }
      finish(`closed early: ${event.code} ${event.reason}`);
    };
  });
}

const echo = (text) => ({ send: text, reply: (data) => (data === text ? null : `echo: got ${JSON.stringify(data).slice(0, 80)}`) });
const closeWith = (send, code, reason) => ({
  send,
  close: (event) => (event.code === code && event.reason === reason ? null : `close: got ${event.code} ${JSON.stringify(event.reason)}, expected ${code} ${JSON.stringify(reason)}`),
});
const forwarded = {
  send: '__headers__',
  reply: (data) => {
    const headers = JSON.parse(data);
    if (headers['x-forwarded-for'] !== '127.0.0.1') return `x-forwarded-for: ${headers['x-forwarded-for']}`;
    if (!/^for=127\.0\.0\.1;proto=http/.test(headers['forwarded'] || '')) return `forwarded: ${headers['forwarded']}`;
    if ('cookie' in headers) return 'the cookie was passed on without --forward-cookie';
    return null;
  },
};

const cases = [];
for (const transport of transports) {
  cases.push([`ws:// upstream, ${transport}`, '/echo', transport, [
    echo('hello'), echo('ünïcödé \u2028 "quoted" \\'), echo('x'.repeat(50000)), forwarded,
    closeWith('__close__:4001:bye', 4001, 'bye'),
  ]]);
  cases.push([`tcp:// upstream, ${transport}`, '/tcp', transport, [
    echo('hello'), echo('ünïcödé "quoted"'), closeWith('__close__', 1000, 'Upstream closed the connection'),
  ]]);
}

(async () => {
  let failed = 0;
  for (const [name, path, transport, steps] of cases) {
    const error = await run(path, transport, steps);
    console.log(`${error ? 'FAIL' : 'PASS'} ${name}${error ? ': ' + error : ''}`);
    if (error) failed += 1;
  }
  console.log(`${cases.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
