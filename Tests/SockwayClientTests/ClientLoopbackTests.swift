import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle
import SockwayClient
import SockwayServer
import SockwaySockJS
import Testing

/// Runs `body` against a real `SockwayServer` with the demo endpoints on a free loopback port.
func withDemoServer(
    options: SockwayEndpointOptions = .init(),
    engineIO: EngineIOOptions = .init(),
    socketIORecovery: SocketIORecovery? = nil,
    _ body: @Sendable (Int) async throws -> Void
) async throws {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    let server = SockwayServer(
        configuration: .init(host: "127.0.0.1", port: 0, eventLoopThreads: 2),
        logger: logger,
        endpoints: SockwayDemoEndpoints.all(options: options, engineIO: engineIO, socketIORecovery: socketIORecovery)
    )
    let group = ServiceGroup(configuration: .init(services: [server], logger: logger))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        let port = try #require(await server.localAddress?.port)
        let result: Result<Void, any Error>
        do {
            try await body(port)
            result = .success(())
        } catch {
            result = .failure(error)
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        try result.get()
    }
}

/// Messages that have broken SockJS implementations: escapes, separators, markup, astral characters.
let hostileMessages: [String] = [
    "", "plain", "\u{0}", "\"quotes\" and \\backslashes\\", "\u{2028}\u{2029}", "</script><!--", "\u{1F600}\u{10FFFF}",
    "\u{7F}\u{80}\u{FFFF}", "%25%20+&=", #"a["not a frame"]"#, String(repeating: "x", count: 70_000),
]

/// Sends `messages` and reads as many back.
func echo(_ messages: [String], over session: SockwayClientSession) async -> [String] {
    for message in messages { session.send(message) }
    var received: [String] = []
    var iterator = session.messages.makeAsyncIterator()
    while received.count < messages.count, let next = await iterator.next() {
        received.append(next)
    }
    return received
}

/// The messages of the event-loop face's events, in order.
func messagesIn(_ events: [SockwayClientEvent]) -> [String] {
    events.flatMap { event -> [String] in
        if case .messages(let messages) = event { return messages }
        return []
    }
}

/// Compares message lists without printing 70 KB messages in full.
func expectSame(_ received: [String], _ expected: [String], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(received.count == expected.count, sourceLocation: sourceLocation)
    for (index, (got, want)) in zip(received, expected).enumerated() where got != want {
        Issue.record(
            "message \(index): got \(got.utf8.count) bytes \(got.prefix(40).debugDescription), expected \(want.utf8.count) bytes \(want.prefix(40).debugDescription)",
            sourceLocation: sourceLocation
        )
    }
}

@Suite struct ClientLoopbackTests {
    // Every transport, forced, carries the hostile set exactly and in order through the echo service,
    // and counts the bytes and requests it used.
    @Test(arguments: SockwayClientTransport.sockJS)
    func everyTransportEchoes(transport: SockwayClientTransport) async throws {
        try await withDemoServer { port in
            let session = try await SockwayClient.connect(
                to: "http://127.0.0.1:\(port)/echo",
                configuration: .init(transports: [transport])
            )
            #expect(session.transport == transport)
            let received = await echo(hostileMessages, over: session)
            expectSame(received, hostileMessages)
            let traffic = session.traffic
            #expect(traffic.bytesSent > 70_000)
            #expect(traffic.bytesReceived > 70_000)
            // A handshake for WebSocket; for HTTP transports at least one receive and one send request.
            #expect(traffic.requests >= (transport.rawValue.contains("websocket") ? 1 : 2))
            session.close()
        }
    }

    // With compression offered, the websocket transport agrees on permessage-deflate and still
    // carries every message; compressed frames make the long message cost far less on the wire.
    @Test func webSocketWithDeflate() async throws {
        try await withDemoServer { port in
            let session = try await SockwayClient.connect(
                to: "http://127.0.0.1:\(port)/echo",
                configuration: .init(transports: [.webSocket], webSocketCompression: true)
            )
            let received = await echo(hostileMessages, over: session)
            expectSame(received, hostileMessages)
            #expect(session.traffic.bytesReceived < 20_000)
            #expect(session.traffic.bytesSent < 20_000)
            session.close()
        }
    }

    // sockjs-client's fallback: /info says no websocket, so the first transport tried is xhr-streaming.
    @Test func fallbackSkipsDisabledWebSocket() async throws {
        try await withDemoServer { port in
            let session = try await SockwayClient.connect(to: "http://127.0.0.1:\(port)/disabled_websocket_echo")
            #expect(session.transport == .xhrStreaming)
            #expect(await echo(["fallback"], over: session) == ["fallback"])
            session.close()
        }
    }

    // A transport the server refuses falls through to the next one.
    @Test func fallbackMovesOnWhenATransportFails() async throws {
        var options = SockwayEndpointOptions()
        options.disabledTransports = ["xhr-streaming", "eventsource"]
        try await withDemoServer(options: options) { port in
            let session = try await SockwayClient.connect(
                to: "http://127.0.0.1:\(port)/echo",
                configuration: .init(transports: [.xhrStreaming, .eventSource, .xhrPolling])
            )
            #expect(session.transport == .xhrPolling)
            #expect(await echo(["third time"], over: session) == ["third time"])
            session.close()
        }
    }

    // The server's close frame ends the session with its code and reason, on every transport.
    @Test(arguments: SockwayClientTransport.sockJS.filter { $0 != .rawWebSocket })
    func serverCloseEndsTheSession(transport: SockwayClientTransport) async throws {
        try await withDemoServer { port in
            do {
                let session = try await SockwayClient.connect(
                    to: "http://127.0.0.1:\(port)/close",
                    configuration: .init(transports: [transport])
                )
                for await _ in session.messages {}
                #expect(session.closeReason == .goAway)
            } catch SockwayClientError.closedBeforeOpen(let reason) {
                // The open and close frames can arrive in one read.
                #expect(reason == .goAway)
            }
        }
    }

    @Test func rawWebSocketCloseCarriesTheReason() async throws {
        try await withDemoServer { port in
            let session = try await SockwayClient.connect(
                to: "http://127.0.0.1:\(port)/close",
                configuration: .init(transports: [.rawWebSocket])
            )
            for await _ in session.messages {}
            #expect(session.closeReason == .goAway)
        }
    }

    // Batches hand over everything that has arrived, in order, and end with the session.
    @Test func batchesKeepOrderAndEnd() async throws {
        try await withDemoServer { port in
            let session = try await SockwayClient.connect(to: "http://127.0.0.1:\(port)/echo", configuration: .init(transports: [.xhrPolling]))
            let sent = (0..<500).map(String.init)
            session.send(contentsOf: sent)
            var received: [String] = []
            while received.count < sent.count, let batch = await session.nextBatch(limit: 64) {
                #expect(batch.count <= 64 && !batch.isEmpty)
                received += batch
            }
            #expect(received == sent)
            session.close()
            #expect(await session.nextBatch() == nil)
        }
    }

    // The event-loop face: messages that queued before the handler was set come first, then every
    // batch in order, on the session's loop; the close comes last, once.
    @Test(arguments: [SockwayClientTransport.webSocket, .xhrStreaming, .xhrPolling])
    func eventLoopFaceKeepsOrderAndEnds(transport: SockwayClientTransport) async throws {
        try await withDemoServer { port in
            let session = try await SockwayClient.connect(to: "http://127.0.0.1:\(port)/echo", configuration: .init(transports: [transport]))
            let early = (0..<50).map { "early \($0)" }
            session.send(contentsOf: early)
            // Wait until they are queued for the async face, then switch faces.
            var first: [String] = []
            while first.isEmpty, let batch = await session.nextBatch(limit: 1) { first = batch }
            try await Task.sleep(for: .milliseconds(100))
            let late = (0..<500).map { "late \($0)" }
            let events = NIOLockedValueBox<[SockwayClientEvent]>([])
            let done = session.eventLoop.makePromise(of: Void.self)
            let loop = session.eventLoop
            session.onEvent { event in
                #expect(loop.inEventLoop)
                events.withLockedValue { $0.append(event) }
                if case .closed = event { done.succeed() }
            }
            session.send(contentsOf: late)
            let deadline = ContinuousClock.now + .seconds(10)
            while events.withLockedValue({ messagesIn($0).count }) < early.count - 1 + late.count,
                ContinuousClock.now < deadline
            {
                try await Task.sleep(for: .milliseconds(10))
            }
            session.close()
            try await done.futureResult.get()
            let all = events.withLockedValue { $0 }
            let messages = messagesIn(all)
            #expect(first + messages == early + late)
            guard case .closed(let reason) = all.last else {
                Issue.record("no close event")
                return
            }
            #expect(reason.code == 1000)
            #expect(all.filter { if case .closed = $0 { true } else { false } }.count == 1)
        }
    }

    // The bytes face: every message comes back as the bytes that were sent, escapes decoded, on every
    // transport; the close comes last.
    @Test(arguments: [SockwayClientTransport.rawWebSocket, .webSocket, .xhrStreaming, .eventSource, .xhrPolling, .jsonpPolling])
    func batchFaceGivesTheBytesThatWereSent(transport: SockwayClientTransport) async throws {
        try await withDemoServer { port in
            let session = try await SockwayClient.connect(to: "http://127.0.0.1:\(port)/echo", configuration: .init(transports: [transport]))
            let sent = (0..<300).map { index -> String in
                switch index % 4 {
                case 0: "plain \(index)"
                case 1: "quote \" backslash \\ tab \t \(index)"
                case 2: "</script> \u{2028} é \u{1F600} \(index)"
                default: String(repeating: "x", count: index)
                }
            }
            let received = NIOLockedValueBox<[String]>([])
            let done = session.eventLoop.makePromise(of: Void.self)
            session.onBatchEvent { event in
                switch event {
                case .messages(let batch):
                    var decoded: [String] = []
                    batch.forEach { decoded.append(String(decoding: $0, as: UTF8.self)) }
                    #expect(decoded.count == batch.count)
                    #expect(decoded == batch.strings)
                    received.withLockedValue { $0 += decoded }
                case .closed:
                    done.succeed()
                }
            }
            session.send(contentsOf: sent)
            let deadline = ContinuousClock.now + .seconds(10)
            while received.withLockedValue({ $0.count }) < sent.count, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            session.close()
            try await done.futureResult.get()
            #expect(received.withLockedValue { $0 } == sent)
        }
    }

    // Send requests stay under the size limit: what waits beyond it goes in the next requests, in order.
    @Test(arguments: [SockwayClientTransport.xhrPolling, .jsonpPolling])
    func sendRequestsAreCut(transport: SockwayClientTransport) async throws {
        try await withDemoServer { port in
            let session = try await SockwayClient.connect(
                to: "http://127.0.0.1:\(port)/echo",
                configuration: .init(transports: [transport], maxSendRequestBytes: 200)
            )
            let sent = (0..<60).map { "message \($0) " + String(repeating: "x", count: 20) }
            session.send(contentsOf: sent)
            var received: [String] = []
            while received.count < sent.count, let batch = await session.nextBatch() { received += batch }
            #expect(received == sent)
            // 60 messages of ~35 bytes quoted: at least ten requests of at most 200 bytes.
            #expect(session.traffic.requests >= 10)
            session.close()
        }
    }

    @Test func nothingListeningFailsEveryTransport() async throws {
        await #expect(throws: (any Error).self) {
            _ = try await SockwayClient.connect(
                to: "http://127.0.0.1:1/echo",
                configuration: .init(transports: [.xhrPolling], connectTimeout: .seconds(2))
            )
        }
    }

    @Test func refusesURLsItCannotUse() async {
        for url in ["ftp://x/echo", "http://", "http://h:0/", "http://h:99999/x", "127.0.0.1:80/echo"] {
            await #expect(throws: SockwayClientError.invalidURL(url)) {
                _ = try await SockwayClient.connect(to: url, configuration: .init(transports: [.xhrPolling]))
            }
        }
    }
}
