import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SockwaySockJS
import SockwayEngineIO
import SockwaySocketIO
import Testing

@testable import SockwayServer

/// The demo endpoints with the official suites' Engine.IO settings.
private func engineIOServer(_ options: SockwayEndpointOptions = .init()) -> InMemoryServer {
    InMemoryServer(
        endpoints: SockwayDemoEndpoints.all(
            options: options,
            engineIO: EngineIOOptions(pingInterval: .milliseconds(300), pingTimeout: .milliseconds(200)),
            socketIOConnectTimeout: .seconds(1)
        )
    )
}

private let base = "/engine.io/?EIO=4&transport=polling"

extension InMemoryConnection {
    /// A polling handshake; returns the sid.
    func engineIOHandshake(path: String = "/engine.io") throws -> String {
        try request("GET", "\(path)/?EIO=4&transport=polling")
        let response = try readResponse()
        #expect(response.status == 200)
        #expect(response.body.hasPrefix("0{"))
        let json = try #require(response.body.dropFirst().data(using: .utf8))
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        return try #require(object["sid"] as? String)
    }
}

@Suite struct EngineIOPollingTests {
    @Test func handshakeAnnouncesTheSessionAndTheUpgrade() throws {
        let server = engineIOServer()
        let connection = try server.connect()
        try connection.request("GET", base, headers: [("Origin", "https://app.example")])
        let response = try connection.readResponse()
        #expect(response.status == 200)
        #expect(response.body.contains(#""upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000"#))
        // No allow-list: any page may read the answer, never with the user's cookies.
        #expect(response.header("Access-Control-Allow-Origin") == "*")
        #expect(response.header("Access-Control-Allow-Credentials") == nil)
    }

    @Test func listedOriginGetsCORSWithCredentialsAndAForeignOneIsRefused() throws {
        let server = engineIOServer(.init(allowedOrigins: ["https://app.example"]))
        let connection = try server.connect()
        try connection.request("GET", base, headers: [("Origin", "https://app.example")])
        let response = try connection.readResponse()
        // CORS with credentials: the origin itself, never `*`.
        #expect(response.header("Access-Control-Allow-Origin") == "https://app.example")
        #expect(response.header("Access-Control-Allow-Credentials") == "true")
        for origin in ["https://evil.example", "null"] {
            try connection.request("GET", base, headers: [("Origin", origin)])
            #expect(try connection.readResponse().status == 403)
        }
        let upgrade = try server.connect()
        try upgrade.write(
            "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n\r\n"
        )
        #expect(try upgrade.readResponse().status == 403)
    }

    @Test(arguments: [
        ("GET", "/engine.io/?EIO=4", 400, #"{"code":0,"message":"Transport unknown"}"#),
        ("GET", "/engine.io/?EIO=4&transport=abc", 400, #"{"code":0,"message":"Transport unknown"}"#),
        ("GET", "/engine.io/?EIO=3&transport=polling", 400, #"{"code":5,"message":"Unsupported protocol version"}"#),
        ("GET", "/engine.io/?transport=polling", 400, #"{"code":5,"message":"Unsupported protocol version"}"#),
        ("POST", "/engine.io/?EIO=4&transport=polling", 400, #"{"code":2,"message":"Bad handshake method"}"#),
        ("GET", "/engine.io/?EIO=4&transport=polling&sid=nope", 400, #"{"code":1,"message":"Session ID unknown"}"#),
        ("POST", "/engine.io/?EIO=4&transport=polling&sid=nope", 400, #"{"code":1,"message":"Session ID unknown"}"#),
    ])
    func badRequestsGetTheReferenceErrors(method: String, path: String, status: Int, body: String) throws {
        let server = engineIOServer()
        let connection = try server.connect()
        try connection.request(method, path, body: method == "POST" ? "4x" : "")
        let response = try connection.readResponse()
        #expect(response.status == status)
        #expect(response.body == body)
    }

    @Test func messagesComeBackInOnePayloadTextAndBinary() throws {
        let server = engineIOServer()
        let connection = try server.connect()
        let sid = try connection.engineIOHandshake()
        try connection.request("POST", "\(base)&sid=\(sid)", body: "4hello\u{1e}bAQIDBA==\u{1e}4€")
        let posted = try connection.readResponse()
        #expect(posted.status == 200)
        #expect(posted.body == "ok")
        try connection.request("GET", "\(base)&sid=\(sid)")
        #expect(try connection.readResponse().body == "4hello\u{1e}bAQIDBA==\u{1e}4€")
    }

    @Test(arguments: ["abc", "4hello\u{1e}", "bAQI*BA==", "9x"])
    func aBadPayloadClosesTheSession(body: String) throws {
        let server = engineIOServer()
        let connection = try server.connect()
        let sid = try connection.engineIOHandshake()
        try connection.request("POST", "\(base)&sid=\(sid)", body: body)
        #expect(try connection.readResponse().status == 400)
        try connection.request("GET", "\(base)&sid=\(sid)")
        #expect(try connection.readResponse().status == 400)
    }

    @Test func aPingFromTheClientClosesTheSession() throws {
        // In v4 only the server pings: a flood of pings is a protocol violation, not work to do.
        let server = engineIOServer()
        let connection = try server.connect()
        let sid = try connection.engineIOHandshake()
        try connection.request("POST", "\(base)&sid=\(sid)", body: Array(repeating: "2", count: 100).joined(separator: "\u{1e}"))
        #expect(try connection.readResponse().status == 400)
        try connection.request("GET", "\(base)&sid=\(sid)")
        #expect(try connection.readResponse().body == #"{"code":1,"message":"Session ID unknown"}"#)
    }

    @Test func aPayloadOverMaxPayloadIsRefusedWith413() throws {
        let server = engineIOServer()
        let connection = try server.connect()
        let sid = try connection.engineIOHandshake()
        try connection.request("POST", "\(base)&sid=\(sid)", body: "4" + String(repeating: "x", count: 1_000_000))
        #expect(try connection.readResponse().status == 413)
    }

    @Test func aBinaryBodyIsRefusedAndClosesTheSession() throws {
        let server = engineIOServer()
        let connection = try server.connect()
        let sid = try connection.engineIOHandshake()
        try connection.request("POST", "\(base)&sid=\(sid)", body: "4hi", headers: [("Content-Type", "application/octet-stream")])
        #expect(try connection.readResponse().status == 400)
        try connection.request("GET", "\(base)&sid=\(sid)")
        #expect(try connection.readResponse().status == 400)
    }

    @Test func aSecondPollAtOnceClosesTheSession() throws {
        let server = engineIOServer()
        let first = try server.connect()
        let sid = try first.engineIOHandshake()
        try first.request("GET", "\(base)&sid=\(sid)")
        let second = try server.connect()
        try second.request("GET", "\(base)&sid=\(sid)")
        #expect(try second.readResponse().status == 400)
        #expect(try first.readResponse().body == "1")
        try second.request("GET", "\(base)&sid=\(sid)")
        #expect(try second.readResponse().status == 400)
    }

    @Test func aPostWhileAnotherIsHeldClosesTheSession() throws {
        // The outbox is backed up (the client does not poll), so a POST is held; another POST while it
        // is held breaks the one-POST-at-a-time rule.
        var options = SockwayEndpointOptions()
        options.maxQueuedMessages = 2
        let server = engineIOServer(options)
        let sender = try server.connect()
        let sid = try sender.engineIOHandshake()
        try sender.request("POST", "\(base)&sid=\(sid)", body: "4a\u{1e}4b")
        #expect(try sender.readResponse().status == 200)
        try sender.request("POST", "\(base)&sid=\(sid)", body: "4c")
        #expect(try sender.readText().isEmpty)
        let other = try server.connect()
        try other.request("POST", "\(base)&sid=\(sid)", body: "4d")
        #expect(try other.readResponse().status == 400)
        #expect(try sender.readResponse().status == 400)
        try other.request("GET", "\(base)&sid=\(sid)")
        #expect(try other.readResponse().status == 400)
    }

    @Test func theServerPingsAndForgetsASessionWithoutPong() throws {
        let server = engineIOServer()
        let connection = try server.connect()
        let sid = try connection.engineIOHandshake()
        try connection.request("GET", "\(base)&sid=\(sid)")
        server.advance(by: .milliseconds(300))
        #expect(try connection.readResponse().body == "2")
        try connection.request("POST", "\(base)&sid=\(sid)", body: "3")
        #expect(try connection.readResponse().status == 200)
        server.advance(by: .milliseconds(300))
        try connection.request("GET", "\(base)&sid=\(sid)")
        #expect(try connection.readResponse().body == "2")
        server.advance(by: .milliseconds(200))
        try connection.request("GET", "\(base)&sid=\(sid)")
        #expect(try connection.readResponse().status == 400)
    }

    @Test func theClientsCloseAnswersThePendingPollWithNoop() throws {
        let server = engineIOServer()
        let poller = try server.connect()
        let sid = try poller.engineIOHandshake()
        try poller.request("GET", "\(base)&sid=\(sid)")
        let sender = try server.connect()
        try sender.request("POST", "\(base)&sid=\(sid)", body: "1")
        #expect(try sender.readResponse().status == 200)
        #expect(try poller.readResponse().body == "6")
        try sender.request("GET", "\(base)&sid=\(sid)")
        #expect(try sender.readResponse().status == 400)
    }

    @Test func sessionIDsCarryAtLeast122RandomBits() throws {
        // 22 characters of a 64-letter alphabet: 132 bits; and no two alike in a few thousand.
        let server = engineIOServer()
        var seen = Set<String>()
        for _ in 0..<2000 {
            let id = RandomID.make()
            #expect(id.utf8.count == 22)
            #expect(id.utf8.allSatisfy { $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 122) })
            seen.insert(id)
        }
        #expect(seen.count == 2000)
        let connection = try server.connect()
        #expect(try connection.engineIOHandshake().utf8.count == 22)
    }

    // In a cluster, a session id names its node, so a balancer can route every request of the session
    // to it; the session still works under that id.
    @Test func aClusterNodesSessionIDsStartWithItsName() throws {
        var configuration = SockwayConfiguration()
        configuration.nodeID = "node-b"
        let server = InMemoryServer(endpoints: [.engineIO { _ in EchoDelegate() }], configuration: configuration)
        let connection = try server.connect()
        let sid = try connection.engineIOHandshake()
        #expect(sid.hasPrefix("node-b~"))
        #expect(sid.utf8.count == "node-b~".utf8.count + RandomID.length)
        try connection.request("POST", "\(base)&sid=\(sid)", body: "4hello")
        #expect(try connection.readResponse().body == "ok")
        try connection.request("GET", "\(base)&sid=\(sid)")
        #expect(try connection.readResponse().body == "4hello")
    }

    @Test func theStickyCookieIsSetWhenAsked() throws {
        let server = InMemoryServer(endpoints: [.engineIO(engineIO: EngineIOOptions(cookie: "io")) { _ in EchoDelegate() }])
        let connection = try server.connect()
        try connection.request("GET", base)
        let response = try connection.readResponse()
        let sid = String(response.body.split(separator: "\"")[3])
        #expect(response.header("Set-Cookie") == "io=\(sid); Path=/; HttpOnly; SameSite=Lax")
    }
}

@Suite struct EngineIOWebSocketTests {
    private let upgradeHeaders = [
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw=="),
    ]

    @Test func aWebSocketOnlySessionOpensAndEchoesTextAndBinary() throws {
        let server = engineIOServer()
        let connection = try server.connect()
        let head = try connection.upgrade("/engine.io/?EIO=4&transport=websocket")
        #expect(head.hasPrefix("HTTP/1.1 101"))
        let open = try connection.readFrames()
        #expect(open.first?.text.hasPrefix("0{") == true)
        #expect(open.first?.text.contains(#""upgrades":[]"#) == true)
        try connection.sendText("4hi")
        try connection.sendFrame(opcode: 0x2, [1, 2, 3])
        let echoes = try connection.readFrames()
        #expect(echoes.map(\.opcode) == [0x1, 0x2])
        #expect(echoes.first?.text == "4hi")
        #expect(echoes.last?.payload == [1, 2, 3])
    }

    @Test func theUpgradeHandsTheQueuedPacketsToTheWebSocketInOrder() throws {
        let server = engineIOServer()
        let poller = try server.connect()
        let sid = try poller.engineIOHandshake()
        let socket = try server.connect()
        #expect(try socket.upgrade("/engine.io/?EIO=4&transport=websocket&sid=\(sid)").hasPrefix("HTTP/1.1 101"))
        try socket.sendText("2probe")
        #expect(try socket.readFrames().map(\.text) == ["3probe"])
        // Echoes queued during the probe wait for the new transport.
        try poller.request("POST", "\(base)&sid=\(sid)", body: "4one\u{1e}4two")
        #expect(try poller.readResponse().status == 200)
        try socket.sendText("5")
        #expect(try socket.readFrames().map(\.text) == ["4one", "4two"])
        try socket.sendText("4three")
        #expect(try socket.readFrames().map(\.text) == ["4three"])
        // Later polls and a second WebSocket are refused.
        try poller.request("GET", "\(base)&sid=\(sid)")
        #expect(try poller.readResponse().status == 400)
    }

    @Test func aPollDuringTheProbeEndsWithNoopOrIsRefusedByTheUpgrade() throws {
        let server = engineIOServer()
        let poller = try server.connect()
        let sid = try poller.engineIOHandshake()
        let socket = try server.connect()
        _ = try socket.upgrade("/engine.io/?EIO=4&transport=websocket&sid=\(sid)")
        try socket.sendText("2probe")
        _ = try socket.readFrames()
        try poller.request("GET", "\(base)&sid=\(sid)")
        server.advance(by: EngineIOSessionStateMachine.upgradePollDelay - .milliseconds(1))
        #expect(try poller.readText().isEmpty)
        server.advance(by: .milliseconds(1))
        #expect(try poller.readResponse().body == "6")
        try poller.request("GET", "\(base)&sid=\(sid)")
        try socket.sendText("5")
        #expect(try poller.readResponse().status == 400)
    }

    @Test func aSessionThatEndsDuringTheProbeClosesTheProbingWebSocket() throws {
        let server = engineIOServer()
        let poller = try server.connect()
        let sid = try poller.engineIOHandshake()
        let socket = try server.connect()
        _ = try socket.upgrade("/engine.io/?EIO=4&transport=websocket&sid=\(sid)")
        try socket.sendText("2probe")
        #expect(try socket.readFrames().map(\.text) == ["3probe"])
        try poller.request("POST", "\(base)&sid=\(sid)", body: "1")
        #expect(try poller.readResponse().status == 200)
        #expect(try socket.readFrames().last?.opcode == 0x8)
    }

    @Test func aProbeForAnUnknownSessionIsRefused() throws {
        let server = engineIOServer()
        let connection = try server.connect()
        let head = try connection.upgrade("/engine.io/?EIO=4&transport=websocket&sid=nope")
        #expect(head.hasPrefix("HTTP/1.1 400"))
        let body = try connection.readText()
        #expect((head + body).contains(#"{"code":1,"message":"Session ID unknown"}"#))
    }

    @Test func aWebSocketOnAKeptAliveConnectionUpgrades() throws {
        // Clients with a connection pool (aiohttp) open the WebSocket on a connection that has served
        // a poll; NIO's upgrader only looks at a connection's first request.
        let server = engineIOServer()
        let connection = try server.connect()
        let sid = try connection.engineIOHandshake()
        #expect(try connection.upgrade("/engine.io/?EIO=4&transport=websocket&sid=\(sid)").hasPrefix("HTTP/1.1 101"))
        try connection.sendText("2probe")
        #expect(try connection.readFrames().map(\.text) == ["3probe"])
    }

    @Test func aSockJSWebSocketOnAKeptAliveConnectionUpgradesToo() throws {
        let server = engineIOServer()
        let connection = try server.connect()
        try connection.request("GET", "/echo/info")
        #expect(try connection.readResponse().status == 200)
        #expect(try connection.upgrade("/echo/000/abc/websocket").hasPrefix("HTTP/1.1 101"))
        #expect(try connection.readFrames().map(\.text) == ["o"])
    }

    @Test func aMessageOverMaxPayloadClosesTheWebSocketWith1009() throws {
        let server = InMemoryServer(endpoints: [.engineIO(engineIO: EngineIOOptions(maxPayload: 100)) { _ in EchoDelegate() }])
        let connection = try server.connect()
        _ = try connection.upgrade("/engine.io/?EIO=4&transport=websocket")
        _ = try connection.readFrames()
        try connection.sendText("4" + String(repeating: "x", count: 99))
        #expect(try connection.readFrames().map(\.text) == ["4" + String(repeating: "x", count: 99)])
        try connection.sendText("4" + String(repeating: "x", count: 100))
        #expect(try connection.readFrames().last?.closeCode == 1009)
    }

    @Test func aDeclinedUpgradeEndsTheConnection() throws {
        // NIO's decoder reads nothing after an upgrade request; answered as plain HTTP, it must close.
        let server = engineIOServer()
        let connection = try server.connect()
        _ = try connection.engineIOHandshake()
        let head = try connection.upgrade("/nowhere")
        #expect(head.hasPrefix("HTTP/1.1 404"))
        #expect(head.lowercased().contains("connection: close"))
    }

    @Test func aSecondProbeDoesNotLeaveTheSessionUpgrading() throws {
        let server = engineIOServer()
        let poller = try server.connect()
        let sid = try poller.engineIOHandshake()
        let socket = try server.connect()
        _ = try socket.upgrade("/engine.io/?EIO=4&transport=websocket&sid=\(sid)")
        try socket.sendText("2probe")
        try socket.sendText("2probe")
        let frames = try socket.readFrames()
        #expect(frames.first?.text == "3probe")
        #expect(frames.last?.opcode == 0x8)
        try socket.close()
        // Polling goes on as before: a poll waits for packets instead of getting `noop`.
        try poller.request("GET", "\(base)&sid=\(sid)")
        server.advance(by: .milliseconds(100))
        #expect(try poller.readText().isEmpty)
    }

    @Test func aMalformedPacketClosesTheWebSocket() throws {
        let server = engineIOServer()
        let connection = try server.connect()
        _ = try connection.upgrade("/engine.io/?EIO=4&transport=websocket")
        _ = try connection.readFrames()
        try connection.sendText("abc")
        #expect(try connection.readFrames().last?.opcode == 0x8)
    }
}

@Suite struct SocketIOServerTests {
    /// The demo endpoints with long Engine.IO pings (these tests do not answer them).
    private func engineIOServer() -> InMemoryServer {
        InMemoryServer(endpoints: SockwayDemoEndpoints.all(socketIOConnectTimeout: .seconds(1)))
    }

    /// A WebSocket-only Engine.IO connection at /socket.io, past its open packet.
    private func socketIOConnection(_ server: InMemoryServer) throws -> InMemoryConnection {
        let connection = try server.connect()
        _ = try connection.upgrade("/socket.io/?EIO=4&transport=websocket")
        #expect(try connection.readFrames().first?.text.hasPrefix("0{") == true)
        return connection
    }

    @Test func connectAnswersWithTheSocketIDThenTheAuthEvent() throws {
        let server = engineIOServer()
        let connection = try socketIOConnection(server)
        try connection.sendText(#"40{"token":"123"}"#)
        let frames = try connection.readFrames().map(\.text)
        #expect(frames.count == 2)
        #expect(frames.first?.hasPrefix(#"40{"sid":""#) == true)
        #expect(frames.last == #"42["auth",{"token":"123"}]"#)
    }

    @Test func eventsAcksAndBinaryAttachmentsComeBack() throws {
        let server = engineIOServer()
        let connection = try socketIOConnection(server)
        try connection.sendText("40")
        _ = try connection.readFrames()
        try connection.sendText(#"42["message",1,"2",{"3":[true]}]"#)
        #expect(try connection.readFrames().map(\.text) == [#"42["message-back",1,"2",{"3":[true]}]"#])
        try connection.sendText(#"42456["message-with-ack","x"]"#)
        #expect(try connection.readFrames().map(\.text) == [#"43456["x"]"#])
        try connection.sendText(#"451-["message",{"_placeholder":true,"num":0}]"#)
        try connection.sendFrame(opcode: 0x2, [1, 2, 3])
        let frames = try connection.readFrames()
        #expect(frames.map(\.opcode) == [0x1, 0x2])
        #expect(frames.first?.text == #"451-["message-back",{"_placeholder":true,"num":0}]"#)
        #expect(frames.last?.payload == [1, 2, 3])
    }

    @Test(arguments: [
        #"451-["message",{"_placeholder":true,"num":1}]"#,  // a placeholder past the count
        #"4abc"#,  // no such packet type
        #"42{}"#,  // an event that is not an array
        #"42/nowhere,["x"]"#,  // an event for a namespace the client is not in
    ])
    func aBrokenPacketClosesTheConnection(packet: String) throws {
        let server = engineIOServer()
        let connection = try socketIOConnection(server)
        try connection.sendText("40")
        _ = try connection.readFrames()
        try connection.sendText(packet)
        #expect(try connection.readFrames().last?.opcode == 0x8)
    }

    @Test func unknownNamespacesAndRefusedAuthGetConnectError() throws {
        let server = engineIOServer()
        let connection = try socketIOConnection(server)
        try connection.sendText("40/random,")
        #expect(try connection.readFrames().map(\.text) == [#"44/random,{"message":"Invalid namespace"}"#])
        try connection.sendText(#"40{"refuse":true}"#)
        #expect(try connection.readFrames().map(\.text) == [#"44{"message":"refused by server"}"#])
    }

    @Test func aClientThatNeverConnectsIsClosedAfterTheConnectTimeout() throws {
        let server = engineIOServer()
        let connection = try socketIOConnection(server)
        server.advance(by: .milliseconds(999))
        #expect(try connection.readFrames().isEmpty)
        server.advance(by: .milliseconds(1))
        #expect(try connection.readFrames().last?.opcode == 0x8)
    }

    @Test func aRoomBroadcastReachesItsMembersOnlyWithOneEncoding() throws {
        let server = engineIOServer()
        let members = try (0..<3).map { _ in try socketIOConnection(server) }
        let outsider = try socketIOConnection(server)
        for connection in members + [outsider] {
            try connection.sendText("40")
            _ = try connection.readFrames()
        }
        for connection in members {
            try connection.sendText(#"421["join","r"]"#)
            #expect(try connection.readFrames().map(\.text) == [#"431["r"]"#])
        }
        try outsider.sendText(#"42["to-room","r","hi"]"#)
        #expect(try outsider.readFrames().isEmpty)
        for connection in members {
            #expect(try connection.readFrames().map(\.text) == [#"42["room-message","hi"]"#])
        }
    }

    @Test func everySocketIsInTheRoomOfItsOwnID() throws {
        let server = engineIOServer()
        let connection = try socketIOConnection(server)
        try connection.sendText("40")
        let reply = try connection.readFrames().first?.text ?? ""
        let id = String(reply.dropFirst(#"40{"sid":""#.count).dropLast(2))
        try connection.sendText(#"42["to-room","\#(id)","me"]"#)
        #expect(try connection.readFrames().map(\.text) == [#"42["room-message","me"]"#])
    }

    @Test func aSecondConnectForANamespaceClosesTheConnection() throws {
        let server = engineIOServer()
        let connection = try socketIOConnection(server)
        try connection.sendText("40")
        _ = try connection.readFrames()
        try connection.sendText("40")
        #expect(try connection.readFrames().last?.opcode == 0x8)
    }

    @Test func emitWithAckAwaitsTheClientsAnswer() async throws {
        let io = SocketIOServer(engineIO: EngineIOOptions())
        let answer = NIOLockedValueBox<[SocketIOValue]?>(nil)
        io.sockets.onConnection { socket in
            Task {
                let reply = try await socket.emitWithAck("question", ["?"])
                answer.withLockedValue { $0 = reply }
            }
        }
        let server = InMemoryServer(endpoints: [io.endpoint])
        let connection = try server.connect()
        _ = try connection.upgrade("/socket.io/?EIO=4&transport=websocket")
        _ = try connection.readFrames()
        try connection.sendText("40")
        var frames: [String] = []
        for _ in 0..<100 where !frames.contains(where: { $0.hasPrefix("42") }) {
            try await Task.sleep(for: .milliseconds(10))
            server.loop.run()
            frames += try connection.readFrames().map(\.text)
        }
        #expect(frames.contains(#"420["question","?"]"#))
        try connection.sendText(#"430["yes"]"#)
        for _ in 0..<100 where answer.withLockedValue({ $0 }) == nil {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(answer.withLockedValue { $0 } == ["yes"])
    }
}


@Suite struct SocketIOAPITests {
    // The README's embedding example, built and driven in memory.
    @Test func theReadmeChatExampleWorks() throws {
        let io = SocketIOServer(connectTimeout: .seconds(45))
        io.of("/").use { socket in
            guard socket.auth["token"]?.stringValue == "secret" else { throw SocketIOConnectError("Not authorized") }
        }
        io.of("/").onConnection { socket in
            socket.on("chat") { event in socket.namespace.emit("chat", event.arguments) }
            socket.on("join") { event in
                if let room = event.arguments.first?.stringValue { socket.join(room) }
                event.ack(["joined"])
            }
            socket.on("shout") { event in socket.broadcast.emit("shout", event.arguments) }
        }
        let server = InMemoryServer(endpoints: [io.endpoint, .engineIO { _ in EchoDelegate() }])
        let refused = try server.connect()
        _ = try refused.upgrade("/socket.io/?EIO=4&transport=websocket")
        _ = try refused.readFrames()
        try refused.sendText(#"40{"token":"wrong"}"#)
        #expect(try refused.readFrames().map(\.text) == [#"44{"message":"Not authorized"}"#])

        let clients = try (0..<2).map { _ in try server.connect() }
        for client in clients {
            _ = try client.upgrade("/socket.io/?EIO=4&transport=websocket")
            _ = try client.readFrames()
            try client.sendText(#"40{"token":"secret"}"#)
            #expect(try client.readFrames().first?.text.hasPrefix(#"40{"sid":"#) == true)
        }
        try clients[0].sendText(#"42["chat","hi"]"#)
        for client in clients { #expect(try client.readFrames().map(\.text) == [#"42["chat","hi"]"#]) }
        try clients[0].sendText(#"42["shout","HEY"]"#)
        #expect(try clients[0].readFrames().isEmpty)
        #expect(try clients[1].readFrames().map(\.text) == [#"42["shout","HEY"]"#])
        try clients[1].sendText(#"427["join","r"]"#)
        #expect(try clients[1].readFrames().map(\.text) == [#"437["joined"]"#])
    }
}
