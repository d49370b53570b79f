#!/usr/bin/env python3
"""Cross-node fan-out of a Sockway cluster, next to a single node: latency and messages per second of the
demo /chat room over raw WebSocket (`/chat/websocket`), and the CPU each message costs.

    scripts/interop/cluster_bench.py --single http://127.0.0.1:S --nodes http://127.0.0.1:A,...,http://127.0.0.1:C \
        --pids SINGLE_PID,A_PID,...,C_PID [--rate 500] [--seconds 5] [--burst 20000] [--sizes 64,1024,16384]

Rows:
- latency at --rate messages/s for --seconds: from the sender's send to the receiver's receipt (one clock:
  both clients are in this process), on the single node (no cluster), on one clustered node (sender and
  receiver on A: every message still goes through PostgreSQL first) and across nodes (sender on A,
  receiver on C);
- throughput: --burst messages sent as fast as the receiver keeps up (at most --window ahead of it, so
  that no session's bounded outbox overflows), per payload size; messages per second = burst / (last
  receipt - first send);
- CPU per message: user+system time of the sending node, the receiving node and every PostgreSQL
  process (postgres user), divided by the messages, during the throughput runs.
Prints a Markdown table. Uses aiohttp from the pinned environment of scripts/interop/sockway_pyenv.py.
"""
import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sockway_pyenv  # noqa: E402

sockway_pyenv.ensure(__file__)

import aiohttp  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / TICKS


def postgres_pids():
    out = subprocess.run(["pgrep", "-u", "postgres"], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def ws_url(base):
    return base.replace("http://", "ws://") + "/chat/websocket"


async def connect(session, base):
    return await session.ws_connect(ws_url(base), max_msg_size=0, autoping=True)


async def drain(sender):
    """Reads what the room sends back to the sender (it is a member too) until its socket closes."""
    while True:
        message = await sender.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            return


async def latency(session, sender_base, receiver_base, rate, seconds):
    sender = await connect(session, sender_base)
    receiver = await connect(session, receiver_base)
    await asyncio.sleep(0.5)
    tag = f"lat-{time.monotonic_ns()}"
    count = int(rate * seconds)
    samples = []

    async def receive():
        while len(samples) < count:
            message = await receiver.receive(timeout=30)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"receiver: {message.type}")
            parts = message.data.split(" ", 2)
            if parts[0] == tag:
                samples.append((time.monotonic_ns() - int(parts[1])) / 1e6)

    receiving = asyncio.create_task(receive())
    draining = asyncio.create_task(drain(sender))
    start = time.monotonic()
    for index in range(count):
        await sender.send_str(f"{tag} {time.monotonic_ns()} {index}")
        delay = start + (index + 1) / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.wait_for(receiving, 30)
    draining.cancel()
    await sender.close()
    await receiver.close()
    samples.sort()
    return {
        "p50": samples[len(samples) // 2],
        "p99": samples[int(len(samples) * 0.99)],
        "max": samples[-1],
        "mean": statistics.fmean(samples),
    }


async def throughput(session, sender_base, receiver_base, burst, size, pids, window):
    sender = await connect(session, sender_base)
    receiver = await connect(session, receiver_base)
    await asyncio.sleep(0.5)
    tag = f"tp-{time.monotonic_ns()}"
    padding = "x" * max(0, size - len(tag) - 12)
    received = 0
    progressed = asyncio.Event()

    async def receive():
        nonlocal received
        while received < burst:
            message = await receiver.receive(timeout=60)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"receiver: {message.type} {message.data} {message.extra}")
            if message.data.startswith(tag):
                received += 1
                if received % 10 == 0:
                    progressed.set()

    receiving = asyncio.create_task(receive())
    draining = asyncio.create_task(drain(sender))
    cpu_before = {name: cpu_seconds(group) for name, group in pids.items()}
    start = time.monotonic()
    # At most `window` messages and 1 MiB ahead: the sessions' outboxes are bounded (1013 past them).
    window = max(10, min(window, (1 << 20) // max(size, 1)))
    for index in range(burst):
        while index - received >= window:
            if receiving.done():
                receiving.result()  # raises what stopped the receiver
            progressed.clear()
            try:
                await asyncio.wait_for(progressed.wait(), 5)
            except asyncio.TimeoutError:
                pass
        await sender.send_str(f"{tag} {index:010d}{padding}")
    await asyncio.wait_for(receiving, 120)
    elapsed = time.monotonic() - start
    cpu = {name: (cpu_seconds(group) - cpu_before[name]) / burst * 1e6 for name, group in pids.items()}
    draining.cancel()
    await sender.close()
    await receiver.close()
    return {"rate": burst / elapsed, "cpu_us": cpu}


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--single", required=True)
    parser.add_argument("--nodes", required=True)
    parser.add_argument("--pids", required=True)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--burst", type=int, default=20000)
    parser.add_argument("--sizes", default="64,1024,16384")
    parser.add_argument("--window", type=int, default=1000)
    args = parser.parse_args()
    nodes = args.nodes.split(",")
    pids = [int(pid) for pid in args.pids.split(",")]
    single_pid, node_pids = pids[0], pids[1:]
    a, c = nodes[0], nodes[-1]
    postgres = postgres_pids()

    async with aiohttp.ClientSession() as session:
        rows = []
        for name, sender, receiver in [("single node (no cluster)", args.single, args.single),
                                       ("cluster, same node (A to A)", a, a),
                                       (f"cluster, across nodes (A to {'ABCDEFG'[len(nodes) - 1]})", a, c)]:
            result = await latency(session, sender, receiver, args.rate, args.seconds)
            rows.append((name, result))
        print(f"\nlatency at {args.rate} messages/s for {args.seconds:g} s (ms), /chat over raw WebSocket:\n")
        print("| path | p50 | p99 | max | mean |")
        print("|---|---:|---:|---:|---:|")
        for name, r in rows:
            print(f"| {name} | {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.2f} | {r['mean']:.2f} |")

        print(f"\nthroughput: {args.burst} messages, one sender at most {args.window} ahead of one receiver (messages/s; CPU µs per message):\n")
        print("| payload | single node | cluster A to C | cluster/single | CPU single | CPU node A | CPU node C | CPU PostgreSQL |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for size in [int(s) for s in args.sizes.split(",")]:
            single = await throughput(session, args.single, args.single, args.burst, size, {"single": [single_pid]}, args.window)
            cluster = await throughput(
                session, a, c, args.burst, size,
                {"a": [node_pids[0]], "c": [node_pids[-1]], "postgres": postgres}, args.window,
            )
            print(
                f"| {size} B | {single['rate']:.0f} | {cluster['rate']:.0f} | {cluster['rate'] / single['rate']:.2f} | "
                f"{single['cpu_us']['single']:.1f} | {cluster['cpu_us']['a']:.1f} | {cluster['cpu_us']['c']:.1f} | "
                f"{cluster['cpu_us']['postgres']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())
