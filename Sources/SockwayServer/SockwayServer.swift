#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import ServiceLifecycle
import SockwayCluster
import SockwayEngineIO
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
    let logger: Logger
    /// The TLS context new connections get (``SockwayConfiguration/tls``); `nil`: plain HTTP.
    let tlsContext: TLSContextBox?
    private let boundAddress = BoundAddress()

    public init(
        configuration: SockwayConfiguration = .init(),
        logger: Logger = Logger(label: "sockway"),
        endpoints: [SockwayEndpoint]
    ) {
        self.configuration = configuration
        self.logger = logger
        self.tlsContext = configuration.tls.map(TLSContextBox.init(configuration:))
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.eventLoopThreads))
        var loops: [any EventLoop] = []
        var iterator = group.makeIterator()
        while let loop = iterator.next() { loops.append(loop) }
        self.runtime = ServerRuntime(configuration: configuration, endpoints: endpoints, loops: loops, logger: logger)
        self.directSubscription = configuration.bus?.subscribe(to: Self.directStream) { [weak runtime] delivery in
            guard let direct = delivery.value as? SessionDirectMessages ?? (try? SessionDirectMessages(decoding: delivery.payload)) else { return }
            runtime?.sendHere(direct.messages, toSession: direct.sessionID, at: direct.prefix)
        }
    }

    /// The bus stream of ``send(_:toSession:at:)``: every node gets each message and the one that holds
    /// the session delivers it.
    static let directStream = "sockway:direct"
    private let directSubscription: BroadcastSubscription?

    /// Sends `messages` to the session `id` (a SockJS session id, an Engine.IO sid) of the endpoint at
    /// `prefix`, on whichever node holds it: through ``SockwayConfiguration/bus`` when there is one,
    /// else on this node. Nothing happens when no node holds such a session.
    public func send(_ messages: [String], toSession id: String, at prefix: String) {
        guard !messages.isEmpty else { return }
        guard let bus = configuration.bus else { return runtime.sendHere(messages, toSession: id, at: prefix) }
        let direct = SessionDirectMessages(prefix: prefix, sessionID: id, messages: messages)
        bus.publish(direct, on: Self.directStream) { direct.encoded() }
    }

    /// The address the server listens on, once it does (useful with port 0). `nil` if binding failed.
    public var localAddress: SocketAddress? {
        get async { await boundAddress.value }
    }

    /// Clients refused so far, by reason (`malformed_request`, `head_timeout`, `session_limit`,
    /// `foreign_origin`...; see ``SockwayRefusal/name``), for metrics.
    public var refusalCounts: [String: Int] { runtime.refusals.totals }

    /// Sessions alive now, over every endpoint.
    public var sessionCount: Int { runtime.budget.sessions }

    /// Hands what the event loops have counted since the last time to swift-metrics now, rather than
    /// at the next ``SockwayMetricsOptions/publishInterval`` (a Prometheus scrape calls it first, so
    /// that it reads current values). Does nothing when ``SockwayConfiguration/metrics`` is `nil`.
    public func publishMetrics() async {
        guard let publisher = metricsPublisher else { return }
        try? await publisher.publish(on: group.next()).get()
    }

    private var metricsPublisher: MetricsPublisher? { runtime.metricsPublisher }

    /// Closes every open session of every endpoint with `code` and `reason`.
    public func closeAllSessions(code: Int = 1001, reason: String = "Server shutting down") async {
        await closeAllSessions(code: code, reason: reason, spreadOver: .zero)
    }

    private func closeAllSessions(code: Int, reason: String, spreadOver window: TimeAmount) async {
        let close = SockJSCloseReason(code: code, reason: reason)
        for endpoint in runtime.endpoints {
            try? await endpoint.store.closeAll(close, spreadOver: window).get()
        }
        for endpoint in runtime.engineIOEndpoints {
            try? await endpoint.store.closeAll(close, spreadOver: window).get()
        }
    }

    /// The drain of a graceful shutdown: no new session; the open ones closed over
    /// ``SockwayConfiguration/drainWindow``; then any left (all, without a window).
    private func drain() async {
        runtime.budget.startDraining()
        let window = configuration.drainWindow
        if window.nanoseconds > 0 {
            logger.info("draining: closing the open sessions over the drain window", metadata: ["sessions": "\(runtime.budget.sessions)", "window": "\(window)"])
            await closeAllSessions(code: 1001, reason: "Server shutting down", spreadOver: window)
            try? await Task.sleep(for: .nanoseconds(window.nanoseconds))
        }
        await closeAllSessions()
    }

    public func run() async throws {
        let channel: any Channel
        do {
            // A TLS certificate that cannot be read stops the start, before the port is taken.
            try tlsContext?.reload()
            channel = try await makeBootstrap().bind(host: configuration.host, port: configuration.port).get()
        } catch {
            boundAddress.publish(nil)
            try? await group.shutdownGracefully()
            throw error
        }
        boundAddress.publish(channel.localAddress)
        if let address = channel.localAddress {
            logger.info("Sockway listening on \(tlsContext == nil ? "http" : "https")://\(Self.urlHost(address)):\(address.port ?? configuration.port)/")
        }
        var repeated = configuration.memoryTrimInterval.map { interval in
            [group.next().scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in ReleaseFreedMemory.now() }]
        } ?? []
        if let options = configuration.metrics, let publisher = metricsPublisher, let factory = runtime.tallies.factory {
            let loop = group.next()
            repeated.append(
                loop.scheduleRepeatedAsyncTask(initialDelay: options.publishInterval, delay: options.publishInterval) { _ in
                    publisher.publish(on: loop)
                }
            )
            repeated += MetricsPublisher.probeLag(of: runtime.loops, every: options.eventLoopLagProbeInterval, factory: factory)
        }
        let sighup = configuration.tls?.reloadOnSIGHUP == true ? SIGHUPReloader { try? self.reloadTLS() } : nil
        defer { sighup?.cancel() }
        // Cancelled too (another service of the group failed, say): the listener must close, or
        // waiting for it would never end.
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onCancelOrGracefulShutdown: {
            Task {
                await self.drain()
                try? await Task.sleep(for: .nanoseconds(self.configuration.shutdownGracePeriod.nanoseconds))
                try? await channel.close()
            }
        }
        // Before the loops stop: cancelling a repeated task schedules on its loop.
        for task in repeated { task.cancel() }
        try await group.shutdownGracefully()
    }

    private static func urlHost(_ address: SocketAddress) -> String {
        switch address {
        case .v6: return "[\(address.ipAddress ?? "::1")]"
        default: return address.ipAddress ?? "127.0.0.1"
        }
    }

    private func makeBootstrap() -> ServerBootstrap {
        let runtime = self.runtime
        let tls = self.tlsContext
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
                    // TLS first: the HTTP handler, and the WebSocket handler that replaces it on an
                    // upgrade, then read and write plaintext (https and wss alike).
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.current()))
                    }
                    try Self.configurePipeline(channel: channel, runtime: runtime)
                }
            }
    }

    /// Installs the HTTP server pipeline with the WebSocket upgrader and Sockway's handler.
    static func configurePipeline(channel: any Channel, runtime: ServerRuntime) throws {
        let upgrader = SockwayWebSocketUpgrader(
            handshake: NIOWebSocketServerUpgrader(
                maxFrameSize: runtime.maxMessageBytes,
                automaticErrorHandling: false,
                shouldUpgrade: { channel, head in
                    Self.webSocketTarget(head, runtime: runtime, on: channel.eventLoop).map { target in
                        guard let target else { return nil }
                        var headers = HTTPHeaders()
                        if let deflate = Self.negotiateDeflate(head, options: target.options) {
                            headers.add(name: "Sec-WebSocket-Extensions", value: deflate.responseHeaderValue)
                        }
                        return headers
                    }
                },
                upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() }
            ),
            installHandler: { channel, head in
                guard let target = Self.webSocketLink(head, runtime: runtime) else {
                    throw NIOWebSocketUpgradeError.unsupportedWebSocketTarget
                }
                // The same pure negotiation as for the response header, so both agree.
                let codec = Self.negotiateDeflate(head, options: target.options).map {
                    PerMessageDeflateCodec(
                        parameters: $0,
                        configuration: target.options.compression,
                        resources: runtime.deflateResources(on: channel.eventLoop)
                    )
                }
                try channel.pipeline.syncOperations.addHandler(
                    SockwayWebSocketHandler(
                        options: target.options,
                        link: target.link,
                        compression: codec,
                        refusals: runtime.refusals,
                        deflateTally: codec == nil ? nil : runtime.tallies.tally(for: channel.eventLoop)
                    )
                )
            }
        )
        // Sockway reads requests with its own strict parser (SockwayHTTP) and performs every upgrade
        // itself; NIO's encoder writes the responses.
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(HTTPResponseEncoder())
        try sync.addHandler(SockwayHTTPHandler(server: runtime, upgrader: upgrader))
    }

    static func negotiateDeflate(_ head: HTTPRequestHead, options: SockwayEndpointOptions) -> PerMessageDeflateParameters? {
        PerMessageDeflateNegotiation.negotiate(
            offers: head.headers[canonicalForm: "sec-websocket-extensions"].map(String.init),
            configuration: options.compression
        )
    }

    /// What a WebSocket upgrade request is for, decided before the `101`.
    enum WebSocketTarget {
        case sockJS(EndpointRuntime, SockJSWebSocketLink.Framing, sessionID: String)
        case engineIO(EngineIORuntime, upgradeSID: String?)

        var options: SockwayEndpointOptions {
            switch self {
            case .sockJS(let endpoint, _, _): endpoint.endpoint.options
            case .engineIO(let endpoint, _): endpoint.webSocketOptions
            }
        }
    }

    /// The target of a WebSocket upgrade request, or `nil` if the URL takes none (the request then
    /// reaches the HTTP handler, which answers it). An Engine.IO upgrade of a polling session is
    /// checked on the session's loop.
    static func webSocketTarget(_ head: HTTPRequestHead, runtime: ServerRuntime, on loop: any EventLoop) -> EventLoopFuture<WebSocketTarget?> {
        // The origin was checked before (`SockwayHTTPHandler.upgrade`: a foreign one gets 403).
        guard head.method == .GET else { return loop.makeSucceededFuture(nil) }
        let (path, queryString) = head.target
        if let engineIO = runtime.matchEngineIO(path: path) {
            let origin = head.headers.first(name: "origin")
            let query = EngineIOQuery(parsing: queryString)
            let decide: @Sendable () -> WebSocketTarget? = {
                do {
                    switch try engineIO.rules.route(method: "GET", query: query, isUpgrade: true, origin: origin, sessionTransport: engineIO.transport(ofSession:)) {
                    case .handshake(.websocket): return .engineIO(engineIO, upgradeSID: nil)
                    case .webSocket(let sid): return .engineIO(engineIO, upgradeSID: sid)
                    default: return nil
                    }
                } catch let error as EngineIOError where error.badRequestReason == .alreadyOnWebSocket {
                    // As the reference: the WebSocket opens, then closes at once (the link finds
                    // the session upgraded already).
                    return query.sid.map { .engineIO(engineIO, upgradeSID: $0) }
                } catch {
                    return nil
                }
            }
            guard let sid = query.sid, !sid.isEmpty else { return loop.makeSucceededFuture(decide()) }
            return engineIO.store.owner(of: sid).submit(decide).hop(to: loop)
        }
        guard let (endpoint, relative) = runtime.match(path: path) else { return loop.makeSucceededFuture(nil) }
        let rules = endpoint.rules
        guard rules.webSocketEnabled else { return loop.makeSucceededFuture(nil) }
        switch SockJSRoute.parse(relative) {
        case .rawWebSocket:
            return loop.makeSucceededFuture(.sockJS(endpoint, .raw, sessionID: ""))
        case .session(let id, let transport) where transport == .webSocket && rules.isEnabled(transport):
            return loop.makeSucceededFuture(.sockJS(endpoint, .sockJS, sessionID: id))
        default:
            return loop.makeSucceededFuture(nil)
        }
    }

    /// The session side of an accepted upgrade (its target was checked in `shouldUpgrade`).
    static func webSocketLink(_ head: HTTPRequestHead, runtime: ServerRuntime) -> (options: SockwayEndpointOptions, link: any WebSocketSessionLink)? {
        let (path, queryString) = head.target
        if let engineIO = runtime.matchEngineIO(path: path) {
            let query = EngineIOQuery(parsing: queryString)
            let sid = query.sid.flatMap { $0.isEmpty ? nil : $0 }
            return (engineIO.webSocketOptions, EngineIOWebSocketLink(runtime: engineIO, upgradeSID: sid, requestHeaders: head.headers))
        }
        guard let (endpoint, relative) = runtime.match(path: path) else { return nil }
        switch SockJSRoute.parse(relative) {
        case .rawWebSocket:
            return (endpoint.endpoint.options, SockJSWebSocketLink(runtime: endpoint, framing: .raw, sessionID: "", requestHeaders: head.headers))
        case .session(let id, _):
            return (endpoint.endpoint.options, SockJSWebSocketLink(runtime: endpoint, framing: .sockJS, sessionID: id, requestHeaders: head.headers))
        default:
            return nil
        }
    }
}

/// The WebSocket upgrade: NIO's upgrader checks the handshake and builds the 101 response headers;
/// Sockway's HTTP handler writes them and puts `installHandler`'s handler in its place, which reads
/// and writes frames itself (NIO's frame decoder and encoder would be two more handlers with their
/// buffers on every idle connection, and its decoder unmasks a byte at a time).
struct SockwayWebSocketUpgrader: Sendable {
    let handshake: NIOWebSocketServerUpgrader
    let installHandler: @Sendable (any Channel, HTTPRequestHead) throws -> Void

    func buildUpgradeResponse(channel: any Channel, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<HTTPHeaders> {
        handshake.buildUpgradeResponse(channel: channel, upgradeRequest: upgradeRequest, initialResponseHeaders: [:])
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
