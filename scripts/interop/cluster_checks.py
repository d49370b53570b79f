#!/usr/bin/env python3
"""Socket.IO rooms across the nodes of a Sockway cluster behind a load balancer, with python-socketio's
AsyncClient, and one node killed (SIGKILL) in the middle.

    scripts/interop/cluster_checks.py --balancer http://127.0.0.1:F \
        --nodes http://127.0.0.1:A,http://127.0.0.1:B,http://127.0.0.1:C --kill-pid PID_OF_C \
        [--messages 150] [--clients-per-transport 4]

Listeners connect through the balancer (long-polling and WebSocket), which spreads them over the nodes
(their Engine.IO sid names the node), and join one room; each node has one sender, connected to it
directly, that emits numbered `to-room` events (the demo /socket.io service sends them to the room as
`room-message`). After a third of the messages the last node is killed with SIGKILL; its listeners
reconnect by themselves through the balancer to the other nodes and join the room again.

Then: every listener that never was on the killed node has every message of every surviving sender
exactly once and in order; a listener that moved has, from its first message after moving on, every later
message of every surviving sender (nothing lost while it was connected to a survivor) and nothing twice.
Messages of the killed node's sender reach the survivors if the node wrote them to PostgreSQL before it
died; they are counted, and must not be doubled.

Prints the counts (delivered, lost, duplicated) and exits 1 if any was lost or doubled. Uses the pinned
python-socketio of scripts/interop/sockway_pyenv.py.
"""
import argparse
import asyncio
import json
import os
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sockway_pyenv  # noqa: E402

sockway_pyenv.ensure(__file__)

import cluster_senders  # noqa: E402
import engineio  # noqa: E402
import socketio  # noqa: E402

engineio.payload.Payload.max_decode_packets = 100_000


class Listener:
    def __init__(self, transport, room, names):
        self.transport = transport
        self.room = room
        self.names = names
        self.nodes = []  # the nodes it was connected to, in order
        self.received = []
        # After a move, the index in `received` where messages received on the new node begin.
        self.moved_at = None
        self.rejoined_at = None  # when it was in the room again after moving
        self.joined = asyncio.Event()
        self.client = socketio.AsyncClient(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1)
        self.client.on("room-message", self.on_message)
        self.client.on("connect", self.on_connect)

    async def on_message(self, *arguments):
        if arguments:
            self.received.append(arguments[0])

    async def on_connect(self):
        node = self.client.eio.sid.split("~", 1)[0]
        if self.nodes:
            self.moved_at = len(self.received)
        self.nodes.append(node)
        # Rooms are not kept across a reconnection (without connection state recovery): join again.
        asyncio.get_running_loop().create_task(self.join())

    async def join(self):
        joined = await self.client.call("join", self.room, timeout=10)
        assert joined == self.room, f"join answered {joined!r}"
        if self.moved_at is not None:
            self.rejoined_at = asyncio.get_running_loop().time()
        self.joined.set()

    async def start(self, url):
        await self.client.connect(url, transports=[self.transport], wait_timeout=10)
        await asyncio.wait_for(self.joined.wait(), 10)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--balancer", required=True)
    parser.add_argument("--nodes", required=True)
    parser.add_argument("--kill-pid", type=int, required=True)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--clients-per-transport", type=int, default=4)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--sockway", help="the sockway executable: check `sockway nodes --rooms` against the listeners")
    parser.add_argument("--cluster-url", help="the cluster's PostgreSQL, for --sockway")
    args = parser.parse_args()
    nodes = args.nodes.split(",")
    victim = len(nodes) - 1
    room = "room-" + uuid.uuid4().hex[:8]

    names = ["a", "b", "c"][: len(nodes)]
    victim_name = names[victim]
    listeners = []
    for transport in ("polling", "websocket"):
        for _ in range(args.clients_per_transport * len(nodes)):
            listener = Listener(transport, room, names)
            await listener.start(args.balancer)
            listeners.append(listener)
    spread = {name: sum(1 for listener in listeners if listener.nodes[0] == name) for name in names}
    print(f"listeners through the balancer: {spread}", flush=True)
    if spread[victim_name] == 0:
        print("FAIL: no listener landed on the node to be killed", flush=True)
        return 1
    if args.sockway:
        # The cluster-wide room size, from every node's heartbeat (every 2 s).
        members = None
        for _ in range(30):
            await asyncio.sleep(0.5)
            listed = subprocess.run([args.sockway, "nodes", "--cluster", args.cluster_url, "--rooms", "--json"],
                                    capture_output=True, text=True, timeout=30, check=True).stdout
            rows = [json.loads(line) for line in listed.splitlines() if line.strip()]
            members = next((row["members"] for row in rows if row["stream"] == "sio:/socket.io#/" and row["room"] == room), None)
            if members == len(listeners):
                break
        if members != len(listeners):
            print(f"FAIL: sockway nodes --rooms says {members} members in the room, not {len(listeners)}", flush=True)
            return 1
        print(f"ok: sockway nodes --rooms: {members} members in the room over {len(nodes)} nodes", flush=True)
    senders = await cluster_senders.connect_senders(nodes)
    # The rooms' bus subscriptions are there from the first join; give the nodes' cursors a moment.
    await asyncio.sleep(0.5)
    acked, finished = await cluster_senders.send_and_kill(
        senders, room, args.messages, args.interval, args.kill_pid, victim_name)

    stayed = [listener for listener in listeners if listener.nodes[0] != victim_name]
    moved = [listener for listener in listeners if listener.nodes[0] == victim_name]
    senders_left = [index for index in range(len(nodes)) if index != victim]
    expected = {f"{index}:{seq}" for index in senders_left for seq in range(args.messages)}
    last = {index: f"{index}:{args.messages - 1}" for index in senders_left}

    def complete(listener):
        if listener in stayed:
            return expected <= set(listener.received)
        return listener.moved_at is not None and all(item in listener.received for item in last.values())

    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        if all(complete(listener) for listener in listeners):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # anything doubled would come now

    delivered = lost = duplicated = out_of_order = 0
    moved_lost = moved_delivered = 0
    from_victim = []
    for listener in listeners:
        seen = listener.received
        duplicated += len(seen) - len(set(seen))
        for index in range(len(nodes)):
            own = [int(item.split(":")[1]) for item in seen if item.startswith(f"{index}:")]
            if own != sorted(own):
                out_of_order += 1
        if listener in stayed:
            delivered += len(expected & set(seen))
            lost += len(expected - set(seen))
            from_victim.append(len({item for item in seen if item.startswith(f"{victim}:")}))
            continue
        if listener.moved_at is None or listener.rejoined_at is None:
            lost += 1  # never came back
            print(f"  a listener of the killed node did not come back: {listener.nodes}", flush=True)
            continue
        # On its new node: from the first message of each sender there, every later one.
        after = seen[listener.moved_at:]
        for index in senders_left:
            own = [int(item.split(":")[1]) for item in after if item.startswith(f"{index}:")]
            if not own:
                # Nothing from this sender after moving: lost, unless the sender was done by then.
                if listener.rejoined_at < finished[index] - 0.5:
                    moved_lost += 1
                    print(f"  nothing from sender {index} after moving (rejoined "
                          f"{finished[index] - listener.rejoined_at:.2f} s before it finished)", flush=True)
                continue
            wanted = set(range(own[0], args.messages))
            moved_delivered += len(wanted & set(own))
            moved_lost += len(wanted - set(own))

    print(
        f"socket.io across {len(nodes)} nodes behind the balancer, one killed: {len(stayed)} listeners stayed x "
        f"{len(expected)} messages: delivered {delivered}, lost {lost}; {len(moved)} moved to "
        f"{sorted({listener.nodes[-1] for listener in moved})} and got {moved_delivered} after moving, lost "
        f"{moved_lost}; duplicated {duplicated}, out of order {out_of_order}; of the killed node's "
        f"{len(acked[victim])} acknowledged messages the listeners that stayed got "
        f"{min(from_victim) if from_victim else 0}-{max(from_victim) if from_victim else 0}",
        flush=True,
    )
    lost += moved_lost
    for listener in listeners:
        await listener.client.disconnect()
    await cluster_senders.disconnect_survivors(senders)
    return 0 if lost == 0 and duplicated == 0 and out_of_order == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
