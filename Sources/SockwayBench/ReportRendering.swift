import Foundation

extension BenchReport {
    /// The report as pretty-printed JSON.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// One table per scenario, for the terminal (also valid Markdown).
    public func table() -> String {
        var out = "\(server) at \(target); \(clients) clients, \(messageBytes)-byte messages, \(format(duration)) s per run"
        if let requestHeaders { out += "; request headers: \(requestHeaders)" }
        out += "\n"
        for scenario in BenchScenario.allCases {
            let rows = results(for: scenario)
            guard !rows.isEmpty else { continue }
            let rateHeader = scenario == .throughput ? "max msgs/s" : "msgs/s"
            out += "\n\(scenario.rawValue)\n\n"
            out += "| transport | \(rateHeader) | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | bytes out/msg | bytes in/msg | req/msg | server CPU ms/1k | server RSS MiB | client CPU % | lost | errors |\n"
            out += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
            for row in rows {
                let rate = scenario == .throughput ? row.offeredRate : row.messagesPerSecond
                let cells = [
                    row.transport.rawValue, grouped(rate),
                    format(row.latency.p50), format(row.latency.p90), format(row.latency.p99),
                    format(row.latency.p999), format(row.latency.max),
                    format(row.bytesSentPerMessage, digits: 1), format(row.bytesReceivedPerMessage, digits: 1),
                    format(row.requestsPerMessage, digits: 3),
                    row.serverCPUPer1000.map { format($0) } ?? "-", row.serverRSSMiB.map { format($0, digits: 1) } ?? "-",
                    format(row.clientCPUPercent, digits: 0), String(row.lost), String(row.errors),
                ]
                out += "| " + cells.joined(separator: " | ") + " |\n"
            }
        }
        if let skipped, !skipped.isEmpty {
            out += "\nnot measured\n\n" + skipped.map { "- \($0)\n" }.joined()
        }
        return out
    }
}

/// `value` with `digits` decimals (2 by default; fewer for large values).
func format(_ value: Double, digits: Int = 2) -> String {
    guard value.isFinite else { return "-" }
    let places = value >= 1000 ? 0 : value >= 100 ? min(digits, 1) : digits
    var scale = 1.0
    for _ in 0..<places { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    var text = String(rounded)
    if places == 0 {
        text = String(Int(rounded))
    } else if let dot = text.firstIndex(of: ".") {
        let decimals = text.distance(from: dot, to: text.endIndex) - 1
        if decimals < places { text += String(repeating: "0", count: places - decimals) }
    }
    return text
}

/// An integer with thousands separators: 12,345.
func grouped(_ value: Double) -> String {
    let digits = String(Int(value.rounded()))
    var out = ""
    for (index, character) in digits.reversed().enumerated() {
        if index > 0, index % 3 == 0 { out.append(",") }
        out.append(character)
    }
    return String(out.reversed())
}
