#!/usr/bin/env python3
"""Engine.IO v4 interop checks with python-engineio's AsyncClient against an Engine.IO echo server (every
message sent back unchanged, text as text and binary as binary; see the contract at the top of
scripts/interop/socketio_reference_server.py, which serves it with --engineio).

    scripts/interop/engineio_checks.py --url http://127.0.0.1:3000 [--path engine.io]

Prints `ok NAME` or `FAIL NAME: reason` per check, then `N passed, M failed`; the exit status is 1 when a
check failed. Every check has a time limit (--check-timeout, default 20 s). When python-engineio is not
importable, a virtualenv is created at $SOCKWAY_PYENV (default /tmp/sockway-pyenv) with the pinned versions
and the script re-executes there.

Pinned packages: python-socketio 5.18.1, python-engineio 4.15.1, aiohttp 3.14.5.
"""
import argparse
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sockway_pyenv  # noqa: E402

sockway_pyenv.ensure(__file__)

import engineio  # noqa: E402

# python-engineio decodes at most 16 packets per long-polling payload and drops the connection otherwise;
# servers send everything queued in one poll response, so lift that client-side limit (documented knob).
engineio.payload.Payload.max_decode_packets = 100_000


class CheckFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(value)} long)"


class EchoClient:
    def __init__(self, url, path, transports):
        self.url = url
        self.path = path
        self.transports = transports
        self.received = []
        self.changed = asyncio.Event()
        self.disconnects = []
        self.client = engineio.AsyncClient(request_timeout=5)
        self.client.on("message", self._on_message)
        self.client.on("disconnect", self._on_disconnect)

    def _on_message(self, data):
        self.received.append(data)
        self.changed.set()

    def _on_disconnect(self, reason=None):
        self.disconnects.append(reason)

    async def __aenter__(self):
        await self.client.connect(self.url, transports=self.transports, engineio_path=self.path)
        return self

    async def __aexit__(self, *exc):
        try:
            await asyncio.wait_for(self.client.disconnect(), 3)
        except Exception:
            pass

    async def wait_for(self, count, timeout=5.0):
        async def waiter():
            while len(self.received) < count:
                self.changed.clear()
                await self.changed.wait()
        try:
            await asyncio.wait_for(waiter(), timeout)
        except asyncio.TimeoutError:
            raise CheckFailed(f"got {len(self.received)} of {count} echoes within {timeout:g}s") from None
        return self.received

    async def echo(self, messages, timeout=5.0):
        start = len(self.received)
        for message in messages:
            await self.client.send(message)
        got = (await self.wait_for(start + len(messages), timeout))[start:start + len(messages)]
        for index, (sent, back) in enumerate(zip(messages, got)):
            expect(type(sent) is type(back) and sent == back,
                   f"message {index}: sent {short(sent)}, got back {short(back)}")

    async def wait_transport(self, wanted, timeout=3.0):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.client.transport() != wanted:
            if loop.time() > deadline:
                raise CheckFailed(f"transport is {self.client.transport()!r}, expected {wanted!r}")
            await asyncio.sleep(0.05)


def checks(url, path):
    def client(transports=None):
        return EchoClient(url, path, transports)

    async def text_echo():
        async with client() as c:
            await c.echo(["hello", "", "é✓ unicode 🚀", "4 looks like a packet", "a\x1eb"])

    async def binary_echo():
        async with client() as c:
            await c.echo([b"\x01\x02\x03\x04", b"", bytes(range(256)), b"text-like bytes"])

    async def ordered(count=1000):
        async with client() as c:
            messages = [f"m{i}" if i % 10 else f"m{i}".encode() for i in range(count)]
            await c.echo(messages, timeout=15)
            await asyncio.sleep(0.2)
            expect(len(c.received) == count, f"{len(c.received)} echoes for {count} messages")

    def only(transport):
        async def run():
            async with client([transport]) as c:
                expect(c.client.transport() == transport, f"connected with {c.client.transport()!r}")
                await c.echo(["first", b"\x00\xff"])
                await asyncio.sleep(1.2)  # four ping intervals of 300 ms: heartbeats keep the session up
                expect(not c.disconnects, f"disconnected while idle: {c.disconnects!r}")
                expect(c.client.transport() == transport, f"transport changed to {c.client.transport()!r}")
                await c.echo([f"after idle on {transport}", b"\x10\x20"])
                await c.echo(["x" * 300_000, bytes(200_000)], timeout=10)
        return run

    async def upgrade():
        # python-engineio's client opens the session with long-polling and, when the handshake offers
        # "websocket", performs the upgrade (2probe / 3probe / 5) before connect() returns.
        async with client(["polling", "websocket"]) as c:
            expect(c.client.upgrades == ["websocket"], f"handshake offered upgrades {c.client.upgrades!r}")
            # sent right after the upgrade: none may be lost or reordered
            await c.echo([f"during upgrade {i}" for i in range(50)] + [b"bin during upgrade"], timeout=10)
            await c.wait_transport("websocket")
            await c.echo(["after upgrade", b"\x05\x06"])
            expect(not c.disconnects, f"disconnected: {c.disconnects!r}")

    return [
        ("text echo", text_echo),
        ("binary echo", binary_echo),
        ("1000 ordered messages (text and binary)", ordered),
        ("polling only", only("polling")),
        ("websocket only", only("websocket")),
        ("upgrade polling -> websocket", upgrade),
    ]


async def main_async(args):
    passed = failed = 0
    for name, check in checks(args.url, args.path):
        try:
            await asyncio.wait_for(check(), args.check_timeout)
        except CheckFailed as error:
            print(f"FAIL {name}: {error}", flush=True)
            failed += 1
        except asyncio.TimeoutError:
            print(f"FAIL {name}: no result within {args.check_timeout:g}s", flush=True)
            failed += 1
        except Exception as error:  # noqa: BLE001 -- any client error is a failed check
            print(f"FAIL {name}: {type(error).__name__}: {error}", flush=True)
            failed += 1
        else:
            print(f"ok {name}", flush=True)
            passed += 1
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed or not passed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--path", default="engine.io", help="Engine.IO endpoint path (default engine.io)")
    parser.add_argument("--check-timeout", type=float, default=20.0, help="seconds per check (default 20)")
    args = parser.parse_args()
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
