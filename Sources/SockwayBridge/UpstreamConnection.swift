#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import SockwayServer
import SockwayWebSocket

/// One attempt at an upstream connection: TCP connect, then for `ws://` the WebSocket handshake. Reports
/// to its delegate once: opened, or failed. On the session's event loop.
final class UpstreamConnector {
    private let upstream: SockwayUpstream
    private let options: SockwayBridgeOptions
    private let session: SockwaySession
    private var delegate: (any UpstreamLinkDelegate)?
    private var channel: (any Channel)?
    private var timer: Scheduled<Void>?
    private var phase = Phase.connecting

    private enum Phase {
        case connecting, opened, failed, cancelled
    }

    init(upstream: SockwayUpstream, options: SockwayBridgeOptions, session: SockwaySession, delegate: any UpstreamLinkDelegate) {
        self.upstream = upstream
        self.options = options
        self.session = session
        self.delegate = delegate
    }

    func start(timeout: TimeAmount) {
        let loop = session.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        timer = loop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            fail("timed out")
        }
        let mark = options.upstreamWriteBuffer
        ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: .init(low: mark.low, high: mark.high))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try bound.value.installHandlers(on: channel)
                }
            }
            .connect(host: upstream.host, port: upstream.port)
            .assumeIsolated()
            .whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    switch phase {
                    case .failed, .cancelled:
                        channel.close(promise: nil)
                    case .opened:
                        break
                    case .connecting:
                        self.channel = channel
                        if upstream.scheme == .webSocket { sendHandshake(on: channel) }
                    }
                case .failure(let error):
                    fail(Self.describe(error))
                }
            }
    }

    private func installHandlers(on channel: any Channel) throws {
        let sync = channel.pipeline.syncOperations
        let bound = NIOLoopBound(self, eventLoop: channel.eventLoop)
        switch upstream.scheme {
        case .tcp:
            // Opened once connected (`channelActive`): a TCP service has no handshake.
            try sync.addHandler(UpstreamTCPHandler(connector: self, framing: options.tcpFraming, maxMessageBytes: options.maxMessageBytes))
        case .webSocket:
            let watcher = NIOLoopBound(HandshakeWatcher(connector: self), eventLoop: channel.eventLoop)
            let maxMessageBytes = options.maxMessageBytes
            let upgrader = WebSocketClientUpgrader(
                handshake: NIOWebSocketClientUpgrader(automaticErrorHandling: false) { channel, _ in
                    channel.eventLoop.makeSucceededVoidFuture()
                },
                install: { channel, _ in
                    let handler = UpstreamWebSocketHandler(maxMessageBytes: maxMessageBytes)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    channel.pipeline.syncOperations.removeHandler(watcher.value, promise: nil)
                    bound.value.opened(handler)
                }
            )
            try sync.addHTTPClientHandlers(
                leftOverBytesStrategy: .forwardBytes,
                withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in })
            )
            try sync.addHandler(watcher.value)
        }
    }

    /// The handshake request: the upstream's target, and who the client is (RFC 7239 `Forwarded`, and
    /// the `X-Forwarded-*` headers most services read), with the client's own headers worth passing on.
    private func sendHandshake(on channel: any Channel) {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: upstream.hostHeader)
        for name in ["user-agent", "origin", "referer", "accept-language", "cookie"] {
            if name == "cookie" && !options.forwardCookie { continue }
            for value in session.headers[name] { headers.add(name: name, value: value) }
        }
        let clientHost = session.headers.first(name: "host")
        if let address = session.remoteAddress?.ipAddress {
            let earlier = session.headers[canonicalForm: "x-forwarded-for"].joined(separator: ", ")
            headers.add(name: "X-Forwarded-For", value: earlier.isEmpty ? address : "\(earlier), \(address)")
            var element = "for=" + (address.contains(":") ? "\"[\(address)]\"" : address) + ";proto=http"
            if let clientHost, clientHost.utf8.allSatisfy({ $0 >= 0x21 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
                element += ";host=\"\(clientHost)\""
            }
            let earlierForwarded = session.headers[canonicalForm: "forwarded"].joined(separator: ", ")
            headers.add(name: "Forwarded", value: earlierForwarded.isEmpty ? element : "\(earlierForwarded), \(element)")
        }
        if let clientHost { headers.add(name: "X-Forwarded-Host", value: clientHost) }
        headers.add(name: "X-Forwarded-Proto", value: "http")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: upstream.target, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    /// The session is gone: stop, and report nothing.
    func cancel() {
        guard phase == .connecting else { return }
        finish(.cancelled)?.close(promise: nil)
    }

    func opened(_ link: any UpstreamLink & UpstreamLinkSource) {
        guard phase == .connecting, let delegate else { return link.abort() }
        _ = finish(.opened)
        link.delegate = delegate
        delegate.upstreamOpened(link)
    }

    func fail(_ why: String) {
        guard phase == .connecting, let delegate else { return }
        finish(.failed)?.close(promise: nil)
        delegate.upstreamFailed(why)
    }

    /// Ends the attempt: no more reports. Returns the channel, if it was made.
    private func finish(_ end: Phase) -> (any Channel)? {
        phase = end
        timer?.cancel()
        timer = nil
        delegate = nil
        defer { channel = nil }
        return channel
    }

    /// A short reason for a close frame: what went wrong, without the internals.
    static func describe(_ error: any Error) -> String {
        if let error = error as? NIOConnectionError {
            if error.dnsAError != nil || error.dnsAAAAError != nil, error.connectionErrors.isEmpty {
                return "name not resolved"
            }
            if let first = error.connectionErrors.first { return describe(first.error) }
        }
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED: return "connection refused"
            case ETIMEDOUT: return "timed out"
            case EHOSTUNREACH, ENETUNREACH: return "no route to host"
            case ECONNRESET: return "connection reset"
            default: return "connection failed (errno \(error.errnoCode))"
            }
        }
        if let error = error as? ChannelError, case .connectTimeout = error { return "timed out" }
        if error is NIOHTTPClientUpgradeError { return "WebSocket handshake refused" }
        if error is SocketAddressError { return "name not resolved" }
        return "connection failed"
    }
}

/// Handlers that become a link once their connection is open.
protocol UpstreamLinkSource: AnyObject {
    var delegate: (any UpstreamLinkDelegate)? { get set }
}

/// Watches a WebSocket handshake until it succeeds (and removes itself): a refusal or a connection
/// closed meanwhile fails the attempt with the upstream's status.
private final class HandshakeWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    private let connector: UpstreamConnector
    private var status: HTTPResponseStatus?

    init(connector: UpstreamConnector) {
        self.connector = connector
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) { status = head.status }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let status, status != .switchingProtocols {
            connector.fail("WebSocket handshake refused: \(status.code)")
        } else {
            connector.fail(UpstreamConnector.describe(error))
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connector.fail(status.map { "WebSocket handshake refused: \($0.code)" } ?? "connection closed during the handshake")
    }
}
