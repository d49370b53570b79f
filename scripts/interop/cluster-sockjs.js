#!/usr/bin/env node
'use strict';
// The demo /chat room across the nodes of a Sockway cluster behind a load balancer, with the official
// sockjs-client (Debian's node-sockjs-client), and one node killed (SIGKILL) in the middle.
//
//   NODE_PATH=/usr/share/nodejs node cluster-sockjs.js BALANCER_URL URL_A,URL_B,URL_C PID_OF_C [messages]
//
// Listeners connect through the balancer on websocket, xhr-streaming, xhr-polling and eventsource
// (URL .../chat; the balancer keeps each session on one node by its server_id); each node has one sender
// of numbered messages, connected to it directly; /chat sends every message to every member. After a
// third of its messages the last node is killed; listeners whose session closes open a new one through
// the balancer (sockjs-client leaves reconnecting to the application). Every listener that was never
// closed must have every message of every surviving sender exactly once and in order; one that moved,
// from its first message after moving on, every later one; nothing may be doubled anywhere. Prints the
// counts and exits 1 if a message was lost, doubled or out of order.

require('./debian-node-path');
const SockJS = require('sockjs-client');

const [balancer, nodesArg, pidArg, messagesArg] = process.argv.slice(2);
if (!balancer || !nodesArg || !pidArg) {
  console.error('usage: cluster-sockjs.js BALANCER_URL URL_A,URL_B,URL_C PID_OF_LAST [messages]');
  process.exit(2);
}
const nodes = nodesArg.split(',');
const victimPid = Number(pidArg);
const messages = Number(messagesArg || 300);
const victim = nodes.length - 1;
const transports = ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource'];

function open(url, transport, onMessage, onClose) {
  return new Promise((resolve, reject) => {
    const sock = new SockJS(url + '/chat', null, { transports: [transport], timeout: 5000 });
    let opened = false;
    const timer = setTimeout(() => reject(new Error(`${url} ${transport}: no open`)), 10000);
    sock.onopen = () => { opened = true; clearTimeout(timer); resolve(sock); };
    sock.onmessage = (event) => onMessage(event.data);
    sock.onclose = (event) => {
      clearTimeout(timer);
      if (!opened) reject(new Error(`${url} ${transport}: closed ${event.code}`));
      else if (onClose) onClose(event);
    };
  });
}

// A listener through the balancer that opens a new session when its session closes, or when nothing
// came for a second while the senders are busy: sockjs-client's Node XHR driver never reports a
// response cut off by a dead server (it waits for an 'end' that does not come; browsers report the
// error), so, like an application with a liveness check, the listener gives up on a silent session.
let sending = false;
async function listen(transport) {
  const listener = { transport, received: [], movedAt: null, closing: false, lastAt: Date.now(), moving: false };
  const onMessage = (data) => { listener.received.push(data); listener.lastAt = Date.now(); };
  const reopen = (why) => {
    if (listener.closing || listener.moving) return;
    if (process.env.CLUSTER_DEBUG) console.log(`  move ${transport} at ${Date.now() % 100000}: ${why && why.code ? 'close ' + why.code : why} after ${Date.now() - listener.lastAt} ms silent`);
    listener.moving = true;
    listener.movedAt = listener.received.length;
    const attempt = () => open(balancer, transport, onMessage, reopen)
      .then((sock) => { listener.sock = sock; listener.lastAt = Date.now(); listener.rejoinedAt = Date.now(); listener.moving = false; })
      .catch(() => setTimeout(attempt, 200));
    setTimeout(attempt, 100);
  };
  listener.watchdog = setInterval(() => {
    if (sending && !listener.moving && Date.now() - listener.lastAt > 1000) {
      const silent = listener.sock;
      reopen('silent');
      silent.onclose = null;
      silent.close();
    }
  }, 100);
  listener.sock = await open(balancer, transport, onMessage, reopen);
  return listener;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

(async () => {
  const listeners = [];
  for (let round = 0; round < 4; round++) {
    for (const transport of transports) listeners.push(await listen(transport));
  }
  const senders = [];
  for (const url of nodes) senders.push(await open(url, 'websocket', () => {}));
  await sleep(500);

  const sent = nodes.map(() => 0);
  const finishedAt = nodes.map(() => 0);
  for (const l of listeners) l.lastAt = Date.now();
  sending = true;
  await Promise.all(nodes.map(async (_, index) => {
    for (let seq = 0; seq < messages; seq++) {
      if (index === victim && seq === Math.floor(messages / 3)) {
        await sleep(50);  // what it sent has left the client
        process.kill(victimPid, 'SIGKILL');
        if (process.env.CLUSTER_DEBUG) console.log(`  killed at ${Date.now() % 100000}`);
        console.log(`killed node ${victim} (pid ${victimPid}) after ${seq} of its messages`);
        return;
      }
      senders[index].send(`${index}:${seq}`);
      sent[index]++;
      await sleep(10);
    }
    finishedAt[index] = Date.now();
  }));

  sending = false;
  const survivors = () => listeners.filter((l) => l.movedAt === null);
  const sendersLeft = [...nodes.keys()].filter((index) => index !== victim);
  const expected = new Set();
  for (const index of sendersLeft) {
    for (let seq = 0; seq < messages; seq++) expected.add(`${index}:${seq}`);
  }
  const complete = (l) => (l.movedAt === null
    ? [...expected].every((m) => l.received.includes(m))
    : sendersLeft.every((index) => l.received.includes(`${index}:${messages - 1}`)));
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    if (listeners.every(complete)) break;
    await sleep(100);
  }
  await sleep(1000);

  let delivered = 0; let lost = 0; let duplicated = 0; let outOfOrder = 0;
  let movedDelivered = 0; let movedLost = 0;
  const fromVictim = [];
  const lostBy = {};
  for (const l of listeners) {
    const seen = new Set(l.received);
    duplicated += l.received.length - seen.size;
    for (let index = 0; index < nodes.length; index++) {
      const own = l.received.filter((m) => m.startsWith(`${index}:`)).map((m) => Number(m.split(':')[1]));
      if (own.some((v, i) => i > 0 && v < own[i - 1])) outOfOrder++;
    }
    if (l.movedAt !== null) {
      const after = l.received.slice(l.movedAt);
      for (const index of sendersLeft) {
        const own = after.filter((m) => m.startsWith(`${index}:`)).map((m) => Number(m.split(':')[1]));
        if (own.length === 0) {
          // Nothing from this sender after moving: lost, unless the sender was done by then.
          if (!l.rejoinedAt || l.rejoinedAt < finishedAt[index] - 500) movedLost++;
          continue;
        }
        const got = new Set(own);
        for (let seq = own[0]; seq < messages; seq++) { if (got.has(seq)) movedDelivered++; else movedLost++; }
      }
      continue;
    }
    const missing = [...expected].filter((m) => !seen.has(m));
    delivered += expected.size - missing.length;
    lost += missing.length;
    if (missing.length) {
      lostBy[l.transport] = (lostBy[l.transport] || 0) + missing.length;
      console.log(`  ${l.transport} listener: received ${l.received.length}, missing ${missing.length} (${missing.slice(0, 3).join(' ')} ...), last received ${l.received.slice(-2).join(' ')}`);
    }
    fromVictim.push(l.received.filter((m) => m.startsWith(`${victim}:`)).length);
  }
  const stayed = survivors();
  console.log(`sockjs /chat across ${nodes.length} nodes behind the balancer, one killed: ${stayed.length} listeners ` +
    `stayed (${transports.join(', ')}) x ${expected.size} messages: delivered ${delivered}, lost ${lost}` +
    `${lost ? ' ' + JSON.stringify(lostBy) : ''}; ${listeners.length - stayed.length} moved and got ${movedDelivered} ` +
    `after moving, lost ${movedLost}; duplicated ${duplicated}, out of order ${outOfOrder}; of the killed ` +
    `node's ${sent[victim]} messages the listeners that stayed got ${Math.min(...fromVictim)}-${Math.max(...fromVictim)}`);
  lost += movedLost;
  for (const l of listeners) { l.closing = true; clearInterval(l.watchdog); l.sock.close(); }
  senders.forEach((s, index) => { if (index !== victim) s.close(); });
  process.exit(lost === 0 && duplicated === 0 && outOfOrder === 0 ? 0 : 1);
})().catch((error) => { console.error('FAIL', error.message); process.exit(1); });
