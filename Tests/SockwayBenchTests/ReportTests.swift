import Foundation
import Histogram
import NIOCore
@testable import SockwayBench
import SockwayClient
import Testing

private func result(_ transport: BenchTransport, _ scenario: BenchScenario = .echo, p50: Double = 1) -> TransportResult {
    TransportResult(
        transport: transport, scenario: scenario, clients: 10, offeredRate: 500, messages: 1500, lost: 0, seconds: 3,
        latency: LatencySummary(count: 1500, p50: p50, p90: p50 * 2, p99: p50 * 4, p999: p50 * 8, max: p50 * 10, mean: p50 * 1.2),
        bytesSentPerMessage: 120.5, bytesReceivedPerMessage: 90.25, requestsPerMessage: 1.0, serverCPUPer1000: 12.5,
        serverRSSMiB: 30.2, clientCPUPercent: 40, errors: 0
    )
}

@Suite struct ReportTests {
    // Percentiles come from the histogram (microseconds in, milliseconds out).
    @Test func latencySummaryReadsTheHistogram() {
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        for value in 1...1000 { _ = histogram.record(UInt64(value) * 1000) }  // 1 ms ... 1000 ms
        let summary = LatencySummary(microseconds: histogram)
        #expect(summary.count == 1000)
        #expect(abs(summary.p50 - 500) <= 1)
        #expect(abs(summary.p90 - 900) <= 1)
        #expect(abs(summary.p99 - 990) <= 1)
        #expect(abs(summary.max - 1000) <= 1)
        #expect(LatencySummary(microseconds: Histogram<UInt64>(highestTrackableValue: 1000)).count == 0)
    }

    // Bytes and requests per message: the window's traffic over the messages received in it.
    @Test func trafficPerMessage() {
        let before = SockwayTraffic(bytesSent: 1000, bytesReceived: 2000, requests: 10, connections: 2)
        let after = SockwayTraffic(bytesSent: 21000, bytesReceived: 42000, requests: 210, connections: 2)
        let perMessage = TrafficPerMessage(window: after - before, messages: 200)
        #expect(perMessage.bytesSent == 100)
        #expect(perMessage.bytesReceived == 200)
        #expect(perMessage.requests == 1)
        #expect(TrafficPerMessage(window: after, messages: 0).bytesSent == 0)
    }

    @Test func jsonRoundTrips() throws {
        var report = BenchReport(date: "2026-11-25", target: "http://127.0.0.1:1", server: "test", machine: "x", clients: 10, rate: 50, messageBytes: 64, duration: 3)
        report.results = [result(.webSocket), result(.xhrPolling, p50: 20), result(.webSocket, .throughput)]
        let decoded = try JSONDecoder().decode(BenchReport.self, from: Data(try report.json().utf8))
        #expect(decoded == report)
    }

    @Test func tableHasARowPerTransport() {
        var report = BenchReport(date: "d", target: "t", server: "s", machine: "m", clients: 10, rate: 50, messageBytes: 64, duration: 3)
        report.results = BenchTransport.allCases.map { result($0) }
        let table = report.table()
        for transport in BenchTransport.allCases {
            #expect(table.contains("| \(transport.rawValue) |"))
        }
        #expect(table.contains("| 500 |"))  // 1500 messages in 3 s
        #expect(table.contains("120.5"))
    }

    // The HTML page is self-contained and holds a chart per metric, with a bar per transport.
    @Test func htmlHasTheCharts() throws {
        var report = BenchReport(date: "d", target: "t", server: "s <&>", machine: "m", clients: 10, rate: 50, messageBytes: 64, duration: 3)
        report.results = BenchTransport.allCases.map { result($0) } + [result(.xhrPolling, .push), result(.webSocket, .throughput)]
        let html = try report.html()
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(!html.contains("<script"))
        #expect(!html.contains("s <&>"))
        let charts = html.components(separatedBy: "<svg").count - 1
        #expect(charts == 4 + 4 + 1)  // echo and push: latency, bytes, requests, CPU; throughput
        let bars = html.components(separatedBy: "class=\"bar\"").count - 1
        // Echo latency: 5 percentiles per transport, bytes 2, requests 1, CPU 1; push 5+2+1+1; throughput 1.
        let transports = BenchTransport.allCases.count
        #expect(transports == 9)
        #expect(bars == 5 * transports + 2 * transports + transports + transports + 9 + 1)
    }

    // Rows that were not measured are listed, with why, in the table, the page and the JSON.
    @Test func reportListsWhatWasNotMeasured() throws {
        var report = BenchReport(date: "d", target: "t", server: "s", machine: "m", clients: 1, rate: 1, messageBytes: 64, duration: 1)
        report.results = [result(.webSocket)]
        #expect(!report.table().contains("not measured"))
        report.skipped = ["engineio-polling: no Engine.IO session at t/engine.io/ (unexpectedStatus(404))"]
        #expect(report.table().contains("not measured\n\n- engineio-polling: no Engine.IO session"))
        #expect(try report.html().contains("<li>engineio-polling: no Engine.IO session"))
        let decoded = try JSONDecoder().decode(BenchReport.self, from: Data(try report.json().utf8))
        #expect(decoded == report)
        // Reports written before the field existed still read.
        let old = try report.json().replacingOccurrences(of: #""skipped""#, with: #""unknownKey""#)
        #expect(try JSONDecoder().decode(BenchReport.self, from: Data(old.utf8)).skipped == nil)
    }

    // The Engine.IO rows map to the client's Engine.IO transports.
    @Test func engineIORows() {
        #expect(BenchTransport(rawValue: "engineio-polling")?.clientTransport == .engineIOPolling)
        #expect(BenchTransport(rawValue: "engineio-websocket")?.clientTransport == .engineIOWebSocket)
        #expect(BenchTransport.allCases.filter(\.isEngineIO) == [.engineIOPolling, .engineIOWebSocket])
        #expect(BenchTransport.webSocketDeflate.compression && !BenchTransport.engineIOWebSocket.compression)
    }
}

@Suite struct BenchMessageTests {
    // A message carries its intended send time and is padded to the requested size.
    @Test(arguments: [24, 64, 1000])
    func carriesItsIntendedTime(bytes: Int) {
        let intended = NIODeadline.uptimeNanoseconds(1_234_567_890_123)
        let message = BenchMessage.make(intended: intended, bytes: bytes)
        #expect(message.utf8.count == bytes)
        #expect(message.hasPrefix("1234567890123 x"))
        #expect(BenchMessage.intended(message) == intended)
        #expect(BenchMessage.intended(BenchMessage.endMarker + " ") == nil)
        #expect(BenchMessage.make(intended: .uptimeNanoseconds(0), bytes: 1) == "0 ")
    }

    // Anything that is not digits then a space carries no time (foreign or hostile messages).
    @Test func foreignMessagesCarryNoTime() {
        for message in ["", " 12", "12", "12x 3", "-5 x", "99999999999999999999 x", "é 1", "１２ x"] {
            #expect(BenchMessage.intended(message) == nil, "\(message)")
        }
        #expect(BenchMessage.intended("1234567890123456789 x") == .uptimeNanoseconds(1_234_567_890_123_456_789))
    }

    // Digits are written two at a time and read eight at a time: every length round-trips, and a
    // non-digit at any place of an eight-byte word stops the fast read.
    @Test func everyLengthOfTimeRoundTrips() {
        var value: UInt64 = 0
        for digits in 1...19 {
            value = value * 10 + UInt64(digits % 10)
            for candidate in [value, value - value % 10, UInt64(pow(10.0, Double(digits - 1)))] {
                let message = BenchMessage.make(intended: .uptimeNanoseconds(candidate), bytes: 64)
                #expect(message.hasPrefix("\(candidate) "))
                #expect(BenchMessage.intended(message) == .uptimeNanoseconds(candidate), "\(candidate)")
                var batch = SockwayOutgoingBatch()
                BenchMessage.append(intended: .uptimeNanoseconds(candidate), bytes: 64, to: &batch)
                #expect(batch.count == 1 && batch.byteCount == 64)
            }
        }
        for position in 0..<8 {
            var digits = Array("1234567890123456 x".utf8)
            digits[position] = UInt8(ascii: "a")
            #expect(BenchMessage.intended(String(decoding: digits, as: UTF8.self)) == nil)
            digits[position] = UInt8(ascii: ":")
            #expect(BenchMessage.intended(String(decoding: digits, as: UTF8.self)) == nil)
            digits[position] = UInt8(ascii: "/")
            #expect(BenchMessage.intended(String(decoding: digits, as: UTF8.self)) == nil)
        }
        #expect(BenchMessage.eightDigits(UInt64(littleEndian: 0x3837_3635_3433_3231)) == 12_345_678)
    }

    // The bench runs one event loop per CPU it may use: `taskset` lists count.
    @Test func cpuListsCount() {
        #expect(ProcessStats.countCPUs(list: "\t1") == 1)
        #expect(ProcessStats.countCPUs(list: "0-3,8,10-11") == 7)
        #expect(ProcessStats.countCPUs(list: "0-1") == 2)
        #expect(ProcessStats.countCPUs(list: "3-1") == nil)
        #expect(ProcessStats.countCPUs(list: "x") == nil)
        #expect(ProcessStats.usableCPUs() >= 1)
    }
}

@Suite struct RequestHeaderTests {
    // --browser-headers: a browser's headers with the service's origin, then any --header ones.
    @Test func browserHeadersCarryTheTargetsOrigin() {
        var options = BenchOptions()
        options.target = "http://127.0.0.1:8081/prefix"
        #expect(options.extraHeaders.isEmpty)
        options.requestHeaders = [("X-Test", "1")]
        #expect(options.extraHeaders.map(\.0) == ["X-Test"])
        options.browserHeaders = true
        let headers = options.extraHeaders
        #expect(headers.first { $0.0 == "Origin" }?.1 == "http://127.0.0.1:8081")
        #expect(headers.first { $0.0 == "Referer" }?.1 == "http://127.0.0.1:8081/")
        #expect(headers.contains { $0.0 == "User-Agent" && $0.1.contains("Chrome/") })
        #expect(headers.last?.0 == "X-Test")
        // Nothing that would break a WebSocket handshake or the connection handling.
        #expect(!headers.contains { ["connection", "upgrade", "host", "content-length"].contains($0.0.lowercased()) })
    }

    @Test func reportSaysWhichHeadersWereSent() throws {
        var report = BenchReport(date: "d", target: "t", server: "s", machine: "m", clients: 1, rate: 1, messageBytes: 64, duration: 1)
        #expect(!report.table().contains("request headers"))
        report.requestHeaders = "browser (Chrome 131 on Linux)"
        #expect(report.table().contains("request headers: browser (Chrome 131 on Linux)"))
        #expect(try report.html().contains("request headers: browser (Chrome 131 on Linux)"))
        let decoded = try JSONDecoder().decode(BenchReport.self, from: Data(try report.json().utf8))
        #expect(decoded.requestHeaders == report.requestHeaders)
    }
}

@Suite("Soak accounting")
struct SoakAccountingTests {
    // Every message parses back to its tag and number, intact; a changed byte or length is caught.
    @Test func messagesParseBackAndAlterationsAreCaught() {
        for rich in [false, true] {
            for sequence in [0, 1, 13, 999] {
                let message = SoakMessage.make(tag: "t1", sequence: sequence, length: 40, rich: rich)
                let parsed = SoakMessage.parse(message)
                #expect(parsed?.tag == "t1")
                #expect(parsed?.sequence == sequence)
                #expect(parsed?.intact == true)
                #expect(SoakMessage.parse(message + "x")?.intact == false)
                #expect(SoakMessage.parse(String(message.dropLast()))?.intact == false)
                var altered = Array(message.utf8)
                altered[altered.count - 1] ^= 1
                #expect(SoakMessage.parse(String(decoding: altered, as: UTF8.self))?.intact == false)
            }
        }
        #expect(SoakMessage.parse("not a soak message") == nil)
    }

    // Loss, duplicates and reordering are counted as such.
    @Test func sequenceCheckCountsLossDuplicatesAndReorders() {
        var check = SoakSequenceCheck()
        for sequence in [0, 1, 3, 2, 3, 5] { check.received(sequence: sequence, intact: true) }
        check.received(sequence: 6, intact: false)
        #expect(check.delivered == 5)
        #expect(check.duplicated == 1)
        #expect(check.reordered == 1)
        #expect(check.altered == 1)
        #expect(check.lost(expected: 7) == 2)
        #expect(check.missing(expected: 7) == [4, 6])
    }
}
