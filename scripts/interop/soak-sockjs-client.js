#!/usr/bin/env node
'use strict';
// Soak driver: the official sockjs-client (Debian's node-sockjs-client, 1.6.1)
// runs many concurrent numbered-message sessions against a SockJS echo
// endpoint and checks that every message the server accepted came back once,
// in order, unaltered. One half of scripts/soak (which judges the numbers).
//
// Usage:
//   node soak-sockjs-client.js URL DURATION_SECONDS SESSIONS_PER_TRANSPORT OUT_JSON
//   e.g. node soak-sockjs-client.js http://127.0.0.1:8080/echo 60 50 /tmp/node-soak.json
//
// Transports (each forced, one at a time per session): websocket
// (faye-websocket), xhr-streaming, xhr-polling, eventsource (node-eventsource).
// For each, SESSIONS_PER_TRANSPORT workers loop until the load deadline, each
// opening a session, running one "life", closing it and opening the next.
// Roles by worker index (i % 10, ROLE_PATTERN: one burst worker in ten, so that
// a 2-core machine runs hundreds of sessions without Node itself saturating):
//   steady       life 8-20 s, a 64-256 byte message every 100-300 ms
//   burst        life 10-20 s, 2,500 messages of ~300 bytes in one synchronous
//                loop every 5 s (faster than the server's pacing allows)
//   reconnect    life 1-3 s steady, then close and reconnect at once
//   mixed        life 5-15 s, a message every 200 ms with JSON-escape-heavy and
//                non-ASCII text (quotes, backslashes, </script>, U+2028/U+2029,
//                emoji as surrogate pairs, CJK, control characters, '%');
//                never lone surrogates
// Every message is "<tag>:<seq>:<payload>"; tag is unique per life
// ("n" + transport letter + worker + "g" + generation), seq counts from 0.
// Payloads are derived deterministically from (life seed, seq), so nothing
// sent needs to be kept in memory to check the echo.
//
// A life ends politely: stop sending, wait until every echo arrived (or 30 s
// passed since the last echo; the rest count as lost), then close(). After
// DURATION_SECONDS no new life starts and running lives drain; at most ~30 s
// later whatever is still open is aborted (counted in "aborted"; its missing
// echoes count as lost).
//
// Accounting per life:
//   sent       messages passed to send()
//   duplicated an echo whose seq was already received
//   reordered  an echo whose seq is below the largest received so far (not a dup)
//   altered    an echo whose payload differs from what was sent for its seq, or
//              that does not parse / names another life / a seq never sent
//   If the session closed before we closed it (closedByServer; code and reason
//   counted in closeReasons), its messages are left out of
//   sent/accepted/delivered/lost (its dups/reorders/altered still count).
//   Otherwise accepted = sent (a refused send closes a sockjs-client session),
//   delivered = distinct seqs received, lost = accepted - delivered.
//   sessions = lives that opened; a session that never opened counts in
//   openFailures (and the worker retries after 1 s).
//
// Writes OUT_JSON ({"driver", "rows": [one per transport]}), prints one line
// per transport on stdout (plus details of any anomaly), a per-role breakdown
// and Node's CPU time on stderr. Exits 0 whatever it found (scripts/soak
// judges); 2 on usage/setup errors.
//
// Env: SOAK_PROGRESS_S (seconds between progress lines on stderr, default 10,
//      0 = none).

require('./debian-node-path');

const fs = require('fs');

function usage(msg) {
  if (msg) console.error(msg);
  console.error('usage: node soak-sockjs-client.js URL DURATION_SECONDS SESSIONS_PER_TRANSPORT OUT_JSON');
  process.exit(2);
}

const [url, durationArg, sessionsArg, outPath] = process.argv.slice(2);
if (process.argv.length !== 6) usage();
if (!/^https?:\/\//.test(url)) usage(`URL must be http(s)://..., got ${url}`);
const DURATION_S = Number(durationArg);
const SESSIONS = Number(sessionsArg);
if (!(DURATION_S > 0)) usage(`DURATION_SECONDS must be a positive number, got ${durationArg}`);
if (!Number.isInteger(SESSIONS) || SESSIONS < 1) usage(`SESSIONS_PER_TRANSPORT must be a positive integer, got ${sessionsArg}`);

// sockjs-client evaluates debug(...) calls unless NODE_ENV is production; they
// cost CPU per message and change nothing else.
if (!process.env.NODE_ENV) process.env.NODE_ENV = 'production';

let SockJS;
let sockjsVersion = '1.6.1';
try {
  SockJS = require('sockjs-client');
  sockjsVersion = SockJS.version || sockjsVersion;
  require('faye-websocket');
  require('eventsource');
} catch (e) {
  console.error('cannot load sockjs-client / faye-websocket / eventsource (apt-get install node-sockjs-client; ' +
    'set NODE_PATH=/usr/share/nodejs): ' + e.message);
  process.exit(2);
}

try {
  fs.writeFileSync(outPath, ''); // fail early on an unwritable path
} catch (e) {
  usage(`cannot write ${outPath}: ${e.message}`);
}

const TRANSPORTS = ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource'];
const TLETTER = { websocket: 'w', 'xhr-streaming': 's', 'xhr-polling': 'p', eventsource: 'e' };
const ROLES = ['steady', 'burst', 'reconnect', 'mixed'];
const ROLE_PATTERN = ['steady', 'burst', 'reconnect', 'mixed', 'steady', 'reconnect', 'steady', 'mixed', 'steady', 'steady'];
const CONNECT_TIMEOUT_MS = 10000;
const DRAIN_MS = 30000; // a life waits at most this long after its last echo
const STAGGER_MS = 2000;
const OPEN_RETRY_MS = 1000;
const BURST_COUNT = 2500;
const BURST_EVERY_MS = 5000;
const PROGRESS_MS = 1000 * Number(process.env.SOAK_PROGRESS_S || 10);

const t0 = Date.now();
const loadDeadline = t0 + DURATION_S * 1000;
const hardStop = loadDeadline + DRAIN_MS + 1000;
let stopping = false; // set at the hard stop

// ---- deterministic payloads ------------------------------------------------

function hash32(a, b) {
  let h = (a ^ Math.imul(b + 0x9e3779b9, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

// Printable ASCII pool (includes '"', '\\', '<', '/', '%', ':'); substrings of
// it are the steady/burst/reconnect payloads.
const POOL = (() => {
  let s = '';
  let x = 0x12345678;
  for (let i = 0; i < 65536; i++) {
    x = hash32(x, i);
    s += String.fromCharCode(0x20 + (x % 95));
  }
  return s;
})();

// Mixed-content fragments: JSON-escape-heavy, HTML-ish, non-ASCII; emoji only
// as valid surrogate pairs, never a lone surrogate.
const MIXED = [
  'quotes "double" \'single\' `back`',
  'backslashes \\ \\\\ \\n \\u2028 \\"',
  '</script><script>alert(1)</script><!-- -->',
  'line\u2028separator\u2029paragraph',
  '\u2028\u2029\u2028',
  'emoji 😀🎉👍🏽 👩‍👩‍👧‍👦 🇺🇦 𝄞 🀄',
  'CJK 中文字符 日本語のテキスト 한국어 텍스트',
  'mixed "中文" \\ 😀 </script> \u2028 ünïcödé ß Ж ع €',
  'controls \u0000\u0001\u001f\t\r\n\u007f\u0085 end',
  'percent 100% %41 %zz %E2%82%AC %',
  'json {"a":[1,2,{"b":"c\\"d"}],"e":null}',
  'frame-like a["x"] c[3000,"Go away!"] o h ]\n[',
  'escapes \u00ad\u0600\u070f\u17b4\u200c\u200f\u2060\ufeff\ufff0\uffff',
  'surrogate pairs 𐀀 𝌆 𠜎 🌍 􏿿',
  'zero-width \u200b\u200d joiners and BOM \ufeff',
];

function payloadFor(life, seq) {
  const h = hash32(life.seed, seq);
  switch (life.role) {
    case 'burst': {
      const len = 290 + (h % 21);
      const off = (h >>> 5) % (POOL.length - 320);
      return POOL.substr(off, len);
    }
    case 'mixed': {
      const frag = MIXED[h % MIXED.length];
      const off = (h >>> 7) % (POOL.length - 64);
      return frag + '|' + POOL.substr(off, 8 + ((h >>> 20) % 40));
    }
    default: { // steady, reconnect: 64-256 bytes
      const len = 64 + (h % 193);
      const off = (h >>> 8) % (POOL.length - 260);
      return POOL.substr(off, len);
    }
  }
}

function rand(lo, hi) { return lo + Math.random() * (hi - lo); }
function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// ---- statistics --------------------------------------------------------------

function newRow(transport) {
  return {
    transport, client: 'sockjs-client', sessions: 0, openFailures: 0, closedByServer: 0, aborted: 0,
    closeReasons: {}, sent: 0, accepted: 0, delivered: 0, lost: 0, duplicated: 0, reordered: 0, altered: 0,
  };
}
const rows = {};
const roleRows = {}; // "transport/role" -> row (stderr breakdown)
for (const t of TRANSPORTS) {
  rows[t] = newRow(t);
  for (const r of ROLES) roleRows[`${t}/${r}`] = newRow(t);
}
const openFailureReasons = {}; // "transport code reason" -> n
const findings = []; // anomaly details, printed (bounded)
const MAX_FINDINGS = 40;
let findingsDropped = 0;
let uncaught = 0;
const live = new Set(); // lives not yet finalized
let totalSent = 0;
let totalEchoes = 0;

function finding(life, what) {
  if (findings.length >= MAX_FINDINGS) { findingsDropped++; return; }
  const at = ((Date.now() - t0) / 1000).toFixed(1);
  findings.push(`[${at}s] ${life.transport} ${life.role} ${life.tag} (state ${life.state}, sent ${life.sent}): ${what}`);
}

function preview(s) {
  s = String(s);
  const j = JSON.stringify(s.length > 80 ? s.slice(0, 80) : s);
  return s.length > 80 ? `${j}... (length ${s.length})` : j;
}

function record(life, how) {
  // how: 'ours' (we closed it), 'server' (closed before we closed it), 'aborted'
  // (still open at the hard stop), 'openFailed'
  if (life.finalized) return;
  life.finalized = true;
  live.delete(life);
  clearLifeTimers(life);
  const targets = [rows[life.transport], roleRows[`${life.transport}/${life.role}`]];
  for (const row of targets) {
    if (how === 'openFailed') { row.openFailures++; continue; }
    row.sessions++;
    row.duplicated += life.dup;
    row.reordered += life.reorder;
    row.altered += life.altered;
    if (how === 'server') {
      row.closedByServer++;
      const key = `${life.closeCode} ${life.closeReason}`;
      row.closeReasons[key] = (row.closeReasons[key] || 0) + 1;
      continue;
    }
    if (how === 'aborted') row.aborted++;
    row.sent += life.sent;
    row.accepted += life.sent;
    row.delivered += life.distinct;
    row.lost += life.sent - life.distinct;
  }
  if (how === 'openFailed') {
    const key = `${life.transport} ${life.closeCode} ${life.closeReason}`;
    openFailureReasons[key] = (openFailureReasons[key] || 0) + 1;
  } else if (how !== 'server' && life.sent > life.distinct) {
    finding(life, `${life.sent - life.distinct} of ${life.sent} echoes missing when ${how === 'aborted' ? 'aborted' : 'closed'}` +
      ` (first missing seq ${firstMissing(life)}, largest received ${life.maxSeen})`);
  }
}

function firstMissing(life) {
  for (let i = 0; i < life.sent; i++) if (!life.seen[i]) return i;
  return -1;
}

// ---- one life ------------------------------------------------------------

function clearLifeTimers(life) {
  clearTimeout(life.sendTimer);
  clearTimeout(life.lifeTimer);
  clearInterval(life.drainTimer);
  life.sendTimer = life.lifeTimer = life.drainTimer = null;
}

function markSeen(life, seq) {
  if (seq >= life.seen.length) {
    let n = life.seen.length * 2;
    while (n <= seq) n *= 2;
    const grown = new Uint8Array(n);
    grown.set(life.seen);
    life.seen = grown;
  }
  life.seen[seq] = 1;
}

function onEcho(life, data) {
  totalEchoes++;
  life.lastEchoAt = Date.now();
  if (typeof data !== 'string') {
    life.altered++;
    finding(life, `non-string echo ${preview(data)}`);
    return;
  }
  const i1 = data.indexOf(':');
  const i2 = i1 < 0 ? -1 : data.indexOf(':', i1 + 1);
  const tag = i1 < 0 ? null : data.slice(0, i1);
  const seqStr = i2 < 0 ? '' : data.slice(i1 + 1, i2);
  const seq = /^\d+$/.test(seqStr) ? Number(seqStr) : -1;
  if (tag !== life.tag || seq < 0 || seq >= life.sent) {
    life.altered++;
    finding(life, `echo that is not one of this life's messages: ${preview(data)}`);
    return;
  }
  const payload = data.slice(i2 + 1);
  const expected = payloadFor(life, seq);
  if (payload !== expected) {
    life.altered++;
    let k = 0;
    while (k < payload.length && k < expected.length && payload[k] === expected[k]) k++;
    finding(life, `seq ${seq} altered at UTF-16 index ${k}: expected ${preview(expected.slice(k))}, got ${preview(payload.slice(k))}`);
  }
  if (seq < life.seen.length && life.seen[seq]) {
    life.dup++;
    if (life.dup <= 3) finding(life, `seq ${seq} echoed again (largest received ${life.maxSeen})`);
    return;
  }
  if (seq < life.maxSeen) {
    life.reorder++;
    if (life.reorder <= 3) finding(life, `seq ${seq} arrived after seq ${life.maxSeen}`);
  } else {
    life.maxSeen = seq;
  }
  markSeen(life, seq);
  life.distinct++;
  if (life.state === 'draining' && life.distinct >= life.sent) closeLife(life);
}

function sendOne(life) {
  if (life.state !== 'open' || life.sock.readyState !== SockJS.OPEN) return false;
  const seq = life.sent;
  life.sock.send(life.tag + ':' + seq + ':' + payloadFor(life, seq));
  life.sent++;
  totalSent++;
  return true;
}

function scheduleSends(life) {
  if (life.state !== 'open') return;
  if (life.role === 'burst') {
    for (let i = 0; i < BURST_COUNT; i++) if (!sendOne(life)) return;
    life.sendTimer = setTimeout(() => scheduleSends(life), BURST_EVERY_MS);
    return;
  }
  if (!sendOne(life)) return;
  const gap = life.role === 'mixed' ? 200 : rand(100, 300);
  life.sendTimer = setTimeout(() => scheduleSends(life), gap);
}

function drain(life) {
  if (life.state !== 'open') return;
  life.state = 'draining';
  clearTimeout(life.sendTimer);
  clearTimeout(life.lifeTimer);
  life.drainStartAt = Date.now();
  if (life.distinct >= life.sent) { closeLife(life); return; }
  life.drainTimer = setInterval(() => {
    const since = Math.max(life.lastEchoAt, life.drainStartAt);
    if (Date.now() - since > DRAIN_MS) {
      finding(life, `gave up waiting: no echo for ${DRAIN_MS / 1000} s`);
      closeLife(life);
    }
  }, 500);
}

function closeLife(life) {
  if (life.state === 'closing' || life.state === 'done') return;
  clearLifeTimers(life);
  if (life.sock.readyState === SockJS.OPEN) {
    life.state = 'closing';
    life.weClosed = true;
    life.sock.close();
  }
  // Otherwise the session is already closing on its own; its onclose records it.
}

function runLife(transport, worker, role, gen) {
  return new Promise((resolve) => {
    const life = {
      transport, role, worker,
      tag: `n${TLETTER[transport]}${worker}g${gen}`,
      seed: hash32(hash32(worker, gen), TRANSPORTS.indexOf(transport) + 17),
      state: 'connecting', weClosed: false, finalized: false,
      sent: 0, distinct: 0, dup: 0, reorder: 0, altered: 0, maxSeen: -1,
      seen: new Uint8Array(256), lastEchoAt: 0, drainStartAt: 0,
      closeCode: null, closeReason: null,
      sendTimer: null, lifeTimer: null, drainTimer: null,
      resolve, sock: null, startedAt: Date.now(),
    };
    live.add(life);
    let sock;
    try {
      sock = new SockJS(url, null, { transports: [transport], timeout: CONNECT_TIMEOUT_MS });
    } catch (e) {
      life.closeCode = 'throw';
      life.closeReason = e.message;
      record(life, 'openFailed');
      resolve('openFailed');
      return;
    }
    life.sock = sock;

    sock.onopen = () => {
      if (life.finalized) return;
      if (sock.transport !== transport) {
        finding(life, `forced ${transport} but opened with ${sock.transport}`);
      }
      life.state = 'open';
      life.openedAt = Date.now();
      openMs.push(life.openedAt - life.startedAt);
      if (Date.now() >= loadDeadline) { drain(life); return; }
      const lifeMs = {
        steady: rand(8000, 20000), burst: rand(10000, 20000),
        reconnect: rand(1000, 3000), mixed: rand(5000, 15000),
      }[role];
      life.lifeTimer = setTimeout(() => drain(life), Math.min(lifeMs, loadDeadline - Date.now()));
      scheduleSends(life);
    };

    sock.onmessage = (e) => {
      if (life.finalized) return;
      onEcho(life, e.data);
    };

    sock.onclose = (e) => {
      const opened = life.state !== 'connecting';
      life.closeCode = e.code;
      life.closeReason = e.reason;
      const how = !opened ? 'openFailed' : (life.weClosed ? 'ours' : 'server');
      if (how === 'ours' && e.code !== 1000) {
        finding(life, `our close ended with code ${e.code} ${JSON.stringify(e.reason)}`);
      }
      if (how === 'server') {
        finding(life, `closed by server during ${life.state}: ${e.code} ${JSON.stringify(e.reason)}` +
          ` after ${life.distinct}/${life.sent} echoes`);
      }
      life.state = 'done';
      record(life, how);
      resolve(how);
    };
  });
}

// ---- workers ---------------------------------------------------------------

async function worker(transport, index, startDelay) {
  await sleep(startDelay);
  const role = ROLE_PATTERN[index % ROLE_PATTERN.length];
  let gen = 0;
  while (!stopping && Date.now() < loadDeadline) {
    const how = await runLife(transport, index, role, gen++);
    if (how === 'openFailed' && !stopping && Date.now() < loadDeadline) await sleep(OPEN_RETRY_MS);
  }
}

process.on('uncaughtException', (err) => {
  // sockjs-client and its drivers occasionally throw from timers/sockets (e.g.
  // "SockJS has already been closed"); count, report, carry on.
  uncaught++;
  if (uncaught <= 5) console.error(`uncaught exception (#${uncaught}): ${err && err.stack ? err.stack.split('\n').slice(0, 3).join(' | ') : err}`);
});

// Diagnostics (stderr only): event-loop lag, time to open. A saturated Node
// process is slow to re-poll/re-read, which the server may see as a stalled client.
const { monitorEventLoopDelay } = require('perf_hooks');
const loopDelay = monitorEventLoopDelay({ resolution: 20 });
loopDelay.enable();
let loopDelayMaxMs = 0;
const openMs = [];
function pctl(a, p) {
  if (!a.length) return 0;
  const s = a.slice().sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

let progressTimer = null;
if (PROGRESS_MS > 0) {
  progressTimer = setInterval(() => {
    const el = ((Date.now() - t0) / 1000).toFixed(0);
    const states = {};
    for (const l of live) states[l.state] = (states[l.state] || 0) + 1;
    const mem = Math.round(process.memoryUsage().rss / 1048576);
    const lag = loopDelay.max / 1e6;
    loopDelayMaxMs = Math.max(loopDelayMaxMs, lag);
    loopDelay.reset();
    console.error(`[${el}s] live ${live.size} ${JSON.stringify(states)} sent ${totalSent} echoes ${totalEchoes} ` +
      `rss ${mem} MiB, event-loop lag max ${lag.toFixed(0)} ms`);
  }, PROGRESS_MS);
}

function pad(v, n) { return String(v).padStart(n); }

function finish() {
  clearInterval(progressTimer);
  const rowList = TRANSPORTS.map((t) => rows[t]);
  const out = { driver: `sockjs-client ${sockjsVersion} (Node ${process.version})`, rows: rowList };
  fs.writeFileSync(outPath, JSON.stringify(out, null, 2) + '\n');

  const cols = ['sessions', 'openFailures', 'closedByServer', 'aborted', 'sent', 'accepted', 'delivered', 'lost', 'duplicated', 'reordered', 'altered'];
  const hdr = (w) => ['transport'.padEnd(w)].concat(cols.map((c) => pad(c, Math.max(c.length, 9)))).join(' ') + '  closeReasons';
  const line = (r, w) => [r.transport.padEnd(w)].concat(cols.map((c) => pad(r[c], Math.max(c.length, 9)))).join(' ') +
    '  ' + JSON.stringify(r.closeReasons);
  console.log(`${out.driver}: ${DURATION_S} s, ${SESSIONS} sessions per transport`);
  console.log(hdr(14));
  for (const r of rowList) console.log(line(r, 14));
  if (Object.keys(openFailureReasons).length) console.log('open failures: ' + JSON.stringify(openFailureReasons));
  if (uncaught) console.log(`uncaught exceptions in client: ${uncaught}`);
  if (findings.length) {
    console.log('details:');
    for (const f of findings) console.log('  ' + f);
    if (findingsDropped) console.log(`  ... and ${findingsDropped} more`);
  }

  console.error('per role:');
  console.error(hdr(23).replace('transport     ', 'transport/role'));
  for (const t of TRANSPORTS) {
    for (const r of ROLES) {
      const row = roleRows[`${t}/${r}`];
      console.error(line(Object.assign({}, row, { transport: `${t}/${r}` }), 23));
    }
  }
  loopDelayMaxMs = Math.max(loopDelayMaxMs, loopDelay.max / 1e6);
  console.error(`time to open: p50 ${pctl(openMs, 0.5)} ms, p99 ${pctl(openMs, 0.99)} ms, max ${pctl(openMs, 1)} ms; ` +
    `event-loop lag max ${loopDelayMaxMs.toFixed(0)} ms`);
  const cpu = process.cpuUsage();
  console.error(`node cpu: user ${(cpu.user / 1e6).toFixed(1)} s, system ${(cpu.system / 1e6).toFixed(1)} s ` +
    `over ${((Date.now() - t0) / 1000).toFixed(1)} s wall; peak rss ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB`);
}

(async () => {
  const all = [];
  const total = TRANSPORTS.length * SESSIONS;
  let k = 0;
  // Interleave transports so the stagger spreads every transport over ~2 s.
  for (let i = 0; i < SESSIONS; i++) {
    for (const t of TRANSPORTS) {
      all.push(worker(t, i, Math.floor((k++ * STAGGER_MS) / total)));
    }
  }
  // Lives still running at the load deadline drain now (their life timer may be longer).
  const deadlineTimer = setTimeout(() => {
    for (const l of live) if (l.state === 'open') drain(l);
  }, Math.max(0, loadDeadline - Date.now()));

  const hard = new Promise((r) => setTimeout(r, hardStop - Date.now()));
  await Promise.race([Promise.all(all), hard]);
  clearTimeout(deadlineTimer);
  stopping = true;
  if (live.size) {
    // Abort what is still open (or stuck connecting) at the hard stop.
    for (const l of Array.from(live)) {
      const how = l.state === 'connecting' ? 'openFailed' : 'aborted';
      if (how === 'openFailed') { l.closeCode = 'stuck'; l.closeReason = 'still connecting at the hard stop'; }
      else finding(l, `aborted at the hard stop (state ${l.state}, ${l.distinct}/${l.sent} echoes)`);
      record(l, how);
      if (l.sock) {
        l.sock.onclose = l.sock.onmessage = l.sock.onopen = null;
        try { l.sock.close(); } catch (e) { /* ignore */ }
      }
    }
  }
  finish();
  // Let close frames / aborts go out, then leave (keep-alive sockets would hold us).
  setTimeout(() => process.exit(0), 300);
})();
