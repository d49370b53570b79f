import Foundation
import NIOPosix
@testable import SockwayBench
import SockwayClient
import Testing

/// The `sockway` executable SwiftPM built beside this test binary (`swift test` builds every product).
private let sockwayExecutable: String? = {
    guard let testBinary = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
    let candidate = URL(fileURLWithPath: testBinary).deletingLastPathComponent().appendingPathComponent("sockway").path
    return FileManager.default.isExecutableFile(atPath: candidate) ? candidate : nil
}()

/// A short bench run: few clients, short windows, low throughput steps.
private func shortOptions(_ transports: [BenchTransport], _ scenarios: [BenchScenario]) -> BenchOptions {
    var options = BenchOptions()
    options.serverExecutable = sockwayExecutable
    options.transports = transports
    options.scenarios = scenarios
    options.clients = 3
    options.rate = 40
    options.duration = 0.5
    options.warmup = 0.2
    options.throughputStartRate = 50
    options.throughputBisections = 0
    options.stepDuration = 0.2
    options.latencyLimit = 1000
    return options
}

/// `sockway bench` with its Engine.IO rows, against a Sockway server the bench starts on loopback
/// (the bench's default mode; the server is the `sockway` executable of this build).
@Suite(.serialized) struct EngineIOBenchTests {
    // Both rows measure echo and throughput like the SockJS rows: every message of the window back,
    // latency, bytes and requests per message counted at the client's sockets. Push is listed as not
    // measured (Engine.IO has no broadcast endpoint).
    @Test func engineIORowsMeasureEchoAndThroughput() async throws {
        let executable = try #require(sockwayExecutable, "the sockway executable is built with the tests")
        _ = executable
        let report = try await BenchRunner(options: shortOptions([.engineIOPolling, .engineIOWebSocket, .xhrPolling], [.echo, .push, .throughput])).run()
        for transport in [BenchTransport.engineIOPolling, .engineIOWebSocket] {
            let echo = try #require(report.results.first { $0.transport == transport && $0.scenario == .echo })
            #expect(echo.messages > 0)
            #expect(echo.lost == 0)
            #expect(echo.errors == 0)
            #expect(echo.latency.count == echo.messages)
            // A 64-byte message is at least 65 bytes (`4` and the text) each way.
            #expect(echo.bytesSentPerMessage >= 65)
            #expect(echo.bytesReceivedPerMessage >= 65)
            #expect(echo.serverCPUPer1000 != nil)
            let throughput = try #require(report.results.first { $0.transport == transport && $0.scenario == .throughput })
            #expect(throughput.offeredRate > 0)
            #expect(!report.results.contains { $0.transport == transport && $0.scenario == .push })
            #expect(report.skipped?.contains("push · \(transport.rawValue): no Engine.IO broadcast endpoint to push through") == true)
        }
        let polling = try #require(report.results.first { $0.transport == .engineIOPolling && $0.scenario == .echo })
        let webSocket = try #require(report.results.first { $0.transport == .engineIOWebSocket && $0.scenario == .echo })
        // Polling: a GET to receive and a POST to send per message at this low rate (batching only
        // merges what queues while a request is out); a WebSocket makes no request after its handshake.
        #expect(polling.requestsPerMessage > 0.5 && polling.requestsPerMessage <= 2.2)
        #expect(webSocket.requestsPerMessage == 0)
        // One WebSocket frame each way: a 6-byte masked header (client) or 2-byte header (server) + `4` + 64
        // bytes. Bytes are counted over the window and divided by the messages whose echo came back in
        // it, so a message sent at one edge of the window and echoed at the other counts on one side only:
        // with 0.5 s × 3 clients × 40/s ≈ 60 messages, up to a few percent.
        #expect(webSocket.bytesSentPerMessage >= 71 * 0.95 && webSocket.bytesSentPerMessage < 71 * 1.05)
        #expect(webSocket.bytesReceivedPerMessage >= 67 * 0.95 && webSocket.bytesReceivedPerMessage < 67 * 1.05)
        #expect(report.results.contains { $0.transport == .xhrPolling && $0.scenario == .push })
        let table = report.table()
        #expect(table.contains("| engineio-polling |") && table.contains("| engineio-websocket |"))
    }

    // A server without Engine.IO at the path (here: a path that serves nothing) leaves the Engine.IO
    // rows out, saying why, and the SockJS rows are still measured.
    @Test func serverWithoutEngineIOSkipsTheRows() async throws {
        _ = try #require(sockwayExecutable, "the sockway executable is built with the tests")
        var options = shortOptions([.engineIOPolling, .webSocket, .engineIOWebSocket], [.echo])
        options.engineIOPath = "/no-engine-io-here"
        let report = try await BenchRunner(options: options).run()
        #expect(report.results.map(\.transport) == [.webSocket])
        let skipped = report.skipped ?? []
        #expect(skipped.count == 2)
        #expect(skipped.allSatisfy { $0.contains("no Engine.IO session at http://127.0.0.1:") && $0.contains("/no-engine-io-here/") })
        #expect(report.table().contains("not measured"))
    }
}
