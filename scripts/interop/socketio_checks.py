#!/usr/bin/env python3
"""Socket.IO v5 interop checks with python-socketio's AsyncClient against a server that implements the
service contract documented at the top of scripts/interop/socketio_reference_server.py.

    scripts/interop/socketio_checks.py --url http://127.0.0.1:3000 [--transports polling|websocket|default|all]

--transports: polling = HTTP long-polling only, websocket = WebSocket only, default = long-polling first
then upgrade to WebSocket (what clients do by default), all = the three one after the other (default).
Prints `ok NAME` or `FAIL NAME: reason` per check (NAME is prefixed with [mode] when several modes run),
then `N passed, M failed`; the exit status is 1 when a check failed. Every check has a time limit
(--check-timeout, default 20 s). When python-socketio is not importable, a virtualenv is created at
$SOCKWAY_PYENV (default /tmp/sockway-pyenv) with the pinned versions and the script re-executes there.

Pinned packages: python-socketio 5.18.1, python-engineio 4.15.1, aiohttp 3.14.5.
"""
import argparse
import asyncio
import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sockway_pyenv  # noqa: E402

sockway_pyenv.ensure(__file__)

import engineio  # noqa: E402
import socketio  # noqa: E402

# python-engineio decodes at most 16 packets per long-polling payload ("Too many packets in payload") and
# drops the connection otherwise; servers send everything queued in one poll response (the 1,000-message
# check relies on it), so lift that client-side limit. A documented python-engineio knob.
engineio.payload.Payload.max_decode_packets = 100_000

MODES = {"polling": ["polling"], "websocket": ["websocket"], "default": None}


class CheckFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


class Inbox:
    """Collects the arguments of one event and lets a check wait for them."""

    def __init__(self):
        self.items = []
        self.changed = asyncio.Event()

    def push(self, item):
        self.items.append(item)
        self.changed.set()

    async def wait_for(self, count, timeout=5.0, what="events"):
        async def waiter():
            while len(self.items) < count:
                self.changed.clear()
                await self.changed.wait()
        try:
            await asyncio.wait_for(waiter(), timeout)
        except asyncio.TimeoutError:
            raise CheckFailed(f"got {len(self.items)} of {count} {what} within {timeout:g}s") from None
        return self.items


class Harness:
    def __init__(self, url, path, mode):
        self.url = url
        self.path = path
        self.mode = mode
        self.clients = []

    def new_client(self, **kwargs):
        options = dict(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1,
                       randomization_factor=0, request_timeout=5)
        options.update(kwargs)
        client = socketio.AsyncClient(**options)
        self.clients.append(client)
        return client

    async def connect(self, client, namespaces=None, auth=None):
        await client.connect(self.url, transports=MODES[self.mode], namespaces=namespaces or ["/"],
                             auth=auth, socketio_path=self.path, wait_timeout=5)

    async def connected_client(self, namespaces=None, auth=None, events=()):
        """A connected client whose listed events (name or (name, namespace)) fill Inboxes."""
        client = self.new_client()
        inboxes = {}
        for spec in events:
            name, namespace = spec if isinstance(spec, tuple) else (spec, "/")
            inbox = inboxes[spec] = Inbox()

            def handler(*args, _inbox=inbox):
                _inbox.push(args)

            client.on(name, handler, namespace=namespace)
        await self.connect(client, namespaces=namespaces, auth=auth)
        return client, inboxes

    async def close(self):
        for client in self.clients:
            try:
                await asyncio.wait_for(client.disconnect(), 3)
            except Exception:
                pass
        self.clients = []


async def wait_transport(client, wanted, timeout=3.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while client.transport() != wanted:
        if asyncio.get_running_loop().time() > deadline:
            raise CheckFailed(f"transport is {client.transport()!r}, expected {wanted!r}")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------------------------- checks

async def check_connect_auth(h):
    auth = {"token": "abc", "n": 1}
    client, inbox = await h.connected_client(auth=auth, events=["auth"])
    items = await inbox["auth"].wait_for(1, what='"auth" events')
    expect(items[0] == (auth,), f'"auth" event carried {items[0]!r}, expected {(auth,)!r}')
    expected_transport = {"polling": "polling", "websocket": "websocket", "default": "websocket"}[h.mode]
    await wait_transport(client, expected_transport)


async def check_emit_with_ack(h):
    client, _ = await h.connected_client()
    result = await client.call("message-with-ack", (1, "2", {"3": [True]}), timeout=5)
    expect(list(result) == [1, "2", {"3": [True]}], f"ack carried {result!r}")
    single = await client.call("message-with-ack", "solo", timeout=5)
    expect(single == "solo", f"single-argument ack carried {single!r}")


async def check_message_back(h):
    client, inbox = await h.connected_client(events=["message-back"])
    await client.emit("message", (1, "2", {"3": [False]}, None, 4.5, "é✓"))
    items = await inbox["message-back"].wait_for(1, what='"message-back" events')
    expect(items[0] == (1, "2", {"3": [False]}, None, 4.5, "é✓"), f'"message-back" carried {items[0]!r}')


async def check_binary(h):
    client, inbox = await h.connected_client(events=["message-back"])
    blob = bytes(range(256)) * 4
    await client.emit("message", (b"\x01\x02\x03", {"nested": [b"\x04\x05\x06", "text"]}, blob))
    items = await inbox["message-back"].wait_for(1, what='"message-back" events')
    expect(items[0] == (b"\x01\x02\x03", {"nested": [b"\x04\x05\x06", "text"]}, blob),
           f'"message-back" carried {items[0]!r:.200}')
    acked = await client.call("message-with-ack", (b"\xff\x00", "x"), timeout=5)
    expect(list(acked) == [b"\xff\x00", "x"], f"binary ack carried {acked!r}")


async def check_custom_namespace(h):
    auth = {"token": "custom"}
    client, inbox = await h.connected_client(namespaces=["/", "/custom"], auth=auth,
                                             events=["auth", ("auth", "/custom"), ("message-back", "/custom")])
    items = await inbox[("auth", "/custom")].wait_for(1, what='"auth" events on /custom')
    expect(items[0] == (auth,), f'"auth" on /custom carried {items[0]!r}')
    await inbox["auth"].wait_for(1, what='"auth" events on /')
    await client.emit("message", ("to custom",), namespace="/custom")
    back = await inbox[("message-back", "/custom")].wait_for(1, what='"message-back" events on /custom')
    expect(back[0] == ("to custom",), f'"message-back" on /custom carried {back[0]!r}')
    ack = await client.call("message-with-ack", "custom-ack", namespace="/custom", timeout=5)
    expect(ack == "custom-ack", f"/custom ack carried {ack!r}")


async def check_unknown_namespace(h):
    client = h.new_client(reconnection=False)
    try:
        await h.connect(client, namespaces=["/no-such-namespace"])
    except socketio.exceptions.ConnectionError:
        return
    raise CheckFailed("connecting to /no-such-namespace succeeded")


async def check_room_broadcast(h, members=3, outsiders=2):
    room = f"room-{uuid.uuid4().hex[:8]}"
    clients = []
    for _ in range(members + outsiders):
        clients.append(await h.connected_client(events=["room-message"]))
    for client, _ in clients[:members]:
        joined = await client.call("join", room, timeout=5)
        expect(joined == room, f'"join" acknowledged with {joined!r}')
    sender = clients[0][0]
    await sender.call("to-room", (room, "hello room", b"\x07"), timeout=5)
    for index, (_, inbox) in enumerate(clients[:members]):
        items = await inbox["room-message"].wait_for(1, what=f'"room-message" events at member {index}')
        expect(items[0] == ("hello room", b"\x07"), f"member {index} got {items[0]!r}")
    await asyncio.sleep(0.5)
    for index, (_, inbox) in enumerate(clients):
        expected = 1 if index < members else 0
        expect(len(inbox["room-message"].items) == expected,
               f"client {index} ({'member' if index < members else 'outsider'}) got "
               f"{len(inbox['room-message'].items)} room messages, expected {expected}")


async def check_server_disconnect_reconnect(h):
    client = h.new_client()
    connects, disconnects, auths = Inbox(), Inbox(), Inbox()
    client.on("connect", lambda: connects.push(client.get_sid()))
    client.on("disconnect", lambda reason=None: disconnects.push(reason))
    client.on("auth", lambda *args: auths.push(args))
    await h.connect(client, auth={"who": "reconnect"})
    await connects.wait_for(1, what="connect events")
    await auths.wait_for(1, what='"auth" events')
    bye = await client.call("disconnect-me", timeout=5)
    expect(bye == "bye", f'"disconnect-me" acknowledged with {bye!r}')
    reasons = await disconnects.wait_for(1, timeout=5, what="disconnect events")
    await connects.wait_for(2, timeout=10, what="connect events (automatic reconnect)")
    await auths.wait_for(2, timeout=5, what='"auth" events after reconnecting')
    expect(auths.items[1] == ({"who": "reconnect"},), f'"auth" after reconnect carried {auths.items[1]!r}')
    expect(connects.items[0] != connects.items[1], "the reconnected client kept its old sid")
    echo = await client.call("message-with-ack", "after reconnect", timeout=5)
    expect(echo == "after reconnect", f"ack after reconnect carried {echo!r}")
    expect(reasons[0] != client.reason.SERVER_DISCONNECT,
           f"disconnect reason {reasons[0]!r}: the server sent a Socket.IO DISCONNECT instead of dropping")


async def check_server_namespace_disconnect(h):
    client = h.new_client()
    connects, disconnects = Inbox(), Inbox()
    client.on("connect", lambda: connects.push(True))
    client.on("disconnect", lambda reason=None: disconnects.push(reason))
    await h.connect(client)
    await connects.wait_for(1, what="connect events")
    await client.call("disconnect-me", "namespace", timeout=5)
    reasons = await disconnects.wait_for(1, timeout=5, what="disconnect events")
    expect(reasons[0] == client.reason.SERVER_DISCONNECT,
           f"disconnect reason {reasons[0]!r}, expected {client.reason.SERVER_DISCONNECT!r}")
    await asyncio.sleep(1.0)
    expect(len(connects.items) == 1 and not client.connected,
           "the client reconnected after a Socket.IO DISCONNECT from the server")


async def check_ordered_messages(h, count=1000):
    client, inbox = await h.connected_client(events=["message-back"])
    for i in range(count):
        await client.emit("message", (i, f"m{i}"))
    items = await inbox["message-back"].wait_for(count, timeout=15, what='"message-back" events')
    got = [item[0] for item in items[:count]]
    if got != list(range(count)):
        first = next(i for i, value in enumerate(got) if value != i)
        raise CheckFailed(f"out of order at position {first}: got {got[first]!r}")
    expect(all(item == (i, f"m{i}") for i, item in enumerate(items[:count])), "payloads changed in transit")
    await asyncio.sleep(0.2)
    expect(len(inbox["message-back"].items) == count,
           f"{len(inbox['message-back'].items)} replies for {count} messages")


async def check_refused_auth(h):
    client = h.new_client(reconnection=False)
    errors = Inbox()
    client.on("connect_error", lambda data=None: errors.push(data))
    try:
        await h.connect(client, auth={"refuse": True})
    except socketio.exceptions.ConnectionError as error:
        raised = error
    else:
        raise CheckFailed("connect with {'refuse': true} succeeded")
    items = await errors.wait_for(1, what="connect_error events")
    data = items[0]
    message = data.get("message") if isinstance(data, dict) else data
    expect(message == "refused by server",
           f"connect_error carried {data!r}, expected the server's message 'refused by server' (raised {raised})")
    expect(not client.connected, "client reports connected after a refusal")


async def check_chat_broadcast(h, members=3):
    clients = []
    for _ in range(members):
        clients.append(await h.connected_client(namespaces=["/chat"], events=[("chat", "/chat")]))
    tag = uuid.uuid4().hex[:8]
    await clients[1][0].emit("chat", (f"hello {tag}", {"from": 1}), namespace="/chat")
    for index, (_, inbox) in enumerate(clients):
        items = await inbox[("chat", "/chat")].wait_for(1, what=f'"chat" events at member {index}')
        expect(items[0] == (f"hello {tag}", {"from": 1}), f"member {index} got {items[0]!r}")
    await asyncio.sleep(0.3)
    for index, (_, inbox) in enumerate(clients):
        expect(len(inbox[("chat", "/chat")].items) == 1,
               f"member {index} got {len(inbox[('chat', '/chat')].items)} chat messages, expected 1")


CHECKS = [
    ("connect to / (auth event)", check_connect_auth),
    ("emit with ack", check_emit_with_ack),
    ("message round trip", check_message_back),
    ("binary arguments", check_binary),
    ("namespace /custom", check_custom_namespace),
    ("unknown namespace refused", check_unknown_namespace),
    ("room broadcast (3 in, 2 out)", check_room_broadcast),
    ("server disconnect then automatic reconnect", check_server_disconnect_reconnect),
    ("server namespace disconnect, no reconnect", check_server_namespace_disconnect),
    ("1000 ordered messages", check_ordered_messages),
    ("refused auth", check_refused_auth),
    ("/chat broadcast", check_chat_broadcast),
]


async def run_mode(args, mode, prefix, selected):
    passed = failed = 0
    for name, check in CHECKS:
        if selected and not any(word in name for word in selected):
            continue
        h = Harness(args.url, args.path, mode)
        label = f"{prefix}{name}"
        try:
            await asyncio.wait_for(check(h), args.check_timeout)
        except CheckFailed as error:
            print(f"FAIL {label}: {error}", flush=True)
            failed += 1
        except asyncio.TimeoutError:
            print(f"FAIL {label}: no result within {args.check_timeout:g}s", flush=True)
            failed += 1
        except Exception as error:  # noqa: BLE001 -- any client error is a failed check
            print(f"FAIL {label}: {type(error).__name__}: {error}", flush=True)
            failed += 1
        else:
            print(f"ok {label}", flush=True)
            passed += 1
        finally:
            await h.close()
    return passed, failed


async def main_async(args):
    modes = list(MODES) if args.transports == "all" else [args.transports]
    passed = failed = 0
    for mode in modes:
        prefix = f"[{mode}] " if len(modes) > 1 else ""
        p, f = await run_mode(args, mode, prefix, args.only)
        passed += p
        failed += f
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed or not passed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--transports", choices=[*MODES, "all"], default="all")
    parser.add_argument("--path", default="socket.io", help="Socket.IO endpoint path (default socket.io)")
    parser.add_argument("--check-timeout", type=float, default=20.0, help="seconds per check (default 20)")
    parser.add_argument("--only", action="append", default=[], help="run checks whose name contains this")
    args = parser.parse_args()
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
