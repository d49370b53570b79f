#!/usr/bin/env python3
"""Socket.IO connection state recovery across the nodes of a Sockway cluster, with the official Socket.IO
client (its browser bundle) in headless Chromium, behind a load balancer, one node killed (SIGKILL).

    scripts/interop/cluster_recovery.py --balancer http://127.0.0.1:F \
        --nodes http://127.0.0.1:A,http://127.0.0.1:B,http://127.0.0.1:C --kill-pid PID_OF_C \
        --bundle socket.io.min.js [--clients 12] [--messages 150] [--log-dir DIR]

The nodes run with `--sio-recovery`. The page (socketio-recovery/) opens `--clients` listeners through the
balancer, long-polling and WebSocket alternately, each joining one room once. One sender per node, connected
to it directly (python-socketio), emits numbered `to-room` events; after a third of its messages the last
node is killed. Its listeners reconnect by themselves through the balancer to another node, presenting their
private session id and last offset; they must come back recovered (same socket id, still in the room, never
joining again) and get what was sent while they were away.

Then every listener, moved or not, must have every acknowledged message of every surviving sender exactly
once and in order; messages of the killed node's sender are counted and must not be doubled; every
reconnection must have been recovered. Prints the counts and exits 1 otherwise. All traffic stays on
127.0.0.1 (Chromium resolves nothing else and uses no proxy).
"""
import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sockway_pyenv  # noqa: E402

sockway_pyenv.ensure(__file__)

import cluster_senders  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "socketio-recovery")


class Page:
    """The page's server on 127.0.0.1: its files, the client bundle, and what the page reports."""

    def __init__(self, bundle):
        self.lock = threading.Lock()
        self.ready = {}
        self.results = []
        self.finish = False
        files = {
            "/recovery.html": (os.path.join(HERE, "recovery.html"), "text/html; charset=utf-8"),
            "/recovery.js": (os.path.join(HERE, "recovery.js"), "application/javascript; charset=utf-8"),
            "/socket.io.js": (bundle, "application/javascript; charset=utf-8"),
        }
        page = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *rest):
                pass

            def reply(self, body=b"", content_type="text/plain; charset=utf-8"):
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = self.path.split("?")[0]
                if path == "/command":
                    return self.reply(b"finish" if page.finish else b"wait")
                if path not in files:
                    self.send_error(404)
                    return
                name, content_type = files[path]
                with open(name, "rb") as f:
                    self.reply(f.read(), content_type)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                with page.lock:
                    if self.path == "/ready":
                        page.ready[body["index"]] = body["node"]
                    elif self.path == "/result":
                        page.results.append(body)
                self.reply()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def start_chromium(url, log_dir):
    profile = tempfile.mkdtemp(prefix="chrome-recovery-", dir=log_dir)
    log = open(profile + ".log", "w")
    return subprocess.Popen(
        [
            "chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={profile}", "--no-proxy-server",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
            "--disable-default-apps", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
            "--no-pings", "--metrics-recording-only", "--disable-breakpad", "--mute-audio",
            "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
            url,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def wait_for(condition, seconds):
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.1)
    return condition()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--balancer", required=True)
    parser.add_argument("--nodes", required=True)
    parser.add_argument("--kill-pid", type=int, required=True)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--messages", type=int, default=150)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--log-dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    nodes = args.nodes.split(",")
    names = ["a", "b", "c"][: len(nodes)]
    victim = len(nodes) - 1
    room = "recovery-" + uuid.uuid4().hex[:8]

    page = Page(args.bundle)
    url = f"http://127.0.0.1:{page.port}/recovery.html?front={args.balancer}&clients={args.clients}&room={room}"
    chromium = start_chromium(url, args.log_dir)
    try:
        if not await wait_for(lambda: len(page.ready) == args.clients, 60):
            print(f"FAIL: {len(page.ready)} of {args.clients} listeners joined the room in Chromium", flush=True)
            return 1
        spread = {name: sum(1 for node in page.ready.values() if node == name) for name in names}
        print(f"official Socket.IO client in Chromium, through the balancer: {spread}", flush=True)
        if spread[names[victim]] == 0:
            print("FAIL: no listener landed on the node to be killed", flush=True)
            return 1

        senders = await cluster_senders.connect_senders(nodes)
        await asyncio.sleep(0.5)
        acked, _ = await cluster_senders.send_and_kill(
            senders, room, args.messages, args.interval, args.kill_pid, names[victim])
        await cluster_senders.disconnect_survivors(senders)
        await asyncio.sleep(3.0)  # the last replays and deliveries, and anything doubled
        page.finish = True
        if not await wait_for(lambda: len(page.results) == args.clients, 30):
            print(f"FAIL: {len(page.results)} of {args.clients} listeners reported", flush=True)
            return 1
    finally:
        chromium.kill()
        chromium.wait()
        page.server.shutdown()

    survivors = [index for index in range(len(nodes)) if index != victim]
    expected = [item for index in survivors for item in acked[index]]
    delivered = lost = duplicated = out_of_order = moved = recovered = not_recovered = 0
    for result in page.results:
        seen = result["received"]
        duplicated += len(seen) - len(set(seen))
        for index in range(len(nodes)):
            own = [int(item.split(":")[1]) for item in seen if item.startswith(f"{index}:")]
            if own != sorted(own):
                out_of_order += 1
        delivered += len(set(expected) & set(seen))
        missing = set(expected) - set(seen)
        lost += len(missing)
        connects = result["connects"]
        if connects[0]["node"] == names[victim]:
            moved += 1
        for again in connects[1:]:
            if again["recovered"] and again["id"] == connects[0]["id"]:
                recovered += 1
            else:
                not_recovered += 1
        doubled = sorted({item for item in seen if seen.count(item) > 1})
        if missing or doubled or len(connects) > 1 and not all(c["recovered"] for c in connects[1:]):
            print(f"  listener {result['index']} ({result['transport']}): nodes "
                  f"{[c['node'] for c in connects]}, recovered {[c['recovered'] for c in connects[1:]]}, "
                  f"missing {len(missing)}, doubled {doubled[:10]}", flush=True)
    print(
        f"socket.io recovery across {len(nodes)} nodes behind the balancer, one killed: {len(page.results)} "
        f"listeners x {len(expected)} messages of the surviving senders: delivered {delivered}, lost {lost}; "
        f"{moved} on the killed node, reconnections recovered {recovered}, not recovered {not_recovered}; "
        f"duplicated {duplicated}, out of order {out_of_order}",
        flush=True,
    )
    ok = lost == 0 and duplicated == 0 and out_of_order == 0 and not_recovered == 0 and recovered >= moved > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
