import NIOCore
import NIOHTTP1
import SockwayCore
import SockwaySockJS

/// The I/O core of a SockJS session.
typealias SockJSSessionCore = SessionCore<SockJSSessionStateMachine>

/// Everything the server needs about one SockJS endpoint at run time.
final class EndpointRuntime: Sendable {
    let endpoint: SockwayEndpoint
    let rules: SockJSServiceRules
    let store: SessionStore<SockJSSessionCore>
    let budget: SessionBudget
    let refusals: RefusalLog
    let meter: EndpointMeter

    init(endpoint: SockwayEndpoint, loops: [any EventLoop], budget: SessionBudget, refusals: RefusalLog, meter: EndpointMeter) {
        self.endpoint = endpoint
        self.meter = meter
        self.rules = endpoint.options.rules
        self.store = SessionStore(loops: loops)
        self.budget = budget
        self.refusals = refusals
    }

    /// What a request presents for a session of this endpoint, under its binding.
    func bindingToken(cookieHeader: String?, remoteAddress: SocketAddress?) -> SessionBindingToken {
        switch endpoint.options.effectiveSessionBinding {
        case .none: .none
        case .cookie: .cookie(SockJSServiceRules.sessionCookieValue(cookieHeader))
        case .clientAddress: .address(remoteAddress.flatMap(SessionBudget.key(for:)))
        }
    }

    /// A new session core on `loop`. `heartbeats`: `false` for a raw WebSocket session, which has no
    /// heartbeat frame.
    func makeCore(on loop: any EventLoop, transport: MeteredTransport, heartbeats: Bool = true, onReap: @escaping (SockJSSessionCore) -> Void) -> SockJSSessionCore {
        var configuration = endpoint.options.sessionConfiguration
        if !heartbeats { configuration.heartbeatInterval = nil }
        return SessionCore(
            eventLoop: loop,
            machine: SockJSSessionStateMachine(configuration: configuration),
            options: endpoint.options,
            handler: endpoint.handler,
            queuedMeter: budget.queued,
            meter: meter.session(on: loop, transport: transport),
            onReap: onReap
        )
    }
}

extension EndpointRuntime {
    /// A new WebSocket session on `loop` (its connection's), admitted under the server's bounds and
    /// tracked for shutdown; `nil` when the bounds refuse it (the caller closes with 1013). Call on `loop`.
    func openWebSocketSession(
        framing: SockJSWebSocketLink.Framing,
        id: String,
        headers: HTTPHeaders,
        remoteAddress: SocketAddress?,
        on loop: any EventLoop
    ) -> SockJSSessionCore? {
        guard case .success(let place) = budget.admit(remoteAddress, logging: refusals) else { return nil }
        let store = self.store
        let budget = self.budget
        let core = makeCore(on: loop, transport: framing == .sockJS ? .webSocket : .rawWebSocket, heartbeats: framing == .sockJS) { reaped in
            store.removeAnonymous(reaped, on: loop)
            budget.release(place)
        }
        core.setHandle(
            SockwaySession(
                id: id,
                transport: framing == .sockJS ? "websocket" : "raw-websocket",
                remoteAddress: remoteAddress,
                headers: endpoint.options.keptHeaders(headers),
                eventLoop: loop,
                core: core,
                inboundLimit: endpoint.inboundLimit,
                outboxLimit: endpoint.options.outboxLimit
            )
        )
        store.insertAnonymous(core, on: loop)
        return core
    }
}

/// What a session is bound to (see ``SessionBinding``): a request for it must present the same.
enum SessionBindingToken: Hashable, Sendable {
    case none
    case cookie(String)
    case address(SessionBudget.AddressKey?)
}

/// The sessions of one endpoint, sharded by session id over the event loops.
///
/// A session id always maps to the same loop, so finding a session needs no lock: a request on
/// another loop hops to the owner. WebSocket sessions (which have no shared id) live on their
/// connection's loop and are only tracked for shutdown.
final class SessionStore<Core: SessionFace>: Sendable {
    let loops: [any EventLoop]
    private let shards: [Shard]

    /// The sessions of one loop. Created off the loop, used only on it (asserted in debug builds).
    final class Shard: @unchecked Sendable {
        let eventLoop: any EventLoop
        private var storage = Storage()

        struct Storage {
            var byID: [String: Core] = [:]
            var anonymous: [ObjectIdentifier: Core] = [:]
        }

        init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

        var value: Storage {
            get {
                eventLoop.assertInEventLoop()
                return storage
            }
            _modify {
                eventLoop.assertInEventLoop()
                yield &storage
            }
        }
    }

    init(loops: [any EventLoop]) {
        precondition(!loops.isEmpty)
        self.loops = loops
        self.shards = loops.map { Shard(eventLoop: $0) }
    }

    private func shardIndex(for id: String) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in id.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return Int(hash % UInt64(loops.count))
    }

    private func shard(on loop: any EventLoop) -> Shard {
        for shard in shards where shard.eventLoop === loop { return shard }
        preconditionFailure("event loop not served by this store")
    }

    /// The loop that owns sessions with this id.
    func owner(of id: String) -> any EventLoop {
        loops[shardIndex(for: id)]
    }

    /// The session with this id; call on ``owner(of:)``.
    func session(id: String) -> Core? {
        shards[shardIndex(for: id)].value.byID[id]
    }

    /// Registers a new session under its id; call on ``owner(of:)``.
    func insert(_ core: Core, id: String) {
        shards[shardIndex(for: id)].value.byID[id] = core
    }

    func remove(id: String, core: Core) {
        let shard = shards[shardIndex(for: id)]
        if shard.value.byID[id] === core { shard.value.byID[id] = nil }
    }

    /// Tracks a session without a shared id; call on `loop`.
    func insertAnonymous(_ core: Core, on loop: any EventLoop) {
        shard(on: loop).value.anonymous[ObjectIdentifier(core)] = core
    }

    func removeAnonymous(_ core: Core, on loop: any EventLoop) {
        shard(on: loop).value.anonymous[ObjectIdentifier(core)] = nil
    }

    /// Sessions on `loop`; call on `loop`.
    func sessions(on loop: any EventLoop) -> [Core] {
        let shard = shard(on: loop).value
        return Array(shard.byID.values) + Array(shard.anonymous.values)
    }

    /// How many sessions live on `loop`; call on `loop`.
    func count(on loop: any EventLoop) -> Int {
        let shard = shard(on: loop).value
        return shard.byID.count + shard.anonymous.count
    }

    /// Closes every session with `reason`, on each loop.
    func closeAll(_ reason: SockwayCloseReason) -> EventLoopFuture<Void> {
        let futures = loops.map { loop in
            loop.submit {
                for core in self.sessions(on: loop) { core.close(reason) }
            }
        }
        return EventLoopFuture.andAllSucceed(futures, on: loops[0])
    }

    /// Closes every session at a random moment within `window` (uniformly), so that their clients do
    /// not all reconnect elsewhere at once. Returns once every close is scheduled.
    func closeAll(_ reason: SockwayCloseReason, spreadOver window: TimeAmount) -> EventLoopFuture<Void> {
        guard window.nanoseconds > 0 else { return closeAll(reason) }
        let futures = loops.map { loop in
            loop.submit {
                for core in self.sessions(on: loop) {
                    let bound = NIOLoopBound(core, eventLoop: loop)
                    loop.scheduleTask(in: .nanoseconds(Int64.random(in: 0..<window.nanoseconds))) { bound.value.close(reason) }
                }
            }
        }
        return EventLoopFuture.andAllSucceed(futures, on: loops[0])
    }
}
