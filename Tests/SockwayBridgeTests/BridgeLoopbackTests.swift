import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SockwayBridge
import SockwayClient
import SockwayCore
import SockwayServer
import SockwayTestSupport
import Testing

/// Runs servers with `endpoints` (each a list) on free loopback ports, and `body` with their ports.
private func withServers(
    _ endpointSets: [[SockwayEndpoint]],
    _ body: @Sendable ([Int]) async throws -> Void
) async throws {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    let servers = endpointSets.map { endpoints in
        SockwayServer(configuration: .init(host: "127.0.0.1", port: 0, eventLoopThreads: 2), logger: logger, endpoints: endpoints)
    }
    let group = ServiceGroup(configuration: .init(services: servers, logger: logger))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        var ports: [Int] = []
        for server in servers { ports.append(try #require(await server.localAddress?.port)) }
        let result: Result<Void, any Error>
        do {
            try await body(ports)
            result = .success(())
        } catch {
            result = .failure(error)
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        try result.get()
    }
}

/// A TCP echo service on NIO: every byte read is written back.
private final class TCPEcho: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
    }
}

private func withTCPEcho(_ body: (Int) async throws -> Void) async throws {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .childChannelInitializer { channel in channel.pipeline.addHandler(TCPEcho()) }
        .bind(host: "127.0.0.1", port: 0)
        .get()
    do {
        try await body(channel.localAddress!.port!)
    } catch {
        try? await channel.close()
        throw error
    }
    try await channel.close()
}

private let messages = ["", "plain", "\"quotes\" and \\backslashes\\", "\u{2028}\u{1F600}", String(repeating: "x", count: 70_000)]

private func echo(_ sent: [String], over session: SockwayClientSession) async -> [String] {
    for message in sent { session.send(message) }
    var received: [String] = []
    var iterator = session.messages.makeAsyncIterator()
    while received.count < sent.count, let next = await iterator.next() { received.append(next) }
    return received
}

/// Waits until the session has closed, and returns why.
private func closeReason(of session: SockwayClientSession) async -> SockwayCloseReason? {
    var iterator = session.messages.makeAsyncIterator()
    while await iterator.next() != nil {}
    return session.closeReason
}

@Suite struct BridgeLoopbackTests {
    // Every SockJS transport, through a bridge to a WebSocket upstream (Sockway's own raw echo URL here;
    // scripts/test runs the same against Python's `websockets`), carries messages both ways, in order.
    @Test(arguments: SockwayClientTransport.sockJS)
    func bridgesToAWebSocketUpstream(transport: SockwayClientTransport) async throws {
        try await withServers([[.eventLoop("/echo") { _ in EchoDelegate() }]]) { upstreamPorts in
            let upstream = try SockwayUpstream("ws://127.0.0.1:\(upstreamPorts[0])/echo/websocket")
            try await withServers([[.bridge("/bridge", to: upstream)]]) { ports in
                let session = try await SockwayClient.connect(
                    to: "http://127.0.0.1:\(ports[0])/bridge",
                    configuration: .init(transports: [transport])
                )
                #expect(await echo(messages, over: session) == messages)
                session.close()
            }
        }
    }

    // The same through a newline-framed TCP upstream; a message holding a newline cannot be carried
    // and closes the session with 1007, after the messages before it.
    @Test(arguments: [SockwayClientTransport.webSocket, .xhrPolling])
    func bridgesToATCPUpstream(transport: SockwayClientTransport) async throws {
        try await withTCPEcho { tcpPort in
            let newline = try SockwayUpstream("tcp://127.0.0.1:\(tcpPort)")
            try await withServers([[
                .bridge("/lines", to: newline),
                .bridge("/framed", to: newline, bridge: .init(tcpFraming: .lengthPrefixed)),
            ]]) { ports in
                let framed = try await SockwayClient.connect(to: "http://127.0.0.1:\(ports[0])/framed", configuration: .init(transports: [transport]))
                let withNewlines = messages + ["two\nlines"]
                #expect(await echo(withNewlines, over: framed) == withNewlines)
                framed.close()
                let lines = try await SockwayClient.connect(to: "http://127.0.0.1:\(ports[0])/lines", configuration: .init(transports: [transport]))
                #expect(await echo(messages, over: lines) == messages)
                lines.send("two\nlines")
                #expect(await closeReason(of: lines)?.code == 1007)
            }
        }
    }

    // The upstream's close reaches the client with its code and reason (Sockway's /close URL closes
    // every session with 3000 "Go away!").
    @Test func upstreamCloseReachesTheClient() async throws {
        try await withServers([SockwayDemoEndpoints.all()]) { upstreamPorts in
            let upstream = try SockwayUpstream("ws://127.0.0.1:\(upstreamPorts[0])/close/websocket")
            try await withServers([[.bridge("/bridge", to: upstream)]]) { ports in
                for transport in [SockwayClientTransport.webSocket, .xhrStreaming] {
                    let session = try await SockwayClient.connect(to: "http://127.0.0.1:\(ports[0])/bridge", configuration: .init(transports: [transport]))
                    #expect(await closeReason(of: session) == SockwayCloseReason(code: 3000, reason: "Go away!"))
                }
            }
        }
    }

    // Nothing listens upstream: the session opens, retries with back-off until the connect timeout,
    // then closes with 1014 and the cause; a WebSocket upstream that refuses the handshake likewise.
    @Test func unreachableUpstreamClosesWithTheCause() async throws {
        let refusing = try RefusingPort()
        let port = refusing.port
        try await withServers([SockwayDemoEndpoints.all()]) { upstreamPorts in
            let options = SockwayBridgeOptions(connectTimeout: .milliseconds(800), initialBackoff: .milliseconds(50))
            try await withServers([[
                .bridge("/down", to: try SockwayUpstream("tcp://127.0.0.1:\(port)"), bridge: options),
                .bridge("/refused", to: try SockwayUpstream("ws://127.0.0.1:\(upstreamPorts[0])/no-such-path"), bridge: options),
            ]]) { ports in
                let down = try await SockwayClient.connect(to: "http://127.0.0.1:\(ports[0])/down", configuration: .init(transports: [.webSocket]))
                down.send("held, then dropped with the session")
                #expect(await closeReason(of: down) == SockwayCloseReason(code: 1014, reason: "Upstream unreachable (connection refused)"))
                let refused = try await SockwayClient.connect(to: "http://127.0.0.1:\(ports[0])/refused", configuration: .init(transports: [.xhrPolling]))
                let reason = await closeReason(of: refused)
                #expect(reason?.code == 1014)
                #expect(reason?.reason.contains("handshake refused") == true)
            }
        }
        withExtendedLifetime(refusing) {}
    }
}
