import Logging
import NIOCore
import SockwayServer

/// How bridged sessions reach their upstream.
public struct SockwayBridgeOptions: Sendable {
    /// How a `tcp://` upstream's byte stream is cut into messages.
    public var tcpFraming: SockwayTCPFraming
    /// What a binary message from a `ws://` upstream becomes for a client whose transport carries text
    /// only (every SockJS transport but the raw WebSocket URL): `false` (the default) closes the session
    /// with 1003, `true` sends it as a base64 text message.
    public var binaryAsBase64: Bool
    /// Whether the `Cookie` header of the request that opened the session goes to a `ws://` upstream.
    /// Off by default: the gateway would otherwise hand the user's cookies for its own site to another service.
    public var forwardCookie: Bool
    /// Largest message taken from the upstream (then the session closes with 1009).
    public var maxMessageBytes: Int
    /// How long a session tries to reach its upstream (connection and WebSocket handshake, retries
    /// included) before it is closed with 1014.
    public var connectTimeout: TimeAmount
    /// First wait between failed connection attempts; doubled per failure in a row, up to ``maxBackoff``.
    public var initialBackoff: TimeAmount
    public var maxBackoff: TimeAmount
    /// Bytes of client messages a session holds while its upstream connection is being made (the
    /// client is paused meanwhile; this bounds what one read already brought). Past it: close 1013.
    public var maxPendingBytes: Int
    /// Write buffer of an upstream connection: past `high` the client's messages are held back
    /// (WebSocket reads paused, HTTP sends held) until it drains below `low`.
    public var upstreamWriteBuffer: (low: Int, high: Int)
    public var logger: Logger

    public init(
        tcpFraming: SockwayTCPFraming = .newline,
        binaryAsBase64: Bool = false,
        forwardCookie: Bool = false,
        maxMessageBytes: Int = 1 << 20,
        connectTimeout: TimeAmount = .seconds(10),
        initialBackoff: TimeAmount = .milliseconds(100),
        maxBackoff: TimeAmount = .seconds(5),
        maxPendingBytes: Int = 1 << 20,
        upstreamWriteBuffer: (low: Int, high: Int) = (32 * 1024, 256 * 1024),
        logger: Logger = Logger(label: "sockway.bridge")
    ) {
        self.tcpFraming = tcpFraming
        self.binaryAsBase64 = binaryAsBase64
        self.forwardCookie = forwardCookie
        self.maxMessageBytes = maxMessageBytes
        self.connectTimeout = connectTimeout
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.maxPendingBytes = maxPendingBytes
        self.upstreamWriteBuffer = upstreamWriteBuffer
        self.logger = logger
    }

    var backoff: BackoffPolicy { BackoffPolicy(initial: initialBackoff, maximum: maxBackoff) }
}

extension SockwayEndpoint {
    /// A SockJS endpoint that carries each session to a connection of its own to `upstream`: messages
    /// go both ways in order, each side slows the other (bounded), and a close on either side closes
    /// the other with its code and reason.
    public static func bridge(
        _ prefix: String,
        to upstream: SockwayUpstream,
        options: SockwayEndpointOptions = .init(),
        bridge: SockwayBridgeOptions = .init()
    ) -> SockwayEndpoint {
        let (options, makeDelegate) = bridged(upstream, options: options, bridge: bridge)
        return .eventLoop(prefix, options: options, makeDelegate: makeDelegate)
    }

    /// An Engine.IO v4 endpoint whose sessions are bridged to `upstream` (see
    /// ``bridge(_:to:options:bridge:)``); binary messages pass as binary.
    public static func engineIOBridge(
        _ path: String = "/engine.io",
        to upstream: SockwayUpstream,
        options: SockwayEndpointOptions = .init(),
        engineIO: EngineIOOptions = .init(),
        bridge: SockwayBridgeOptions = .init()
    ) -> SockwayEndpoint {
        let (options, makeDelegate) = bridged(upstream, options: options, bridge: bridge)
        return .engineIO(path, options: options, engineIO: engineIO, makeDelegate: makeDelegate)
    }

    private static func bridged(
        _ upstream: SockwayUpstream,
        options: SockwayEndpointOptions,
        bridge: SockwayBridgeOptions
    ) -> (SockwayEndpointOptions, @Sendable (SockwaySession) -> any SockwaySessionDelegate) {
        var options = options
        if bridge.forwardCookie { options.sessionHeaders.insert("cookie") }
        let health = UpstreamHealth()
        return (options, { session in BridgeSession(session: session, upstream: upstream, options: bridge, health: health) })
    }
}
