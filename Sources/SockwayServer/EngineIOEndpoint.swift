import NIOCore
import NIOHTTP1
import SockwayCore
import SockwayEngineIO

/// The Engine.IO v4 settings of an endpoint made with
/// ``SockwayEndpoint/engineIO(_:options:engineIO:makeDelegate:)``. The defaults are the reference
/// server's.
public struct EngineIOOptions: Hashable, Sendable {
    /// How often the server pings. Default 25 s.
    public var pingInterval: TimeAmount
    /// How long the server waits for the client's pong before closing the session. Default 20 s.
    public var pingTimeout: TimeAmount
    /// The largest POST body (and WebSocket message) accepted, in bytes; announced in the handshake.
    /// Default 1,000,000.
    public var maxPayload: Int
    /// How long a WebSocket may take between its `2probe` and its `upgrade`. Default 10 s.
    public var upgradeTimeout: TimeAmount
    /// The transports clients may use. Default both.
    public var transports: Set<EngineIOTransport>
    /// The name of a cookie set on the handshake to the session id, for load balancers that pin a
    /// client to a node by cookie (the reference's `cookie` option, usually `io`). Default `nil`: none.
    public var cookie: String?

    public init(
        pingInterval: TimeAmount = .seconds(25),
        pingTimeout: TimeAmount = .seconds(20),
        maxPayload: Int = 1_000_000,
        upgradeTimeout: TimeAmount = .seconds(10),
        transports: Set<EngineIOTransport> = Set(EngineIOTransport.allCases),
        cookie: String? = nil
    ) {
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.maxPayload = maxPayload
        self.upgradeTimeout = upgradeTimeout
        self.transports = transports
        self.cookie = cookie
    }
}

extension SockwayEndpoint {
    /// An Engine.IO v4 endpoint at `path` (`/engine.io/` by default): polling and WebSocket, the
    /// upgrade between them, and the heartbeat. Its sessions are ``SockwaySession``s like those of a
    /// SockJS endpoint, so one delegate can serve both kinds of client; an Engine.IO session also
    /// carries binary messages (``SockwaySession/sendBinary(_:)``,
    /// ``SockwaySessionDelegate/session(_:didReceiveBinary:)``).
    ///
    /// The bounds, origins, inbound queue and WebSocket settings come from `options` as for SockJS;
    /// Engine.IO's own timers and limits from `engineIO`.
    public static func engineIO(
        _ path: String = "/engine.io",
        options: SockwayEndpointOptions = .init(),
        engineIO: EngineIOOptions = .init(),
        makeDelegate: @escaping @Sendable (SockwaySession) -> any SockwaySessionDelegate
    ) -> SockwayEndpoint {
        SockwayEndpoint(prefix: path, options: options, handler: .eventLoop(makeDelegate), engineIO: engineIO)
    }

    /// An Engine.IO v4 endpoint whose sessions are each served by a task running `body` (see
    /// ``SockwayEndpoint/async(_:options:body:)``). Binary messages from the client close the
    /// session: the async face carries text.
    public static func engineIO(
        _ path: String = "/engine.io",
        options: SockwayEndpointOptions = .init(),
        engineIO: EngineIOOptions = .init(),
        body: @escaping @Sendable (SockwaySession) async throws -> Void
    ) -> SockwayEndpoint {
        SockwayEndpoint(prefix: path, options: options, handler: .async(body), engineIO: engineIO)
    }
}

/// The I/O core of an Engine.IO session.
typealias EngineIOSessionCore = SessionCore<EngineIOSessionStateMachine>

/// Everything the server needs about one Engine.IO endpoint at run time.
final class EngineIORuntime: Sendable {
    let endpoint: SockwayEndpoint
    let engineIO: EngineIOOptions
    let rules: EngineIORequestRules
    let store: SessionStore<EngineIOSessionCore>
    let budget: SessionBudget
    let refusals: RefusalLog
    let meter: EndpointMeter
    /// Put before every new session id: the node's name and `~` in a cluster, else nothing.
    let sessionIDPrefix: String

    init(
        endpoint: SockwayEndpoint,
        engineIO: EngineIOOptions,
        loops: [any EventLoop],
        budget: SessionBudget,
        refusals: RefusalLog,
        meter: EndpointMeter,
        nodeID: String? = nil
    ) {
        self.endpoint = endpoint
        self.sessionIDPrefix = nodeID.map { $0 + "~" } ?? ""
        self.meter = meter
        self.engineIO = engineIO
        self.rules = EngineIORequestRules(transports: engineIO.transports)
        self.store = SessionStore(loops: loops)
        self.budget = budget
        self.refusals = refusals
    }

    var machineConfiguration: EngineIOSessionStateMachine.Configuration {
        .init(
            pingInterval: engineIO.pingInterval,
            pingTimeout: engineIO.pingTimeout,
            maxPayload: engineIO.maxPayload,
            maxQueuedMessages: endpoint.options.maxQueuedMessages,
            maxQueuedBytes: endpoint.options.maxQueuedBytes,
            allowsUpgrade: engineIO.transports.contains(.websocket)
        )
    }

    /// The endpoint's options for its WebSocket connections: a message may be as large as
    /// `maxPayload`, as a POST body.
    var webSocketOptions: SockwayEndpointOptions {
        var options = endpoint.options
        options.maxMessageBytes = engineIO.maxPayload
        return options
    }

    /// The current transport of session `sid`; call on its owner loop.
    func transport(ofSession sid: String) -> EngineIOTransport? {
        store.session(id: sid).map { $0.machine.transport == .polling ? .polling : .websocket }
    }

    /// A new session id (see ``RandomID``). With `loop`, one whose sessions that loop owns, so that a
    /// WebSocket-only session lives on its connection's loop.
    func newSessionID(ownedBy loop: (any EventLoop)? = nil) -> String {
        while true {
            let sid = sessionIDPrefix + RandomID.make()
            if let loop, store.owner(of: sid) !== loop { continue }
            return sid
        }
    }

    /// Creates session `sid` and registers it, if the server's session bounds have room for it (the
    /// refusal is logged); call on its owner loop.
    func makeSession(
        sid: String,
        transport: EngineIOSessionStateMachine.Transport,
        remoteAddress: SocketAddress?,
        headers: HTTPHeaders
    ) -> Result<EngineIOSessionCore, SockwayRefusal> {
        let loop = store.owner(of: sid)
        loop.preconditionInEventLoop()
        let place: SessionBudget.Place
        switch budget.admit(remoteAddress, logging: refusals) {
        case .success(let granted): place = granted
        case .failure(let refusal): return .failure(refusal)
        }
        let store = self.store
        let budget = self.budget
        let core = SessionCore(
            eventLoop: loop,
            machine: EngineIOSessionStateMachine(sid: sid, transport: transport, configuration: machineConfiguration),
            options: endpoint.options,
            handler: endpoint.handler,
            queuedMeter: budget.queued,
            meter: meter.session(on: loop, transport: transport == .polling ? .engineIOPolling : .engineIOWebSocket)
        ) { reaped in
            store.remove(id: sid, core: reaped)
            budget.release(place)
        }
        core.setHandle(
            SockwaySession(
                id: sid,
                transport: transport == .polling ? "engineio-polling" : "engineio-websocket",
                remoteAddress: remoteAddress,
                headers: endpoint.options.keptHeaders(headers),
                eventLoop: loop,
                core: core,
                inboundLimit: endpoint.inboundLimit,
                outboxLimit: endpoint.options.outboxLimit
            )
        )
        store.insert(core, id: sid)
        return .success(core)
    }

    /// CORS headers for a request from `origin`: a listed origin (or any, with
    /// ``SockwayEndpointOptions/allowAnyOriginWithCredentials``) is echoed with credentials (browsers
    /// refuse `*` with credentials); otherwise `*`, without.
    func corsHeaders(origin: String?) -> HTTPHeaders {
        let options = endpoint.options
        guard let origin, !origin.isEmpty, origin != "null" || options.allowedOrigins?.contains("null") == true,
            options.allowedOrigins?.contains(origin) ?? options.allowAnyOriginWithCredentials
        else {
            return ["Access-Control-Allow-Origin": "*", "Vary": "Origin"]
        }
        return [
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        ]
    }
}

/// A long-polling GET of an Engine.IO session: takes one frame (a payload of packets, or a refusal)
/// and answers the request with it. Lives on the session's loop; the response belongs to the
/// connection's handler, possibly on another loop.
final class EngineIOPollReceiver: SessionReceiver, @unchecked Sendable {
    // `answered` is touched only on the session's loop.
    let kind = SessionReceiverKind.polling
    private let connection: NIOLoopBound<SockwayHTTPHandler>
    private let channel: any Channel
    private var answered = false

    init(connection: NIOLoopBound<SockwayHTTPHandler>, channel: any Channel) {
        self.connection = connection
        self.channel = channel
    }

    /// A poll takes one frame, whole: it never waits for its channel to drain.
    var isWritable: Bool { !answered }

    func write(_ frame: EngineIOFrame) -> Bool {
        guard !answered else { return true }
        answered = true
        let receiver = self
        switch frame {
        case .packets(let packets):
            var body = channel.allocator.buffer(capacity: EngineIOPayload.encodedByteCount(of: packets))
            EngineIOPayload.encode(packets, into: &body)
            let payload = body
            onConnection { $0.answerEngineIOPoll(receiver, status: .ok, body: payload) }
        case .refused:
            onConnection { $0.answerEngineIOPoll(receiver, status: .badRequest, body: nil) }
        }
        return true
    }

    func finish() {
        // A poll always ends with its one frame; one ended without any gets `noop`.
        if !answered { _ = write(.packets([.noop])) }
    }

    private func onConnection(_ body: @escaping @Sendable (SockwayHTTPHandler) -> Void) {
        connection.run(body)
    }
}

extension SessionCore where Machine == EngineIOSessionStateMachine {
    /// A polling POST's body: pongs count at once; messages and a `close` are handed over in order
    /// once the send is accepted (held while the outbox is backed up, like a SockJS send). `answer`
    /// is called on this loop: success for `200 ok`, or the error to answer with.
    func receivePost(
        _ payload: ByteBuffer,
        binaryBody: Bool,
        maxPayload: Int,
        answer: @escaping (Result<Void, EngineIOError>) -> Void
    ) {
        let now = eventLoop.now
        // v4 clients send binary as base64 text; a binary body, or a second POST while one is
        // still held, breaks the protocol and ends the session.
        guard !binaryBody, !hasHeldSends else {
            perform { $0.protocolViolated(.engineIOTransportError, now: now) }
            return answer(.failure(.badRequest))
        }
        let packets: [EngineIOPacket]
        do {
            packets = try EngineIOPayload.decode(payload, maxPayload: maxPayload)
        } catch {
            perform { $0.protocolViolated(.engineIOParseError, now: now) }
            return answer(.failure(.badRequest))
        }
        var handedOver: [EngineIOPacket] = []
        for packet in packets {
            switch packet.type {
            case .pong:
                perform { $0.pongReceived(now: now) }
            case .message, .close:
                handedOver.append(packet)
            case .ping:
                // In v4 the server pings, never the client.
                perform { $0.protocolViolated(.engineIOTransportError, now: now) }
                return answer(.failure(.badRequest))
            case .open, .upgrade, .noop:
                break
            }
        }
        guard !handedOver.isEmpty else { return answer(.success(())) }
        // A POST whose `close` ended the session was taken whole.
        let closes = handedOver.last?.type == .close
        acceptSend(delivering: { $0.receive(handedOver) }) { outcome in
            switch outcome {
            case .accepted: answer(.success(()))
            case .refused(.closed) where closes: answer(.success(()))
            case .refused(.closed): answer(.failure(.unknownSessionID))
            case .refused(.busy): answer(.failure(.badRequest))
            }
        }
    }

    /// Hands messages from the client to the application, and a `close` to the machine, in order;
    /// consecutive text messages go over as one batch.
    func receive(_ packets: [EngineIOPacket]) {
        var texts: [String] = []
        for packet in packets {
            switch (packet.type, packet.payload) {
            case (.message, .text(let text)):
                texts.append(text)
            case (.message, .none):
                texts.append("")
            case (.message, .binary(let bytes)):
                if !texts.isEmpty {
                    deliver(texts)
                    texts = []
                }
                deliverBinary(bytes)
            case (.close, _):
                if !texts.isEmpty {
                    deliver(texts)
                    texts = []
                }
                let now = eventLoop.now
                perform { $0.closeReceived(now: now) }
            default:
                break
            }
        }
        if !texts.isEmpty { deliver(texts) }
    }
}

/// Random ids for Engine.IO sessions and Socket.IO sockets: 22 characters of the URL-safe base64
/// alphabet from the system's CSPRNG, 132 random bits (the reference's are 20, 120 bits; an Engine.IO
/// sid is a bearer token for its session, so at least 122 bits, as a version 4 UUID).
enum RandomID {
    static let length = 22
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(length)
        for _ in 0..<length { bytes.append(alphabet[Int(generator.next(upperBound: UInt8(64)))]) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
