#!/usr/bin/env python3
"""Hostile-client probe for a running `sockway serve` on 127.0.0.1.

Attacks the server the way an attacker or an unlucky browser would (slow heads, oversized heads, ambiguous
HTTP/1.1 framing with a smuggled second request, unbounded pipelining, session floods, foreign origins,
session hijack by cookie, weak session ids, malformed WebSocket frames, oversized and slow bodies) and
classifies every case:

    DEFENDED  the server did what it should (status, close code, connection closed, deadline kept)
    WEAK      no exploitable misbehaviour seen, but not the wanted defence (wrong status, connection left
              open, no deadline, no cap, feature absent, case skipped)
    BROKEN    the hostile input was processed as if valid, a smuggled request was answered, a limit or
              deadline is missing where it costs memory/connections, or answers were lost

Usage (standard library only, loopback only):

    sockway serve --port 8091 &
    sockway serve --port 8092 --allowed-origin http://good.example &
    scripts/interop/hostile_probe.py --url http://127.0.0.1:8091 \
        --allowed-origin-url http://127.0.0.1:8092 [--header-timeout 10] [--server-pid PID] [--report-only]

Prints a table (case, verdict, seconds, reason) and then a JSON summary (also written to --json-out when
given). Exits 1 if any case is not DEFENDED, unless --report-only. --only/--skip select cases by substring.
Slow cases (header deadline, idle, body slowloris) run in background threads while the others run; the
whole run takes about 30 s with --header-timeout 10 (the slow cases wait up to 2 x header-timeout + 6 s).
"""
import argparse
import base64
import bisect
import json
import math
import os
import random
import select
import socket
import string
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

DEFENDED, WEAK, BROKEN = "DEFENDED", "WEAK", "BROKEN"
EVIL = "http://evil.example"
GOOD = "http://good.example"
LOOPBACK = "127.0.0.1"


# ----------------------------------------------------------------------------------------------- plumbing

class Target:
    def __init__(self, url):
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise SystemExit(f"only http:// URLs are supported: {url}")
        host = parts.hostname or ""
        if host not in (LOOPBACK, "localhost"):
            raise SystemExit(f"refusing non-loopback target {host!r}: this probe only talks to 127.0.0.1")
        self.host = LOOPBACK
        self.port = parts.port or 80
        self.url = f"http://{LOOPBACK}:{self.port}"

    @property
    def hostport(self):
        return f"{self.host}:{self.port}"


class Outcome(Exception):
    """Raised inside a case to finish it with a verdict."""

    def __init__(self, verdict, reason, **details):
        super().__init__(reason)
        self.verdict, self.reason, self.details = verdict, reason, details


def connect(target, timeout=5.0, rcvbuf=None, sndbuf=None):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.settimeout(timeout)
    sock.connect((LOOPBACK, target.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send_quietly(sock, data):
    """sendall that reports a peer close instead of raising; returns None or the error name."""
    try:
        sock.sendall(data)
        return None
    except OSError as error:
        return type(error).__name__


def read_until(sock, seconds, stop=None):
    """Reads until EOF/reset, `seconds` elapse, or stop(buffer) is true.

    Returns (bytes, how, elapsed) with how in eof | reset | timeout | stopped | error:<name>.
    """
    buf = bytearray()
    start = time.monotonic()
    end = start + seconds
    while True:
        if stop is not None and stop(buf):
            return bytes(buf), "stopped", time.monotonic() - start
        remaining = end - time.monotonic()
        if remaining <= 0:
            return bytes(buf), "timeout", time.monotonic() - start
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return bytes(buf), "timeout", time.monotonic() - start
        except ConnectionResetError:
            return bytes(buf), "reset", time.monotonic() - start
        except OSError as error:
            return bytes(buf), "error:" + type(error).__name__, time.monotonic() - start
        if not chunk:
            return bytes(buf), "eof", time.monotonic() - start
        buf += chunk


def closed(how):
    return how in ("eof", "reset") or how.startswith("error:")


class Response:
    def __init__(self, status, reason, headers, body):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def header(self, name):
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def line(self):
        return f"{self.status} {self.reason}".strip()

    def __repr__(self):
        return f"<{self.line()} {len(self.body)}B>"


def parse_one(buf, pos, eof):
    """Parses one response at buf[pos:]. Returns (Response, new_pos), (None, pos) if incomplete, or raises
    ValueError on bytes that are not an HTTP response."""
    end = buf.find(b"\r\n\r\n", pos)
    if end < 0:
        start = bytes(buf[pos:pos + 5])
        if not b"HTTP/".startswith(start):
            raise ValueError(f"not an HTTP response: {start!r}")
        return None, pos
    lines = bytes(buf[pos:end]).decode("latin-1").split("\r\n")
    first = lines[0].split(" ", 2)
    if not first[0].startswith("HTTP/") or len(first) < 2 or not first[1].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0][:60]!r}")
    status = int(first[1])
    reason = first[2] if len(first) > 2 else ""
    headers = []
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers.append((key.strip().lower(), value.strip()))
    resp = Response(status, reason, headers, b"")
    body_start = end + 4
    if status < 200 or status in (204, 304):
        return resp, body_start
    te = (resp.header("transfer-encoding") or "").lower()
    if "chunked" in te:
        cursor, body = body_start, bytearray()
        while True:
            line_end = buf.find(b"\r\n", cursor)
            if line_end < 0:
                return None, pos
            size = int(bytes(buf[cursor:line_end]).split(b";")[0].strip() or b"0", 16)
            cursor = line_end + 2
            if size == 0:
                trailer_end = buf.find(b"\r\n", cursor)
                if trailer_end < 0:
                    return None, pos
                resp.body = bytes(body)
                return resp, trailer_end + 2
            if len(buf) < cursor + size + 2:
                return None, pos
            body += buf[cursor:cursor + size]
            cursor += size + 2
    length = resp.header("content-length")
    if length is not None:
        length = int(length)
        if len(buf) - body_start < length:
            return None, pos
        resp.body = bytes(buf[body_start:body_start + length])
        return resp, body_start + length
    if eof:
        resp.body = bytes(buf[body_start:])
        return resp, len(buf)
    return None, pos


def parse_responses(buf, eof=True):
    """All complete responses in buf; returns (responses, leftover_bytes, garbage_note)."""
    out, pos = [], 0
    while pos < len(buf):
        try:
            resp, new_pos = parse_one(buf, pos, eof)
        except ValueError as error:
            return out, len(buf) - pos, str(error)
        if resp is None:
            break
        out.append(resp)
        pos = new_pos
    return out, len(buf) - pos, None


def exchange(target, raw, seconds=3.0, stop_after=None):
    """Sends raw bytes on a fresh connection, reads until close/timeout (or stop_after responses followed by
    a close/timeout). Returns dict with responses, how, elapsed, leftover."""
    sock = connect(target)
    try:
        send_error = send_quietly(sock, raw)
        stop = None
        if stop_after is not None:
            def stop(buf):
                return len(parse_responses(buf, eof=False)[0]) >= stop_after
        data, how, elapsed = read_until(sock, seconds, stop)
        if how == "stopped":
            # the wanted answers are in: give the server a moment to close (or not)
            more, how, extra = read_until(sock, min(1.5, seconds))
            data += more
            elapsed += extra
    finally:
        sock.close()
    responses, leftover, garbage = parse_responses(data, eof=closed(how))
    return {"responses": responses, "how": how, "elapsed": elapsed, "leftover": leftover, "garbage": garbage,
            "send_error": send_error, "bytes": len(data)}


def request(method, path, target, headers=(), body=b"", version="HTTP/1.1", cl=True):
    lines = [f"{method} {path} {version}", f"Host: {target.hostport}"]
    lines += list(headers)
    if body and cl:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def simple(target, method, path, headers=(), body=b"", seconds=3.0):
    """One request on its own connection; returns (Response or None, exchange dict)."""
    result = exchange(target, request(method, path, target, list(headers) + ["Connection: close"], body),
                      seconds, stop_after=1)
    return (result["responses"][0] if result["responses"] else None), result


def summary(result):
    statuses = ",".join(str(r.status) for r in result["responses"]) or "none"
    return f"responses=[{statuses}] conn={result['how']} after {result['elapsed']:.2f}s"


def rand_id(n=12):
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def open_sockjs_session(target, prefix="/echo", headers=()):
    sid = rand_id()
    resp, result = simple(target, "POST", f"{prefix}/000/{sid}/xhr", list(headers) + ["Content-Length: 0"])
    if resp is None or resp.status != 200 or not resp.body.startswith(b"o"):
        raise Outcome(WEAK, f"could not open a SockJS session for the case: {summary(result)}")
    return sid, resp


def tcp_queues(local_port, remote_port):
    """(tx_queue, rx_queue) of the loopback socket local_port -> remote_port from /proc/net/tcp, or None."""
    want = (f"0100007F:{local_port:04X}", f"0100007F:{remote_port:04X}")
    try:
        with open("/proc/net/tcp") as table:
            next(table)
            for line in table:
                fields = line.split()
                if (fields[1], fields[2]) == want:
                    tx, rx = fields[4].split(":")
                    return int(tx, 16), int(rx, 16)
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    return None


def server_rss_kib(pid):
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ----------------------------------------------------------------------------------------------- WebSocket

def ws_handshake(target, path, origin=None, seconds=3.0):
    """Returns (sock or None, Response-ish status, leftover bytes after the head)."""
    key = base64.b64encode(os.urandom(16)).decode()
    headers = ["Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
               "Sec-WebSocket-Version: 13"]
    if origin:
        headers.append(f"Origin: {origin}")
    sock = connect(target, seconds)
    sock.sendall(request("GET", path, target, headers))
    data, how, _ = read_until(sock, seconds, lambda buf: b"\r\n\r\n" in buf)
    head, _, rest = data.partition(b"\r\n\r\n")
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    if status != 101:
        sock.close()
        return None, status, line, rest
    return sock, status, line, rest


def ws_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length_override=None):
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload) if length_override is None else length_override
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_parse_frames(buf):
    """Server frames (unmasked) in buf: list of (opcode, payload)."""
    frames, pos = [], 0
    while len(buf) - pos >= 2:
        b0, b1 = buf[pos], buf[pos + 1]
        length, cursor = b1 & 0x7F, pos + 2
        if length == 126:
            if len(buf) - cursor < 2:
                break
            length = struct.unpack("!H", buf[cursor:cursor + 2])[0]
            cursor += 2
        elif length == 127:
            if len(buf) - cursor < 8:
                break
            length = struct.unpack("!Q", buf[cursor:cursor + 8])[0]
            cursor += 8
        if b1 & 0x80:
            cursor += 4
        if len(buf) - cursor < length:
            break
        frames.append((b0 & 0x0F, bytes(buf[cursor:cursor + length])))
        pos = cursor + length
    return frames


def ws_close_code(frames):
    for opcode, payload in frames:
        if opcode == 8:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    return None


# ----------------------------------------------------------------------------------------------- cases

class Probe:
    def __init__(self, args):
        self.args = args
        self.target = Target(args.url)
        self.origin_target = Target(args.allowed_origin_url) if args.allowed_origin_url else None
        self.ht = args.header_timeout
        self.results = []
        self.sequence = {}
        self.lock = threading.Lock()

    # -- bookkeeping

    def selected(self, name):
        if self.args.only and not any(s in name for s in self.args.only):
            return False
        return not any(s in name for s in self.args.skip or [])

    def run_case(self, name, fn, *fn_args):
        if not self.selected(name):
            return
        with self.lock:
            self.sequence[name] = len(self.sequence)
        start = time.monotonic()
        try:
            verdict, reason, details = fn(*fn_args)
        except Outcome as outcome:
            verdict, reason, details = outcome.verdict, outcome.reason, outcome.details
        except Exception as error:  # a probe bug or an unexpected server reaction: never DEFENDED
            verdict, reason, details = WEAK, f"probe error: {type(error).__name__}: {error}", {}
        record = {"case": name, "verdict": verdict, "seconds": round(time.monotonic() - start, 2),
                  "reason": reason, "details": details}
        with self.lock:
            self.results.append(record)
            if self.args.verbose:
                print(f"  {verdict:8} {name}: {reason}", file=sys.stderr, flush=True)

    # -- 1. header deadline / idle

    def slow_cap(self):
        return 2 * self.ht + 6

    def deadline_verdict(self, what, closed_after, how, sent, got):
        cap, ok = self.slow_cap(), self.ht + 4
        details = {"closed_after_s": None if closed_after is None else round(closed_after, 2), "close": how,
                   "bytes_sent": sent, "server_bytes": got[:120].decode("latin-1")}
        if closed_after is None:
            return BROKEN, f"{what}: still open after {cap:.0f}s ({sent} bytes sent, no deadline)", details
        status = got.split(b"\r\n", 1)[0].decode("latin-1") if got else "no status"
        if closed_after <= ok:
            return DEFENDED, f"{what}: closed after {closed_after:.1f}s ({how}, {status})", details
        return WEAK, f"{what}: closed only after {closed_after:.1f}s (expected <= ~{self.ht:.0f}s; {status})", details

    def case_header_trickle(self):
        head = request("GET", "/echo/info", self.target, ["X-Pad: " + "p" * 200])
        sock = connect(self.target)
        start, sent, got, how = time.monotonic(), 0, b"", None
        try:
            while time.monotonic() - start < self.slow_cap():
                if sent < len(head):
                    try:
                        sock.send(head[sent:sent + 1])
                        sent += 1
                    except OSError as error:
                        how = type(error).__name__
                        break
                readable, _, _ = select.select([sock], [], [], 2.0)
                if readable:
                    try:
                        chunk = sock.recv(4096)
                    except OSError as error:
                        how = type(error).__name__
                        break
                    if not chunk:
                        how = "eof"
                        break
                    got += chunk
        finally:
            sock.close()
        closed_after = time.monotonic() - start if how else None
        return self.deadline_verdict("1 byte/2s head", closed_after, how, sent, got)

    def case_header_silent(self):
        sock = connect(self.target)
        try:
            data, how, elapsed = read_until(sock, self.slow_cap())
        finally:
            sock.close()
        return self.deadline_verdict("silent connection", elapsed if closed(how) else None, how, 0, data)

    def case_keepalive_idle(self):
        sock = connect(self.target)
        try:
            sock.sendall(request("GET", "/echo/info", self.target))
            data, how, _ = read_until(sock, 3, lambda buf: len(parse_responses(buf, False)[0]) >= 1)
            if how != "stopped":
                raise Outcome(WEAK, f"no answer to the first request ({how})")
            data, how, elapsed = read_until(sock, self.slow_cap())
        finally:
            sock.close()
        details = {"closed_after_s": round(elapsed, 2) if closed(how) else None, "close": how}
        if closed(how):
            return DEFENDED, f"idle keep-alive after a 200 closed after {elapsed:.1f}s ({how})", details
        return WEAK, f"idle keep-alive after a 200 still open after {self.slow_cap():.0f}s (no idle deadline)", details

    # -- 11. body slowloris

    def case_body_slowloris(self):
        sid, _ = open_sockjs_session(self.target)
        body = b'["' + b"s" * 60 + b'"]'
        sock = connect(self.target)
        head = request("POST", f"/echo/000/{sid}/xhr_send", self.target, [f"Content-Length: {len(body)}"])
        sock.sendall(head)
        start, sent, got, how = time.monotonic(), 0, b"", None
        try:
            while time.monotonic() - start < self.slow_cap():
                if sent < len(body):
                    try:
                        sock.send(body[sent:sent + 1])
                        sent += 1
                    except OSError as error:
                        how = type(error).__name__
                        break
                readable, _, _ = select.select([sock], [], [], 2.0)
                if readable:
                    try:
                        chunk = sock.recv(4096)
                    except OSError as error:
                        how = type(error).__name__
                        break
                    if not chunk:
                        how = "eof"
                        break
                    got += chunk
        finally:
            sock.close()
        elapsed = time.monotonic() - start
        status = got.split(b"\r\n", 1)[0].decode("latin-1") if got else "no status"
        details = {"body_bytes_sent": sent, "of": len(body), "server_bytes": got[:200].decode("latin-1"),
                   "closed_after_s": round(elapsed, 2) if how else None, "close": how}
        if how is None:
            return WEAK, (f"body trickled 1 byte/2s: still open after {elapsed:.0f}s, {sent}/{len(body)} body "
                          f"bytes sent, {status} (no body deadline)"), details
        verdict = DEFENDED if elapsed <= self.ht + 4 else WEAK
        return verdict, f"body trickle closed after {elapsed:.1f}s ({how}, {status}, {sent} body bytes sent)", details

    # -- 2. head limits

    def limit_case(self, raw, want, what):
        result = exchange(self.target, raw + request("GET", "/echo/info", self.target), 4.0, stop_after=1)
        responses = result["responses"]
        details = {"summary": summary(result), "request_bytes": len(raw)}
        if not responses:
            if closed(result["how"]):
                return WEAK, f"{what}: connection closed without a status ({summary(result)})", details
            return BROKEN, f"{what}: no answer, connection left open ({summary(result)})", details
        first = responses[0]
        tail = f"{first.line()}; {summary(result)}"
        if len(responses) > 1:
            return BROKEN, f"{what}: answered and kept serving the pipelined request: {tail}", details
        if first.status == want:
            if closed(result["how"]):
                return DEFENDED, f"{what}: {tail}", details
            return WEAK, f"{what}: {want} but connection left open: {tail}", details
        if first.status in (400, 413, 414, 431, 494):
            return WEAK, f"{what}: refused with {first.status} instead of {want}: {tail}", details
        return BROKEN, f"{what}: processed normally (no limit): {tail}", details

    def case_many_fields(self):
        headers = [f"X-Field-{i}: v" for i in range(150)]
        return self.limit_case(request("GET", "/echo/info", self.target, headers), 431, "150 header fields")

    def case_big_head(self):
        headers = [f"X-Big-{i}: " + "b" * 500 for i in range(40)]
        verdict, reason, details = self.limit_case(request("GET", "/echo/info", self.target, headers), 431,
                                                   "20 KiB head (40 fields)")
        if verdict != DEFENDED:
            # Where is the limit today, if any? (informational)
            for kib in (64, 96, 160):
                big = [f"X-Big-{i}: " + "b" * 1000 for i in range(kib)]
                result = exchange(self.target, request("GET", "/echo/info", self.target, big), 4.0, stop_after=1)
                details[f"head_{kib}KiB"] = summary(result)
            reason += f" [64 KiB: {details['head_64KiB']}; 96 KiB: {details['head_96KiB']}]"
        return verdict, reason, details

    def case_long_uri(self):
        raw = request("GET", "/echo/info?pad=" + "u" * 9000, self.target)
        return self.limit_case(raw, 414, "9 KiB request line")

    # -- 3. strict framing, with a smuggled request behind each bad one

    SMUGGLED_PATH = "/echo/info"

    def framing_variants(self):
        body = b'["x"]'
        chunked = b'5\r\n["x"]\r\n0\r\n\r\n'
        te = "Transfer-Encoding: chunked"
        cl = f"Content-Length: {len(body)}"
        return [
            ("chunk_bare_lf", [te], b'5\n["x"]\r\n0\r\n\r\n', "HTTP/1.1", {400}),
            ("chunk_size_overflow", [te], b'ffffffffffffffffff1\r\n["x"]\r\n0\r\n\r\n', "HTTP/1.1", {400}),
            ("chunk_size_junk", [te], b'5x\r\n["x"]\r\n0\r\n\r\n', "HTTP/1.1", {400}),
            ("chunk_missing_crlf", [te], b'5\r\n["x"]0\r\n\r\n', "HTTP/1.1", {400}),
            ("cl_and_te", [f"Content-Length: {len(chunked)}", te], chunked, "HTTP/1.1", {400}),
            ("cl_twice_different", [cl, "Content-Length: 6"], body, "HTTP/1.1", {400}),
            ("cl_plus", ["Content-Length: +5"], body, "HTTP/1.1", {400}),
            ("cl_negative", ["Content-Length: -1"], body, "HTTP/1.1", {400}),
            ("cl_list", ["Content-Length: 5, 6"], body, "HTTP/1.1", {400}),
            ("te_chunked_identity", ["Transfer-Encoding: chunked, identity"], chunked, "HTTP/1.1", {400, 501}),
            ("te_xchunked", ["Transfer-Encoding: xchunked"], chunked, "HTTP/1.1", {400, 501}),
            ("te_chunked_twice", [te, te], chunked, "HTTP/1.1", {400}),
            ("te_http10", [te, "Connection: keep-alive"], chunked, "HTTP/1.0", {400}),
            ("obs_fold", ["X-Probe: a", " folded", cl], body, "HTTP/1.1", {400}),
            ("space_before_colon", ["Content-Length : 5"], body, "HTTP/1.1", {400}),
            ("nul_in_value", ["X-Probe: a\x00b", cl], body, "HTTP/1.1", {400}),
            ("bare_cr_in_value", ["X-Probe: a\rb", cl], body, "HTTP/1.1", {400}),
            ("bare_lf_head", None, body, "HTTP/1.1", {400}),
        ]

    def case_framing(self, variant, kind):
        name, headers, body, version, wanted = variant
        if kind == "post_send":
            sid, _ = open_sockjs_session(self.target)
            method, path = "POST", f"/echo/000/{sid}/xhr_send"
        else:
            method, path = "GET", "/echo/info"
        if headers is None:  # bare LF line endings in the whole head
            raw = (f"{method} {path} {version}\nHost: {self.target.hostport}\nContent-Length: {len(body)}\n\n"
                   .encode("latin-1") + body)
        else:
            raw = request(method, path, self.target, headers, body, version, cl=False)
        smuggled = request("GET", self.SMUGGLED_PATH, self.target)
        result = exchange(self.target, raw + smuggled, 3.0)
        responses = result["responses"]
        details = {"summary": summary(result), "statuses": [r.line() for r in responses],
                   "leftover_bytes": result["leftover"], "garbage": result["garbage"]}
        if len(responses) >= 2:
            smuggled = any(r.status == 200 and b'"websocket"' in r.body for r in responses[1:])
            if smuggled:
                return BROKEN, f"smuggled GET {self.SMUGGLED_PATH} answered: {summary(result)}", details
            return BROKEN, (f"answered {responses[0].line()} at head time, before the body framing was "
                            f"validated (then {responses[1].line()}): {summary(result)}"), details
        if not responses:
            if closed(result["how"]):
                return WEAK, f"closed without a status: {summary(result)}", details
            return WEAK, f"no answer, connection left open (waiting for body?): {summary(result)}", details
        first = responses[0]
        if first.status < 400:
            if name == "cl_and_te" and closed(result["how"]):
                return WEAK, f"processed by Transfer-Encoding then closed (RFC-allowed, not 400): {summary(result)}", details
            return BROKEN, f"bad framing answered {first.line()} (not validated): {summary(result)}", details
        if first.status in wanted:
            if closed(result["how"]):
                return DEFENDED, f"{first.line()}, closed, smuggled request unanswered ({result['elapsed']:.2f}s)", details
            return WEAK, f"{first.line()} but connection left open: {summary(result)}", details
        return WEAK, f"refused with {first.line()} instead of 400: {summary(result)}", details

    # -- 4. pipelining backpressure

    def case_pipeline(self):
        count = self.args.pipeline_count
        # Small requests, larger answers (the iframe page): the answers outgrow the kernel buffers (~4 MB on
        # loopback) long before the requests do, so a server that keeps reading must hold them in memory.
        kinds = ["/echo/iframe.html", "/echo/iframe.html", "/echo/info", "/echo"]
        markers = {"/echo/iframe.html": b"<!DOCTYPE", "/echo/info": b'"websocket"', "/echo": b"Welcome"}
        paths = [kinds[(i * 7919) % 4] for i in range(count)]
        reqs = [request("GET", path, self.target) for path in paths]
        ends = []
        for r in reqs:
            ends.append((ends[-1] if ends else 0) + len(r))
        payload = b"".join(reqs)
        rss_before = server_rss_kib(self.args.server_pid)
        sock = connect(self.target, rcvbuf=65536, sndbuf=65536)
        sock.setblocking(False)
        sent, blocked_at, start = 0, None, time.monotonic()
        while sent < len(payload):
            try:
                sent += sock.send(payload[sent:sent + 65536])
                continue
            except BlockingIOError:
                pass
            _, writable, _ = select.select([], [sock], [], 2.0)
            if not writable:
                blocked_at = sent
                break
        accept_time = time.monotonic() - start
        time.sleep(1.0)  # let the server settle, then see where the bytes are
        rss_blocked = server_rss_kib(self.args.server_pid)
        client_port = sock.getsockname()[1]
        server_q = tcp_queues(self.target.port, client_port)
        client_q = tcp_queues(client_port, self.target.port)
        app_read = None
        if server_q and client_q:
            # request bytes the server process took out of its socket while no response was read
            app_read = sent - client_q[0] - server_q[1]
        # Phase 2: read everything while sending the rest.
        got, sizes = [], []
        state = {"buf": bytearray(), "how": None, "received": 0}

        def reader():
            buf = state["buf"]
            end = time.monotonic() + 40
            while len(got) < count and time.monotonic() < end:
                readable, _, _ = select.select([sock], [], [], 0.5)
                if not readable:
                    continue
                try:
                    chunk = sock.recv(262144)
                except BlockingIOError:
                    continue
                except OSError as error:
                    state["how"] = type(error).__name__
                    return
                if not chunk:
                    state["how"] = "eof"
                    return
                buf += chunk
                state["received"] += len(chunk)
                pos = 0
                while True:
                    try:
                        resp, new_pos = parse_one(buf, pos, False)
                    except ValueError as error:
                        state["how"] = f"garbage: {error}"
                        return
                    if resp is None:
                        break
                    got.append(resp)
                    sizes.append(new_pos - pos)
                    pos = new_pos
                del buf[:pos]
            state["how"] = state["how"] or ("complete" if len(got) >= count else "timeout")

        sent_before = sent
        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        send_error = None
        while sent < len(payload) and thread.is_alive():
            try:
                sent += sock.send(payload[sent:sent + 65536])
            except BlockingIOError:
                select.select([], [sock], [], 0.5)
            except OSError as error:
                send_error = type(error).__name__
                break
        thread.join(45)
        sock.close()
        total_time = time.monotonic() - start
        in_order = all(markers[paths[i]] in r.body for i, r in enumerate(got[:count]))
        statuses = {}
        for r in got:
            statuses[r.status] = statuses.get(r.status, 0) + 1
        details = {"requests": count, "request_bytes": len(payload), "blocked_at_bytes": blocked_at,
                   "accept_phase_s": round(accept_time, 2), "responses": len(got), "statuses": statuses,
                   "in_order": in_order, "read_end": state["how"], "response_bytes": state["received"], "send_error": send_error,
                   "total_s": round(total_time, 2), "sent_before_reading": sent_before,
                   "server_socket_tx_rx_queue": server_q, "client_socket_tx_rx_queue": client_q,
                   "server_app_read_bytes": app_read,
                   "server_app_read_requests": None if app_read is None else bisect.bisect_right(ends, app_read),
                   "server_rss_kib": [rss_before, rss_blocked,
                                                                       server_rss_kib(self.args.server_pid)]}
        limit = self.args.pipeline_max_bytes
        answers_ok = len(got) == count and in_order and statuses.get(200, 0) == count
        answers = (f"{len(got)}/{count} responses, in order={in_order}, statuses={statuses}, "
                   f"end={state['how']}")
        if not answers_ok:
            return BROKEN, f"answers wrong after reading: {answers}; blocked at {blocked_at} B", details
        accepted = (f"send blocked after {blocked_at / 1e6:.2f} MB" if blocked_at is not None
                    else f"all {sent_before / 1e6:.1f} MB accepted without blocking")
        if app_read is not None:
            # The kernel buffers on both sides can absorb megabytes; what matters is what the process read.
            done = bisect.bisect_right(ends, app_read)
            held = sum(sizes[:done]) - server_q[0] - client_q[1]
            details["server_held_response_bytes_estimate"] = held
            accepted += (f"; server process read {app_read / 1e6:.2f} MB = {done}/{count} requests "
                         f"({server_q[1] / 1e6:.2f} MB left unread in its socket) whose {sum(sizes[:done]) / 1e6:.1f} MB "
                         f"of answers exceed the {(server_q[0] + client_q[1]) / 1e6:.1f} MB queued in the kernels: "
                         f"~{held / 1e6:.1f} MB of responses held in the server process")
            if held > self.args.pipeline_max_held:
                # The estimate takes every request the process read as answered; a server that reads a
                # bounded amount ahead holds some of them unparsed. Its memory tells which it was.
                if rss_before is not None and rss_blocked is not None:
                    grown = (rss_blocked - rss_before) * 1024
                    details["server_rss_growth_bytes"] = grown
                    if grown <= self.args.pipeline_max_held:
                        return DEFENDED, (f"server stopped reading: {accepted} (part of it read ahead, not yet parsed); "
                                          f"its memory grew {grown / 1e6:.2f} MB; then {answers}"), details
                return BROKEN, f"no read backpressure: {accepted}; then {answers}", details
            return DEFENDED, f"server stopped reading: {accepted}; then {answers}", details
        if blocked_at is None:
            return BROKEN, f"server read everything while no response was read: {accepted}; then {answers}", details
        if blocked_at > limit:
            return WEAK, f"{accepted} (> {limit / 1e6:.1f} MB); {answers}", details
        return DEFENDED, f"{accepted}; {answers}", details

    # -- 5. session flood

    def case_session_flood(self):
        total, conns = self.args.flood_sessions, 4
        per = total // conns
        rss_before = server_rss_kib(self.args.server_pid)
        outcomes = [None] * conns

        def worker(index):
            sock = connect(self.target, 10)
            reqs = b"".join(request("POST", f"/echo/{random.randint(0, 999):03d}/{rand_id(16)}/xhr", self.target,
                                    ["Content-Length: 0"]) for _ in range(per))
            sender = threading.Thread(target=send_quietly, args=(sock, reqs), daemon=True)
            sender.start()
            buf, got, how = bytearray(), [], None
            end = time.monotonic() + 40
            sock.settimeout(1)
            while len(got) < per and time.monotonic() < end:
                try:
                    chunk = sock.recv(262144)
                except socket.timeout:
                    continue
                except OSError as error:
                    how = type(error).__name__
                    break
                if not chunk:
                    how = "eof"
                    break
                buf += chunk
                pos = 0
                while True:
                    try:
                        resp, new_pos = parse_one(buf, pos, False)
                    except ValueError:
                        how = "garbage"
                        break
                    if resp is None:
                        break
                    got.append(resp)
                    pos = new_pos
                del buf[:pos]
                if how:
                    break
            sock.close()
            outcomes[index] = (got, how or ("complete" if len(got) >= per else "timeout"))

        start = time.monotonic()
        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(conns)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(50)
        elapsed = time.monotonic() - start
        answered, ok200, ok503, bad, ends = 0, 0, 0, {}, []
        for outcome in outcomes:
            got, how = outcome if outcome else ([], "thread hung")
            ends.append(f"{len(got)}/{per} {how}")
            for r in got:
                answered += 1
                if r.status == 200 and r.body.startswith(b"o"):
                    ok200 += 1
                elif r.status == 503 and r.header("retry-after"):
                    ok503 += 1
                else:
                    bad[r.line()] = bad.get(r.line(), 0) + 1
        details = {"sessions": per * conns, "answered": answered, "200_o": ok200, "503_retry_after": ok503,
                   "other": bad, "connections": ends, "seconds": round(elapsed, 2),
                   "server_rss_kib": [rss_before, server_rss_kib(self.args.server_pid)]}
        text = (f"{answered}/{per * conns} answered in {elapsed:.1f}s: {ok200}x200 o, {ok503}x503+Retry-After, "
                f"other={bad or 0}; connections: {'; '.join(ends)}")
        if answered < per * conns:
            return BROKEN, "connections ended without answers: " + text, details
        if bad:
            return WEAK, "unexpected answers: " + text, details
        if ok503 == 0:
            text += " (no session cap reached)"
        return DEFENDED, text, details

    def case_ws_session_flood(self):
        count = self.args.ws_sessions
        socks, refused, closes, errors = [], {}, {}, 0
        start = time.monotonic()
        try:
            for _ in range(count):
                try:
                    sock, status, line, rest = ws_handshake(self.target, f"/echo/000/{rand_id()}/websocket")
                except OSError:
                    errors += 1
                    continue
                if sock is None:
                    refused[line] = refused.get(line, 0) + 1
                    continue
                socks.append((sock, rest))
            # what did each get: an open frame, or a close (1013)?
            for sock, rest in socks:
                data, _, _ = read_until(sock, 0.5, lambda buf: bool(ws_parse_frames(rest + bytes(buf))))
                frames = ws_parse_frames(rest + data)
                code = ws_close_code(frames)
                key = f"close {code}" if code else ("open" if frames and frames[0][1].startswith(b"o") else "none")
                closes[key] = closes.get(key, 0) + 1
        finally:
            for sock, _ in socks:
                sock.close()
        details = {"attempted": count, "upgraded": len(socks), "http_refusals": refused, "frames": closes,
                   "connect_errors": errors, "seconds": round(time.monotonic() - start, 2)}
        text = f"{count} SockJS WebSocket sessions: upgraded={len(socks)} refused={refused or 0} first-frames={closes}"
        if closes.get("close 1013") or any(" 503 " in k or k.endswith(" 503") for k in refused):
            return DEFENDED, text, details
        return WEAK, text + " (no 1013: no cap reached / no cap)", details

    # -- 6. origins

    def origin_preconditions(self):
        if self.origin_target is None:
            raise Outcome(WEAK, "skipped: no --allowed-origin-url given (start a second server with "
                                f"--allowed-origin {GOOD})")
        resp, result = simple(self.origin_target, "GET", "/echo/info")
        if resp is None or resp.status != 200:
            raise Outcome(WEAK, f"skipped: {self.origin_target.url}/echo/info unusable: {summary(result)}")
        try:
            origins = json.loads(resp.body).get("origins")
        except ValueError:
            origins = None
        if origins != [GOOD]:
            raise Outcome(WEAK, f"skipped: server at --allowed-origin-url announces origins={origins}, "
                                f"expected [{GOOD!r}] (started without --allowed-origin {GOOD}?)")
        return self.origin_target

    def cors_verdict(self, resp, result, origin, what):
        acao, acac = resp.header("access-control-allow-origin"), resp.header("access-control-allow-credentials")
        tail = f"{resp.line()}, ACAO={acao}, ACAC={acac}"
        details = {"summary": summary(result), "acao": acao, "acac": acac}
        if resp.status == 403:
            return DEFENDED, f"{what}: {tail}", details
        if acao == origin:
            return BROKEN, f"{what}: origin reflected: {tail}", details
        if acao == "*":
            return WEAK, f"{what}: ACAO * (readable by any page): {tail}", details
        return DEFENDED, f"{what}: not allowed for the page: {tail}", details

    def case_origin_info(self):
        target = self.origin_preconditions()
        resp, result = simple(target, "GET", "/echo/info", [f"Origin: {EVIL}"])
        good, _ = simple(target, "GET", "/echo/info", [f"Origin: {GOOD}"])
        verdict, reason, details = self.cors_verdict(resp, result, EVIL, "GET /echo/info from evil")
        details["good_origin_acao"] = good.header("access-control-allow-origin") if good else None
        return verdict, reason, details

    def case_origin_preflight(self):
        target = self.origin_preconditions()
        resp, result = simple(target, "OPTIONS", f"/echo/000/{rand_id()}/xhr",
                              [f"Origin: {EVIL}", "Access-Control-Request-Method: POST"])
        verdict, reason, details = self.cors_verdict(resp, result, EVIL, "OPTIONS preflight from evil")
        if verdict == DEFENDED and resp.status != 403:
            verdict, reason = WEAK, reason + " (not refused with 403)"
        return verdict, reason, details

    def case_origin_xhr_open(self):
        target = self.origin_preconditions()
        resp, result = simple(target, "POST", f"/echo/000/{rand_id()}/xhr", [f"Origin: {EVIL}", "Content-Length: 0"])
        verdict, reason, details = self.cors_verdict(resp, result, EVIL, "POST xhr (session open) from evil")
        if verdict == DEFENDED and resp.status != 403:
            verdict, reason = WEAK, reason + " (session created anyway)"
        return verdict, reason, details

    def case_origin_iframe(self):
        target = self.origin_preconditions()
        resp, result = simple(target, "GET", "/echo/iframe.html", [f"Origin: {EVIL}"])
        details = {"summary": summary(result)}
        if resp.status == 403:
            return DEFENDED, f"iframe page from evil: {resp.line()}", details
        if resp.status == 200:
            return BROKEN, f"iframe page served to evil origin: {resp.line()} ({len(resp.body)} B)", details
        return WEAK, f"iframe page from evil: {resp.line()} (not 403)", details

    def origin_ws(self, path, origin, target):
        sock, status, line, _ = ws_handshake(target, path, origin)
        details = {"status_line": line}
        if sock is not None:
            sock.close()
            return BROKEN, f"WebSocket upgrade {path} with Origin {origin}: {line}", details
        if status == 403:
            return DEFENDED, f"upgrade {path} with Origin {origin}: {line}", details
        return WEAK, f"upgrade {path} with Origin {origin}: {line} (not 403)", details

    def case_origin_ws_raw(self):
        return self.origin_ws("/echo/websocket", EVIL, self.origin_preconditions())

    def case_origin_ws_session(self):
        return self.origin_ws(f"/echo/000/{rand_id()}/websocket", EVIL, self.origin_preconditions())

    def case_origin_null(self):
        target = self.origin_preconditions()
        resp, result = simple(target, "POST", f"/echo/000/{rand_id()}/xhr", ["Origin: null", "Content-Length: 0"])
        verdict, reason, details = self.cors_verdict(resp, result, "null", "POST xhr with Origin: null")
        info, _ = simple(target, "GET", "/echo/info", ["Origin: null"])
        details["info_acao"] = info.header("access-control-allow-origin") if info else None
        if verdict == DEFENDED and resp.status != 403:
            verdict, reason = WEAK, reason + " (session created anyway)"
        if details["info_acao"] == "null":
            verdict, reason = BROKEN, reason + "; /info reflects ACAO null"
        return verdict, reason, details

    def case_default_credentials(self, origin):
        findings, seen = [], []
        sid = rand_id()
        probes = [("GET", "/echo/info", []), ("OPTIONS", f"/echo/000/{sid}/xhr", ["Access-Control-Request-Method: POST"]),
                  ("POST", f"/echo/000/{sid}/xhr", ["Content-Length: 0"])]
        for method, path, extra in probes:
            resp, result = simple(self.target, method, path, [f"Origin: {origin}"] + extra)
            if resp is None:
                seen.append(f"{method} {path}: {summary(result)}")
                continue
            acao, acac = resp.header("access-control-allow-origin"), resp.header("access-control-allow-credentials")
            seen.append(f"{method} {path.replace(sid, '<id>')}: {resp.status} ACAO={acao} ACAC={acac}")
            if acao == origin and (acac or "").lower() == "true":
                findings.append(f"{method} {path.replace(sid, '<id>')}")
        details = {"responses": seen}
        if findings:
            return BROKEN, (f"Origin {origin} reflected with Access-Control-Allow-Credentials: true on "
                            f"{', '.join(findings)}"), details
        return DEFENDED, f"no reflected {origin} + credentials ({len(seen)} requests)", details

    # -- 7. session binding to JSESSIONID

    def case_binding(self, kind):
        prefix = self.args.cookie_prefix
        info, result = simple(self.target, "GET", f"{prefix}/info")
        if info is None or info.status != 200 or b'"cookie_needed":true' not in info.body:
            raise Outcome(WEAK, f"skipped: {prefix}/info has no cookie_needed:true ({summary(result)})")
        sid, opened = open_sockjs_session(self.target, prefix, ["Cookie: JSESSIONID=AAAA1111"])
        details = {"open_set_cookie": opened.header("set-cookie")}
        if kind == "send":
            resp, result = simple(self.target, "POST", f"{prefix}/000/{sid}/xhr_send",
                                  ["Cookie: JSESSIONID=BBBB2222"], b'["hijack"]')
        else:
            resp, result = simple(self.target, "POST", f"{prefix}/000/{sid}/xhr",
                                  ["Cookie: JSESSIONID=BBBB2222", "Content-Length: 0"], seconds=3.0)
        details["summary"] = summary(result)
        if resp is None:
            if kind == "poll" and not closed(result["how"]):
                return WEAK, "poll with JSESSIONID=B accepted and held open (session not bound to its cookie)", details
            return WEAK, f"{kind} with other JSESSIONID: {summary(result)}", details
        if resp.status == 404:
            return DEFENDED, f"{kind} with JSESSIONID=B: {resp.line()}", details
        if resp.status in (204, 200):
            body = resp.body[:40]
            return WEAK, (f"{kind} with JSESSIONID=B to a JSESSIONID=A session: {resp.line()} {body!r} "
                          "(session not bound to its cookie)"), details
        return WEAK, f"{kind} with JSESSIONID=B: {resp.line()} (not 404)", details

    # -- 8. Engine.IO sid entropy

    def case_eio_sids(self):
        count = self.args.sid_samples
        sids = []
        sock = connect(self.target)
        try:
            for _ in range(count):
                sock.sendall(request("GET", "/engine.io/?EIO=4&transport=polling", self.target))
                data, how, _ = read_until(sock, 3, lambda buf: len(parse_responses(buf, False)[0]) >= 1)
                responses = parse_responses(data, False)[0]
                if not responses or responses[0].status != 200:
                    raise Outcome(WEAK, f"handshake {len(sids) + 1} failed: {responses[:1]} {how}")
                body = responses[0].body.decode("utf-8", "replace")
                sids.append(json.loads(body[body.index("{"):body.rindex("}") + 1])["sid"])
        finally:
            sock.close()
        alphabet = set("".join(sids))
        classes = [(16, set("0123456789abcdef")), (16, set("0123456789ABCDEF")),
                   (32, set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")), (32, set("abcdefghijklmnopqrstuvwxyz234567")),
                   (36, set(string.ascii_lowercase + string.digits)),
                   (64, set(string.ascii_letters + string.digits + "-_")),
                   (64, set(string.ascii_letters + string.digits + "+/="))]
        size = next((n for n, chars in classes if alphabet <= chars), len(alphabet))
        lengths = {len(s) for s in sids}
        length = min(lengths)
        varying = sum(1 for i in range(length) if len({s[i] for s in sids}) > 1)

        bits = varying * math.log2(size) if size > 1 else 0
        distinct = len(set(sids))
        details = {"samples": count, "distinct": distinct, "lengths": sorted(lengths), "alphabet_size": size,
                   "observed_chars": len(alphabet), "varying_positions": varying, "bits_estimate": round(bits, 1),
                   "examples": sids[:3]}
        text = (f"{count} sids, {distinct} distinct, length {sorted(lengths)}, alphabet {size} "
                f"({len(alphabet)} seen), {varying} varying positions => ~{bits:.0f} bits")
        if distinct < count:
            return BROKEN, "duplicate sids: " + text, details
        if bits < 122:
            return BROKEN if bits < 64 else WEAK, "too little entropy: " + text, details
        return DEFENDED, text, details

    # -- 9. malformed WebSocket frames

    def case_ws_frame(self, frame, wanted, what, extra=b""):
        rss_before = server_rss_kib(self.args.server_pid)
        sock, status, line, rest = ws_handshake(self.target, "/echo/websocket")
        if sock is None:
            raise Outcome(WEAK, f"raw WebSocket upgrade failed: {line}")
        try:
            error = send_quietly(sock, frame + extra)
            data, how, elapsed = read_until(sock, 4.0)
        finally:
            sock.close()
        frames = ws_parse_frames(rest + data)
        code = ws_close_code(frames)
        details = {"close_code": code, "conn": how, "after_s": round(elapsed, 2), "send_error": error,
                   "frames": [(op, p[:40].decode("latin-1")) for op, p in frames][:4],
                   "server_rss_kib": [rss_before, server_rss_kib(self.args.server_pid)]}
        tail = f"close code {code}, conn {how} after {elapsed:.2f}s"
        if not closed(how):
            echoed = any(op in (1, 2, 10) for op, _ in frames)
            return BROKEN, f"{what}: connection left open ({tail}{', frame echoed' if echoed else ''})", details
        if code in wanted:
            return DEFENDED, f"{what}: {tail}", details
        if code is None:
            return WEAK, f"{what}: TCP closed without a close frame ({how} after {elapsed:.2f}s)", details
        return WEAK, f"{what}: {tail} (wanted {'/'.join(map(str, sorted(wanted)))})", details

    def ws_cases(self):
        huge = ws_frame(1, b"", length_override=(1 << 63) - 1)
        return [
            ("ws.len_2p63", huge, {1009, 1002}, "frame announcing 2^63-1 bytes", os.urandom(4096)),
            ("ws.unmasked", ws_frame(1, b"hello", mask=False), {1002}, "unmasked client frame", b""),
            ("ws.reserved_opcode", ws_frame(3, b"hey"), {1002}, "reserved opcode 0x3", b""),
            ("ws.fragmented_ping", ws_frame(9, b"frag", fin=False), {1002}, "fragmented ping (control)", b""),
            ("ws.invalid_utf8", ws_frame(1, b"ok\xff\xfe\xc3"), {1007}, "invalid UTF-8 text frame", b""),
            ("ws.ping_126", ws_frame(9, b"p" * 126), {1002}, "ping with 126-byte payload", b""),
            ("ws.rsv1_no_extension", ws_frame(1, b"hello", rsv=4), {1002}, "RSV1 without negotiated extension", b""),
        ]

    # -- 10. oversized bodies

    def case_oversized(self, chunked):
        sid, _ = open_sockjs_session(self.target)
        path = f"/echo/000/{sid}/xhr_send"
        if chunked:
            raw = request("POST", path, self.target, ["Transfer-Encoding: chunked"]) + b"5f5e100\r\n" + b'["' + b"z" * 64
            what = "chunked xhr_send with a 100 MB chunk"
        else:
            raw = request("POST", path, self.target, ["Content-Length: 100000000"]) + b'["' + b"z" * 8
            what = "xhr_send Content-Length: 100000000"
        result = exchange(self.target, raw, 4.0, stop_after=1)
        details = {"summary": summary(result)}
        responses = result["responses"]
        if not responses:
            if closed(result["how"]):
                return WEAK, f"{what}: closed without a status ({summary(result)})", details
            # Informational: does a limit kick in once more of the body arrives?
            details["after_more_body"] = self.push_body(raw, 12 * 1024 * 1024)
            return BROKEN, (f"{what}: no early answer, server waits for the body ({summary(result)}); "
                            f"then {details['after_more_body']}"), details
        first = responses[0]
        if first.status == 413:
            if closed(result["how"]):
                return DEFENDED, f"{what}: {first.line()} after {result['elapsed']:.2f}s, closed", details
            return WEAK, f"{what}: {first.line()} but connection left open ({summary(result)})", details
        return WEAK, f"{what}: {first.line()} instead of 413 ({summary(result)})", details

    def push_body(self, head, limit):
        """Sends head, then up to `limit` filler body bytes; reports when/if the server answers or closes."""
        sock = connect(self.target)
        sock.sendall(head)
        sock.setblocking(False)
        sent, start, filler, answer = 0, time.monotonic(), b"z" * 65536, b""
        how = "all sent"
        while sent < limit and time.monotonic() - start < 8:
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                try:
                    chunk = sock.recv(65536)
                except OSError as error:
                    how = type(error).__name__
                    break
                if not chunk:
                    how = "eof"
                    break
                answer += chunk
                how = "answered"
                break
            if writable:
                try:
                    sent += sock.send(filler)
                except BlockingIOError:
                    pass
                except OSError as error:
                    how = type(error).__name__
                    break
        if how == "all sent":
            sock.settimeout(2)
            data, end, _ = read_until(sock, 2, lambda buf: b"\r\n\r\n" in buf)
            answer, how = data, end
        sock.close()
        line = answer.split(b"\r\n", 1)[0].decode("latin-1") or "no status"
        return f"{line} / {how} after {sent / 1e6:.1f} MB more body in {time.monotonic() - start:.1f}s"

    # -- driver

    def run(self):
        slow = [("header.trickle_1B_per_2s", self.case_header_trickle),
                ("header.silent_connection", self.case_header_silent),
                ("header.idle_keepalive", self.case_keepalive_idle),
                ("body.slowloris", self.case_body_slowloris)]
        slow_threads = []
        for name, fn in slow:
            thread = threading.Thread(target=self.run_case, args=(name, fn), daemon=True)
            thread.start()
            slow_threads.append(thread)

        self.run_case("limits.fields_150", self.case_many_fields)
        self.run_case("limits.head_20KiB", self.case_big_head)
        self.run_case("limits.uri_9KiB", self.case_long_uri)

        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = []
            for variant in self.framing_variants():
                for kind in ("post_send", "get_info"):
                    futures.append(pool.submit(self.run_case, f"framing.{variant[0]}.{kind}", self.case_framing,
                                               variant, kind))
            for future in futures:
                future.result()

        self.run_case("origin.default_evil_with_credentials", self.case_default_credentials, EVIL)
        self.run_case("origin.default_null_with_credentials", self.case_default_credentials, "null")
        self.run_case("origin.allowlist_info_evil", self.case_origin_info)
        self.run_case("origin.allowlist_preflight_evil", self.case_origin_preflight)
        self.run_case("origin.allowlist_xhr_open_evil", self.case_origin_xhr_open)
        self.run_case("origin.allowlist_iframe_evil", self.case_origin_iframe)
        self.run_case("origin.allowlist_ws_raw_evil", self.case_origin_ws_raw)
        self.run_case("origin.allowlist_ws_session_evil", self.case_origin_ws_session)
        self.run_case("origin.allowlist_null", self.case_origin_null)

        self.run_case("binding.send_other_jsessionid", self.case_binding, "send")
        self.run_case("binding.poll_other_jsessionid", self.case_binding, "poll")
        self.run_case("ids.engineio_sid_entropy", self.case_eio_sids)

        for name, frame, wanted, what, extra in self.ws_cases():
            self.run_case(name, self.case_ws_frame, frame, wanted, what, extra)

        self.run_case("body.oversized_content_length", self.case_oversized, False)
        self.run_case("body.oversized_chunk", self.case_oversized, True)

        self.run_case("pipeline.backpressure_20k", self.case_pipeline)
        self.run_case("flood.xhr_sessions_20k", self.case_session_flood)
        self.run_case("flood.websocket_sessions", self.case_ws_session_flood)

        for thread in slow_threads:
            thread.join(self.slow_cap() + 30)
        return self.results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8091", help="the default-flags server (loopback only)")
    parser.add_argument("--allowed-origin-url", help=f"a second server started with --allowed-origin {GOOD}")
    parser.add_argument("--header-timeout", type=float, default=10.0,
                        help="the server's --header-timeout in seconds (what the deadline cases expect)")
    parser.add_argument("--server-pid", type=int, help="pid of the --url server, to note its RSS (optional)")
    parser.add_argument("--cookie-prefix", default="/cookie_needed_echo",
                        help="SockJS endpoint with JSESSIONID on, for the session-binding cases")
    parser.add_argument("--pipeline-count", type=int, default=20000)
    parser.add_argument("--pipeline-max-bytes", type=int, default=6 * 1024 * 1024,
                        help="without /proc/net/tcp: most request bytes the server may accept with no response read")
    parser.add_argument("--pipeline-max-held", type=int, default=1024 * 1024,
                        help="most response bytes the server may hold in memory for a client that reads nothing")
    parser.add_argument("--flood-sessions", type=int, default=20000)
    parser.add_argument("--ws-sessions", type=int, default=1000)
    parser.add_argument("--sid-samples", type=int, default=200)
    parser.add_argument("--only", action="append", help="run only cases whose name contains this (repeatable)")
    parser.add_argument("--skip", action="append", help="skip cases whose name contains this (repeatable)")
    parser.add_argument("--json-out", help="also write the JSON summary to this file")
    parser.add_argument("--report-only", action="store_true", help="always exit 0")
    parser.add_argument("--verbose", "-v", action="store_true", help="print each result to stderr as it lands")
    args = parser.parse_args()

    probe = Probe(args)
    started = time.monotonic()
    results = probe.run()
    groups = ["header", "body", "limits", "framing", "pipeline", "flood", "origin", "binding", "ids", "ws"]
    results.sort(key=lambda r: (groups.index(r["case"].split(".")[0]) if r["case"].split(".")[0] in groups
                                else 99, probe.sequence.get(r["case"], 0)))
    width = max([len(r["case"]) for r in results] + [4])
    print(f"{'case':{width}}  {'verdict':8}  {'secs':>6}  reason")
    print("-" * (width + 30))
    for r in results:
        print(f"{r['case']:{width}}  {r['verdict']:8}  {r['seconds']:6.2f}  {r['reason']}")
    counts = {v: sum(1 for r in results if r["verdict"] == v) for v in (DEFENDED, WEAK, BROKEN)}
    print("-" * (width + 30))
    print(f"{len(results)} cases: {counts[DEFENDED]} DEFENDED, {counts[WEAK]} WEAK, {counts[BROKEN]} BROKEN "
          f"in {time.monotonic() - started:.1f}s")
    report = {"target": probe.target.url,
              "allowed_origin_target": probe.origin_target.url if probe.origin_target else None,
              "header_timeout": args.header_timeout, "counts": counts,
              "seconds": round(time.monotonic() - started, 1), "results": results}
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.json_out:
        with open(args.json_out, "w") as out:
            out.write(text + "\n")
    if args.report_only:
        return 0
    return 0 if counts[WEAK] == 0 and counts[BROKEN] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
