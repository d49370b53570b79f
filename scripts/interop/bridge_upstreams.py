#!/usr/bin/env python3
"""Upstreams for the bridge checks, written on libraries nobody here wrote: a WebSocket echo on the
`websockets` package (PyPI) and a TCP echo on asyncio, on 127.0.0.1.

Both echo every message and obey a few commands (a text message):
  __headers__          the handshake's request headers as JSON (WebSocket only)
  __binary__:TEXT      a binary message holding TEXT (WebSocket only)
  __close__:CODE:WHY   close with CODE and WHY (TCP: just close)
  __badutf8__          a text message that is not UTF-8
  __big__:N            a message of N bytes
  __flood__:N:SIZE     N numbered messages of SIZE bytes, as fast as the connection takes them
  __pause__:SECONDS    stop reading for SECONDS, then echo what came meanwhile

Usage: bridge_upstreams.py --ws-port P --tcp-port Q --tcp-lp-port R
(Q: newline-framed TCP, R: length-prefixed TCP). Prints "ready" once all listen.
"""
import argparse
import asyncio
import json
import struct
import sys

PINNED = ["websockets==17.4"]


def ensure_websockets():
    try:
        import websockets  # noqa: F401
    except ImportError:
        import os
        import subprocess

        venv = os.environ.get("SOCKWAY_BRIDGE_PYENV", "/tmp/sockway-bridge-pyenv")
        python = os.path.join(venv, "bin", "python")
        if os.path.realpath(sys.prefix) == os.path.realpath(venv):
            sys.exit(f"{venv} lacks {' '.join(PINNED)}")
        if not os.path.exists(python):
            subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
        if subprocess.run([python, "-c", "import websockets"], capture_output=True).returncode != 0:
            subprocess.run([python, "-m", "pip", "install", "-q", *PINNED], check=True, timeout=600)
        os.execv(python, [python, os.path.abspath(sys.argv[0]), *sys.argv[1:]])


def command(text):
    if not text.startswith("__"):
        return None, []
    name, _, rest = text[2:].partition("__")
    return name, rest[1:].split(":") if rest.startswith(":") else []


async def ws_handler(ws):
    async for message in ws:
        if isinstance(message, bytes):
            await ws.send(message)
            continue
        name, args = command(message)
        if name == "headers":
            await ws.send(json.dumps({k.lower(): v for k, v in ws.request.headers.raw_items()}))
        elif name == "binary":
            await ws.send(args[0].encode())
        elif name == "close":
            await ws.close(int(args[0]), args[1] if len(args) > 1 else "")
            return
        elif name == "badutf8":
            await ws.send(b"\xff\xfebad", text=True)
        elif name == "big":
            await ws.send("x" * int(args[0]))
        elif name == "flood":
            size = int(args[1])
            for i in range(int(args[0])):
                await ws.send(f"{i}:".ljust(size, "f"))
        elif name == "pause":
            await asyncio.sleep(float(args[0]))
        else:
            await ws.send(message)


class TCPFraming:
    def __init__(self, kind):
        self.kind = kind

    async def read(self, reader):
        if self.kind == "newline":
            line = await reader.readline()
            if not line:
                return None
            return line.rstrip(b"\n")
        head = await reader.readexactly(4)
        return await reader.readexactly(struct.unpack(">I", head)[0])

    def frame(self, data):
        return data + b"\n" if self.kind == "newline" else struct.pack(">I", len(data)) + data


async def tcp_handler(reader, writer, framing):
    try:
        while True:
            try:
                data = await framing.read(reader)
            except asyncio.IncompleteReadError:
                data = None
            if data is None:
                break
            name, args = command(data.decode("utf-8", "replace"))
            if name == "close":
                break
            elif name == "badutf8":
                writer.write(framing.frame(b"\xff\xfebad"))
            elif name == "big":
                writer.write(framing.frame(b"x" * int(args[0])))
            elif name == "flood":
                size = int(args[1])
                for i in range(int(args[0])):
                    writer.write(framing.frame(f"{i}:".ljust(size, "f").encode()))
                    await writer.drain()
            elif name == "pause":
                await asyncio.sleep(float(args[0]))
            else:
                writer.write(framing.frame(data))
            await writer.drain()
    except (ConnectionError, asyncio.LimitOverrunError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ws-port", type=int, required=True)
    parser.add_argument("--tcp-port", type=int, required=True)
    parser.add_argument("--tcp-lp-port", type=int, required=True)
    args = parser.parse_args()
    from websockets.asyncio.server import serve

    ws_server = await serve(ws_handler, "127.0.0.1", args.ws_port, max_size=16 << 20, compression=None)
    servers = [ws_server]
    for port, kind in [(args.tcp_port, "newline"), (args.tcp_lp_port, "length-prefixed")]:
        framing = TCPFraming(kind)
        servers.append(await asyncio.start_server(
            lambda r, w, framing=framing: tcp_handler(r, w, framing), "127.0.0.1", port, limit=1 << 20
        ))
    print("ready", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    ensure_websockets()
    asyncio.run(main())
