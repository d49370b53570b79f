import Foundation

/// A bar chart drawn as SVG: categories along the x axis, one bar per series in each.
struct BarChart {
    var title: String
    var unit: String
    var categories: [String]
    var series: [(name: String, values: [Double])]
    /// Log-scaled y axis (latencies span orders of magnitude across transports).
    var logScale = false

    static let palette = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1"]

    func svg(width: Double = 760, height: Double = 320) -> String {
        let left = 64.0, right = 16.0, top = 40.0, bottom = 64.0
        let plotWidth = width - left - right
        let plotHeight = height - top - bottom
        let values = series.flatMap(\.values).filter { $0.isFinite && $0 > 0 }
        let maxValue = max(values.max() ?? 1, logScale ? 1e-3 : 1e-9)
        let minValue = logScale ? max(min(values.min() ?? 1, maxValue), 1e-3) : 0
        let ticks = logScale ? logTicks(min: minValue, max: maxValue) : linearTicks(max: maxValue)
        let axisMin = logScale ? ticks.first! : 0
        let axisMax = ticks.last!
        func y(_ value: Double) -> Double {
            if logScale {
                let clamped = Swift.max(value, axisMin)
                return top + plotHeight * (1 - (log10(clamped) - log10(axisMin)) / (log10(axisMax) - log10(axisMin)))
            }
            return top + plotHeight * (1 - value / axisMax)
        }
        var svg = #"<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="\#(Int(width))" height="\#(Int(height))" viewBox="0 0 \#(Int(width)) \#(Int(height))">"#
        svg += "<title>\(escape(title))</title>"
        svg += #"<text x="\#(left)" y="20" class="chart-title">\#(escape(title)) (\#(escape(unit))\#(logScale ? ", log scale" : ""))</text>"#
        for tick in ticks {
            let ty = y(tick)
            svg += #"<line x1="\#(left)" x2="\#(left + plotWidth)" y1="\#(r(ty))" y2="\#(r(ty))" class="grid"/>"#
            svg += #"<text x="\#(left - 6)" y="\#(r(ty + 4))" class="tick" text-anchor="end">\#(tickLabel(tick))</text>"#
        }
        let groupWidth = plotWidth / Double(max(categories.count, 1))
        let barWidth = groupWidth * 0.8 / Double(max(series.count, 1))
        for (categoryIndex, category) in categories.enumerated() {
            let groupX = left + groupWidth * Double(categoryIndex) + groupWidth * 0.1
            for (seriesIndex, entry) in series.enumerated() {
                guard categoryIndex < entry.values.count else { continue }
                let value = entry.values[categoryIndex]
                guard value.isFinite, value > 0 else { continue }
                let barTop = y(value)
                let x = groupX + barWidth * Double(seriesIndex)
                svg += #"<rect class="bar" x="\#(r(x))" y="\#(r(barTop))" width="\#(r(barWidth * 0.92))" height="\#(r(max(top + plotHeight - barTop, 0.5)))" fill="\#(Self.palette[seriesIndex % Self.palette.count])"><title>\#(escape(category)) \#(escape(entry.name)): \#(tickLabel(value)) \#(escape(unit))</title></rect>"#
            }
            svg += #"<text x="\#(r(groupX + groupWidth * 0.4))" y="\#(r(top + plotHeight + 18))" class="label" text-anchor="middle">\#(escape(category))</text>"#
        }
        svg += #"<line x1="\#(left)" x2="\#(left)" y1="\#(top)" y2="\#(top + plotHeight)" class="axis"/>"#
        svg += #"<line x1="\#(left)" x2="\#(left + plotWidth)" y1="\#(top + plotHeight)" y2="\#(top + plotHeight)" class="axis"/>"#
        if series.count > 1 {
            var legendX = left
            for (index, entry) in series.enumerated() {
                svg += #"<rect x="\#(r(legendX))" y="\#(r(height - 22))" width="12" height="12" fill="\#(Self.palette[index % Self.palette.count])"/>"#
                svg += #"<text x="\#(r(legendX + 16))" y="\#(r(height - 12))" class="legend">\#(escape(entry.name))</text>"#
                legendX += 24 + Double(entry.name.count) * 7.5
            }
        }
        return svg + "</svg>"
    }

    private func linearTicks(max: Double) -> [Double] {
        let rough = max / 5
        let magnitude = pow(10, floor(log10(rough)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? rough
        return (0...Int((max / step).rounded(.up))).map { Double($0) * step }
    }

    private func logTicks(min: Double, max: Double) -> [Double] {
        let low = floor(log10(min)), high = Swift.max(ceil(log10(max)), low + 1)
        return stride(from: low, through: high, by: 1).map { pow(10, $0) }
    }

    private func tickLabel(_ value: Double) -> String {
        if value >= 1000 { return grouped(value) }
        if value >= 1 { return format(value, digits: value >= 10 ? 0 : 1) }
        return format(value, digits: 3)
    }

    private func r(_ value: Double) -> String { format(value, digits: 1) }
}

func escape(_ text: String) -> String {
    var out = ""
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        default: out.append(character)
        }
    }
    return out
}

extension BenchReport {
    /// The charts of the report, each an SVG element.
    func charts() -> [String] {
        var charts: [BarChart] = []
        for scenario in [BenchScenario.echo, .push] {
            let rows = results(for: scenario)
            guard !rows.isEmpty else { continue }
            let names = rows.map(\.transport.rawValue)
            charts.append(BarChart(
                title: "\(scenario.rawValue): latency percentiles",
                unit: "ms",
                categories: names,
                series: [
                    ("p50", rows.map(\.latency.p50)), ("p90", rows.map(\.latency.p90)), ("p99", rows.map(\.latency.p99)),
                    ("p99.9", rows.map(\.latency.p999)), ("max", rows.map(\.latency.max)),
                ],
                logScale: true
            ))
            charts.append(BarChart(
                title: "\(scenario.rawValue): bytes on the wire per message",
                unit: "bytes",
                categories: names,
                series: [("client → server", rows.map(\.bytesSentPerMessage)), ("server → client", rows.map(\.bytesReceivedPerMessage))],
                logScale: true
            ))
            charts.append(BarChart(
                title: "\(scenario.rawValue): HTTP requests per message",
                unit: "requests",
                categories: names,
                series: [("requests", rows.map(\.requestsPerMessage))]
            ))
            if rows.contains(where: { $0.serverCPUPer1000 != nil }) {
                charts.append(BarChart(
                    title: "\(scenario.rawValue): server CPU per 1,000 messages",
                    unit: "ms",
                    categories: names,
                    series: [("server CPU", rows.map { $0.serverCPUPer1000 ?? 0 })]
                ))
            }
        }
        let throughput = results(for: .throughput)
        if !throughput.isEmpty {
            charts.append(BarChart(
                title: "throughput: highest sustained echo rate",
                unit: "msgs/s",
                categories: throughput.map(\.transport.rawValue),
                series: [("msgs/s", throughput.map(\.offeredRate))],
                logScale: true
            ))
        }
        return charts.map { $0.svg() }
    }

    /// A self-contained HTML page: the charts as inline SVG, the tables, the raw JSON.
    public func html() throws -> String {
        var page = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>sockway bench: \(escape(server))</title>
        <style>
        body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
        table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 12px; }
        th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; }
        th:first-child, td:first-child { text-align: left; }
        .chart { display: block; margin: 1em 0; } .chart-title { font-weight: 600; font-size: 14px; }
        .grid { stroke: #e5e5e5; } .axis { stroke: #333; } .tick, .label, .legend { font-size: 11px; fill: #333; }
        pre { background: #f6f6f6; padding: 1em; overflow: auto; font-size: 11px; }
        </style></head><body>
        <h1>sockway bench</h1>
        <p>\(escape(server)) at <code>\(escape(target))</code>, \(date). \(clients) clients, \(messageBytes)-byte messages,
        \(format(duration)) s per run, \(escape(machine))\(requestHeaders.map { "; request headers: " + escape($0) } ?? "").</p>

        """
        page += "<h2>Charts</h2>\n"
        for chart in charts() { page += chart + "\n" }
        page += "<h2>Tables</h2>\n"
        for scenario in BenchScenario.allCases {
            let rows = results(for: scenario)
            guard !rows.isEmpty else { continue }
            page += "<h3>\(scenario.rawValue)</h3>\n<table><tr><th>transport</th><th>\(scenario == .throughput ? "max msgs/s" : "msgs/s")</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th><th>bytes out/msg</th><th>bytes in/msg</th><th>req/msg</th><th>server CPU ms/1k</th><th>server RSS MiB</th><th>client CPU %</th><th>lost</th><th>errors</th></tr>\n"
            for row in rows {
                let rate = scenario == .throughput ? row.offeredRate : row.messagesPerSecond
                let cells = [
                    grouped(rate), format(row.latency.p50), format(row.latency.p90), format(row.latency.p99),
                    format(row.latency.p999), format(row.latency.max), format(row.bytesSentPerMessage, digits: 1),
                    format(row.bytesReceivedPerMessage, digits: 1), format(row.requestsPerMessage, digits: 3),
                    row.serverCPUPer1000.map { format($0) } ?? "-", row.serverRSSMiB.map { format($0, digits: 1) } ?? "-",
                    format(row.clientCPUPercent, digits: 0), String(row.lost), String(row.errors),
                ]
                page += "<tr><td>\(escape(row.transport.rawValue))</td>" + cells.map { "<td>\($0)</td>" }.joined() + "</tr>\n"
            }
            page += "</table>\n"
        }
        if let skipped, !skipped.isEmpty {
            page += "<h3>not measured</h3>\n<ul>\n" + skipped.map { "<li>\(escape($0))</li>\n" }.joined() + "</ul>\n"
        }
        page += "<h2>Data</h2>\n<pre>\(escape(try json()))</pre>\n</body></html>\n"
        return page
    }
}
