#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import ServiceLifecycle
import SockwaySockJS
import SockwayWebSocket

/// A SockJS gateway: serves its endpoints over every SockJS transport and raw WebSocket.
///
/// A swift-service-lifecycle `Service`: run it in a `ServiceGroup`. On graceful shutdown every open
/// session gets a close frame (1001 "Server shutting down") before the listener closes.
///
/// ```swift
/// let server = SockwayServer(endpoints: [
///     .async("/echo") { session in
///         for await message in session.messages { session.send(message) }
///     }
/// ])
/// try await ServiceGroup(services: [server], logger: logger).run()
/// ```
public final class SockwayServer: Service, Sendable {
    public let configuration: SockwayConfiguration
    let runtime: ServerRuntime
    private let group: MultiThreadedEventLoopGroup
    private let logger: Logger
    private let boundAddress = NIOLockedValueBox<(address: SocketAddress?, waiters: [CheckedContinuation<SocketAddress?, Never>], done: Bool)>((nil, [], false))

    public init(
        configuration: SockwayConfiguration = .init(),
        logger: Logger = Logger(label: "sockway"),
        endpoints: [SockwayEndpoint]
    ) {
        self.configuration = configuration
        self.logger = logger
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.eventLoopThreads))
        var loops: [any EventLoop] = []
        var iterator = group.makeIterator()
        while let loop = iterator.next() { loops.append(loop) }
        self.runtime = ServerRuntime(configuration: configuration, endpoints: endpoints, loops: loops)
    }

    /// The address the server listens on, once it does (useful with port 0). `nil` if binding failed.
    public var localAddress: SocketAddress? {
        get async {
            await withCheckedContinuation { continuation in
                let ready = boundAddress.withLockedValue { state -> SocketAddress?? in
                    if state.done { return .some(state.address) }
                    state.waiters.append(continuation)
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }

    /// Closes every open session of every endpoint with `code` and `reason`.
    public func closeAllSessions(code: Int = 1001, reason: String = "Server shutting down") async {
        let close = SockJSCloseReason(code: code, reason: reason)
        for endpoint in runtime.endpoints {
            try? await endpoint.store.closeAll(close).get()
        }
    }

    public func run() async throws {
        let channel: any Channel
        do {
            channel = try await makeBootstrap().bind(host: configuration.host, port: configuration.port).get()
        } catch {
            publish(address: nil)
            try? await group.shutdownGracefully()
            throw error
        }
        publish(address: channel.localAddress)
        if let address = channel.localAddress {
            logger.info("Sockway listening on http://\(Self.urlHost(address)):\(address.port ?? configuration.port)/")
        }
        let trimming = configuration.memoryTrimInterval.map { interval in
            group.next().scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in ReleaseFreedMemory.now() }
        }
        defer { trimming?.cancel() }
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onGracefulShutdown: {
            Task {
                await self.closeAllSessions()
                try? await Task.sleep(for: .nanoseconds(self.configuration.shutdownGracePeriod.nanoseconds))
                try? await channel.close()
            }
        }
        try await group.shutdownGracefully()
    }

    private func publish(address: SocketAddress?) {
        let waiters = boundAddress.withLockedValue { state in
            state.address = address
            state.done = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: address) }
    }

    private static func urlHost(_ address: SocketAddress) -> String {
        switch address {
        case .v6: return "[\(address.ipAddress ?? "::1")]"
        default: return address.ipAddress ?? "127.0.0.1"
        }
    }

    private func makeBootstrap() -> ServerBootstrap {
        let runtime = self.runtime
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            // NIO keeps each connection's receive buffer for reuse, so its first size is memory that every
            // idle connection holds; the adaptive allocator grows it for connections that need more.
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 256, initial: 512, maximum: 65536))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Self.configurePipeline(channel: channel, runtime: runtime)
                }
            }
    }

    /// Installs the HTTP server pipeline with the WebSocket upgrader and Sockway's handler.
    static func configurePipeline(channel: any Channel, runtime: ServerRuntime) throws {
        let httpHandler = SockwayHTTPHandler(server: runtime)
        let upgrader = SockwayWebSocketUpgrader(
            handshake: NIOWebSocketServerUpgrader(
                maxFrameSize: runtime.maxMessageBytes,
                automaticErrorHandling: false,
                shouldUpgrade: { channel, head in
                    guard let (endpoint, _, _) = Self.webSocketTarget(head, runtime: runtime) else {
                        return channel.eventLoop.makeSucceededFuture(nil)
                    }
                    var headers = HTTPHeaders()
                    if let deflate = Self.negotiateDeflate(head, endpoint: endpoint) {
                        headers.add(name: "Sec-WebSocket-Extensions", value: deflate.responseHeaderValue)
                    }
                    return channel.eventLoop.makeSucceededFuture(headers)
                },
                upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() }
            ),
            installHandler: { channel, head in
                guard let (endpoint, framing, sessionID) = Self.webSocketTarget(head, runtime: runtime) else {
                    throw NIOWebSocketUpgradeError.unsupportedWebSocketTarget
                }
                // The same pure negotiation as for the response header, so both agree.
                let codec = Self.negotiateDeflate(head, endpoint: endpoint).map {
                    PerMessageDeflateCodec(
                        parameters: $0,
                        configuration: endpoint.endpoint.options.compression,
                        resources: runtime.deflateResources(on: channel.eventLoop)
                    )
                }
                try channel.pipeline.syncOperations.addHandler(
                    SockwayWebSocketHandler(
                        options: endpoint.endpoint.options,
                        link: SockJSWebSocketLink(runtime: endpoint, framing: framing, sessionID: sessionID, requestHeaders: head.headers),
                        compression: codec
                    )
                )
            }
        )
        let sync = channel.pipeline.syncOperations
        let boundHandler = NIOLoopBound(httpHandler, eventLoop: channel.eventLoop)
        try sync.configureHTTPServerPipeline(
            withPipeliningAssistance: false,
            withServerUpgrade: (
                upgraders: [upgrader],
                completionHandler: { context in
                    context.pipeline.syncOperations.removeHandler(boundHandler.value, promise: nil)
                }
            ),
            withErrorHandling: true
        )
        try sync.addHandler(httpHandler)
    }

    static func negotiateDeflate(_ head: HTTPRequestHead, endpoint: EndpointRuntime) -> PerMessageDeflateParameters? {
        PerMessageDeflateNegotiation.negotiate(
            offers: head.headers[canonicalForm: "sec-websocket-extensions"].map(String.init),
            configuration: endpoint.endpoint.options.compression
        )
    }

    /// The endpoint and framing of a WebSocket upgrade request, or `nil` if the URL takes none.
    static func webSocketTarget(
        _ head: HTTPRequestHead,
        runtime: ServerRuntime
    ) -> (EndpointRuntime, SockJSWebSocketLink.Framing, String)? {
        guard head.method == .GET else { return nil }
        let uri = head.uri[...]
        let path = uri.firstIndex(of: "?").map { uri[..<$0] } ?? uri
        guard let (endpoint, relative) = runtime.match(path: path) else { return nil }
        let rules = endpoint.rules
        guard rules.webSocketEnabled, rules.isOriginAllowed(head.headers.first(name: "origin")) else { return nil }
        switch SockJSRoute.parse(relative) {
        case .rawWebSocket:
            return (endpoint, .raw, "")
        case .session(let id, let transport) where transport == .webSocket && rules.isEnabled(transport):
            return (endpoint, .sockJS, id)
        default:
            return nil
        }
    }
}

/// The WebSocket upgrade: NIO's upgrader checks the handshake and builds the 101 response; the
/// pipeline after it is Sockway's handler alone, which reads and writes frames itself. NIO's frame
/// decoder and encoder are two more handlers with their buffers on every idle connection, and its
/// decoder unmasks a byte at a time.
struct SockwayWebSocketUpgrader: HTTPServerProtocolUpgrader, Sendable {
    let handshake: NIOWebSocketServerUpgrader
    let installHandler: @Sendable (any Channel, HTTPRequestHead) throws -> Void

    var supportedProtocol: String { handshake.supportedProtocol }
    var requiredUpgradeHeaders: [String] { handshake.requiredUpgradeHeaders }

    func buildUpgradeResponse(
        channel: any Channel,
        upgradeRequest: HTTPRequestHead,
        initialResponseHeaders: HTTPHeaders
    ) -> EventLoopFuture<HTTPHeaders> {
        handshake.buildUpgradeResponse(
            channel: channel,
            upgradeRequest: upgradeRequest,
            initialResponseHeaders: initialResponseHeaders
        )
    }

    func upgrade(context: ChannelHandlerContext, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<Void> {
        let channel = context.channel
        return context.eventLoop.makeCompletedFuture { try installHandler(channel, upgradeRequest) }
    }
}

/// Gives memory that the allocator keeps after a load has gone back to the system (glibc's
/// `malloc_trim`): without it the heap stays at its peak size after a spike of sessions.
enum ReleaseFreedMemory {
    private typealias Trim = @convention(c) (Int) -> Int32

    /// Looked up at run time: `malloc_trim` is glibc's (the C library module does not declare it), so
    /// other C libraries simply have none.
    private static let trim: Trim? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: Trim.self)
        #else
        return nil
        #endif
    }()

    static func now() {
        _ = trim?(0)
    }
}
