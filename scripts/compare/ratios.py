#!/usr/bin/env python3
"""Ratios between two `sockway bench --json` reports: Sockway against another server per transport, and
each transport against WebSocket within each report.

    python3 scripts/compare/ratios.py sockway.json other.json [sockway-at-other-max-*.json ...]

The optional reports are Sockway's echo runs at a multiple of the rate the other server sustained at its
maximum (one transport each; the multiple is read from the report's rate): p99 and CPU per message side by
side at the same load (1x), and whether Sockway sustains the multiple at a lower p99 (3x: at least 95% of
the messages delivered and a p99 below the other server's at its own maximum).
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
        print(f"\nAt a multiple of {theirs['server']}'s maximum rate (its throughput row), {ours['server']} running echo at that rate\n")
        print("| transport | multiple | rate msgs/s | delivered, ours | p99 ms, ours / theirs at its max | p99 ratio | server CPU µs/msg, ours / theirs at its max | sustained at a lower p99 |")
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        order = [transport for (scenario, transport) in ours_rows if scenario == "throughput"]
        lines = []
        for report, rows in at_max:
            for (scenario, transport), row in rows.items():
                other = theirs_rows.get(("throughput", transport))
                if other is None or not other["offeredRate"]:
                    continue
                multiple = row["offeredRate"] / other["offeredRate"]
                sent = row["messages"] + row["lost"]
                share = row["messages"] / sent if sent else 0
                cpu_ours = row.get("serverCPUPer1000")
                cpu_theirs = other.get("serverCPUPer1000")
                cpu = f"{cpu_ours:.2f} / {cpu_theirs:.2f}" if cpu_ours is not None and cpu_theirs is not None else "-"
                verdict = "yes" if share >= 0.95 and row["errors"] == 0 and row["latency"]["p99"] < other["latency"]["p99"] else "no"
                key = (order.index(transport) if transport in order else len(order), multiple)
                lines.append((key, f"| {transport} | {multiple:.1f}x | {row['offeredRate']:,.0f} | {100 * share:.1f}% | "
                                   f"{row['latency']['p99']:.2f} / {other['latency']['p99']:.2f} | "
                                   f"{ratio(row['latency']['p99'], other['latency']['p99'])} | {cpu} | {verdict} |"))
        for _, line in sorted(lines):
            print(line)
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
