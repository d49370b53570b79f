#!/usr/bin/env python3
"""Bridge checks with a client nobody here wrote (Python `websockets`), against `sockway serve` bridging
to scripts/interop/bridge_upstreams.py: what sockjs-client cannot show. Each case prints PASS/FAIL.

  --url        a `sockway serve --upstream ws://… --route /tcp=tcp://… --route /down=tcp://<closed port>
               --upstream-connect-timeout 1` (defaults otherwise)
  --base64-url a second one with `--upstream-binary base64 --forward-cookie`
  --server-pid the first server's PID, to read its memory (RSS) during the backpressure cases

Backpressure: a paused upstream must slow the client (its sends block after a bounded amount, the
server's memory stays bounded, and everything arrives in order once the upstream reads again); a client
that does not read must slow the upstream the same way (no 1013, nothing lost).
"""
import argparse
import asyncio
import json
import sys
import time

from bridge_upstreams import ensure_websockets

ensure_websockets()
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

MiB = 1 << 20
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)


def rss_mib(pid):
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def closed_with(ws):
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    except ConnectionClosed:
        return ws.close_code, ws.close_reason


async def sockjs(url, path, cookie=None):
    """A SockJS session over the websocket transport spoken by hand: returns the socket after `o`."""
    headers = {"Cookie": cookie} if cookie else None
    ws = await connect(url.replace("http", "ws") + path + "/000/bridgecheck/websocket", additional_headers=headers, max_size=None)
    assert await ws.recv() == "o"
    return ws


async def sockjs_frame(ws):
    while True:
        frame = await asyncio.wait_for(ws.recv(), 10)
        if frame != "h":
            return frame


async def raw_cases(url):
    ws_url = url.replace("http", "ws")
    for path, kind in [("/echo", "ws://"), ("/tcp", "tcp://")]:
        async with connect(ws_url + path + "/websocket", max_size=None) as ws:
            await ws.send("héllo")
            check(f"{kind} upstream, raw WebSocket: text echoed", await ws.recv() == "héllo")
            if kind == "ws://":
                await ws.send(b"\x00\x01\xff")
                check("ws:// upstream, raw WebSocket: binary stays binary", await ws.recv() == b"\x00\x01\xff")
                await ws.send("__binary__:abc")
                check("ws:// upstream, raw WebSocket: upstream binary arrives as binary", await ws.recv() == b"abc")
            await ws.send("__badutf8__")
            code, reason = await closed_with(ws)
            check(f"{kind} upstream sends invalid UTF-8: client closed with 1007", code == 1007, f"{code} {reason!r}")
        async with connect(ws_url + path + "/websocket", max_size=None) as ws:
            await ws.send(f"__big__:{2 * MiB}")
            code, reason = await closed_with(ws)
            check(f"{kind} upstream sends a message over --max-message-bytes: 1009", code == 1009, f"{code} {reason!r}")
    async with connect(ws_url + "/echo/websocket") as ws:
        await ws.send("__close__:4321:upstream says bye")
        code, reason = await closed_with(ws)
        check("ws:// upstream close code and reason reach the client", (code, reason) == (4321, "upstream says bye"), f"{code} {reason!r}")
    # Many sessions at once, each its own upstream connection, none mixed up.
    async def one(index):
        async with connect(ws_url + "/echo/websocket") as ws:
            for turn in range(20):
                await ws.send(f"{index}:{turn}")
                if await ws.recv() != f"{index}:{turn}":
                    return False
            return True
    outcomes = await asyncio.gather(*(one(i) for i in range(100)))
    check("100 concurrent sessions, 20 messages each, each to its own upstream connection", all(outcomes))


async def sockjs_cases(url, base64_url):
    ws = await sockjs(url, "/echo")
    await ws.send(json.dumps(["__binary__:abc"]))
    frame = await sockjs_frame(ws)
    check("upstream binary to a SockJS (text) transport: refused with 1003", frame.startswith("c[1003,"), frame)
    await ws.close()
    ws = await sockjs(base64_url, "/echo")
    await ws.send(json.dumps(["__binary__:abc"]))
    frame = await sockjs_frame(ws)
    check("--upstream-binary base64: upstream binary arrives as base64 text", frame == 'a["YWJj"]', frame)
    await ws.close()
    ws = await sockjs(url, "/echo", cookie="secret=1")
    await ws.send(json.dumps(["__headers__"]))
    headers = json.loads(json.loads((await sockjs_frame(ws))[1:])[0])
    check("the cookie is not passed on by default", "cookie" not in headers, str(sorted(headers)))
    await ws.close()
    ws = await sockjs(base64_url, "/echo", cookie="secret=1")
    await ws.send(json.dumps(["__headers__"]))
    headers = json.loads(json.loads((await sockjs_frame(ws))[1:])[0])
    check("--forward-cookie passes the cookie on", headers.get("cookie") == "secret=1", str(headers.get("cookie")))
    await ws.close()
    started = time.monotonic()
    ws = await sockjs(url, "/down")
    await ws.send(json.dumps(["waits for an upstream that never comes"]))
    frame = await sockjs_frame(ws)
    took = time.monotonic() - started
    check("unreachable upstream: closed with 1014 and the cause after the connect timeout",
          frame == 'c[1014,"Upstream unreachable (connection refused)"]' and 0.5 < took < 5, f"{frame} after {took:.1f} s")
    await ws.close()


async def slow_upstream(url, path, pid, compression):
    """The upstream stops reading for 4 s; the client pushes 64 KiB messages for 3 s (at most 1,500).
    Without compression the client's own sends must block; with permessage-deflate (a read of 64 KiB
    inflates to ~40 MiB of these messages) the server must still hold its memory."""
    ws_url = url.replace("http", "ws")
    async with connect(ws_url + path + "/websocket", max_size=None, write_limit=64 * 1024,
                       compression="deflate" if compression else None) as ws:
        await ws.send("__pause__:4")
        await asyncio.sleep(0.2)
        rss_before = rss_mib(pid)
        block = "p" * (64 * 1024 - 16)
        sent = 0
        rss_peak = rss_before
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and sent < 1500:
            try:
                await asyncio.wait_for(ws.send(f"{sent:08d}:{block}"), deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
            sent += 1
            if sent % 50 == 0:
                rss_peak = max(rss_peak, rss_mib(pid))
        rss_peak = max(rss_peak, rss_mib(pid))
        accepted = sent * 64 / 1024
        received = []
        while len(received) < sent:
            received.append(await asyncio.wait_for(ws.recv(), 60))
            if len(received) % 100 == 0:
                rss_peak = max(rss_peak, rss_mib(pid))
        in_order = all(message.startswith(f"{i:08d}:") for i, message in enumerate(received))
        if compression:
            check(f"slow {path} upstream, permessage-deflate client ({accepted:.0f} MiB inflated): server RSS +{rss_peak - rss_before:.0f} MiB at most, all {sent} echoed in order",
                  rss_peak - rss_before < 64 and in_order)
        else:
            check(f"slow {path} upstream slows the client: its sends blocked after {accepted:.1f} MiB, server RSS +{rss_peak - rss_before:.0f} MiB at most, then all {sent} echoed in order",
                  accepted < 48 and rss_peak - rss_before < 64 and in_order)


async def slow_client(url, path, pid):
    """The upstream floods 2,000 × 64 KiB (125 MiB) to a client that reads nothing for 3 s."""
    ws_url = url.replace("http", "ws")
    async with connect(ws_url + path + "/websocket", max_size=None, max_queue=4, compression=None) as ws:
        rss_before = rss_mib(pid)
        await ws.send("__flood__:2000:65536")
        await asyncio.sleep(3)
        rss_peak = rss_mib(pid)
        count = 0
        try:
            while count < 2000:
                message = await asyncio.wait_for(ws.recv(), 30)
                if not message.startswith(f"{count}:"):
                    break
                count += 1
        except ConnectionClosed:
            pass
        check(f"a client that does not read slows the {path} upstream: server RSS +{rss_peak - rss_before:.0f} MiB while it waited, then {count}/2000 in order, no close",
              count == 2000 and rss_peak - rss_before < 64, f"close {ws.close_code} {ws.close_reason!r}" if ws.close_code else "")


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--base64-url", required=True)
    parser.add_argument("--server-pid", type=int)
    args = parser.parse_args()
    await raw_cases(args.url)
    await sockjs_cases(args.url, args.base64_url)
    for path in ["/echo", "/tcp"]:
        await slow_upstream(args.url, path, args.server_pid, compression=False)
        await slow_upstream(args.url, path, args.server_pid, compression=True)
        await slow_client(args.url, path, args.server_pid)
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    asyncio.run(main())
