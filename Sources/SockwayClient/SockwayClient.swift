import NIOCore
import NIOPosix
import SockwaySockJS

/// The ways a client can reach a service: the SockJS transports, and Engine.IO v4's two (whose URL
/// is the Engine.IO endpoint, e.g. `http://127.0.0.1:8080/engine.io`).
public enum SockwayClientTransport: String, CaseIterable, Sendable, Codable {
    /// `/websocket`: plain WebSocket messages, no SockJS framing (Sockway and sockjs-node serve it).
    case rawWebSocket = "raw-websocket"
    /// `/<server>/<session>/websocket`: SockJS frames over WebSocket, permessage-deflate if configured.
    case webSocket = "websocket"
    /// `xhr_streaming` to receive (a long response of `frame\n`), `xhr_send` to send.
    case xhrStreaming = "xhr-streaming"
    /// `eventsource` to receive (`data: frame` events), `xhr_send` to send.
    case eventSource = "eventsource"
    /// `xhr` (one frame per response) to receive, `xhr_send` to send.
    case xhrPolling = "xhr-polling"
    /// `jsonp?c=…` (one frame per response, as a script) to receive, `jsonp_send` to send.
    case jsonpPolling = "jsonp-polling"
    /// Engine.IO v4 HTTP long-polling: a `GET` loop to receive, `POST`s to send (one at a time, with
    /// what queued meanwhile in the next, packets joined by `\x1e`); no upgrade.
    case engineIOPolling = "engineio-polling"
    /// Engine.IO v4 over a WebSocket-only session (`?EIO=4&transport=websocket`), a packet per frame.
    case engineIOWebSocket = "engineio-websocket"

    /// The SockJS transports.
    public static let sockJS: [SockwayClientTransport] = [.rawWebSocket, .webSocket, .xhrStreaming, .eventSource, .xhrPolling, .jsonpPolling]

    /// Engine.IO's transports: they reach an Engine.IO endpoint, not a SockJS one, and take no fallback.
    public static let engineIO: [SockwayClientTransport] = [.engineIOPolling, .engineIOWebSocket]

    /// sockjs-client's order of preference among the transports it has in Node and browsers.
    public static let fallbackOrder: [SockwayClientTransport] = [.webSocket, .xhrStreaming, .eventSource, .xhrPolling, .jsonpPolling]

    /// Round trips to open, for the connect timeout (sockjs-client's `roundTrips`).
    var roundTrips: Int { self == .jsonpPolling || isEngineIO ? 1 : 2 }

    var usesWebSocket: Bool { self == .rawWebSocket || self == .webSocket || self == .engineIOWebSocket }

    /// Whether this is one of Engine.IO's transports.
    public var isEngineIO: Bool { self == .engineIOPolling || self == .engineIOWebSocket }
}

/// Why a client could not connect, or what ended its session.
public enum SockwayClientError: Error, Hashable, Sendable {
    /// Not `http://host[:port][/prefix]` (or `ws://`, `https://`, `wss://`).
    case invalidURL(String)
    /// `/info` did not answer 200 with JSON.
    case infoFailed(String)
    /// The transport did not open within its timeout.
    case timedOut(SockwayClientTransport)
    /// The server answered a request with this status.
    case unexpectedStatus(Int)
    /// The server closed the session before it opened (`c[code,"reason"]`).
    case closedBeforeOpen(SockJSCloseReason)
    /// The server sent bytes that are not SockJS frames (or Engine.IO packets).
    case protocolError(String)
    /// Several transports given, one of them Engine.IO's: Engine.IO transports have no fallback.
    case engineIOTransportNotAlone
    /// The connection went away.
    case connectionClosed
    /// Every transport failed; what each one failed with, in order.
    case allTransportsFailed([String])
}

/// How a client connects and what it bounds.
public struct SockwayClientConfiguration: Sendable {
    /// Transports to try, in order: one means that transport only; several means sockjs-client's
    /// fallback (`/info` first, then each in turn until one opens). An Engine.IO transport must be
    /// the only one.
    public var transports: [SockwayClientTransport]
    /// Offer permessage-deflate on WebSocket transports.
    public var webSocketCompression: Bool
    /// Per-transport open timeout; `nil` derives it from the `/info` round trip as sockjs-client does
    /// (at least 300 ms plus the RTT, times the transport's round trips), or 5 s with one transport.
    public var connectTimeout: TimeAmount?
    /// Largest inbound message (WebSocket) or response line (HTTP transports).
    public var maxMessageBytes: Int
    /// Messages received but not yet read from ``SockwayClientSession/messages`` before the session
    /// closes with 1013.
    public var maxQueuedMessages: Int
    /// Bytes of such messages.
    public var maxQueuedBytes: Int
    /// Bytes of messages waiting to be sent before the session closes with 1013.
    public var maxPendingSendBytes: Int
    /// Largest body of one HTTP send request (`xhr_send`, `jsonp_send`, before form encoding): more
    /// waiting messages go in the requests after it, one at a time, so that a send held by a server
    /// that paces its clients does not come back bigger than the server takes (Sockway: 1 MiB).
    public var maxSendRequestBytes: Int
    /// Extra headers on every HTTP request and on the WebSocket handshake (e.g. a browser's
    /// `User-Agent` and `Origin`, to measure what real clients send).
    public var extraHeaders: [(String, String)]
    /// Reads each socket at most this fast, in bytes per second (a slow link or a slow reader, for
    /// soaks and benchmarks: the server sees its writes back up). `nil` (the default): as fast as
    /// data comes.
    public var receiveBytesPerSecond: Int?
    /// Where the connections run; default NIO's shared group.
    public var eventLoopGroup: any EventLoopGroup
    /// PEM file of the certificates trusted for `https://` and `wss://` URLs (a self-signed server's
    /// own certificate works). `nil` (the default): the file named by `SSL_CERT_FILE` when set, else
    /// the system's trust roots. TLS 1.2+, ALPN `http/1.1`, the host name or IP address verified.
    public var tlsTrustRootsFile: String?

    public init(
        transports: [SockwayClientTransport] = SockwayClientTransport.fallbackOrder,
        webSocketCompression: Bool = false,
        connectTimeout: TimeAmount? = nil,
        maxMessageBytes: Int = 16 << 20,
        maxQueuedMessages: Int = 65536,
        maxQueuedBytes: Int = 64 << 20,
        maxPendingSendBytes: Int = 16 << 20,
        maxSendRequestBytes: Int = 480 << 10,
        extraHeaders: [(String, String)] = [],
        receiveBytesPerSecond: Int? = nil,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        tlsTrustRootsFile: String? = nil
    ) {
        self.transports = transports
        self.webSocketCompression = webSocketCompression
        self.connectTimeout = connectTimeout
        self.maxMessageBytes = maxMessageBytes
        self.maxQueuedMessages = maxQueuedMessages
        self.maxQueuedBytes = maxQueuedBytes
        self.maxPendingSendBytes = maxPendingSendBytes
        self.maxSendRequestBytes = maxSendRequestBytes
        self.extraHeaders = extraHeaders
        self.receiveBytesPerSecond = receiveBytesPerSecond
        self.eventLoopGroup = eventLoopGroup
        self.tlsTrustRootsFile = tlsTrustRootsFile
    }
}

/// A SockJS client for every transport, with sockjs-client's fallback.
///
/// ```swift
/// let session = try await SockwayClient.connect(to: "http://127.0.0.1:8080/echo")
/// session.send("hello")
/// for await message in session.messages { print(message) }
/// ```
public enum SockwayClient {
    /// Opens a session with the service at `url` (`http://host:port/prefix`, or `https://` over TLS:
    /// see ``SockwayClientConfiguration/tlsTrustRootsFile``). Returns once the server
    /// has sent its open frame (for the raw WebSocket URL: once the handshake is done; for Engine.IO:
    /// once its `open` packet came).
    public static func connect(
        to url: String,
        configuration: SockwayClientConfiguration = .init()
    ) async throws -> SockwayClientSession {
        var target = try ClientTarget(url: url)
        if target.isTLS {
            target.tls = try ClientTLS(host: target.host, trustRootsFile: configuration.tlsTrustRootsFile)
        }
        let loop = configuration.eventLoopGroup.any()
        let meter = TrafficMeter()
        var transports = configuration.transports
        if transports.count > 1, transports.contains(where: \.isEngineIO) {
            throw SockwayClientError.engineIOTransportNotAlone
        }
        var rto: TimeAmount?
        if transports.count > 1 {
            let info = try await ServerInfo.fetch(target: target, on: loop, meter: meter, configuration: configuration)
            rto = info.roundTripTimeout
            if !info.webSocket { transports.removeAll { $0.usesWebSocket } }
        }
        var failures: [String] = []
        for transport in transports {
            let timeout = configuration.connectTimeout
                ?? rto.map { $0 * Int64(transport.roundTrips) }
                ?? .seconds(5)
            do {
                return try await open(transport, target: target, loop: loop, meter: meter, timeout: timeout, configuration: configuration)
            } catch let error as SockwayClientError {
                // A close from the application (1000, 3000–4999) is an answer, not a transport failure.
                if case .closedBeforeOpen(let reason) = error, reason.code == 1000 || (3000...4999).contains(reason.code) {
                    throw error
                }
                if transports.count == 1 { throw error }
                failures.append("\(transport.rawValue): \(error)")
            }
        }
        throw SockwayClientError.allTransportsFailed(failures)
    }

    private static func open(
        _ transport: SockwayClientTransport,
        target: ClientTarget,
        loop: any EventLoop,
        meter: TrafficMeter,
        timeout: TimeAmount,
        configuration: SockwayClientConfiguration
    ) async throws -> SockwayClientSession {
        let session = SockwayClientSession(transport: transport, eventLoop: loop, meter: meter, configuration: configuration)
        let opened = loop.makePromise(of: Void.self)
        let path = switch transport {
        case .rawWebSocket: "/websocket"
        case .engineIOWebSocket: EngineIOClientMachine.webSocketPath
        case .engineIOPolling: ""
        default: "/\(Int.random(in: 0..<1000))/\(randomSessionID())"
        }
        loop.execute {
            let core = session.core.value
            core.opened = opened
            switch transport {
            case .engineIOPolling:
                core.transport = EngineIOPollingClientTransport(core: core, target: target, meter: meter, timeout: timeout, loop: loop)
            case .rawWebSocket, .webSocket, .engineIOWebSocket:
                core.transport = WebSocketClientTransport(
                    core: core,
                    target: target,
                    path: path + (transport == .webSocket ? "/websocket" : ""),
                    meter: meter,
                    timeout: timeout,
                    loop: loop
                )
            case .xhrStreaming, .eventSource, .xhrPolling, .jsonpPolling:
                core.transport = HTTPClientTransport(
                    core: core,
                    kind: transport,
                    target: target,
                    sessionPath: path,
                    meter: meter,
                    timeout: timeout,
                    loop: loop
                )
            }
            core.transport?.start()
            let timer = loop.assumeIsolated().scheduleTask(in: timeout) {
                core.fail(SockwayClientError.timedOut(transport))
            }
            opened.futureResult.assumeIsolated().whenComplete { _ in timer.cancel() }
        }
        try await opened.futureResult.get()
        return session
    }

    /// Eight characters from `[a-z0-9]`, as sockjs-client makes them.
    static func randomSessionID() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        return String(decoding: (0..<8).map { _ in alphabet.randomElement()! }, as: UTF8.self)
    }
}
