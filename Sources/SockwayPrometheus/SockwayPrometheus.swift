import CoreMetrics
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle
import SockwayServer

/// Serves `GET /metrics` in Prometheus' text format (version 0.0.4) on a port of its own, from a
/// swift-prometheus registry.
///
/// ```swift
/// let registry = PrometheusCollectorRegistry()
/// let factory = SockwayPrometheusExporter.makeFactory(registry: registry)
/// let server = SockwayServer(configuration: .init(metrics: .init(factory: factory)), endpoints: endpoints)
/// let exporter = SockwayPrometheusExporter(port: 9090, registry: registry) { await server.publishMetrics() }
/// try await ServiceGroup(services: [server, exporter], logger: logger).run()
/// ```
///
/// Each scrape first runs `beforeScrape` (`SockwayServer.publishMetrics()`), so that it reads the
/// event loops' counts as they are now rather than as last published. Any other path gets `404`, any
/// other method `405`; the listener is meant for a private address (the default is loopback).
public final class SockwayPrometheusExporter: Service, Sendable {
    public let host: String
    public let port: Int
    public let registry: PrometheusCollectorRegistry
    private let beforeScrape: (@Sendable () async -> Void)?
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let bound = BoundAddress()

    /// - Parameters:
    ///   - host: the address to listen on. Default loopback.
    ///   - port: the port; `0` picks a free one (see ``localAddress``).
    ///   - registry: what a scrape renders.
    ///   - logger: where the listener's address is logged when it starts.
    ///   - beforeScrape: run before each scrape renders the registry.
    public init(
        host: String = "127.0.0.1",
        port: Int,
        registry: PrometheusCollectorRegistry,
        logger: Logger = Logger(label: "sockway.metrics"),
        beforeScrape: (@Sendable () async -> Void)? = nil
    ) {
        self.host = host
        self.port = port
        self.registry = registry
        self.logger = logger
        self.beforeScrape = beforeScrape
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    /// A swift-prometheus factory on `registry` with Sockway's histogram buckets
    /// (`SockwayMetricsOptions.suggestedDurationBuckets`).
    public static func makeFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets.merge(SockwayMetricsOptions.suggestedDurationBuckets) { current, _ in current }
        return factory
    }

    /// The address the exporter listens on, once it does. `nil` if binding failed.
    public var localAddress: SocketAddress? {
        get async { await bound.value }
    }

    public func run() async throws {
        let scrape = Scrape(registry: registry, beforeScrape: beforeScrape)
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(scrape: scrape))
                    }
                }
                .bind(host: host, port: port).get()
        } catch {
            bound.publish(nil)
            try? await group.shutdownGracefully()
            throw error
        }
        bound.publish(channel.localAddress)
        if let address = channel.localAddress {
            logger.info("Metrics at http://\(address.ipAddress ?? host):\(address.port ?? port)/metrics")
        }
        // Cancelled too (the gateway failed to start, say), or waiting for the listener would not end.
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onCancelOrGracefulShutdown: {
            channel.close(promise: nil)
        }
        try await group.shutdownGracefully()
    }
}

/// Renders the registry, after `beforeScrape`.
struct Scrape: Sendable {
    let registry: PrometheusCollectorRegistry
    let beforeScrape: (@Sendable () async -> Void)?

    func render() async -> [UInt8] {
        await beforeScrape?()
        return registry.emitToBuffer()
    }
}

/// Answers one request at a time (the pipeline's HTTP/1.1 decoder holds the next ones back).
final class MetricsHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let scrape: Scrape
    private var head: HTTPRequestHead?

    init(scrape: Scrape) {
        self.scrape = scrape
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            head = request
        case .body:
            break
        case .end:
            guard let request = head else { return }
            head = nil
            answer(request, context: context)
        }
    }

    private func answer(_ request: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = request.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard path == "/metrics" else { return respond(.notFound, body: Array("Not found: try /metrics\n".utf8), request: request, context: context) }
        guard request.method == .GET || request.method == .HEAD else {
            return respond(.methodNotAllowed, body: Array("Use GET\n".utf8), request: request, context: context)
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let scrape = self.scrape
        let loop = context.eventLoop
        Task {
            let body = await scrape.render()
            loop.execute {
                let (handler, context) = loopBound.value
                handler.respond(.ok, body: body, contentType: "text/plain; version=0.0.4; charset=utf-8", request: request, context: context)
            }
        }
    }

    private func respond(
        _ status: HTTPResponseStatus,
        body: [UInt8],
        contentType: String = "text/plain; charset=utf-8",
        request: HTTPRequestHead,
        context: ChannelHandlerContext
    ) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        if status == .methodNotAllowed { headers.add(name: "Allow", value: "GET, HEAD") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let keepAlive = request.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}
