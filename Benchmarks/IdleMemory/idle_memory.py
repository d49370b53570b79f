#!/usr/bin/env python3
"""Server memory per idle WebSocket connection, for each permessage-deflate mode.

For each mode it starts `sockway serve` on a free loopback port, opens N raw WebSocket connections
(`/echo/websocket`), has each send one 256-byte text message and read the echo (so that a
per-connection compressor really exists), leaves them idle, and reads the server's RSS from
/proc/PID/status before and after. Prints (RSS after - RSS before) / N per mode.

    python3 Benchmarks/IdleMemory/idle_memory.py --sockway .build/release/sockway [--connections 10000]

Needs the `websockets` package (pip install websockets). Traffic stays on 127.0.0.1.
"""
import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import time

import websockets

MODES = [
    ("none", ["--compression", "none"], None),
    ("shared", ["--compression", "shared"], "deflate"),
    ("per-connection 15/8 (default)", ["--compression", "per-connection"], "deflate"),
    ("per-connection 10/1", ["--compression", "per-connection", "--compression-window-bits", "10", "--compression-mem-level", "1"], "deflate"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


ECHO_FIRST = True


async def open_connections(url, count, compression, batch=500):
    message = "x" * 200 + "sockway " * 7
    connections = []
    for start in range(0, count, batch):
        group = await asyncio.gather(*[
            websockets.connect(url, compression=compression, max_size=None, ping_interval=None, open_timeout=30)
            for _ in range(min(batch, count - start))
        ])
        if ECHO_FIRST:
            for ws in group:
                await ws.send(message)
            for ws in group:
                assert await ws.recv() == message
        connections.extend(group)
    return connections


async def measure(sockway, args, compression, count, threads):
    port = free_port()
    server = subprocess.Popen(
        [sockway, "serve", "--host", "127.0.0.1", "--port", str(port), "--threads", str(threads), "--max-sessions-per-address", "0"] + args,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        url = f"ws://127.0.0.1:{port}/echo/websocket"
        # Warm up: let the allocator and the event loops settle before the baseline.
        warm = await open_connections(url, 200, compression)
        await asyncio.gather(*[ws.close() for ws in warm])
        await asyncio.sleep(1.0)
        before = rss_kib(server.pid)
        connections = await open_connections(url, count, compression)
        await asyncio.sleep(2.0)
        after = rss_kib(server.pid)
        agreed = connections[0].response.headers.get("Sec-WebSocket-Extensions")
        for start in range(0, len(connections), 1000):
            await asyncio.gather(*[ws.close() for ws in connections[start:start + 1000]])
        return before, after, agreed
    finally:
        server.terminate()
        server.wait(timeout=10)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sockway", required=True)
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", default="", help="comma-separated mode names to run (default: all)")
    parser.add_argument("--no-echo", action="store_true", help="connections only upgrade, never send")
    options = parser.parse_args()
    global ECHO_FIRST
    ECHO_FIRST = not options.no_echo
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = options.connections + 1000
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    print(f"{options.connections} idle WebSocket connections, {options.threads} event loops")
    print(f"| mode | RSS before (MiB) | RSS after (MiB) | per connection (KiB) | agreed extension |")
    print(f"|---|---:|---:|---:|---|")
    wanted = [m.strip() for m in options.modes.split(",") if m.strip()]
    for name, args, compression in MODES:
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        before, after, agreed = asyncio.run(measure(options.sockway, args, compression, options.connections, options.threads))
        per = (after - before) / options.connections
        print(f"| {name} | {before / 1024:.1f} | {after / 1024:.1f} | {per:.2f} | {agreed or '-'} |", flush=True)


if __name__ == "__main__":
    main()
