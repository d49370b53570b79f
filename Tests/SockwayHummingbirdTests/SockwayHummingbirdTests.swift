import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SockwayClient
import SockwayHummingbird
import SockwayServer
import SockwaySockJS
import Testing

/// A request context that gives Sockway its connection (client address, pacing by the channel), for
/// both the HTTP and the WebSocket router.
struct ConnectionContext: RequestContext, WebSocketRequestContext, SockwayConnectionContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<Self>
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.webSocket = .init()
        self.channel = source.channel
    }
}

/// A value behind a lock, shared between event loops and test tasks.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    @discardableResult
    func withLockedValue<Result>(_ body: (inout Value) -> Result) -> Result {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

/// What the flood endpoint's producer saw: messages sent, and whether its send queue ever backed up.
final class FloodRecord: Sendable {
    private let state = Locked((sent: 0, backedUp: false, closed: false))
    var sent: Int { state.withLockedValue { $0.sent } }
    var backedUp: Bool { state.withLockedValue { $0.backedUp } }
    var closed: Bool { state.withLockedValue { $0.closed } }
    func add(_ count: Int) { state.withLockedValue { $0.sent += count } }
    func sawBackUp() { state.withLockedValue { $0.backedUp = true } }
    func sawClose() { state.withLockedValue { $0.closed = true } }
}

/// Sends 1 KiB messages as fast as the session takes them, pausing while its send queue is backed up
/// (the client reads slower than it is sent to), as a well-behaved producer does.
final class FloodDelegate: SockwaySessionDelegate {
    let record: FloodRecord
    static let message = String(repeating: "f", count: 1024)
    init(record: FloodRecord) { self.record = record }

    func sessionDidOpen(_ session: SockwaySession) { produce(session) }
    func session(_ session: SockwaySession, didReceive messages: [String]) {}
    func session(_ session: SockwaySession, didCloseWith reason: SockJSCloseReason) { record.sawClose() }

    private func produce(_ session: SockwaySession) {
        var batch = 0
        while !session.isSendQueueBackedUp && batch < 256 {
            session.send(Self.message)
            batch += 1
        }
        record.add(batch)
        if session.isSendQueueBackedUp { record.sawBackUp() }
        let record = self.record
        let this = NIOLoopBound(self, eventLoop: session.eventLoop)
        session.whenSendQueueDrained {
            guard !record.closed else { return }
            session.eventLoop.execute { this.value.produce(session) }
        }
    }
}

/// A Hummingbird application on a free loopback port with Sockway's `/echo` and `/flood` mounted
/// beside an ordinary route, `GET /hello`.
func withApplication<Context: RequestContext & WebSocketRequestContext>(
    context: Context.Type = ConnectionContext.self,
    options: SockwayEndpointOptions = .init(disconnectDelay: .milliseconds(1500)),
    flood: FloodRecord = FloodRecord(),
    endpoints: [SockwayEndpoint]? = nil,
    _ body: @Sendable (_ port: Int, _ sockway: SockwayRoutes) async throws -> Void
) async throws {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    var floodOptions = options
    floodOptions.responseLimit = 64 << 20
    let io = SocketIOServer()
    io.of("/").onConnection { socket in
        socket.on("ping") { event in socket.emit("pong", event.arguments) }
    }
    let sockway = SockwayRoutes(
        logger: logger,
        endpoints: endpoints ?? [
            .async("/echo", options: options) { session in
                for await message in session.messages { session.send(message) }
            },
            .eventLoop("/flood", options: floodOptions) { _ in FloodDelegate(record: flood) },
            .engineIO("/engine.io", options: options) { session in
                for await message in session.messages { session.send(message) }
            },
            io.endpoint,
        ]
    )
    let router = Router(context: Context.self)
    router.get("/hello") { _, _ in "Hello from Hummingbird" }
    sockway.addRoutes(to: router)
    let webSocketRouter = Router(context: Context.self)
    sockway.addWebSocketRoutes(to: webSocketRouter)
    let (ports, portSource) = AsyncStream<Int>.makeStream()
    let app = Application(
        router: router,
        server: .http1WebSocketUpgrade(webSocketRouter: webSocketRouter, configuration: .init(ws: .init(maxFrameSize: 1 << 20, validateUTF8: true))),
        configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in
            portSource.yield(channel.localAddress?.port ?? 0)
            portSource.finish()
        },
        logger: logger
    )
    let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        let result: Result<Void, any Error>
        do {
            try await body(port, sockway)
            result = .success(())
        } catch {
            result = .failure(error)
        }
        await sockway.closeAllSessions()
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        try result.get()
    }
}

/// Compares message lists without printing long messages in full.
func expectSame(_ received: [String], _ expected: [String], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(received.count == expected.count, sourceLocation: sourceLocation)
    for (index, (got, want)) in zip(received, expected).enumerated() where got != want {
        Issue.record(
            "message \(index): got \(got.utf8.count) bytes \(got.prefix(40).debugDescription), expected \(want.utf8.count) bytes \(want.prefix(40).debugDescription)",
            sourceLocation: sourceLocation
        )
    }
}

/// Waits up to `seconds` for `condition`.
func eventually(within seconds: Double = 8, _ condition: () -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

/// A raw HTTP/1.1 client on a loopback TCP connection: writes `request` as is, and reads only when
/// asked (auto-read off, a small receive buffer), so it can play a client that stops reading.
final class RawConnection: Sendable {
    let channel: any Channel
    private let received = Locked(ByteBuffer())

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let sink: Locked<ByteBuffer>
        init(sink: Locked<ByteBuffer>) { self.sink = sink }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            sink.withLockedValue { $0.writeBuffer(&bytes) }
        }
    }

    init(port: Int, request: String) async throws {
        let sink = received
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: false)
            .channelOption(.socketOption(.so_rcvbuf), value: 4096)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(sink: sink)) }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        try await channel.writeAndFlush(ByteBuffer(string: request))
    }

    /// Reads until `marker` has arrived (or `seconds` pass); returns everything read so far.
    func read(until marker: String, within seconds: Double = 5) async throws -> String {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            let text = received.withLockedValue { String(buffer: $0) }
            if text.contains(marker) { return text }
            channel.read()
            try await Task.sleep(for: .milliseconds(10))
        }
        return received.withLockedValue { String(buffer: $0) }
    }

    func close() async {
        try? await channel.close()
    }
}

@Suite struct SockwayHummingbirdTests {
    // Every SockJS transport the client has, forced, echoes hostile messages exactly and in order
    // through an endpoint mounted in Hummingbird's router, on Hummingbird's port.
    @Test(arguments: SockwayClientTransport.sockJS)
    func everyTransportEchoes(transport: SockwayClientTransport) async throws {
        try await withApplication { port, sockway in
            let session = try await SockwayClient.connect(
                to: "http://127.0.0.1:\(port)/echo",
                configuration: .init(transports: [transport])
            )
            #expect(session.transport == transport)
            let messages = ["", "plain", "\u{0}", "\"quotes\" and \\backslashes\\", "\u{2028}\u{2029}", "</script><!--", "\u{1F600}", String(repeating: "x", count: 70_000)]
            var received: [String] = []
            for message in messages { session.send(message) }
            var iterator = session.messages.makeAsyncIterator()
            while received.count < messages.count, let next = await iterator.next() { received.append(next) }
            expectSame(received, messages)
            #expect(sockway.sessionCount == 1)
            session.close()
            #expect(try await eventually { sockway.sessionCount == 0 })
        }
    }

    // The client's fallback: with every transport allowed it picks websocket, so the upgrade works
    // through Hummingbird's WebSocket router.
    @Test func fallbackPicksWebSocket() async throws {
        try await withApplication { port, _ in
            // A generous timeout: the test machine is shared, and a slow WebSocket open falls back.
            let session = try await SockwayClient.connect(to: "http://127.0.0.1:\(port)/echo", configuration: .init(connectTimeout: .seconds(10)))
            #expect(session.transport == .webSocket)
            session.send("hello")
            var iterator = session.messages.makeAsyncIterator()
            #expect(await iterator.next() == "hello")
            session.close()
        }
    }

    // Hummingbird's own contexts (no address, no channel) work too: sessions then have no client
    // address, and writes are paced by Hummingbird's writers alone.
    @Test(arguments: [SockwayClientTransport.webSocket, .xhrStreaming, .xhrPolling])
    func hummingbirdsOwnContextsWork(transport: SockwayClientTransport) async throws {
        try await withApplication(context: BasicWebSocketRequestContext.self) { port, sockway in
            let session = try await SockwayClient.connect(
                to: "http://127.0.0.1:\(port)/echo",
                configuration: .init(transports: [transport])
            )
            session.send("plain context")
            var iterator = session.messages.makeAsyncIterator()
            #expect(await iterator.next() == "plain context")
            session.close()
            #expect(try await eventually { sockway.sessionCount == 0 })
        }
    }

    // Sockway shares the application's server: an ordinary route answers on the same port, and
    // Sockway's info, greeting and iframe answer as SockJS says.
    @Test func ordinaryRouteAndSockJSPagesShareThePort() async throws {
        try await withApplication { port, _ in
            let hello = try await RawConnection(port: port, request: "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(try await hello.read(until: "Hummingbird").contains("Hello from Hummingbird"))
            await hello.close()

            let info = try await RawConnection(port: port, request: "GET /echo/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let infoText = try await info.read(until: "entropy")
            #expect(infoText.hasPrefix("HTTP/1.1 200"))
            #expect(infoText.contains("\"websocket\":true"))
            await info.close()

            let greeting = try await RawConnection(port: port, request: "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(try await greeting.read(until: "Welcome").contains("Welcome to SockJS!"))
            await greeting.close()

            let iframe = try await RawConnection(port: port, request: "GET /echo/iframe.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(try await iframe.read(until: "</html>").contains("SockJS.bootstrap_iframe()"))
            await iframe.close()
        }
    }

    // htmlfile, which the client has no transport for: the page prelude, then the open frame in a
    // script element calling the callback.
    @Test func htmlfileStreamsScriptFrames() async throws {
        try await withApplication { port, sockway in
            let connection = try await RawConnection(
                port: port,
                request: "GET /echo/000/htmlfile1/htmlfile?c=cb HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            let text = try await connection.read(until: "p(\"o\")")
            #expect(text.hasPrefix("HTTP/1.1 200"))
            #expect(text.contains("parent.cb"))
            #expect(text.contains("<script>\np(\"o\");\n</script>"), "\(text)")
            #expect(sockway.sessionCount == 1)
            await connection.close()
            // Streaming: the closed connection is noticed without waiting for a heartbeat.
            #expect(try await eventually { sockway.sessionCount == 0 })
        }
    }

    // jsonp_send takes a form body; the message comes back on the next jsonp poll.
    @Test func jsonpSendAndPoll() async throws {
        try await withApplication { port, _ in
            let open = try await RawConnection(port: port, request: "GET /echo/000/jsonp1/jsonp?c=cb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(try await open.read(until: "cb(\"o\")").contains("cb(\"o\")"))
            await open.close()
            let body = "d=%5B%22x%22%5D"
            let send = try await RawConnection(
                port: port,
                request: "POST /echo/000/jsonp1/jsonp_send HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
            )
            let sendText = try await send.read(until: "ok")
            #expect(sendText.contains("ok"), "\(sendText)")
            await send.close()
            let poll = try await RawConnection(port: port, request: "GET /echo/000/jsonp1/jsonp?c=cb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let pollText = try await poll.read(until: "cb(\"a")
            #expect(pollText.contains("cb(\"a[\\\"x\\\"]\")"), "\(pollText)")
            await poll.close()
        }
    }

    // A client that stops reading (an xhr-streaming response, a raw WebSocket) holds the session
    // back: the producer sees its send queue back up and stops, so what the server holds stays
    // bounded. When the client then leaves, the session closes and is reaped.
    @Test(arguments: [
        "POST /flood/000/slow1/xhr_streaming HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "GET /flood/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ])
    func slowClientIsPacedAndItsDepartureClosesTheSession(request: String) async throws {
        let flood = FloodRecord()
        try await withApplication(flood: flood) { port, sockway in
            let connection = try await RawConnection(port: port, request: request)
            #expect(try await connection.read(until: "\r\n\r\n").contains(request.hasPrefix("GET") ? "101" : "200 OK"))
            #expect(try await eventually { flood.backedUp })
            // Settles: once the socket buffers are full, nothing more is produced while the client
            // does not read.
            var settled = flood.sent
            var quietSince = ContinuousClock.now
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now - quietSince < .seconds(1), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
                if flood.sent != settled {
                    settled = flood.sent
                    quietSince = ContinuousClock.now
                }
            }
            #expect(ContinuousClock.now - quietSince >= .seconds(1))
            // Bounded (1 KiB messages): socket buffers, the hand-over and the 1 MiB outbox, a few MiB.
            #expect(settled < 8 * 1024)
            #expect(sockway.sessionCount == 1)
            await connection.close()
            #expect(try await eventually { flood.closed })
            #expect(try await eventually { sockway.sessionCount == 0 })
        }
    }

    // Engine.IO over long-polling and over WebSocket (through Hummingbird's WebSocket router):
    // messages both ways in order, a long one too, and the session's end when the client leaves.
    @Test(arguments: SockwayClientTransport.engineIO)
    func engineIOEchoes(transport: SockwayClientTransport) async throws {
        try await withApplication { port, sockway in
            let session = try await SockwayClient.connect(
                to: "http://127.0.0.1:\(port)/engine.io",
                configuration: .init(transports: [transport])
            )
            #expect(session.transport == transport)
            let messages = ["", "plain", "\u{1F600}", "\"quoted\"", String(repeating: "e", count: 50_000)]
            for message in messages { session.send(message) }
            var received: [String] = []
            var iterator = session.messages.makeAsyncIterator()
            while received.count < messages.count, let next = await iterator.next() { received.append(next) }
            expectSame(received, messages)
            #expect(sockway.sessionCount == 1)
            session.close()
            #expect(try await eventually { sockway.sessionCount == 0 })
        }
    }

    // The Engine.IO handshake offers the WebSocket upgrade; an unknown session gets 400.
    @Test func engineIOHandshake() async throws {
        try await withApplication { port, _ in
            let handshake = try await RawConnection(port: port, request: "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let text = try await handshake.read(until: "maxPayload")
            #expect(text.contains("\"upgrades\":[\"websocket\"]"), "\(text)")
            await handshake.close()

            let unknown = try await RawConnection(port: port, request: "GET /engine.io/?EIO=4&transport=polling&sid=nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let refused = try await unknown.read(until: "message")
            #expect(refused.hasPrefix("HTTP/1.1 400"), "\(refused)")
            await unknown.close()
        }
    }

    // Socket.IO rides on an Engine.IO endpoint: CONNECT to the main namespace, an event answered by
    // the server's handler, over long-polling requests to Hummingbird.
    @Test func socketIOOverPolling() async throws {
        try await withApplication { port, _ in
            func request(_ method: String, _ query: String, body: String = "") async throws -> RawConnection {
                try await RawConnection(
                    port: port,
                    request: "\(method) /socket.io/?EIO=4&transport=polling\(query) HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
                )
            }
            let handshake = try await request("GET", "")
            let opened = try await handshake.read(until: "maxPayload")
            await handshake.close()
            let sid = try #require(opened.components(separatedBy: "\"sid\":\"").last?.prefix(22)).description
            let connect = try await request("POST", "&sid=\(sid)", body: "40")
            #expect(try await connect.read(until: "ok").hasSuffix("ok"))
            await connect.close()
            let connected = try await request("GET", "&sid=\(sid)")
            #expect(try await connected.read(until: "40{").contains("40{\"sid\":"))
            await connected.close()
            let emit = try await request("POST", "&sid=\(sid)", body: #"42["ping",1]"#)
            #expect(try await emit.read(until: "ok").hasSuffix("ok"))
            await emit.close()
            let answer = try await request("GET", "&sid=\(sid)")
            #expect(try await answer.read(until: "pong").contains(#"42["pong",1]"#))
            await answer.close()
        }
    }

    // A WebSocket client that goes away without a close handshake: the session closes and is reaped.
    @Test func webSocketClientDepartureReapsTheSession() async throws {
        try await withApplication { port, sockway in
            let session = try await SockwayClient.connect(
                to: "http://127.0.0.1:\(port)/echo",
                configuration: .init(transports: [.webSocket])
            )
            session.send("x")
            var iterator = session.messages.makeAsyncIterator()
            #expect(await iterator.next() == "x")
            #expect(sockway.sessionCount == 1)
            session.close()
            #expect(try await eventually { sockway.sessionCount == 0 })
        }
    }

    // The official sockjs-client (Node, Debian's node-sockjs-client) on websocket, xhr-streaming,
    // xhr-polling and eventsource against the Hummingbird application.
    @Test(.enabled(if: SockJSClientNode.available, "needs node and Debian's node-sockjs-client (scripts/test installs them)"))
    func officialSockJSClient() async throws {
        try await withApplication(options: .init()) { port, _ in
            let (status, output) = try await SockJSClientNode.run(
                url: "http://127.0.0.1:\(port)/echo",
                configurations: ["websocket", "xhr-streaming", "xhr-polling", "eventsource"]
            )
            #expect(status == 0, "\(output)")
            #expect(output.contains("4 passed, 0 failed"), "\(output)")
        }
    }
}

extension SockwayHummingbirdTests {
    // python-engineio's and python-socketio's clients (scripts/interop, PyPI, pinned) against Sockway's
    // demo endpoints mounted in Hummingbird: Engine.IO text, binary, order, polling only, WebSocket only
    // and the upgrade from polling; the Socket.IO reference checks on every transport mode. Run by
    // scripts/test once their virtualenv exists (SOCKWAY_PYTHON_INTEROP=1).
    @Test(.enabled(if: PythonChecks.enabled, "set SOCKWAY_PYTHON_INTEROP=1 (scripts/test does, after python-engineio's venv is made)"))
    func pythonEngineIOAndSocketIOClients() async throws {
        // A 5 s ping, as scripts/test gives sockway serve for these clients (see there).
        let engineIO = EngineIOOptions(pingInterval: .seconds(5), pingTimeout: .seconds(5))
        let endpoints = SockwayDemoEndpoints.all(options: .init(), engineIO: engineIO)
        try await withApplication(options: .init(), endpoints: endpoints) { port, _ in
            let url = "http://127.0.0.1:\(port)"
            let engineIOChecks = try await PythonChecks.run("engineio_checks.py", ["--url", url])
            #expect(engineIOChecks.status == 0, "\(engineIOChecks.output)")
            #expect(engineIOChecks.output.contains(" passed, 0 failed"), "\(engineIOChecks.output)")
            let socketIOChecks = try await PythonChecks.run("socketio_checks.py", ["--url", url, "--transports", "all"])
            #expect(socketIOChecks.status == 0, "\(socketIOChecks.output)")
            #expect(socketIOChecks.output.contains(" passed, 0 failed"), "\(socketIOChecks.output)")
        }
    }
}

/// The Python interop scripts, run with the machine's python3 (they make or reuse their venv).
enum PythonChecks {
    static let directory = SockJSClientNode.script.deletingLastPathComponent()

    static var enabled: Bool {
        ProcessInfo.processInfo.environment["SOCKWAY_PYTHON_INTEROP"] == "1"
    }

    static func run(_ script: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        let (status, output) = try await runProcess("/usr/bin/env", ["python3", directory.appendingPathComponent(script).path] + arguments)
        print("\(script) through Hummingbird: \(output.split(separator: "\n").last { $0.contains(" passed, ") } ?? "no summary")")
        return (status, output)
    }
}

/// The README's example, kept compiling here (built, not run).
struct AppContext: RequestContext, WebSocketRequestContext, SockwayConnectionContext {
    var coreContext: CoreRequestContextStorage
    let webSocket = WebSocketHandlerReference<Self>()
    let channel: any Channel
    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

func readmeApplication() -> some ApplicationProtocol {
    let sockway = SockwayRoutes(endpoints: [
        .async("/echo") { session in
            for await message in session.messages { session.send(message) }
        },
        .engineIO("/engine.io") { session in
            for await message in session.messages { session.send(message) }
        },
    ])
    let router = Router(context: AppContext.self)
    router.get("/hello") { _, _ in "Hello" }
    sockway.addRoutes(to: router)
    let webSocketRouter = Router(context: AppContext.self)
    sockway.addWebSocketRoutes(to: webSocketRouter)
    let app = Application(
        router: router,
        server: .http1WebSocketUpgrade(
            webSocketRouter: webSocketRouter,
            configuration: .init(ws: .init(maxFrameSize: 1 << 20, validateUTF8: true))
        ),
        configuration: .init(address: .hostname("127.0.0.1", port: 8080))
    )
    return app
}

/// Runs `scripts/interop/sockjs-client-echo.js` with Node.
enum SockJSClientNode {
    static let nodePath = "/usr/share/nodejs"
    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/interop/sockjs-client-echo.js")

    static var node: String? {
        ["/usr/bin/node", "/usr/local/bin/node", "/usr/bin/nodejs"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static var available: Bool {
        node != nil && FileManager.default.fileExists(atPath: nodePath + "/sockjs-client")
            && FileManager.default.fileExists(atPath: script.path)
    }

    static func run(url: String, configurations: [String]) async throws -> (status: Int32, output: String) {
        var environment = ProcessInfo.processInfo.environment
        environment["NODE_PATH"] = nodePath
        return try await runProcess(node ?? "/usr/bin/node", [script.path, url] + configurations, environment: environment)
    }
}

/// Runs a program to its end; its exit status and everything it wrote (standard output and error).
func runProcess(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) async throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    // Read on a thread of its own: the pipe must be drained while the program runs.
    let output = await withCheckedContinuation { (continuation: CheckedContinuation<String, Never>) in
        Thread.detachNewThread {
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            continuation.resume(returning: String(decoding: data, as: UTF8.self))
        }
    }
    process.waitUntilExit()
    return (process.terminationStatus, output)
}


