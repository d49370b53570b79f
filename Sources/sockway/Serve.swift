import Foundation
import ArgumentParser
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle
import SockwayBridge
import SockwayCluster
import SockwayPostgres
import SockwayPrometheus
import SockwayServer
import SockwayWebSocket

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway: demo page at /, the /echo, /close, /disabled_websocket_echo, /cookie_needed_echo and /chat SockJS endpoints, the /engine.io echo and the /socket.io service."
    )

    @Option(help: ArgumentHelp("YAML file of option values keyed by long option name (port: 8080, cookie-needed: true, allowed-origin: [http://a, http://b]); options given here win.", valueName: "file"))
    var config: String?

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 8080

    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("PEM certificate chain (with --tls-key): serve https:// and wss:// on --port instead of plain HTTP; re-read on SIGHUP.", valueName: "file"))
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("PEM private key of --tls-cert.", valueName: "file"))
    var tlsKey: String?

    @Option(name: .customLong("response-limit"), help: "Bytes after which a streaming response is ended.")
    var responseLimit = 128 * 1024

    @Option(name: .customLong("sockjs-url"), help: "sockjs-client script URL for the iframe and demo pages (default: Debian's node-sockjs-client served at /sockjs.min.js when installed, else sockjs-client 1.x on jsDelivr).")
    var sockjsURLOption: String?

    /// Debian's copy of sockjs-client (package node-sockjs-client).
    static let debianClientScript = "/usr/share/nodejs/sockjs-client/dist/sockjs.min.js"

    @Option(help: "Seconds between heartbeat frames.")
    var heartbeat: Double = 25

    @Option(name: .customLong("disconnect-delay"), help: "Seconds a session waits for its next request before it is closed.")
    var disconnectDelay: Double = 5

    @Option(name: .customLong("max-message-bytes"), help: "Largest inbound message, in bytes (WebSocket message, or one decoded message of a send body).")
    var maxMessageBytes = 1 << 20

    @Option(name: .customLong("max-send-body-bytes"), help: "Largest xhr_send/jsonp_send body as sent, in bytes (default: 8 x --max-message-bytes).")
    var maxSendBodyBytes: Int?

    @Option(name: .customLong("send-hold-timeout"), help: "Seconds a send is held while the session's outbox is backed up before it is refused with 503.")
    var sendHoldTimeout: Double = 30

    @Option(help: "Event loop threads (default: one per core).")
    var threads: Int?

    @Option(help: "permessage-deflate: per-connection (a compressor per connection), shared (one per event loop), or none.")
    var compression: CompressionMode = .perConnection

    @Option(name: .customLong("compression-window-bits"), help: "Window bits of per-connection compressors (9-15).")
    var compressionWindowBits = 15

    @Option(name: .customLong("compression-mem-level"), help: "zlib memLevel of per-connection compressors (1-9).")
    var compressionMemLevel = 8

    @Option(name: .customLong("ws-ping-interval"), help: "Seconds between server pings on WebSocket connections (default: none).")
    var wsPingInterval: Double?

    @Option(name: .customLong("ws-idle-timeout"), help: "Close a WebSocket after this many seconds without a frame from the client (default: never).")
    var wsIdleTimeout: Double?

    @Option(name: .customLong("allowed-origin"), help: "A page origin allowed to use the endpoints (https://example.com); repeat for more. Default: any.")
    var allowedOrigins: [String] = []

    @Option(name: .customLong("eio-ping-interval"), help: "Engine.IO: seconds between server pings.")
    var eioPingInterval: Double = 25

    @Option(name: .customLong("eio-ping-timeout"), help: "Engine.IO: seconds to wait for the client's pong before closing the session.")
    var eioPingTimeout: Double = 20

    @Option(name: .customLong("eio-max-payload"), help: "Engine.IO: largest POST body or WebSocket message, in bytes (announced in the handshake).")
    var eioMaxPayload = 1_000_000

    @Option(name: .customLong("eio-cookie"), help: "Engine.IO: name of a cookie set to the session id on the handshake, for sticky load balancers (default: none).")
    var eioCookie: String?

    @Option(name: .customLong("sio-connect-timeout"), help: "Socket.IO: seconds a client may take to connect to a namespace after its handshake.")
    var sioConnectTimeout: Double = 45

    @Option(name: .customLong("sio-recovery"), help: "Socket.IO: connection state recovery, with a window of this many seconds (Socket.IO's default is 120); a client that lost its connection gets its id, rooms and missed events back, on any node of a cluster. Default: off.")
    var sioRecovery: Double?

    @Option(name: .customLong("sio-recovery-max-missed"), help: "Socket.IO: the most events a client may have missed and still recover.")
    var sioRecoveryMaxMissed = 10_000

    @Flag(name: .customLong("allow-any-origin-with-credentials"), help: "Without --allowed-origin: echo any page's origin with Access-Control-Allow-Credentials (sockjs-node's CORS; any site may then use the user's cookies).")
    var allowAnyOriginWithCredentials = false

    @Flag(name: .customLong("cookie-needed"), help: "Set JSESSIONID on SockJS session responses (for sticky load balancers); sessions are then bound to it.")
    var cookieNeeded = false

    @Option(name: .customLong("session-binding"), help: "What a SockJS session is bound to besides its id: auto (the JSESSIONID cookie where it is on), none, cookie or address.")
    var sessionBinding: BindingMode = .auto

    @Option(name: .customLong("header-timeout"), help: "Seconds a client has to send a whole request head (then 408 and close).")
    var headerTimeout: Double = 10

    @Option(name: .customLong("body-timeout"), help: "Seconds a client has to send a request body, plus one per 16 KiB sent (then 408 and close).")
    var bodyTimeout: Double = 10

    @Option(name: .customLong("keep-alive-timeout"), help: "Seconds an idle kept-alive connection waits for its next request.")
    var keepAliveTimeout: Double = 15

    @Option(name: .customLong("max-request-line"), help: "Longest request line, in bytes (414 past it).")
    var maxRequestLine = 8192

    @Option(name: .customLong("max-head-bytes"), help: "Largest request head, in bytes (431 past it).")
    var maxHeadBytes = 16384

    @Option(name: .customLong("max-header-fields"), help: "Most header fields in a request (431 past it).")
    var maxHeaderFields = 100

    @Option(name: .customLong("max-sessions"), help: "Sessions alive at once over every endpoint (503 / close 1013 past it); 0: no bound.")
    var maxSessions = 100_000

    @Option(name: .customLong("max-sessions-per-address"), help: "Sessions alive at once per client address, IPv6 by /64 (503 / close 1013 past it); 0: no bound.")
    var maxSessionsPerAddress = 1_000

    @Option(help: "Bridge: /echo and /engine.io carry each session to a connection of its own to this WebSocket or TCP service (ws://host:port/path or tcp://host:port) instead of echoing.")
    var upstream: String?

    @Option(name: .customLong("route"), help: "Bridge: mount another SockJS endpoint carried to a service, as /prefix=ws://host:port/path or /prefix=tcp://host:port; repeat for more.")
    var routes: [String] = []

    @Option(name: .customLong("tcp-framing"), help: "Bridge: how tcp:// upstream streams are cut into messages: newline (one message per line) or length-prefixed (4-byte big-endian length).")
    var tcpFraming: SockwayTCPFraming = .newline

    @Option(name: .customLong("upstream-binary"), help: "Bridge: a binary message from a ws:// upstream to a client whose transport carries text: refuse (close 1003) or base64 (sent as base64 text).")
    var upstreamBinary: BinaryMode = .refuse

    @Flag(name: .customLong("forward-cookie"), help: "Bridge: pass the client's Cookie header on to ws:// upstreams.")
    var forwardCookie = false

    @Option(name: .customLong("upstream-connect-timeout"), help: "Bridge: seconds a session tries to reach its upstream (retries with back-off included) before it closes with 1014.")
    var upstreamConnectTimeout: Double = 10

    @Option(name: .customLong("log-level"), help: "Least severe log level written: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(name: .customLong("log-format"), help: "Log lines as text, or json (one object per line: time, level, label, message, metadata).")
    var logFormat: LogFormat = .text

    @Option(name: .customLong("metrics-port"), help: "Serve Prometheus metrics at http://<metrics-host>:<port>/metrics (default: off).")
    var metricsPort: Int?

    @Option(name: .customLong("metrics-host"), help: "Address the metrics listener binds (keep it private: the metrics name endpoints and counts).")
    var metricsHost = "127.0.0.1"

    @Option(name: .customLong("cluster"), help: ArgumentHelp("Join a cluster through PostgreSQL (postgres://user[:password]@host[:port]/database[?sslmode=disable|prefer|require]): /chat and Socket.IO broadcasts reach every node's members.", valueName: "url"))
    var cluster: String?

    @Option(name: .customLong("node-id"), help: "This node's name in the cluster (letters, digits, '.', '_', '-'; at most 64); needed with --cluster.")
    var nodeID: String?

    @Option(name: .customLong("drain-window"), help: "On SIGTERM: refuse new sessions (health check 503) and close the open ones with 1001 at random moments over this many seconds, so their clients move to other nodes a few at a time (default 0: all at once).")
    var drainWindow: Double = 0

    @Option(name: .customLong("advertise"), help: ArgumentHelp("With --cluster: the URL the other nodes reach this one at, to forward it requests for its sessions (default http://HOST:PORT; set it when HOST is 0.0.0.0). Only http:// URLs are forwarded to.", valueName: "url"))
    var advertise: String?

    @Flag(name: .customLong("cluster-optional"), help: "With --cluster: start even when PostgreSQL cannot be reached (local delivery only until it can), instead of exiting with status 1.")
    var clusterOptional = false

    enum BinaryMode: String, ExpressibleByArgument, CaseIterable {
        case refuse, base64
    }

    enum LogFormat: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    enum BindingMode: String, ExpressibleByArgument, CaseIterable {
        case auto, none, cookie, address
    }

    enum CompressionMode: String, ExpressibleByArgument, CaseIterable {
        case perConnection = "per-connection"
        case shared
        case none
    }

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
        guard responseLimit > 0 else { throw ValidationError("--response-limit must be positive") }
        guard heartbeat > 0, disconnectDelay > 0 else { throw ValidationError("--heartbeat and --disconnect-delay must be positive") }
        guard maxMessageBytes > 0 && maxMessageBytes <= Int(UInt32.max) else { throw ValidationError("--max-message-bytes must be 1...4294967295") }
        if let maxSendBodyBytes, maxSendBodyBytes <= 0 { throw ValidationError("--max-send-body-bytes must be positive") }
        guard sendHoldTimeout > 0 && sendHoldTimeout < 86_400 else { throw ValidationError("--send-hold-timeout must be between 0 and 86400 seconds") }
        guard (9...15).contains(compressionWindowBits) else { throw ValidationError("--compression-window-bits must be 9...15") }
        guard (1...9).contains(compressionMemLevel) else { throw ValidationError("--compression-mem-level must be 1...9") }
        guard eioPingInterval > 0 && eioPingInterval < 86_400, eioPingTimeout > 0 && eioPingTimeout < 86_400 else {
            throw ValidationError("--eio-ping-interval and --eio-ping-timeout must be between 0 and 86400 seconds")
        }
        guard sioConnectTimeout > 0 && sioConnectTimeout < 86_400 else { throw ValidationError("--sio-connect-timeout must be between 0 and 86400 seconds") }
        if let sioRecovery, !(sioRecovery > 0 && sioRecovery <= 86_400) { throw ValidationError("--sio-recovery must be between 0 and 86400 seconds") }
        guard (1...1_000_000).contains(sioRecoveryMaxMissed) else { throw ValidationError("--sio-recovery-max-missed must be between 1 and 1000000") }
        guard eioMaxPayload > 0 && eioMaxPayload <= Int(UInt32.max) else { throw ValidationError("--eio-max-payload must be 1...4294967295") }
        for value in [headerTimeout, bodyTimeout, keepAliveTimeout] where !(value > 0 && value < 86_400) {
            throw ValidationError("--header-timeout, --body-timeout and --keep-alive-timeout must be between 0 and 86400 seconds")
        }
        guard maxRequestLine >= 64, maxHeadBytes >= 256, maxHeaderFields >= 1 else {
            throw ValidationError("--max-request-line must be at least 64, --max-head-bytes at least 256, --max-header-fields at least 1")
        }
        guard maxSessions >= 0, maxSessionsPerAddress >= 0 else { throw ValidationError("--max-sessions and --max-sessions-per-address must be 0 or more") }
        for value in [wsPingInterval, wsIdleTimeout].compactMap({ $0 }) where !(value > 0 && value < 86_400) {
            throw ValidationError("--ws-ping-interval and --ws-idle-timeout must be between 0 and 86400 seconds")
        }
        guard upstreamConnectTimeout > 0 && upstreamConnectTimeout < 86_400 else {
            throw ValidationError("--upstream-connect-timeout must be between 0 and 86400 seconds")
        }
        _ = try bridgedRoutes()
        _ = try clusterConfiguration()
        guard drainWindow >= 0 && drainWindow < 86_400 else { throw ValidationError("--drain-window must be between 0 and 86400 seconds") }
    }

    /// `--cluster` and `--node-id` as the bus's configuration; `nil` without `--cluster`.
    func clusterConfiguration() throws -> PostgresBroadcastBus.Configuration? {
        guard let cluster else {
            if nodeID != nil || clusterOptional || advertise != nil { throw ValidationError("--node-id, --advertise and --cluster-optional go with --cluster") }
            return nil
        }
        guard let nodeID else { throw ValidationError("--cluster needs --node-id NAME (each node its own)") }
        do {
            return try PostgresBroadcastBus.Configuration(url: cluster, nodeID: nodeID)
        } catch {
            throw ValidationError("--cluster/--node-id: \(error)")
        }
    }

    /// `--upstream` and `--route` as prefixes and upstreams; `nil` prefix: `--upstream` (/echo and /engine.io).
    func bridgedRoutes() throws -> [(prefix: String?, upstream: SockwayUpstream)] {
        var bridged: [(prefix: String?, upstream: SockwayUpstream)] = []
        do {
            if let upstream { bridged.append((nil, try SockwayUpstream(upstream))) }
            for route in routes {
                guard let equals = route.firstIndex(of: "="), route.hasPrefix("/") else {
                    throw ValidationError("--route \(route): expected /prefix=ws://host:port/path or /prefix=tcp://host:port")
                }
                let prefix = String(route[..<equals])
                guard prefix.count > 1, !prefix.contains(where: { $0 == "?" || $0 == "#" || $0 == " " }) else {
                    throw ValidationError("--route \(route): the prefix must be a path such as /chat")
                }
                bridged.append((prefix, try SockwayUpstream(String(route[route.index(after: equals)...]))))
            }
        } catch let error as SockwayUpstreamError {
            throw ValidationError(error.description)
        }
        return bridged
    }

    func run() async throws {
        let level = logLevel
        switch logFormat {
        case .text:
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        case .json:
            LoggingSystem.bootstrap { label in SockwayJSONLogHandler(label: label, logLevel: level) }
        }
        let logger = Logger(label: "sockway")
        let deflate: PerMessageDeflateConfiguration
        switch compression {
        case .perConnection: deflate = .init(compression: .perConnection(windowBits: compressionWindowBits, memoryLevel: compressionMemLevel))
        case .shared: deflate = .init(compression: .sharedPerEventLoop)
        case .none: deflate = .disabled
        }
        let binding: SessionBinding? =
            switch sessionBinding {
            case .auto: nil
            case .none: SessionBinding.none
            case .cookie: .cookie
            case .address: .clientAddress
            }
        // Without --sockjs-url, a local sockjs-client (Debian's) is preferred: the pages then work offline.
        let localScript = sockjsURLOption == nil && FileManager.default.fileExists(atPath: Self.debianClientScript) ? Self.debianClientScript : nil
        let sockjsURL = sockjsURLOption ?? (localScript != nil ? "/sockjs.min.js" : SockwayEndpointOptions().clientScriptURL)
        let options = SockwayEndpointOptions(
            cookieNeeded: cookieNeeded,
            clientScriptURL: sockjsURL,
            allowedOrigins: allowedOrigins.isEmpty ? nil : Set(allowedOrigins),
            allowAnyOriginWithCredentials: allowAnyOriginWithCredentials,
            sessionBinding: binding,
            responseLimit: responseLimit,
            heartbeatInterval: .nanoseconds(Int64(heartbeat * 1e9)),
            disconnectDelay: .nanoseconds(Int64(disconnectDelay * 1e9)),
            maxMessageBytes: maxMessageBytes,
            maxSendBodyBytes: maxSendBodyBytes,
            sendHoldTimeout: .nanoseconds(Int64(sendHoldTimeout * 1e9)),
            compression: deflate,
            webSocketPingInterval: wsPingInterval.map { .nanoseconds(Int64($0 * 1e9)) },
            webSocketIdleTimeout: wsIdleTimeout.map { .nanoseconds(Int64($0 * 1e9)) }
        )
        var configuration = SockwayConfiguration(
            host: host,
            port: port,
            clientScriptURL: sockjsURL,
            requestHeadTimeout: .nanoseconds(Int64(headerTimeout * 1e9)),
            requestBodyTimeout: .nanoseconds(Int64(bodyTimeout * 1e9)),
            keepAliveTimeout: .nanoseconds(Int64(keepAliveTimeout * 1e9)),
            maxRequestLineBytes: maxRequestLine,
            maxRequestHeadBytes: maxHeadBytes,
            maxRequestHeaderFields: maxHeaderFields,
            maxSessions: maxSessions == 0 ? nil : maxSessions,
            maxSessionsPerAddress: maxSessionsPerAddress == 0 ? nil : maxSessionsPerAddress,
            localClientScriptFile: localScript
        )
        if let threads { configuration.eventLoopThreads = threads }
        configuration.drainWindow = .nanoseconds(Int64(drainWindow * 1e9))
        let registry = metricsPort.map { _ in PrometheusCollectorRegistry() }
        if let registry {
            configuration.metrics = SockwayMetricsOptions(factory: SockwayPrometheusExporter.makeFactory(registry: registry))
        }
        if let tlsCert, let tlsKey {
            configuration.tls = SockwayTLSConfiguration(certificateChainFile: tlsCert, privateKeyFile: tlsKey, reloadOnSIGHUP: true)
        }
        if allowAnyOriginWithCredentials && allowedOrigins.isEmpty {
            logger.warning("--allow-any-origin-with-credentials: any site's page may make credentialed requests to these endpoints (CORS echoes every origin with Access-Control-Allow-Credentials)")
        } else if allowAnyOriginWithCredentials {
            logger.notice("--allow-any-origin-with-credentials has no effect with --allowed-origin: only the listed origins get credentialed CORS")
        }
        let engineIO = EngineIOOptions(
            pingInterval: .nanoseconds(Int64(eioPingInterval * 1e9)),
            pingTimeout: .nanoseconds(Int64(eioPingTimeout * 1e9)),
            maxPayload: eioMaxPayload,
            cookie: eioCookie
        )
        var bus: (any BroadcastBus)?
        var clusterServices: [any Service] = []
        if let clusterConfiguration = try clusterConfiguration() {
            let clusterLogger = Logger(label: "sockway.cluster")
            do {
                try await PostgresBroadcastBus.check(clusterConfiguration, logger: clusterLogger)
            } catch {
                let metadata: Logger.Metadata = ["cluster": "\(cluster ?? "")", "error": "\(String(reflecting: error))"]
                guard clusterOptional else {
                    logger.critical("cannot reach PostgreSQL for --cluster (add --cluster-optional to start in local-only mode)", metadata: metadata)
                    throw ExitCode(1)
                }
                logger.warning("cannot reach PostgreSQL for --cluster: starting in local-only mode, reconnecting in the background", metadata: metadata)
            }
            var clusterConfiguration = clusterConfiguration
            clusterConfiguration.advertisedAddress = advertise ?? "\(tlsCert == nil ? "http" : "https")://\(host):\(port)"
            let postgresBus = PostgresBroadcastBus(configuration: clusterConfiguration, logger: clusterLogger)
            bus = postgresBus
            clusterServices.append(postgresBus)
            configuration.nodeID = clusterConfiguration.nodeID
            configuration.directory = postgresBus
            configuration.bus = postgresBus
            logger.info("cluster", metadata: ["node": "\(clusterConfiguration.nodeID)"])
        }
        var endpoints = SockwayDemoEndpoints.all(
            options: options,
            engineIO: engineIO,
            socketIOConnectTimeout: .nanoseconds(Int64(sioConnectTimeout * 1e9)),
            socketIORecovery: sioRecovery.map {
                SocketIORecovery(maxDisconnectionDuration: .milliseconds(Int64($0 * 1000)), maxMissedPackets: sioRecoveryMaxMissed)
            },
            bus: bus
        )
        let bridge = SockwayBridgeOptions(
            tcpFraming: tcpFraming,
            binaryAsBase64: upstreamBinary == .base64,
            forwardCookie: forwardCookie,
            maxMessageBytes: maxMessageBytes,
            connectTimeout: .nanoseconds(Int64(upstreamConnectTimeout * 1e9)),
            logger: Logger(label: "sockway.bridge")
        )
        for (prefix, upstream) in try bridgedRoutes() {
            let bridged: [SockwayEndpoint]
            if let prefix {
                bridged = [.bridge(prefix, to: upstream, options: options, bridge: bridge)]
            } else {
                bridged = [
                    .bridge("/echo", to: upstream, options: options, bridge: bridge),
                    .engineIOBridge("/engine.io", to: upstream, options: options, engineIO: engineIO, bridge: bridge),
                ]
            }
            endpoints.removeAll { endpoint in bridged.contains { $0.prefix == endpoint.prefix } }
            endpoints.append(contentsOf: bridged)
            logger.info("bridge", metadata: ["endpoints": "\(bridged.map(\.prefix).joined(separator: " "))", "upstream": "\(upstream)"])
        }
        let server = SockwayServer(configuration: configuration, logger: logger, endpoints: endpoints)
        (bus as? PostgresBroadcastBus)?.reportSessions { server.sessionCount }
        // The bus starts before the server and stops after it (a group stops its services in reverse).
        var services: [any Service] = clusterServices + [server]
        if let metricsPort, let registry {
            services.append(
                SockwayPrometheusExporter(host: metricsHost, port: metricsPort, registry: registry, logger: logger) {
                    await server.publishMetrics()
                }
            )
        }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension SockwayTCPFraming: ExpressibleByArgument {}
