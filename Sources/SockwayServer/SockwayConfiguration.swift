import NIOCore
import NIOHTTP1
import SockwayCluster
import SockwayHTTP
import SockwaySockJS
import SockwayWebSocket

/// Server-wide settings. Every parameter has a default that works without configuration.
public struct SockwayConfiguration: Sendable {
    /// Address to listen on. Default `127.0.0.1`: nothing is exposed unless asked for.
    public var host: String
    /// Port to listen on; `0` picks a free one (see ``SockwayServer/localAddress``). Default 8080.
    public var port: Int
    /// Event loop threads. Default: one per core.
    public var eventLoopThreads: Int
    /// How long a graceful shutdown waits for close frames to reach clients. Default 1 s.
    public var shutdownGracePeriod: TimeAmount
    /// A graceful shutdown's drain: new sessions are refused at once (503, close 1013; the health
    /// check answers 503 `draining`, so a load balancer stops sending clients), and the open sessions
    /// are closed with 1001 at random moments spread over this window, so that their clients reconnect
    /// to the other nodes a few at a time rather than all at once. Default zero: all at once.
    public var drainWindow: TimeAmount = .zero
    /// Serve the demo page at `/` (outside every endpoint). Default `true`.
    public var demoPage: Bool
    /// The sockjs-client script URL for the demo page; defaults to the endpoints' iframe script URL.
    public var clientScriptURL: String
    /// How often the server gives freed memory back to the system (glibc `malloc_trim`; elsewhere
    /// nothing), so that the process shrinks again after a spike of sessions. `nil`: never (an
    /// embedding application that manages this itself). Default 10 s: a trim of a few hundred MiB of
    /// heap takes milliseconds, on one event loop.
    public var memoryTrimInterval: TimeAmount?
    /// How long a client has to send a whole request head, from its first byte (or from the
    /// connection's opening); then the connection is closed with `408`. Bounds slow-head ("slowloris")
    /// clients. Default 10 s.
    public var requestHeadTimeout: TimeAmount
    /// How long a client has to send a request body, plus one second per 16 KiB it sent (so a large
    /// body at 16 KiB/s or more is never cut); then the connection is closed with `408`. Bounds
    /// slow-body clients. Default 10 s.
    public var requestBodyTimeout: TimeAmount
    /// How long a kept-alive connection may wait idle for its next request before it is closed.
    /// Browsers resend a request whose reused connection was closed under it. Behind a proxy that
    /// keeps upstream connections alive, set this above the proxy's idle timeout. Default 15 s.
    public var keepAliveTimeout: TimeAmount
    /// Longest request line, in bytes; more is answered `414`. Default 8 KiB.
    public var maxRequestLineBytes: Int
    /// Largest request head (request line and fields), in bytes; more is answered `431`. Default 16 KiB.
    public var maxRequestHeadBytes: Int
    /// Most header fields in a request; more is answered `431`. Default 100.
    public var maxRequestHeaderFields: Int
    /// Bytes a connection may have sent ahead (pipelined requests) while its current request is being
    /// answered or its responses are unread; past this the server stops reading from it until they
    /// drain. Default 64 KiB.
    public var maxPipelinedBytes: Int
    /// Sessions alive at once, over every endpoint; a new one past this gets `503` with
    /// `Retry-After` (HTTP) or a `1013` close (WebSocket). `nil`: no bound. Default 100,000 (an idle
    /// session holds a few KiB; ``SockwayEndpointOptions/maxQueuedBytes`` bounds a busy one).
    public var maxSessions: Int?
    /// Sessions alive at once per client address (IPv6 by /64), answered as ``maxSessions``. Behind
    /// a proxy every client has the proxy's address: raise it there. `nil`: no bound. Default 1,000.
    public var maxSessionsPerAddress: Int?
    /// Bytes waiting in all sessions' outboxes together (messages for clients that are slow or
    /// between polls). Past it, new sessions get `503`/`1013` and a session that is holding messages
    /// and gets more closes with `1013 "Server queues full"`. `nil`: no bound. Default 2 GiB (each
    /// session is also bounded by ``SockwayEndpointOptions/maxQueuedBytes``).
    public var maxTotalQueuedBytes: Int?
    /// The `Retry-After` of a `503` for a session refused by a bound, in seconds. Default 5.
    public var retryAfterSeconds: Int
    /// A path outside every endpoint answering `GET` with `200 {"status":"ok","sessions":N}`, for load
    /// balancers and orchestrators. `nil`: none. Default `/healthz`.
    public var healthCheckPath: String?
    /// A local sockjs-client script served at ``localClientScriptPath``, read once at start (point
    /// ``clientScriptURL`` and the endpoints' at that path to use it): the demo and iframe pages then
    /// work without the internet. `nil` (the default): none.
    public var localClientScriptFile: String?
    /// Where ``localClientScriptFile`` is served. Default `/sockjs.min.js`.
    public var localClientScriptPath: String
    /// Serve `https://` and `wss://` with this certificate and key instead of plain HTTP. `nil` (the
    /// default): plain HTTP.
    public var tls: SockwayTLSConfiguration?
    /// Publish what the server counts (sessions, messages, bytes, refusals, HTTP statuses, compression,
    /// event-loop lag, waits) through swift-metrics. `nil` (the default): counted, not published.
    public var metrics: SockwayMetricsOptions?
    /// This node's name in a cluster. Engine.IO session ids then start with it and `~`
    /// (`node-a~Xk3…`), so that a load balancer can send each request of a session to the node that
    /// holds it without shared state (HAProxy: `use-server a if { urlp(sid) -m beg a~ }`). `nil`
    /// (the default): plain ids.
    public var nodeID: String?
    /// Where the cluster's other nodes are (a cluster bus, say). With ``nodeID`` set, an Engine.IO
    /// request for a session of another node is forwarded to it, one hop at most, so that the cluster
    /// also works behind a load balancer without stickiness. `nil` (the default): such a request gets
    /// the unknown-session error.
    public var directory: (any ClusterDirectory)?
    /// What ``SockwayServer/send(_:toSession:at:)`` goes through to reach a session on whichever node
    /// holds it (a cluster's bus). `nil` (the default): this node's sessions only.
    public var bus: (any BroadcastBus)?

    public init(
        host: String = "127.0.0.1",
        port: Int = 8080,
        eventLoopThreads: Int = System.coreCount,
        shutdownGracePeriod: TimeAmount = .seconds(1),
        demoPage: Bool = true,
        clientScriptURL: String = SockJSServiceRules.defaultClientScriptURL,
        memoryTrimInterval: TimeAmount? = .seconds(10),
        requestHeadTimeout: TimeAmount = .seconds(10),
        requestBodyTimeout: TimeAmount = .seconds(10),
        keepAliveTimeout: TimeAmount = .seconds(15),
        maxRequestLineBytes: Int = 8192,
        maxRequestHeadBytes: Int = 16384,
        maxRequestHeaderFields: Int = 100,
        maxPipelinedBytes: Int = 64 * 1024,
        maxSessions: Int? = 100_000,
        maxSessionsPerAddress: Int? = 1_000,
        maxTotalQueuedBytes: Int? = 2 << 30,
        retryAfterSeconds: Int = 5,
        healthCheckPath: String? = "/healthz",
        localClientScriptFile: String? = nil,
        localClientScriptPath: String = "/sockjs.min.js",
        tls: SockwayTLSConfiguration? = nil,
        metrics: SockwayMetricsOptions? = nil,
        nodeID: String? = nil
    ) {
        self.host = host
        self.port = port
        self.eventLoopThreads = eventLoopThreads
        self.shutdownGracePeriod = shutdownGracePeriod
        self.demoPage = demoPage
        self.clientScriptURL = clientScriptURL
        self.memoryTrimInterval = memoryTrimInterval
        self.requestHeadTimeout = requestHeadTimeout
        self.requestBodyTimeout = requestBodyTimeout
        self.keepAliveTimeout = keepAliveTimeout
        self.maxRequestLineBytes = maxRequestLineBytes
        self.maxRequestHeadBytes = maxRequestHeadBytes
        self.maxRequestHeaderFields = maxRequestHeaderFields
        self.maxPipelinedBytes = maxPipelinedBytes
        self.maxSessions = maxSessions
        self.maxSessionsPerAddress = maxSessionsPerAddress
        self.maxTotalQueuedBytes = maxTotalQueuedBytes
        self.retryAfterSeconds = retryAfterSeconds
        self.healthCheckPath = healthCheckPath
        self.localClientScriptFile = localClientScriptFile
        self.localClientScriptPath = localClientScriptPath
        self.tls = tls
        self.metrics = metrics
        self.nodeID = nodeID
    }

    var requestLimits: HTTPRequestParser.Limits {
        .init(maxRequestLineBytes: maxRequestLineBytes, maxHeadBytes: maxRequestHeadBytes, maxHeaderFields: maxRequestHeaderFields)
    }
}

/// Per-endpoint options: transports, cookies, origins, timers and every bound.
public struct SockwayEndpointOptions: Sendable {
    /// Serve the `websocket` transport and the raw `/websocket` URL. Default `true`.
    public var webSocketEnabled: Bool
    /// Set `JSESSIONID` on session responses, for load balancers with sticky sessions. Default `false`.
    public var cookieNeeded: Bool
    /// The sockjs-client script the iframe page loads. Default: sockjs-client 1.x from a CDN.
    public var clientScriptURL: String
    /// Page origins allowed to use this endpoint (`https://example.com`); `nil` allows any. With a
    /// list, a foreign `Origin` (`null` too, unless listed) gets `403` on every route, preflights and
    /// WebSocket upgrades included, and the iframe page may only be framed by listed pages. Default `nil`.
    public var allowedOrigins: Set<String>?
    /// Without ``allowedOrigins``: echo any origin with `Access-Control-Allow-Credentials: true`, as
    /// sockjs-node and the reference Engine.IO server with `credentials` do; any site's page may then
    /// make requests with the user's cookies. Default `false`: CORS answers `*` without credentials.
    public var allowAnyOriginWithCredentials: Bool
    /// What a SockJS session is bound to: a request for it that does not match the one that opened
    /// it gets `404`, as for an unknown session. Default `nil`: ``SessionBinding/cookie`` when
    /// ``cookieNeeded`` is on, else ``SessionBinding/none``.
    public var sessionBinding: SessionBinding?
    /// Transports switched off, by name (`jsonp-polling`). Default none.
    public var disabledTransports: Set<String>
    /// Bytes of frames after which a streaming response is ended, so the browser can free it and
    /// proxies do not hold it forever. Default 128 KiB (sockjs-node's value).
    public var responseLimit: Int
    /// Interval of heartbeat frames. Default 25 s, below the 30 s idle timeout of common proxies.
    public var heartbeatInterval: TimeAmount
    /// How long a session waits for its next receiving request before it is closed. Default 5 s.
    public var disconnectDelay: TimeAmount
    /// Largest inbound message, in bytes (a WebSocket message, or one decoded message of a send
    /// body); more closes with 1009, or answers the send with 413 and delivers none of it. Default 1 MiB.
    public var maxMessageBytes: Int
    /// Largest `xhr_send` / `jsonp_send` body as it arrives, in bytes; more answers 413. sockjs-client
    /// joins everything pending into one body, and a jsonp form body is several times larger than
    /// its messages (a JSON `\u` escape, percent-encoded, is 8 bytes). Default (`nil`): eight times
    /// ``maxMessageBytes`` (8 MiB), one largest message in that worst encoding.
    public var maxSendBodyBytes: Int?
    /// Send requests of one session held at once while its outbox is backed up; more are refused
    /// with 503. A browser has one send in flight per session; this bounds pipelining and floods.
    /// Default 16.
    public var maxHeldSendRequests: Int
    /// How long a send request is held, undelivered, waiting for a backed-up outbox to drain before
    /// it is refused with 503 (a receiver that stalls). Default 30 s, inside common proxies'
    /// 60 s read timeout.
    public var sendHoldTimeout: TimeAmount
    /// Outbound messages a session holds for a slow or absent receiver before it closes with 1013.
    /// Default 16384 (with the byte bound, 1 MiB, the tighter one for messages of 64 bytes or more).
    public var maxQueuedMessages: Int
    /// Outbound bytes a session holds before it closes with 1013. Default 1 MiB.
    public var maxQueuedBytes: Int
    /// Inbound messages an async handler may leave unread before the session closes with 1013.
    /// Default 4096.
    public var maxInboundQueuedMessages: Int
    /// Inbound bytes an async handler may leave unread before the session closes with 1013.
    /// Default 1 MiB.
    public var maxInboundQueuedBytes: Int
    /// permessage-deflate for both WebSocket URLs. Default: a compressor per connection (15-bit
    /// window, memLevel 8), created only when a connection first sends a message of 64 bytes or more;
    /// inflation shares one inflater per event loop (clients are asked for `client_no_context_takeover`).
    public var compression: PerMessageDeflateConfiguration
    /// Request headers a session keeps from the request that opened it (lowercase names); the rest are
    /// dropped, so an idle session does not hold its whole opening request. `Cookie` and
    /// `Authorization` are left out by default, as sockjs-node does: a session handle that leaks into
    /// logs should not carry credentials.
    public var sessionHeaders: Set<String>
    /// Both WebSocket URLs: a ping to the client after this long since the last one (browsers and
    /// most clients answer with a pong). `nil` (the default) sends none; SockJS's own `h` frames already
    /// keep proxies awake on the SockJS URL.
    public var webSocketPingInterval: TimeAmount?
    /// Both WebSocket URLs: close with 1001 "Idle timeout" when nothing (not even a pong) came from the
    /// client for this long. `nil` (the default): never. A connection with neither setting carries no timer.
    public var webSocketIdleTimeout: TimeAmount?

    /// The headers sessions keep by default: the client's identity as proxies report it, and the
    /// origin, host and language of the page.
    public static let defaultSessionHeaders: Set<String> = [
        "host", "origin", "referer", "user-agent", "accept-language", "dnt", "via", "forwarded",
        "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip", "x-client-ip",
        "x-cluster-client-ip", "x-ssl",
    ]

    public init(
        webSocketEnabled: Bool = true,
        cookieNeeded: Bool = false,
        clientScriptURL: String = SockJSServiceRules.defaultClientScriptURL,
        allowedOrigins: Set<String>? = nil,
        allowAnyOriginWithCredentials: Bool = false,
        sessionBinding: SessionBinding? = nil,
        disabledTransports: Set<String> = [],
        responseLimit: Int = 128 * 1024,
        heartbeatInterval: TimeAmount = .seconds(25),
        disconnectDelay: TimeAmount = .seconds(5),
        maxMessageBytes: Int = 1 << 20,
        maxSendBodyBytes: Int? = nil,
        maxHeldSendRequests: Int = 16,
        sendHoldTimeout: TimeAmount = .seconds(30),
        maxQueuedMessages: Int = 16384,
        maxQueuedBytes: Int = 1 << 20,
        maxInboundQueuedMessages: Int = 4096,
        maxInboundQueuedBytes: Int = 1 << 20,
        compression: PerMessageDeflateConfiguration = .init(),
        sessionHeaders: Set<String> = SockwayEndpointOptions.defaultSessionHeaders,
        webSocketPingInterval: TimeAmount? = nil,
        webSocketIdleTimeout: TimeAmount? = nil
    ) {
        self.webSocketEnabled = webSocketEnabled
        self.cookieNeeded = cookieNeeded
        self.clientScriptURL = clientScriptURL
        self.allowedOrigins = allowedOrigins
        self.allowAnyOriginWithCredentials = allowAnyOriginWithCredentials
        self.sessionBinding = sessionBinding
        self.disabledTransports = disabledTransports
        self.responseLimit = responseLimit
        self.heartbeatInterval = heartbeatInterval
        self.disconnectDelay = disconnectDelay
        self.maxMessageBytes = maxMessageBytes
        self.maxSendBodyBytes = maxSendBodyBytes
        self.maxHeldSendRequests = maxHeldSendRequests
        self.sendHoldTimeout = sendHoldTimeout
        self.maxQueuedMessages = maxQueuedMessages
        self.maxQueuedBytes = maxQueuedBytes
        self.maxInboundQueuedMessages = maxInboundQueuedMessages
        self.maxInboundQueuedBytes = maxInboundQueuedBytes
        self.compression = compression
        self.sessionHeaders = sessionHeaders
        self.webSocketPingInterval = webSocketPingInterval
        self.webSocketIdleTimeout = webSocketIdleTimeout
    }

    /// The opening request's headers that a session keeps, in an array of exactly their size.
    func keptHeaders(_ headers: HTTPHeaders) -> HTTPHeaders {
        var kept: [(String, String)] = []
        for (name, value) in headers where sessionHeaders.contains(name.lowercased()) {
            kept.append((name, value))
        }
        return HTTPHeaders(kept)
    }

    /// The binding in effect.
    var effectiveSessionBinding: SessionBinding {
        sessionBinding ?? (cookieNeeded ? .cookie : .none)
    }

    var inboundLimit: (messages: Int, bytes: Int) { (maxInboundQueuedMessages, maxInboundQueuedBytes) }
    var outboxLimit: (messages: Int, bytes: Int) { (maxQueuedMessages, maxQueuedBytes) }

    var rules: SockJSServiceRules {
        SockJSServiceRules(
            webSocketEnabled: webSocketEnabled,
            cookieNeeded: cookieNeeded,
            clientScriptURL: clientScriptURL,
            allowedOrigins: allowedOrigins,
            allowAnyOriginWithCredentials: allowAnyOriginWithCredentials,
            disabledTransports: disabledTransports,
            maxSendBodyBytes: maxSendBodyBytes ?? (maxMessageBytes > Int.max / 8 ? Int.max : maxMessageBytes * 8),
            maxMessageBytes: maxMessageBytes
        )
    }

    var sessionConfiguration: SockJSSessionStateMachine.Configuration {
        .init(
            heartbeatInterval: heartbeatInterval,
            disconnectDelay: disconnectDelay,
            maxQueuedMessages: maxQueuedMessages,
            maxQueuedBytes: maxQueuedBytes
        )
    }
}

/// What a SockJS session id is bound to besides itself. A session id is a bearer token: whoever
/// knows it can read and write the session. Binding narrows that to the client that opened it.
public enum SessionBinding: Sendable, Hashable {
    /// The id alone.
    case none
    /// The `JSESSIONID` cookie of the opening request (absent counts as a value).
    case cookie
    /// The client address of the opening request (IPv6 by /64). Breaks clients whose requests leave
    /// through several addresses (some mobile networks and proxy farms).
    case clientAddress
}
