import NIOCore
import NIOHTTP1
import NIOPosix

/// Where a SockJS service lives: `http://host:port/prefix`.
struct ClientTarget: Sendable, Hashable {
    var host: String
    var port: Int
    /// The service's path prefix, without a trailing slash (`""` for the root).
    var prefix: String
    /// `https://` or `wss://`.
    var isTLS = false
    /// The TLS context of an `https://` or `wss://` target (set by ``SockwayClient/connect(to:configuration:)``).
    var tls: ClientTLS?

    init(url: String) throws(SockwayClientError) {
        var rest = Substring(url)
        for scheme in ["http://", "ws://", "https://", "wss://"] where rest.hasPrefix(scheme) {
            rest = rest.dropFirst(scheme.count)
            isTLS = scheme == "https://" || scheme == "wss://"
        }
        guard rest.count < url.count else { throw .invalidURL(url) }
        let authority = rest.prefix { $0 != "/" }
        var path = String(rest.dropFirst(authority.count))
        while path.hasSuffix("/") { path.removeLast() }
        let host: Substring
        let port: Int
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            host = authority[..<colon]
            guard let parsed = Int(authority[authority.index(after: colon)...]), (1...65535).contains(parsed) else {
                throw .invalidURL(url)
            }
            port = parsed
        } else {
            host = authority
            port = isTLS ? 443 : 80
        }
        guard !host.isEmpty else { throw .invalidURL(url) }
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : String(host)
        self.port = port
        self.prefix = path
    }

    var hostHeader: String { port == (isTLS ? 443 : 80) ? host : "\(host):\(port)" }
}

/// One HTTP/1.1 keep-alive connection making one request at a time. The response reaches the caller
/// through callbacks on the connection's loop as its bytes arrive, so streaming transports see each
/// chunk when it lands.
final class HTTPClientConnection {
    struct Response {
        var onHead: (HTTPResponseHead) -> Void
        var onBody: (ByteBuffer) -> Void
        /// `nil` when the response ended normally.
        var onEnd: ((any Error)?) -> Void
    }

    let channel: any Channel
    private let handler: HTTPClientResponseHandler
    private let meter: TrafficMeter
    private let target: ClientTarget

    private init(channel: any Channel, handler: HTTPClientResponseHandler, meter: TrafficMeter, target: ClientTarget) {
        self.channel = channel
        self.handler = handler
        self.meter = meter
        self.target = target
    }

    /// Whether another request may go on this connection.
    var isReusable: Bool { channel.isActive && handler.keepAlive && handler.current == nil }

    static func connect(
        to target: ClientTarget,
        on eventLoop: any EventLoop,
        meter: TrafficMeter,
        timeout: TimeAmount,
        receiveBytesPerSecond: Int? = nil
    ) -> EventLoopFuture<HTTPClientConnection> {
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
        return TrafficCountingHandler.applyReceiveLimit(receiveBytesPerSecond, to: bootstrap)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(TrafficCountingHandler(meter: meter, receiveBytesPerSecond: receiveBytesPerSecond))
                    if let tls = target.tls { try sync.addHandler(tls.makeHandler()) }
                    try sync.addHTTPClientHandlers()
                    try sync.addHandler(HTTPClientResponseHandler())
                }
            }
            .connect(host: target.host, port: target.port)
            .flatMapThrowing { channel in
                let handler = try channel.pipeline.syncOperations.handler(type: HTTPClientResponseHandler.self)
                return HTTPClientConnection(channel: channel, handler: handler, meter: meter, target: target)
            }
    }

    /// Sends a request; `response` hears about its answer.
    func request(
        _ method: HTTPMethod,
        _ path: String,
        headers extra: [(String, String)] = [],
        body: ByteBuffer? = nil,
        response: Response
    ) {
        guard handler.current == nil, channel.isActive else {
            response.onEnd(SockwayClientError.connectionClosed)
            return
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: target.hostHeader)
        for (name, value) in extra { headers.add(name: name, value: value) }
        if let body {
            headers.add(name: "Content-Length", value: String(body.readableBytes))
        } else if method == .POST {
            headers.add(name: "Content-Length", value: "0")
        }
        handler.current = response
        meter.countRequest()
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: target.prefix + path, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    func close() {
        channel.close(promise: nil)
    }
}

/// Hands each response's parts to the request that is waiting for it.
final class HTTPClientResponseHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    var current: HTTPClientConnection.Response?
    private(set) var keepAlive = true

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
            current?.onHead(head)
        case .body(let body):
            current?.onBody(body)
        case .end:
            let finished = current
            current = nil
            finished?.onEnd(nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        keepAlive = false
        let finished = current
        current = nil
        finished?.onEnd(SockwayClientError.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        keepAlive = false
        let finished = current
        current = nil
        finished?.onEnd(error)
        context.close(promise: nil)
    }
}
