#!/usr/bin/env python3
"""Ratios between two `sockway bench --json` reports: Sockway against another server per transport, and
each transport against WebSocket within each report.

    python3 scripts/compare/ratios.py sockway.json other.json [sockway-at-other-max-*.json ...]

The optional reports are Sockway's echo runs at the rate the other server sustained at its maximum (one
transport each): p99 and CPU per message side by side at the same load.
"""
import json
import sys


def load(path):
    with open(path) as f:
        report = json.load(f)
    rows = {(r["scenario"], r["transport"]): r for r in report["results"]}
    return report, rows


def rate(row):
    if row["scenario"] == "throughput":
        return row["offeredRate"]
    return row["messages"] / row["seconds"] if row["seconds"] else 0


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


def main():
    ours, ours_rows = load(sys.argv[1])
    theirs, theirs_rows = load(sys.argv[2])
    print(f"{ours['server']} vs {theirs['server']} ({ours['machine']}; {ours['clients']} clients, "
          f"{ours['messageBytes']}-byte messages, {ours['date']})\n")
    print("| scenario | transport | max msgs/s, ours / theirs | p99, ours / theirs | server CPU per msg, ours / theirs | bytes per msg (in+out), ours / theirs |")
    print("|---|---|---:|---:|---:|---:|")
    for (scenario, transport), row in ours_rows.items():
        other = theirs_rows.get((scenario, transport))
        if other is None:
            continue
        rates = ratio(rate(row), rate(other)) if scenario == "throughput" else "-"
        p99 = ratio(row["latency"]["p99"], other["latency"]["p99"])
        cpu = ratio(row.get("serverCPUPer1000"), other.get("serverCPUPer1000"))
        wire = ratio(row["bytesSentPerMessage"] + row["bytesReceivedPerMessage"],
                     other["bytesSentPerMessage"] + other["bytesReceivedPerMessage"])
        print(f"| {scenario} | {transport} | {rates} | {p99} | {cpu} | {wire} |")
    at_max = [load(path) for path in sys.argv[3:]]
    if at_max:
        print(f"\nAt {theirs['server']}'s maximum rate (its throughput row), {ours['server']} running echo at that rate\n")
        print("| transport | rate msgs/s | delivered, ours | p99 ms, ours / theirs | p99 ratio | server CPU µs/msg, ours / theirs |")
        print("|---|---:|---:|---:|---:|---:|")
        order = [transport for (scenario, transport) in ours_rows if scenario == "throughput"]
        at_max.sort(key=lambda loaded: min(order.index(t) if t in order else len(order) for (_, t) in loaded[1]))
        for report, rows in at_max:
            for (scenario, transport), row in rows.items():
                other = theirs_rows.get(("throughput", transport))
                if other is None:
                    continue
                sent = row["messages"] + row["lost"]
                delivered = f"{100 * row['messages'] / sent:.1f}%" if sent else "-"
                cpu_ours = row.get("serverCPUPer1000")
                cpu_theirs = other.get("serverCPUPer1000")
                cpu = f"{cpu_ours:.2f} / {cpu_theirs:.2f}" if cpu_ours is not None and cpu_theirs is not None else "-"
                print(f"| {transport} | {other['offeredRate']:,.0f} | {delivered} | "
                      f"{row['latency']['p99']:.2f} / {other['latency']['p99']:.2f} | "
                      f"{ratio(row['latency']['p99'], other['latency']['p99'])} | {cpu} |")
    for report, rows in ((ours, ours_rows), (theirs, theirs_rows)):
        print(f"\n{report['server']}: each transport against websocket\n")
        print("| scenario | transport | bytes per msg / websocket | requests per msg | p99 / websocket | server CPU per msg / websocket | max msgs/s / websocket |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for (scenario, transport), row in rows.items():
            base = rows.get((scenario, "websocket"))
            if base is None:
                continue
            wire = ratio(row["bytesSentPerMessage"] + row["bytesReceivedPerMessage"],
                         base["bytesSentPerMessage"] + base["bytesReceivedPerMessage"])
            p99 = ratio(row["latency"]["p99"], base["latency"]["p99"])
            cpu = ratio(row.get("serverCPUPer1000"), base.get("serverCPUPer1000"))
            rates = ratio(rate(row), rate(base)) if scenario == "throughput" else "-"
            print(f"| {scenario} | {transport} | {wire} | {row['requestsPerMessage']:.3f} | {p99} | {cpu} | {rates} |")


if __name__ == "__main__":
    main()
