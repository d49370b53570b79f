"""The senders of the cluster checks: one python-socketio client per node, connected to it directly, each
emitting numbered `to-room` events ("<sender>:<seq>"); the last node is killed with SIGKILL after a third of
its own messages. Used by cluster_checks.py and cluster_recovery.py (after sockway_pyenv.ensure)."""
import asyncio
import os
import signal

import socketio


async def connect_senders(nodes):
    senders = []
    for url in nodes:
        sender = socketio.AsyncClient(reconnection=False)
        await sender.connect(url, transports=["websocket"], wait_timeout=10)
        senders.append(sender)
    return senders


async def send_and_kill(senders, room, messages, interval, kill_pid, victim_name):
    """Runs every sender to the end (the victim's to a third, then kills its node). Returns the payloads
    each sender had acknowledged, and when each surviving sender finished (event-loop time)."""
    victim = len(senders) - 1
    acked = {index: [] for index in range(len(senders))}
    finished = {}

    async def send(index):
        for seq in range(messages):
            if index == victim and seq >= messages // 3:
                return
            payload = f"{index}:{seq}"
            try:
                await senders[index].call("to-room", (room, payload), timeout=10)
                acked[index].append(payload)
            except Exception:
                return
            await asyncio.sleep(interval)
        finished[index] = asyncio.get_running_loop().time()

    async def kill_later():
        while len(acked[victim]) < messages // 3:
            await asyncio.sleep(0.01)
        os.kill(kill_pid, signal.SIGKILL)
        print(f"killed node {victim_name} (pid {kill_pid}) after {len(acked[victim])} of its messages", flush=True)

    await asyncio.gather(*(send(index) for index in range(len(senders))), kill_later())
    return acked, finished


async def disconnect_survivors(senders):
    for sender in senders[:-1]:
        await sender.disconnect()
