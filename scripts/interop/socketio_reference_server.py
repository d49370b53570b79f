#!/usr/bin/env python3
"""Reference Engine.IO v4 / Socket.IO v5 server for Sockway's interop tests (python-socketio on aiohttp).

    scripts/interop/socketio_reference_server.py --port 3000              # Socket.IO services
    scripts/interop/socketio_reference_server.py --port 3000 --engineio   # Engine.IO echo only

Listens on 127.0.0.1 only and prints "listening on http://127.0.0.1:PORT ..." once ready. Runs until
killed (SIGTERM/SIGINT). When python-socketio is not importable it creates a virtualenv at
$SOCKWAY_PYENV (default /tmp/sockway-pyenv) with the pinned versions below and re-executes itself there.

Settings (the official protocol suites hardcode them): pingInterval 300 ms, pingTimeout 200 ms,
maxPayload 1000000 bytes, CORS origin "*", and for Socket.IO a 1 s connect timeout. --ping-interval,
--ping-timeout and --connect-timeout (seconds; 0 turns the connect timeout off) change them.

Two local fixes make python-socketio behave as configured (--stock turns both off):
  * python-engineio 4.15.1 advertises pingInterval as int(seconds) * 1000 -- 0 for 0.3 s -- which makes
    clients time out; the OPEN packet is corrected to 300.
  * python-socketio has no connect timeout; it is emulated (see below).
Always applied: python-engineio's limit of 16 packets per long-polling POST is lifted (clients batch),
and its aiohttp driver is made to read a long-polling POST body completely (it cut bodies above ~190 KB).

SERVICE CONTRACT -- the Swift server implements the same services so that the same checks
(scripts/protocol-suites, scripts/interop/engineio_checks.py, scripts/interop/socketio_checks.py) run
against both.

Engine.IO (path /engine.io/, --engineio):
  * every message packet is sent back unchanged to the sender: text as text, binary as binary.

Socket.IO (path /socket.io/):
  * Connect timeout: an Engine.IO session that has not sent a Socket.IO CONNECT packet within 1 s is
    closed (like the Node server's connectTimeout; python-socketio has no such option, so it is emulated
    here -- --connect-timeout 0 gives plain python-socketio behaviour).
  * Auth refusal, any namespace: when the CONNECT payload is an object with "refuse": true, the connection
    is refused with CONNECT_ERROR {"message": "refused by server"} (e.g. `44{"message":"refused by server"}`).
  * Namespace "/":
      - on connect: emits "auth" with the CONNECT payload (`{}` when none): `42["auth",{"token":"123"}]`,
        AFTER the CONNECT reply `40{"sid":...}` (the suite reads the reply first, then "auth").
      - "message" (any args)          -> emits "message-back" with the same args to the sender
                                         (binary attachments included, same order).
      - "message-with-ack" (any args) -> acknowledges with the same args.
      - "join" (room: string)         -> puts the client in that room, acknowledges with the room name.
      - "leave" (room: string)        -> removes the client from that room, acknowledges with the room name.
      - "to-room" (room, ...args)     -> emits "room-message" with args to every client in that room
                                         (the sender too if it is a member); acknowledges with no
                                         arguments if an ack was requested.
      - "disconnect-me" (mode?)       -> acknowledges with "bye" if an ack was requested, then 50 ms later:
            mode "transport" (default): drops the client's Engine.IO session WITHOUT a Socket.IO
                DISCONNECT and without an Engine.IO CLOSE packet (the WebSocket is closed / the pending
                long-poll ends empty and later requests for that sid get HTTP 400), as if the network had
                failed, so clients reconnect automatically;
            mode "namespace": sends a Socket.IO DISCONNECT packet (`41`) for "/", after which clients
                must NOT reconnect by themselves (reason "io server disconnect").
  * Namespace "/custom": on connect emits "auth" with the CONNECT payload (`42/custom,["auth",{}]`);
    "message" and "message-with-ack" behave as on "/".
  * Namespace "/chat": no event on connect; "chat" (any args) is emitted as "chat" with the same args to
    every client connected to /chat, the sender included.
  * Any other namespace is refused: `44/random,{"message":"Invalid namespace"}` (the Node server's text,
    which the official suite checks; python-socketio itself sends `44/random,"Unable to connect"`).

Pinned packages: python-socketio 5.18.1, python-engineio 4.15.1, aiohttp 3.14.5.
"""
import argparse
import asyncio
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sockway_pyenv  # noqa: E402

sockway_pyenv.ensure(__file__)

import engineio  # noqa: E402
import socketio  # noqa: E402
from aiohttp import web  # noqa: E402

REFUSAL_MESSAGE = "refused by server"


def patch_ping_interval_rounding():
    """python-engineio 4.15.1 advertises pingInterval as int(seconds) * 1000, i.e. 0 for 0.3 s, so every
    client that trusts the handshake (python-engineio's own client included) would time out. This fixes the
    OPEN packet's pingInterval to round(seconds * 1000) as it is sent; nothing else changes."""
    from engineio import async_socket, packet

    original_send = async_socket.AsyncSocket.send

    async def send(self, pkt):
        if pkt.packet_type == packet.OPEN and isinstance(pkt.data, dict) and "pingInterval" in pkt.data:
            server = self.server
            pkt.data["pingInterval"] = int(round(
                (server.ping_interval + server.ping_interval_grace_period) * 1000))
        return await original_send(self, pkt)

    async_socket.AsyncSocket.send = send


def engineio_app(args):
    eio = engineio.AsyncServer(
        async_mode="aiohttp",
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        max_http_buffer_size=args.max_payload,
        cors_allowed_origins="*",
    )

    @eio.on("message")
    async def message(sid, data):
        await eio.send(sid, data)

    app = web.Application()
    eio.attach(app)
    return app


class ReferenceSocketIOServer(socketio.AsyncServer):
    """python-socketio's AsyncServer plus the Node server's connectTimeout."""

    def __init__(self, *args, connect_timeout=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.connect_timeout = connect_timeout
        self._seen_connect = set()

    async def _handle_eio_connect(self, eio_sid, environ):
        result = await super()._handle_eio_connect(eio_sid, environ)
        if self.connect_timeout > 0:
            self.start_background_task(self._enforce_connect_timeout, eio_sid)
        return result

    async def _handle_connect(self, eio_sid, namespace, data):
        self._seen_connect.add(eio_sid)
        return await super()._handle_connect(eio_sid, namespace, data)

    async def _handle_eio_disconnect(self, eio_sid, reason=None):
        self._seen_connect.discard(eio_sid)
        return await super()._handle_eio_disconnect(eio_sid, reason)

    async def _enforce_connect_timeout(self, eio_sid):
        await asyncio.sleep(self.connect_timeout)
        if eio_sid not in self._seen_connect and eio_sid in self.eio.sockets:
            await self.drop_engineio(eio_sid, send_close=True)

    async def drop_engineio(self, eio_sid, send_close):
        """Ends an Engine.IO session: with send_close an Engine.IO CLOSE packet is sent first, without it
        the session is simply cut (WebSocket closed, pending poll ended, sid forgotten)."""
        sock = self.eio.sockets.get(eio_sid)
        if sock is None:
            return
        await sock.close(wait=False, abort=not send_close)
        self.eio.sockets.pop(eio_sid, None)
        sock.queue.put_nowait(None)  # wake the WebSocket writer / the pending long-poll


def patch_short_post_reads():
    """python-engineio's aiohttp driver reads a long-polling POST body with one StreamReader.read(length),
    which returns only what has arrived so far (about 190 KB here), so larger payloads are cut and their
    packets corrupted. Hand it a reader whose read(n) waits for all n bytes."""
    from engineio.async_drivers import aiohttp as driver

    class FullReads:
        def __init__(self, stream):
            self.stream = stream

        async def read(self, n=-1):
            if n is None or n < 0:
                return await self.stream.read()
            try:
                return await self.stream.readexactly(n)
            except asyncio.IncompleteReadError as error:
                return error.partial

    original = driver._async["translate_request"]

    def translate_request(request):
        environ = original(request)
        environ["wsgi.input"] = FullReads(environ["wsgi.input"])
        return environ

    driver._async["translate_request"] = translate_request


def socketio_app(args):
    sio = ReferenceSocketIOServer(
        async_mode="aiohttp",
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        max_http_buffer_size=args.max_payload,
        cors_allowed_origins="*",
        connect_timeout=args.connect_timeout,
    )

    def check_auth(auth):
        if isinstance(auth, dict) and auth.get("refuse") is True:
            raise socketio.exceptions.ConnectionRefusedError(REFUSAL_MESSAGE)

    def register_echo(namespace):
        @sio.on("connect", namespace=namespace)
        async def connect(sid, environ, auth=None):
            check_auth(auth)

            # python-socketio sends the CONNECT reply only after this handler returns; an emit made here
            # would reach the client before it, so "auth" goes out from a task that runs afterwards.
            async def send_auth():
                await sio.emit("auth", auth if auth is not None else {}, to=sid, namespace=namespace)

            sio.start_background_task(send_auth)

        @sio.on("message", namespace=namespace)
        async def message(sid, *args):
            await sio.emit("message-back", tuple(args), to=sid, namespace=namespace)

        @sio.on("message-with-ack", namespace=namespace)
        async def message_with_ack(sid, *args):
            return tuple(args)

    register_echo("/")
    register_echo("/custom")

    @sio.on("join")
    async def join(sid, room):
        await sio.enter_room(sid, room)
        return room

    @sio.on("leave")
    async def leave(sid, room):
        await sio.leave_room(sid, room)
        return room

    @sio.on("to-room")
    async def to_room(sid, room, *args):
        await sio.emit("room-message", tuple(args), room=room)
        return ()

    @sio.on("disconnect-me")
    async def disconnect_me(sid, mode="transport"):
        async def later():
            await asyncio.sleep(0.05)
            if mode == "namespace":
                await sio.disconnect(sid)
            else:
                eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
                if eio_sid is not None:
                    await sio.drop_engineio(eio_sid, send_close=False)

        sio.start_background_task(later)
        return "bye"

    @sio.on("connect", namespace="/chat")
    async def chat_connect(sid, environ, auth=None):
        check_auth(auth)

    @sio.on("chat", namespace="/chat")
    async def chat(sid, *args):
        await sio.emit("chat", tuple(args), namespace="/chat")

    app = web.Application()
    sio.attach(app)
    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--engineio", action="store_true", help="plain Engine.IO echo server on /engine.io/")
    parser.add_argument("--ping-interval", type=float, default=0.3, help="seconds (default 0.3)")
    parser.add_argument("--ping-timeout", type=float, default=0.2, help="seconds (default 0.2)")
    parser.add_argument("--connect-timeout", type=float, default=1.0,
                        help="seconds without a Socket.IO CONNECT before the session is closed; 0 = never")
    parser.add_argument("--max-payload", type=int, default=1_000_000)
    parser.add_argument("--stock", action="store_true",
                        help="no local fixes: keep python-engineio's pingInterval rounding and no connect timeout")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    if args.stock:
        args.connect_timeout = 0
    else:
        patch_ping_interval_rounding()
    # python-engineio refuses a long-polling POST with more than 16 packets ("Too many packets in
    # payload"); clients batch everything queued into one POST (1,000 messages in the ordering check), and
    # the Node server has no such limit (only maxHttpBufferSize), so lift it. Documented python-engineio knob.
    engineio.payload.Payload.max_decode_packets = 100_000
    patch_short_post_reads()

    if args.verbose:
        import logging
        logging.basicConfig(level=logging.INFO)
    app = engineio_app(args) if args.engineio else socketio_app(args)
    kind = "Engine.IO echo on /engine.io/" if args.engineio else "Socket.IO services on /socket.io/"

    async def serve():
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port)
        try:
            await site.start()  # raises when the port is taken; "listening" is printed only once bound
        except OSError as error:
            await runner.cleanup()
            sys.exit(f"cannot listen on 127.0.0.1:{args.port}: {error}")
        from importlib.metadata import version
        print(f"listening on http://127.0.0.1:{args.port} ({kind}; python-socketio {version('python-socketio')}, "
              f"python-engineio {version('python-engineio')}, aiohttp {version('aiohttp')})", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
