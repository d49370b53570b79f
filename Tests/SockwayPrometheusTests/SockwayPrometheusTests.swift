import Logging
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import SockwayClient
import SockwayPrometheus
import SockwayServer
import Testing

/// A server with metrics on a registry of its own, and its exporter, on free loopback ports.
private struct MeteredServer {
    let server: SockwayServer
    let registry: PrometheusCollectorRegistry
    let port: Int
    let metricsPort: Int

    /// Publishes, then reads the registry's text.
    func scrape() async -> String {
        await server.publishMetrics()
        return registry.emitToString()
    }
}

private func withMeteredServer(
    endpoints: [SockwayEndpoint] = SockwayDemoEndpoints.all(options: .init(), engineIO: .init()),
    _ body: @Sendable (MeteredServer) async throws -> Void
) async throws {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    let registry = PrometheusCollectorRegistry()
    let factory = SockwayPrometheusExporter.makeFactory(registry: registry)
    var configuration = SockwayConfiguration(host: "127.0.0.1", port: 0, eventLoopThreads: 2)
    // Published on demand only (a long interval), so that the test sees exactly what it asked for;
    // the loops are probed often, so that the lag histogram fills during a test.
    configuration.metrics = SockwayMetricsOptions(factory: factory, publishInterval: .seconds(3600), eventLoopLagProbeInterval: .milliseconds(20))
    let server = SockwayServer(configuration: configuration, logger: logger, endpoints: endpoints)
    let exporter = SockwayPrometheusExporter(port: 0, registry: registry, logger: logger) { await server.publishMetrics() }
    let group = ServiceGroup(configuration: .init(services: [server, exporter], logger: logger))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        let port = try #require(await server.localAddress?.port)
        let metricsPort = try #require(await exporter.localAddress?.port)
        let result: Result<Void, any Error>
        do {
            try await body(MeteredServer(server: server, registry: registry, port: port, metricsPort: metricsPort))
            result = .success(())
        } catch {
            result = .failure(error)
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        try result.get()
    }
}

/// The value of one series (`name{labels}` exactly as the registry writes it), if present.
private func value(_ series: String, in text: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}

/// One HTTP/1.1 request on a new connection (closed after the response); the raw response.
private func rawHTTP(_ request: String, port: Int) async throws -> String {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    return try await channel.executeThenClose { inbound, outbound in
        try await outbound.write(ByteBuffer(string: request))
        var response = ""
        for try await chunk in inbound { response += String(buffer: chunk) }
        return response
    }
}

private func echo(_ messages: [String], over session: SockwayClientSession) async -> [String] {
    for message in messages { session.send(message) }
    var received: [String] = []
    var iterator = session.messages.makeAsyncIterator()
    while received.count < messages.count, let next = await iterator.next() { received.append(next) }
    return received
}

@Suite struct SockwayPrometheusTests {
    // Every SockJS transport's messages, bytes and sessions are counted under its own label, once:
    // a second publish adds nothing.
    @Test func countsEveryTransport() async throws {
        try await withMeteredServer { metered in
            let message = String(repeating: "sockway ", count: 125)  // 1,000 bytes
            let messages = Array(repeating: message, count: 10)
            for transport in SockwayClientTransport.sockJS {
                let session = try await SockwayClient.connect(
                    to: "http://127.0.0.1:\(metered.port)/echo",
                    configuration: .init(transports: [transport], webSocketCompression: transport == .webSocket)
                )
                #expect(await echo(messages, over: session) == messages)
                let text = await metered.scrape()
                let labels = #"{endpoint="/echo",transport="\#(transport.rawValue)"}"#
                #expect(value("sockway_messages_received_total" + labels, in: text) == 10, "\(transport)")
                #expect(value("sockway_messages_sent_total" + labels, in: text) == 10, "\(transport)")
                #expect(value("sockway_message_bytes_received_total" + labels, in: text) == 10_000, "\(transport)")
                #expect(value("sockway_message_bytes_sent_total" + labels, in: text) == 10_000, "\(transport)")
                #expect(value("sockway_sessions_opened_total" + labels, in: text) == 1, "\(transport)")
                #expect(value("sockway_sessions_open" + labels, in: text) == 1, "\(transport)")
                session.close()
            }
            let first = await metered.scrape()
            let again = await metered.scrape()
            let series = #"sockway_messages_received_total{endpoint="/echo",transport="xhr-streaming"}"#
            #expect(value(series, in: first) == 10)
            #expect(value(series, in: again) == 10)
            // Compression: 1,000 repetitive bytes deflate to a few dozen, both ways.
            #expect((value(#"sockway_websocket_compression_ratio{direction="sent"}"#, in: again) ?? 0) > 5)
            #expect((value(#"sockway_websocket_compression_ratio{direction="received"}"#, in: again) ?? 0) > 5)
            // The messages in their SockJS frames (`a["…"]`, one or more per frame).
            #expect((10_000..<10_200).contains(value(#"sockway_websocket_deflate_bytes_total{direction="sent",stage="plain"}"#, in: again) ?? 0))
            #expect((value(#"sockway_http_responses_total{status="200"}"#, in: again) ?? 0) >= 5)
            #expect((value(#"sockway_http_responses_total{status="101"}"#, in: again) ?? 0) >= 2)
            #expect((value(#"sockway_event_loop_lag_seconds_count{loop="0"}"#, in: again) ?? 0) >= 1)
        }
    }

    // A WebSocket session that ends shows in the open gauge, the close-code counter and the
    // lifetime histogram. (A client that closes the WebSocket ends its SockJS session as interrupted,
    // 1002, as sockjs-node does: no SockJS close frame was exchanged.)
    @Test func closedSessionsAreCounted() async throws {
        try await withMeteredServer { metered in
            let session = try await SockwayClient.connect(
                to: "http://127.0.0.1:\(metered.port)/echo",
                configuration: .init(transports: [.webSocket])
            )
            #expect(await echo(["a"], over: session) == ["a"])
            session.close()
            var text = ""
            for _ in 0..<100 {
                text = await metered.scrape()
                if value(#"sockway_sessions_open{endpoint="/echo",transport="websocket"}"#, in: text) == 0 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(value(#"sockway_sessions_open{endpoint="/echo",transport="websocket"}"#, in: text) == 0)
            #expect(value(#"sockway_sessions_closed_total{endpoint="/echo",code="1002"}"#, in: text) == 1)
            #expect(value(#"sockway_session_duration_seconds_count{endpoint="/echo"}"#, in: text) == 1)
        }
    }

    // An async application's sends hop to the session's loop: the wait from send to write is timed
    // (once per hop; sends made while one is pending share it).
    // A send body larger than the application's inbound bound overflows it: counted, closed 1013.
    @Test func waitsAndOverflows() async throws {
        let endpoints: [SockwayEndpoint] = [
            .async("/async-echo") { session in
                for await message in session.messages { session.send(message) }
            },
            .async("/sink", options: .init(maxInboundQueuedMessages: 2)) { session in
                try? await Task.sleep(for: .seconds(3600))
            },
        ]
        try await withMeteredServer(endpoints: endpoints) { metered in
            let session = try await SockwayClient.connect(
                to: "http://127.0.0.1:\(metered.port)/async-echo",
                configuration: .init(transports: [.rawWebSocket])
            )
            #expect(await echo(["1", "2", "3"], over: session) == ["1", "2", "3"])
            session.close()
            let opened = try await rawHTTP("POST /sink/000/s1/xhr HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", port: metered.port)
            #expect(opened.contains("\r\no\n"))
            let body = #"["1","2","3","4","5"]"#
            _ = try await rawHTTP("POST /sink/000/s1/xhr_send HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)", port: metered.port)
            let text = await metered.scrape()
            #expect((value("sockway_send_to_write_seconds_count", in: text) ?? 0) >= 1)
            #expect(value(#"sockway_queue_overflows_total{queue="inbound"}"#, in: text) == 1)
            #expect(value(#"sockway_sessions_closed_total{endpoint="/sink",code="1013"}"#, in: text) == 1)
        }
    }

    // The exporter answers /metrics in the text format, after a publish; anything else is refused.
    // A malformed request to the gateway is counted as a refusal.
    @Test func exporterServesMetrics() async throws {
        try await withMeteredServer { metered in
            _ = try await rawHTTP("NONSENSE\r\n\r\n", port: metered.port)
            let response = try await rawHTTP("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", port: metered.metricsPort)
            #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(response.lowercased().contains("content-type: text/plain; version=0.0.4; charset=utf-8"))
            #expect(response.contains(#"sockway_refusals_total{reason="malformed_request"} 1"#))
            #expect(response.contains("# TYPE sockway_event_loop_lag_seconds histogram"))
            let missing = try await rawHTTP("GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", port: metered.metricsPort)
            #expect(missing.hasPrefix("HTTP/1.1 404"))
            let posted = try await rawHTTP("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", port: metered.metricsPort)
            #expect(posted.hasPrefix("HTTP/1.1 405"))
        }
    }
}
