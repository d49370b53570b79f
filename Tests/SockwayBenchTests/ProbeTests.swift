import Foundation
import NIOCore
@testable import SockwayBench
import SockwayClient
import SockwayTestSupport
import Testing

/// A transport that echoed every message in `rtt` ms.
private func worked(_ transport: SockwayClientTransport, rtt: Double = 1, messages: Int = 30) -> ProbeMeasurement {
    ProbeMeasurement(transport: transport, openMs: 2, firstMessageMs: 2 + rtt, roundTripsMs: Array(repeating: rtt, count: messages), messages: messages, failure: nil)
}

private func failed(_ transport: SockwayClientTransport, _ failure: ProbeFailure, opened: Bool = false, echoes: Int = 0) -> ProbeMeasurement {
    ProbeMeasurement(
        transport: transport, openMs: opened ? 2 : nil, firstMessageMs: echoes > 0 ? 3 : nil,
        roundTripsMs: Array(repeating: 1, count: echoes), messages: 30, failure: failure
    )
}

private func row(_ results: [ProbeResult], _ transport: SockwayClientTransport) -> ProbeResult {
    results.first { $0.transport == transport }!
}

@Suite struct ProbeTests {
    @Test func everythingWorksRecommendsWebSocket() {
        let results = ProbeReport.results(SockwayClientTransport.sockJS.map { worked($0) }, timeoutSeconds: 5)
        #expect(results.allSatisfy { $0.works })
        #expect(row(results, .webSocket).streams == .yes)
        #expect(row(results, .rawWebSocket).streams == .yes)
        #expect(row(results, .xhrStreaming).streams == .yes)
        #expect(row(results, .eventSource).streams == .yes)
        #expect(row(results, .xhrPolling).streams == .notApplicable)
        #expect(row(results, .jsonpPolling).streams == .notApplicable)
        #expect(ProbeReport.recommendation(results) == .webSocket)
    }

    // A proxy that does not forward Upgrade: the handshake gets an HTTP error; xhr-streaming is next.
    @Test func strippedUpgradeRecommendsXHRStreaming() {
        let measurements = [
            failed(.rawWebSocket, .error("HTTP 400")), failed(.webSocket, .error("HTTP 400")),
            worked(.xhrStreaming), worked(.eventSource), worked(.xhrPolling), worked(.jsonpPolling),
        ]
        let results = ProbeReport.results(measurements, timeoutSeconds: 5)
        #expect(!row(results, .webSocket).works)
        #expect(row(results, .webSocket).streams == .unknown)
        #expect(row(results, .webSocket).note?.contains("Upgrade") == true)
        #expect(ProbeReport.recommendation(results) == .xhrStreaming)
    }

    // A buffering proxy: the open frame (or the first echo) of a streaming response never comes.
    @Test func bufferedStreamingFallsToPolling() {
        let measurements = [
            failed(.rawWebSocket, .error("HTTP 400")), failed(.webSocket, .error("HTTP 400")),
            failed(.xhrStreaming, .openTimedOut), failed(.eventSource, .echoTimedOut, opened: true),
            worked(.xhrPolling, rtt: 3), worked(.jsonpPolling, rtt: 3),
        ]
        let results = ProbeReport.results(measurements, timeoutSeconds: 5)
        #expect(row(results, .xhrStreaming).streams == .buffered)
        #expect(!row(results, .xhrStreaming).works)
        #expect(row(results, .xhrStreaming).note?.contains("buffers") == true)
        #expect(row(results, .eventSource).streams == .buffered)
        #expect(!row(results, .eventSource).works)
        #expect(ProbeReport.recommendation(results) == .xhrPolling)
    }

    // With nothing answering, a timed-out streaming open is not evidence of buffering.
    @Test func timeoutWithNothingOpenIsNotBuffered() {
        let measurements = SockwayClientTransport.sockJS.map { transport in
            transport == .xhrStreaming ? failed(transport, .openTimedOut) : failed(transport, .error("connection refused"))
        }
        let results = ProbeReport.results(measurements, timeoutSeconds: 5)
        #expect(row(results, .xhrStreaming).streams == .unknown)
        #expect(results.allSatisfy { !$0.works })
        #expect(ProbeReport.recommendation(results) == nil)
        let report = ProbeReport(url: "http://127.0.0.1:1/echo", protocol: "sockjs", messages: 30, timeoutSeconds: 5, results: results, recommended: nil)
        #expect(!report.anyWorked)
        #expect(report.table().hasSuffix("recommended: none (no transport works)"))
    }

    // Echoes that come, but far later than polling's: a proxy that flushes now and then.
    @Test func slowStreamingIsDelayedAndSkipped() {
        let measurements = [
            failed(.webSocket, .error("HTTP 400")),
            worked(.xhrStreaming, rtt: 900), worked(.eventSource, rtt: 5), worked(.xhrPolling, rtt: 4),
        ]
        let results = ProbeReport.results(measurements, timeoutSeconds: 5)
        #expect(row(results, .xhrStreaming).works)
        #expect(row(results, .xhrStreaming).streams == .delayed)
        #expect(row(results, .eventSource).streams == .yes)
        #expect(ProbeReport.recommendation(results) == .eventSource)
        // Only delayed streaming works: still the best there is.
        let only = ProbeReport.results([failed(.webSocket, .error("HTTP 400")), worked(.xhrStreaming, rtt: 900), worked(.xhrPolling, rtt: 4)], timeoutSeconds: 5)
        #expect(ProbeReport.recommendation(only.filter { $0.transport != .xhrPolling }) == .xhrStreaming)
    }

    @Test func partialEchoesDoNotWork() {
        let results = ProbeReport.results([failed(.xhrPolling, .closed(code: 1006, reason: "Connection lost"), opened: true, echoes: 12)], timeoutSeconds: 5)
        #expect(!results[0].works)
        #expect(results[0].echoes == 12)
        #expect(results[0].note == "closed 1006 \"Connection lost\" after 12 echoes")
        #expect(ProbeReport.recommendation(results) == nil)
    }

    @Test func rawWebSocketIsNeverRecommended() {
        let results = ProbeReport.results([worked(.rawWebSocket), failed(.webSocket, .error("HTTP 404"))], timeoutSeconds: 5)
        #expect(ProbeReport.recommendation(results) == nil)
        #expect(ProbeReport(url: "u", protocol: "sockjs", messages: 30, timeoutSeconds: 5, results: results, recommended: nil).anyWorked)
    }

    @Test func engineIOPrefersWebSocket() {
        var options = ProbeOptions(url: "http://127.0.0.1:8080/engine.io/")
        #expect(options.probesEngineIO)
        #expect(options.transports == [.engineIOWebSocket, .engineIOPolling])
        let report = ProbeReport(options: options, measurements: [worked(.engineIOWebSocket), worked(.engineIOPolling)])
        #expect(report.protocol == "engine.io")
        #expect(report.recommended == .engineIOWebSocket)
        options = ProbeOptions(url: "http://127.0.0.1:8080/echo")
        #expect(!options.probesEngineIO)
        #expect(options.transports == SockwayClientTransport.sockJS)
        options.engineIO = true
        #expect(options.probesEngineIO)
    }

    @Test func percentiles() {
        let values = (1...30).map(Double.init).shuffled()
        #expect(ProbeReport.percentile(50, of: values) == 15)
        #expect(ProbeReport.percentile(99, of: values) == 30)
        #expect(ProbeReport.percentile(99, of: [7]) == 7)
    }

    // The JSON scripts read: every key in every row, `null` where unknown.
    @Test func jsonShape() throws {
        var options = ProbeOptions(url: "http://127.0.0.1:8080/echo")
        options.timeout = .seconds(3)
        let report = ProbeReport(options: options, measurements: [worked(.webSocket, rtt: 0.1234567), failed(.xhrStreaming, .openTimedOut)])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["version", "url", "protocol", "messages", "timeoutSeconds", "results", "recommended", "anyWorked"])
        #expect(object["recommended"] as? String == "websocket")
        #expect(object["anyWorked"] as? Bool == true)
        #expect(object["timeoutSeconds"] as? Double == 3)
        let rows = try #require(object["results"] as? [[String: Any]])
        let keys: Set<String> = ["transport", "works", "openMs", "firstMessageMs", "rttP50Ms", "rttP99Ms", "echoes", "streams", "note"]
        #expect(rows.allSatisfy { Set($0.keys) == keys })
        #expect(rows[0]["rttP50Ms"] as? Double == 0.123)
        #expect(rows[0]["note"] is NSNull)
        #expect(rows[1]["streams"] as? String == "buffered")
        #expect(rows[1]["openMs"] is NSNull)
        #expect(rows[1]["works"] as? Bool == false)
        let none = ProbeReport(options: options, measurements: [failed(.webSocket, .error("connection refused"))])
        let empty = try #require(try JSONSerialization.jsonObject(with: Data(none.json().utf8)) as? [String: Any])
        #expect(empty["recommended"] is NSNull)
        #expect(empty["anyWorked"] as? Bool == false)
        let decoded = try JSONDecoder().decode(ProbeReport.self, from: Data(report.json().utf8))
        #expect(decoded.recommended == .webSocket)
        #expect(decoded.results.map { $0.streams } == [.yes, .buffered])
    }

    @Test func tableIsAligned() throws {
        let report = ProbeReport(
            options: ProbeOptions(url: "http://127.0.0.1:8080/echo"),
            measurements: [worked(.webSocket, rtt: 0.5), failed(.xhrStreaming, .openTimedOut), worked(.xhrPolling, rtt: 12.25)]
        )
        let lines = report.table().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = try #require(lines.first { $0.hasPrefix("transport") })
        let rows = lines.filter { $0.hasPrefix("websocket") || $0.hasPrefix("xhr-") }
        #expect(rows.count == 3)
        // The streams column starts at the same offset on every line.
        let column = header.range(of: "streams")!.lowerBound.utf16Offset(in: header)
        for line in rows {
            let cell = line.dropFirst(column).prefix { $0 != " " }
            #expect(["yes", "buffered", "n/a"].contains(String(cell)))
        }
        #expect(lines.last == "recommended: websocket")
    }

    // Against nothing: every transport fails fast, none works.
    @Test func nothingListening() async throws {
        let refusing = try RefusingPort()
        var options = ProbeOptions(url: "http://127.0.0.1:\(refusing.port)/echo")
        options.timeout = .seconds(2)
        options.messages = 3
        let report = await ProbeRunner(options: options).run()
        #expect(report.results.count == SockwayClientTransport.sockJS.count)
        #expect(!report.anyWorked)
        #expect(report.recommended == nil)
        withExtendedLifetime(refusing) {}
    }
}
