// The browser side of scripts/browser-burst: the official sockjs-client (loaded from /sockjs.js, Debian's
// node-sockjs-client 1.6.1 browser bundle) forced to one transport at a time against a SockJS echo URL.
// For each transport: open, send the whole burst in one synchronous loop, collect the echoes, check they
// equal what was sent, in order, then close; post one JSON result per transport to the harness.
//
// Query string: url=<SockJS URL>  target=<label>  transports=<a,b,c>
//               timeout=<ms per transport, default 40000>  stall=<ms without an echo, default 10000>
//
// `stall` exists because a lost send cannot always be seen from the page: jsonp-polling posts its sends
// through a hidden form into an iframe, and sockjs-client cannot tell a 413 page from success there
// (lib/transport/sender/jsonp.js says so), so a refused send only shows as echoes that never come.
'use strict';

const params = new URLSearchParams(location.search);
const sockjsUrl = params.get('url');
const target = params.get('target') || 'direct';
const transports = (params.get('transports') || '').split(',').filter(Boolean);
const timeoutMs = Number(params.get('timeout')) || 40000;
const stallMs = Number(params.get('stall')) || 10000;

function log(text) {
  const line = `[${target}] ${text}`;
  document.getElementById('log').textContent += line + '\n';
  // Best effort: the harness keeps the page's log for the bash script to show on failure.
  fetch('log', { method: 'POST', body: line }).catch(() => {});
}

function post(path, object) {
  return fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(object) });
}

// ---- the burst -------------------------------------------------------------------------------------
function makeBurst() {
  const messages = [];

  // 65,536 characters of mixed printable ASCII.
  let ascii = '';
  for (let i = 0; ascii.length < 65536; i++) ascii += String.fromCharCode(0x20 + ((i * 7 + (i >> 5)) % 95));
  messages.push(ascii);

  // 65,536 UTF-16 code units of non-ASCII: Greek, Cyrillic, CJK, Hangul, and emoji as valid surrogate
  // PAIRS (never split: a pair is only written when both its units fit).
  const pieces = ['α', 'Ω', 'ж', 'Я', '中', '文', '字', '한', '글', '😀', '🎉', '𝄞', '€', 'ß', '\u00e9', '\uffee'];
  let wide = '';
  for (let i = 0; wide.length < 65536; i++) {
    const piece = pieces[(i * 5 + (i >> 4)) % pieces.length];
    wide += wide.length + piece.length <= 65536 ? piece : 'ä';
  }
  messages.push(wide);

  // Every Unicode scalar value of the BMP, in order, in 4 messages: U+0000-U+D7FF then U+E000-U+FFFF.
  // The lone surrogate code units U+D800-U+DFFF are left out on purpose: they are not scalar values,
  // a Swift String cannot hold them, so the server refuses a message that carries one; the SockJS
  // protocol text says as much (servers with proper Unicode support cannot carry lone surrogates).
  const scalars = [];
  for (let c = 0x0000; c <= 0xd7ff; c++) scalars.push(c);
  for (let c = 0xe000; c <= 0xffff; c++) scalars.push(c);
  const quarter = Math.ceil(scalars.length / 4);
  for (let part = 0; part < 4; part++) {
    const codes = scalars.slice(part * quarter, (part + 1) * quarter);
    let text = '';
    for (let i = 0; i < codes.length; i += 4096) text += String.fromCharCode.apply(null, codes.slice(i, i + 4096));
    messages.push(text);
  }

  // Short messages: the ones that break naive framings, then plain m1..mN.
  const tricky = ['</script>', '<!--', '\u2028', '\u2029', '"quoted"', '\\', '', ' ', '\n', '\r\n', '\u0000',
    '<script>alert(1)</script>', '-->', ']]>', "'single'", '\\u0041', '%41', '&amp;', '+', 'a=b&d=c',
    '[1,2]', '{"a":1}', 'h', 'o', 'c[3000,"x"]', '\t', '\u007f', '\u00ad', '\ufeff', '\ufffd', '😀'];
  for (const m of tricky) messages.push(m);
  for (let i = 1; messages.length < 90; i++) messages.push('m' + i);
  return messages;
}

function describeMismatch(index, expected, got) {
  if (typeof got !== 'string') return { index, expectedLength: expected.length, receivedType: typeof got };
  let at = 0;
  while (at < expected.length && at < got.length && expected.charCodeAt(at) === got.charCodeAt(at)) at++;
  const code = (s, i) => (i < s.length ? s.charCodeAt(i) : null);
  return {
    index, expectedLength: expected.length, receivedLength: got.length, charIndex: at,
    expectedCharCodes: [code(expected, at), code(expected, at + 1), code(expected, at + 2)],
    receivedCharCodes: [code(got, at), code(got, at + 1), code(got, at + 2)],
  };
}

// ---- one transport -----------------------------------------------------------------------------------
function runOne(transport) {
  return new Promise((resolve) => {
    const burst = makeBurst();
    const started = performance.now();
    const result = {
      target, transport, sent: 0, received: 0, ok: false, firstMismatch: null,
      closeCode: null, closeReason: null, ms: 0, transportUsed: null, error: null,
    };
    let closingByUs = false;
    let finished = false;
    let overallTimer = null;
    let stallTimer = null;
    let sock;

    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(overallTimer);
      clearTimeout(stallTimer);
      result.ms = Math.round(performance.now() - started);
      result.ok = result.error === null && result.firstMismatch === null && result.sent === burst.length &&
        result.received === burst.length && result.closeCode === 1000;
      resolve(result);
    };
    const giveUp = (why) => {
      if (result.error === null) result.error = why;
      closingByUs = true;
      try { sock.close(); } catch (e) { /* already closed */ }
      setTimeout(finish, 2000); // if onclose never comes
    };
    const armStall = () => {
      clearTimeout(stallTimer);
      stallTimer = setTimeout(() => giveUp(`stalled: no echo for ${stallMs} ms after ${result.received} of ${burst.length}`), stallMs);
    };

    try {
      sock = new SockJS(sockjsUrl, null, { transports: [transport] });
    } catch (e) {
      result.error = 'constructor threw: ' + e;
      finish();
      return;
    }
    overallTimer = setTimeout(() => giveUp(`timeout after ${timeoutMs} ms`), timeoutMs);

    sock.onopen = () => {
      result.transportUsed = sock.transport;
      if (sock.transport !== transport) result.error = `opened with ${sock.transport}, not ${transport}`;
      // The whole burst, synchronously, in one loop.
      for (const message of burst) {
        sock.send(message);
        result.sent++;
      }
      armStall();
    };
    sock.onmessage = (event) => {
      const index = result.received++;
      if (index >= burst.length) {
        if (result.error === null) result.error = `extra message #${index}`;
      } else if (event.data !== burst[index] && result.firstMismatch === null) {
        result.firstMismatch = describeMismatch(index, burst[index], event.data);
      }
      if (result.received === burst.length) {
        clearTimeout(stallTimer);
        closingByUs = true;
        sock.close();
      } else {
        armStall();
      }
    };
    sock.onclose = (event) => {
      result.closeCode = event.code;
      result.closeReason = event.reason;
      if (!closingByUs && result.error === null) result.error = 'closed by the other side before the client closed';
      finish();
    };
  });
}

async function main() {
  log(`SockJS ${SockJS.version || '?'} at ${sockjsUrl}: ${transports.join(', ')}`);
  for (const transport of transports) {
    const result = await runOne(transport);
    log(`${transport}: ${JSON.stringify(result)}`);
    await post('result', result);
    await new Promise((r) => setTimeout(r, 200));
  }
  await post('done', { target });
}

main().catch((e) => {
  log('page error: ' + (e && e.stack || e));
  post('done', { target, error: String(e) });
});
