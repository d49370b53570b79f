import NIOConcurrencyHelpers
import NIOCore
import SockwayEngineIO
import SockwayServer
import SockwaySockJS
import Testing

@testable import SockwayClient

private func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

private func batch(_ messages: [String]) -> SockwayOutgoingBatch {
    var batch = SockwayOutgoingBatch()
    for message in messages { batch.append(message) }
    return batch
}

private let handshakeJSON = #"{"sid":"abc","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,"maxPayload":1000}"#
private let handshake = EngineIOHandshake(sid: "abc", upgrades: [.websocket], pingInterval: .milliseconds(300), pingTimeout: .milliseconds(200), maxPayload: 1000)

/// An open machine (its handshake read from a polling body).
private func openMachine() -> EngineIOClientMachine {
    var machine = EngineIOClientMachine()
    _ = machine.receivedPollingBody(buffer("0" + handshakeJSON), maxPayload: 1 << 20)
    return machine
}

/// The client's Engine.IO v4 rules, without sockets (engine.io-protocol v4: handshake, heartbeat,
/// message, packet encoding).
@Suite struct EngineIOClientMachineTests {
    // Handshake: the `open` packet's JSON opens the session; the driver learns sid and limits.
    @Test func openPacketOpensTheSession() {
        var machine = EngineIOClientMachine()
        #expect(!machine.isOpen)
        let read1 = machine.receivedPollingBody(buffer("0" + handshakeJSON), maxPayload: 1 << 20)
        #expect(read1 == [.open(handshake)])
        #expect(machine.isOpen)
        #expect(machine.handshake?.sid == "abc")
    }

    // Missing values take the reference server's defaults; unknown upgrades are left out.
    @Test func handshakeDefaults() throws {
        let parsed = try EngineIOClientMachine.parseHandshake(#"{"sid":"x","upgrades":["websocket","carrier-pigeon"]}"#)
        #expect(parsed == EngineIOHandshake(sid: "x", upgrades: [.websocket]))
        #expect(throws: SockwayClientError.self) { try EngineIOClientMachine.parseHandshake(#"{"upgrades":[]}"#) }
        #expect(throws: SockwayClientError.self) { try EngineIOClientMachine.parseHandshake("not json") }
        #expect(throws: SockwayClientError.self) { try EngineIOClientMachine.parseHandshake(#"{"sid":""}"#) }
    }

    // Polling payload: messages in order (consecutive ones in one batch), a ping asks for a pong, noop
    // and pong do nothing.
    @Test func pollingBodyDeliversMessagesAndAsksForPongs() {
        var machine = openMachine()
        let actions = machine.receivedPollingBody(buffer("4a\u{1E}4\u{1E}2\u{1E}4é\u{1E}6\u{1E}3"), maxPayload: 1 << 20)
        #expect(actions == [.deliver(SockJSMessageBatch(["a", ""])), .sendPong, .deliver(SockJSMessageBatch(["é"]))])
    }

    // The common poll, ASCII messages and pings, hands each message over as a slice of the body; it
    // reads exactly as the codec does (the same body with a non-ASCII message goes through the codec).
    @Test func plainPollingBodyReadsAsTheCodecDoes() {
        func messages(_ actions: [EngineIOClientMachine.Action]) -> [String] {
            actions.flatMap { action -> [String] in
                if case .deliver(let batch) = action { return batch.strings }
                return action == .sendPong ? ["<pong>"] : ["<other>"]
            }
        }
        var machine = openMachine()
        let read1 = machine.receivedPollingBody(buffer("4a\u{1E}4\u{1E}2\u{1E}6\u{1E}4b c"), maxPayload: 1 << 20)
        #expect(read1 == [.deliver(SockJSMessageBatch(["a"])), .deliver(SockJSMessageBatch([""])), .sendPong, .deliver(SockJSMessageBatch(["b c"]))])
        for body in ["4a\u{1E}4\u{1E}2\u{1E}4b", "4x", "2", "4 \u{1E}4\u{0}\u{1E}3\u{1E}4z", "4a\u{1E}1", "4a\u{1E}", "4a\u{1E}\u{1E}4b", "4a\u{1E}0{}"] {
            var plain = openMachine()
            var viaCodec = openMachine()
            let fast = plain.receivedPollingBody(buffer(body), maxPayload: 1 << 20)
            // The same packets with a non-ASCII message in front: the codec reads the body.
            let slow = viaCodec.receivedPollingBody(buffer("4é\u{1E}" + body), maxPayload: 1 << 20)
            #expect(["é"] + messages(fast) == messages(slow), "\(body.debugDescription)")
            #expect(plain.isOpen == viaCodec.isOpen, "\(body.debugDescription)")
        }
    }

    // A `close` packet ends the session; nothing after it, in that body or later, counts.
    @Test func closePacketEndsTheSession() {
        var machine = openMachine()
        let read2 = machine.receivedPollingBody(buffer("4a\u{1E}1\u{1E}4b"), maxPayload: 1 << 20)
        #expect(read2 == [.deliver(SockJSMessageBatch(["a"])), .close(EngineIOClientMachine.closedByServer)])
        #expect(!machine.isOpen)
        let read3 = machine.receivedPollingBody(buffer("4c"), maxPayload: 1 << 20)
        #expect(read3 == [])
        let read4 = machine.receivedWebSocketFrame(buffer("4c"), binary: false)
        #expect(read4 == nil)
    }

    // Binary messages (`b<base64>`) are read and dropped: the session's faces carry text.
    @Test func binaryMessagesAreDropped() {
        var machine = openMachine()
        let read5 = machine.receivedPollingBody(buffer("4a\u{1E}bAQID\u{1E}4b"), maxPayload: 1 << 20)
        #expect(read5 == [.deliver(SockJSMessageBatch(["a"])), .deliver(SockJSMessageBatch(["b"]))])
        let read6 = machine.receivedWebSocketFrame(ByteBuffer(bytes: [1, 2, 3]), binary: true)
        #expect(read6 == nil)
    }

    // What breaks the protocol fails the session, once: messages or pings before the handshake, a
    // second handshake, bytes that are no packets, a handshake that is not one.
    @Test(arguments: [
        (false, "4hello"), (false, "2"), (false, "0{}"), (false, "x"), (true, "0" + handshakeJSON), (true, "4a\u{1E}\u{1E}4b"), (true, "9"),
    ])
    func protocolViolationsFail(open: Bool, body: String) {
        var machine = open ? openMachine() : EngineIOClientMachine()
        let actions = machine.receivedPollingBody(buffer(body), maxPayload: 1 << 20)
        guard case .fail = actions.last else {
            Issue.record("\(body.debugDescription): \(actions)")
            return
        }
        #expect(!machine.isOpen)
        let read7 = machine.receivedPollingBody(buffer("4after"), maxPayload: 1 << 20)
        #expect(read7 == [])
    }

    // A body over the limit is refused before anything in it is delivered.
    @Test func pollingBodyOverTheLimitFails() {
        var machine = openMachine()
        let actions = machine.receivedPollingBody(buffer("4" + String(repeating: "x", count: 100)), maxPayload: 50)
        #expect(actions.count == 1)
        if case .fail = actions.first {} else { Issue.record("\(actions)") }
    }

    // WebSocket: a packet per frame. An ASCII message is handed over as a slice of the frame; others
    // go through the codec (which checks UTF-8); pings ask for pongs; `close` ends the session.
    @Test func webSocketFrames() {
        var machine = EngineIOClientMachine()
        let read8 = machine.receivedWebSocketFrame(buffer("0" + handshakeJSON), binary: false)
        #expect(read8 == .open(handshake))
        let read9 = machine.receivedWebSocketFrame(buffer("4plain"), binary: false)
        #expect(read9 == .deliver(SockJSMessageBatch(["plain"])))
        let read10 = machine.receivedWebSocketFrame(buffer("4"), binary: false)
        #expect(read10 == .deliver(SockJSMessageBatch([""])))
        let read11 = machine.receivedWebSocketFrame(buffer("4é \u{1F600}"), binary: false)
        #expect(read11 == .deliver(SockJSMessageBatch(["é \u{1F600}"])))
        let read12 = machine.receivedWebSocketFrame(buffer("2"), binary: false)
        #expect(read12 == .sendPong)
        let read13 = machine.receivedWebSocketFrame(buffer("3"), binary: false)
        #expect(read13 == nil)
        let read14 = machine.receivedWebSocketFrame(buffer("6"), binary: false)
        #expect(read14 == nil)
        let read15 = machine.receivedWebSocketFrame(buffer("1"), binary: false)
        #expect(read15 == .close(EngineIOClientMachine.closedByServer))
        #expect(!machine.isOpen)
    }

    // Bytes that are not UTF-8, or not a packet, fail the session.
    @Test func badWebSocketFramesFail() {
        for frame in [ByteBuffer(bytes: [UInt8(ascii: "4"), 0xFF]), buffer(""), buffer("x")] {
            var machine = openMachine()
            guard case .fail = machine.receivedWebSocketFrame(frame, binary: false) else {
                Issue.record("\(frame)")
                continue
            }
        }
        var fresh = EngineIOClientMachine()
        guard case .fail = fresh.receivedWebSocketFrame(buffer("4early"), binary: false) else {
            Issue.record("a message before the handshake was accepted")
            return
        }
    }

    // Request paths: the protocol's query, and the sid made query-safe.
    @Test func requestPaths() {
        #expect(EngineIOClientMachine.pollingPath(sid: nil) == "/?EIO=4&transport=polling")
        #expect(EngineIOClientMachine.pollingPath(sid: "Ab-_9") == "/?EIO=4&transport=polling&sid=Ab-_9")
        #expect(EngineIOClientMachine.pollingPath(sid: "a b/c+=") == "/?EIO=4&transport=polling&sid=a%20b%2Fc%2B%3D")
        #expect(EngineIOClientMachine.webSocketPath == "/?EIO=4&transport=websocket")
    }
}

/// The bodies of the polling transport's `POST`s.
@Suite struct EngineIOSendQueueTests {
    private func decoded(_ body: ByteBuffer?) throws -> [EngineIOPacket] {
        try EngineIOPayload.decode(try #require(body))
    }

    // Queued packets go out in one body, joined by \x1e, each message as `4<text>`: what the codec
    // reads back as the same packets.
    @Test func joinsPacketsWithTheRecordSeparator() throws {
        var queue = EngineIOSendQueue(limit: 1000)
        let nothing = queue.next()
        #expect(queue.isEmpty && nothing == nil)
        let appended16 = queue.append(batch(["a", "", "é"]))
        #expect(appended16)
        queue.append(.pong)
        let appended17 = queue.append(batch(["last"]))
        #expect(appended17)
        #expect(queue.byteCount == "4a\u{1E}4\u{1E}4é\u{1E}3\u{1E}4last".utf8.count)
        let body = queue.next()
        #expect(body.map { String(buffer: $0) } == "4a\u{1E}4\u{1E}4é\u{1E}3\u{1E}4last")
        #expect(try decoded(body) == [.message("a"), EngineIOPacket(type: .message), .message("é"), .pong, .message("last")])
        let after = queue.next()
        #expect(queue.isEmpty && after == nil && queue.byteCount == 0)
    }

    // Bodies stay under the limit; what does not fit goes in the next ones, in order; a packet bigger
    // than the limit goes alone.
    @Test func cutsBodiesAtTheLimit() throws {
        var queue = EngineIOSendQueue(limit: 20)
        let messages = (0..<10).map { "message\($0)" } + [String(repeating: "x", count: 50), "tail"]
        let appended18 = queue.append(batch(messages))
        #expect(appended18)
        var received: [EngineIOPacket] = []
        var bodies = 0
        while let body = queue.next() {
            bodies += 1
            #expect(body.readableBytes <= 20 || body.readableBytes == 51)
            received += try decoded(body)
        }
        #expect(received == messages.map { .message($0) })
        #expect(bodies >= 6)
    }

    // A message holding \x1e cannot travel in a polling payload: nothing of its batch is queued.
    @Test func refusesTheRecordSeparator() {
        var queue = EngineIOSendQueue(limit: 1000)
        let appended19 = queue.append(batch(["fine", "a\u{1E}b"]))
        #expect(!appended19)
        #expect(queue.isEmpty)
    }

    // `close` (sent when the client closes) is the bare type digit.
    @Test func closePacket() {
        var queue = EngineIOSendQueue(limit: 1000)
        queue.append(.close)
        let body = queue.next()
        #expect(body.map { String(buffer: $0) } == "1")
    }
}

/// The Engine.IO transports against Sockway's `/engine.io` echo, on loopback.
@Suite struct EngineIOClientLoopbackTests {
    // Each transport carries the hostile set exactly and in order, and counts its bytes and requests
    // at its sockets like the SockJS transports.
    @Test(arguments: SockwayClientTransport.engineIO)
    func echoes(transport: SockwayClientTransport) async throws {
        try await withDemoServer { port in
            let session = try await SockwayClient.connect(
                to: "http://127.0.0.1:\(port)/engine.io",
                configuration: .init(transports: [transport])
            )
            #expect(session.transport == transport)
            let received = await echo(hostileMessages, over: session)
            expectSame(received, hostileMessages)
            let traffic = session.traffic
            #expect(traffic.bytesSent > 70_000)
            #expect(traffic.bytesReceived > 70_000)
            // WebSocket: the handshake; polling: the handshake GET, polls and POSTs.
            if transport == .engineIOWebSocket {
                #expect(traffic.requests == 1 && traffic.connections == 1)
            } else {
                #expect(traffic.requests >= 3 && traffic.connections >= 2)
            }
            session.close()
        }
    }

    // Heartbeat: the server pings every 100 ms and drops a session whose pong is 1 s late (a client
    // that did not answer would be gone after 1.1 s, well within the 2.5 s waited); the client answers,
    // so the session outlives many intervals and still echoes. The timeout leaves room for a loaded
    // test machine (at 400 ms it was missed about one full parallel run in four on 2 cores).
    @Test(arguments: SockwayClientTransport.engineIO)
    func answersPings(transport: SockwayClientTransport) async throws {
        let engineIO = EngineIOOptions(pingInterval: .milliseconds(100), pingTimeout: .milliseconds(1000))
        try await withDemoServer(engineIO: engineIO) { port in
            let session = try await SockwayClient.connect(
                to: "http://127.0.0.1:\(port)/engine.io",
                configuration: .init(transports: [transport])
            )
            try await Task.sleep(for: .milliseconds(2500))
            #expect(session.closeReason == nil)
            #expect(await echo(["still here"], over: session) == ["still here"])
            session.close()
        }
    }

    // The faces the bench uses: batches of bytes sent, the bytes face on the session's loop, the close
    // event last.
    @Test(arguments: SockwayClientTransport.engineIO)
    func batchFaceGivesTheBytesThatWereSent(transport: SockwayClientTransport) async throws {
        try await withDemoServer { port in
            let session = try await SockwayClient.connect(to: "http://127.0.0.1:\(port)/engine.io", configuration: .init(transports: [transport]))
            let sent = (0..<300).map { index -> String in
                index % 3 == 0 ? "é \u{1F600} \(index)" : "\(index) " + String(repeating: "x", count: index)
            }
            let received = NIOLockedValueBox<[String]>([])
            let done = session.eventLoop.makePromise(of: Void.self)
            let loop = session.eventLoop
            session.onBatchEvent { event in
                #expect(loop.inEventLoop)
                switch event {
                case .messages(let batch):
                    var decoded: [String] = []
                    batch.forEach { decoded.append(String(decoding: $0, as: UTF8.self)) }
                    #expect(decoded == batch.strings)
                    received.withLockedValue { $0 += decoded }
                case .closed:
                    done.succeed()
                }
            }
            for chunk in stride(from: 0, to: sent.count, by: 50) { session.send(batch(Array(sent[chunk..<chunk + 50]))) }
            let deadline = ContinuousClock.now + .seconds(10)
            while received.withLockedValue({ $0.count }) < sent.count, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            session.close()
            try await done.futureResult.get()
            #expect(received.withLockedValue { $0 } == sent)
        }
    }

    // An Engine.IO transport at a URL that serves no Engine.IO fails to connect; it does not hang.
    @Test(arguments: SockwayClientTransport.engineIO)
    func failsWhereThereIsNoEngineIO(transport: SockwayClientTransport) async throws {
        try await withDemoServer { port in
            for path in ["/echo", "/nothing-here"] {
                await #expect(throws: (any Error).self) {
                    _ = try await SockwayClient.connect(
                        to: "http://127.0.0.1:\(port)\(path)",
                        configuration: .init(transports: [transport], connectTimeout: .seconds(3))
                    )
                }
            }
        }
    }

    // Engine.IO has no sockjs-client fallback: mixed with other transports it is refused up front.
    @Test func engineIOTakesNoFallback() async {
        await #expect(throws: SockwayClientError.engineIOTransportNotAlone) {
            _ = try await SockwayClient.connect(to: "http://127.0.0.1:1/engine.io", configuration: .init(transports: [.engineIOWebSocket, .webSocket]))
        }
    }
}
