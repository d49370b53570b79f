import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PostgresNIO
import ServiceLifecycle
import SockwayCluster

/// The broadcast bus of a cluster: every node's publications go through an outbox in PostgreSQL.
///
/// A publication is a row with a dense per-stream offset (`BroadcastPosition`); `NOTIFY` only
/// wakes the nodes, and each node reads what is new after the last offset it delivered, so a node
/// that was away (or missed a notification) catches up from the table instead of losing what was
/// sent meanwhile. Rows are kept for ``Configuration/retention`` and at most
/// ``Configuration/retainedPerStream`` per stream.
///
/// While PostgreSQL is unreachable, the node goes on: its own publications reach its own
/// subscribers at once (without a position) and are kept, up to ``Configuration/maxBacklog``, to be
/// written to the outbox after reconnecting, so the other nodes get them late rather than never;
/// the gap is logged and counted. The connection comes back with exponential backoff.
///
/// Run it as a `Service` (in the same `ServiceGroup` as the server, before it).
public final class PostgresBroadcastBus: BroadcastBus, ClusterDirectory, Service {
    /// How to reach PostgreSQL and how much the outbox keeps.
    public struct Configuration: Sendable {
        public var connection: PostgresConnection.Configuration
        /// This node's name: letters, digits, `.`, `_`, `-`; at most 64 characters.
        public var nodeID: String
        /// The `LISTEN`/`NOTIFY` channel; nodes of one cluster share it. Default `sockway`.
        public var channel = "sockway"
        /// How long publications stay in the outbox: a node away for longer misses the older ones.
        /// Default 2 minutes (Socket.IO's connection-state recovery window).
        public var retention: Duration = .seconds(120)
        /// The most publications kept per stream. Default 10,000.
        public var retainedPerStream = 10_000
        /// The most publications waiting to be written (made faster than PostgreSQL takes them, or kept
        /// while it is away). Past it the oldest are dropped from the cluster (still delivered here).
        /// Default 65,536.
        public var maxBacklog = 65_536
        /// How often each node checks its streams' tops without a notification (a safety net for a
        /// notification lost with a connection), and trims old rows every tenth time. Default 1 s.
        public var checkInterval: Duration = .seconds(1)
        /// Where other nodes and tools reach this node (`http://10.0.0.5:8080`), kept in the registry.
        /// Default `nil`.
        public var advertisedAddress: String?
        /// How often the node refreshes its row in the registry (`sockway_nodes`); a node not heard of
        /// for three intervals counts as gone. Default 2 s.
        public var heartbeatInterval: Duration = .seconds(2)
        /// The first wait before reconnecting; doubled up to ``maxReconnectDelay``, with jitter.
        public var reconnectDelay: Duration = .milliseconds(100)
        public var maxReconnectDelay: Duration = .seconds(5)

        public init(connection: PostgresConnection.Configuration, nodeID: String) {
            self.connection = connection
            self.nodeID = nodeID
        }

        /// Reads `postgres://user[:password]@host[:port]/database[?sslmode=disable|prefer|require]`
        /// (`postgresql://` too). Without `sslmode`, TLS is off for a loopback host and preferred
        /// otherwise.
        public init(url: String, nodeID: String) throws(PostgresClusterError) {
            self.init(connection: try PostgresURL.parse(url), nodeID: nodeID)
            guard Self.isValidNodeID(nodeID) else { throw .invalidNodeID(nodeID) }
        }

        public static func isValidNodeID(_ id: String) -> Bool {
            !id.isEmpty && id.utf8.count <= 64
                && id.utf8.allSatisfy { byte in
                    (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                        || byte == 0x2E || byte == 0x5F || byte == 0x2D
                }
        }
    }

    /// What the bus has done since it started; for tests and logs.
    public struct Statistics: Sendable, Hashable {
        /// Publications written to the outbox.
        public var published = 0
        /// Publications delivered here from the outbox, own ones included.
        public var delivered = 0
        /// Own publications delivered here without the outbox (it was away).
        public var deliveredLocallyOnly = 0
        /// Publications that never reached the outbox (backlog overflow or too old on reconnecting).
        public var droppedFromCluster = 0
        /// Offsets this node never delivered: trimmed before it read them, or a history lost.
        public var missed = 0
        /// Rows or notifications written by a newer release, ignored.
        public var ignoredNewerVersion = 0
        /// Rows or notifications that could not be read, ignored.
        public var ignoredMalformed = 0
        /// Connections made (the first included).
        public var connections = 0
        /// Publications refused because ``Configuration/maxBacklog`` were already waiting to be written
        /// (published faster than PostgreSQL takes them): delivered nowhere.
        public var refusedOverloaded = 0
        /// Session records not written because ``Configuration/maxBacklog`` were already waiting.
        public var droppedSessionWrites = 0
        /// Sessions resumed from a record taken here, and takes that found none to resume.
        public var sessionsTaken = 0
        public var sessionsNotFound = 0
    }

    public var nodeID: String { configuration.nodeID }
    public let configuration: Configuration
    private let logger: Logger
    private let eventLoopGroup: any EventLoopGroup
    private let shared = NIOLockedValueBox(Shared())
    private let events: AsyncStream<Event>
    private let sink: AsyncStream<Event>.Continuation

    private struct Shared {
        var subscribers = BroadcastSubscribers()
        var sessionCount: (@Sendable () -> Int)?
        var pending: [Outgoing] = []
        /// Session records to write, the latest change per key.
        var sessionWrites: [String: SessionWrite] = [:]
        var wakeQueued = false
        var statistics = Statistics()
        var connected = false
        var members = MemberCounters()
        /// The live nodes' addresses, as of the last heartbeat.
        var addresses: [String: String] = [:]
        var connectedWaiters: [CheckedContinuation<Void, Never>] = []
    }

    struct Outgoing {
        var stream: String
        var payload: ByteBuffer
        var madeAt: ContinuousClock.Instant
        /// Delivered here already (while PostgreSQL was away).
        var delivered = false
    }

    /// What is left to write of a session's record: the changes since the last write, merged.
    enum SessionWrite {
        case keep(ByteBuffer, window: Duration)
        /// Kept, then parked, before either was written.
        case keepParked(ByteBuffer, window: Duration)
        case park
        case forget

        func then(_ next: SessionWrite) -> SessionWrite {
            switch (self, next) {
            case (.keep(let record, let window), .park), (.keepParked(let record, let window), .park):
                .keepParked(record, window: window)
            case (.forget, .park):
                .forget
            default:
                next
            }
        }
    }

    enum Event: Sendable {
        case wake
        case subscribed(String)
        case notified(String)
        case connected(PostgresConnection, generation: Int)
        case disconnected(generation: Int)
        case check
        case nodes(CheckedContinuation<[ClusterNode], any Error>)
        case history(String, after: BroadcastPosition, limit: Int, CheckedContinuation<BroadcastHistory, Never>)
        case takeSession(String, CheckedContinuation<ByteBuffer?, Never>)
        case members(String, CheckedContinuation<[String: Int], any Error>)
    }

    public init(
        configuration: Configuration,
        logger: Logger = Logger(label: "sockway.cluster"),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.configuration = configuration
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
        (events, sink) = AsyncStream.makeStream(of: Event.self)
    }

    /// Connects once, creates the outbox tables if needed and disconnects: for a clear error at
    /// start-up when PostgreSQL cannot be reached.
    public static func check(_ configuration: Configuration, logger: Logger, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws {
        try await withConnection(configuration, logger: logger, eventLoopGroup: eventLoopGroup) { connection in
            try await PostgresOutboxSchema.create(on: connection, logger: logger)
        }
    }

    /// Runs `body` on a connection of its own, closed after.
    private static func withConnection<Result>(
        _ configuration: Configuration,
        logger: Logger,
        eventLoopGroup: any EventLoopGroup,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let connection = try await PostgresConnection.connect(
            on: eventLoopGroup.any(),
            configuration: configuration.connection,
            id: 0,
            logger: logger
        )
        do {
            let result = try await body(connection)
            try await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    public var statistics: Statistics { shared.withLockedValue { $0.statistics } }

    /// The live nodes of the cluster that `configuration` names, read on a connection of its own
    /// (for tools: nothing is registered, nothing listened to).
    public static func liveNodes(
        _ configuration: Configuration,
        logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> [ClusterNode] {
        try await withConnection(configuration, logger: logger, eventLoopGroup: eventLoopGroup) { connection in
            try await OutboxWorker.nodes(on: connection, heartbeatInterval: configuration.heartbeatInterval, logger: logger)
        }
    }

    /// What this node reports in its heartbeat as its session count (the server's, say:
    /// `bus.reportSessions { server.sessionCount }`).
    public func reportSessions(_ count: @escaping @Sendable () -> Int) {
        shared.withLockedValue { $0.sessionCount = count }
    }

    var sessionCount: Int { shared.withLockedValue { $0.sessionCount }?() ?? 0 }

    /// The nodes of the cluster that are alive (heard of within three heartbeat intervals), from the
    /// registry: their names, addresses, session counts. Throws while PostgreSQL is unreachable.
    public func nodes() async throws -> [ClusterNode] {
        try await withCheckedThrowingContinuation { continuation in
            if case .terminated = sink.yield(.nodes(continuation)) {
                continuation.resume(throwing: PostgresClusterError.unavailable)
            }
        }
    }

    /// The address a live node registered (``Configuration/advertisedAddress``), as of this node's last
    /// heartbeat: what a server forwards a request to when it holds another node's session.
    public func address(of node: String) -> String? {
        shared.withLockedValue { $0.addresses[node] }
    }

    func setAddresses(_ nodes: [ClusterNode]) {
        var addresses: [String: String] = [:]
        for node in nodes where node.id != nodeID {
            if let address = node.address { addresses[node.id] = address }
        }
        shared.withLockedValue { $0.addresses = addresses }
    }

    /// Whether the bus has a working connection to PostgreSQL now.
    public var isConnected: Bool { shared.withLockedValue { $0.connected } }

    /// Returns once the bus has connected and caught up (at once if it is).
    public func waitUntilConnected() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = shared.withLockedValue { shared -> Bool in
                if shared.connected { return true }
                shared.connectedWaiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    // MARK: BroadcastBus

    public func publish(_ payload: ByteBuffer, on stream: String) {
        wakeWorker { shared in
            guard shared.pending.count < configuration.maxBacklog else {
                shared.statistics.refusedOverloaded += 1
                return
            }
            shared.pending.append(Outgoing(stream: stream, payload: payload, madeAt: .now))
        }
    }

    private func wakeWorker(after change: (inout Shared) -> Void) {
        let wake = shared.withLockedValue { shared -> Bool in
            change(&shared)
            if shared.wakeQueued { return false }
            shared.wakeQueued = true
            return true
        }
        if wake { sink.yield(.wake) }
    }

    /// Read from the outbox (by the worker, in order with its deliveries).
    public func history(of stream: String, after position: BroadcastPosition, limit: Int) async -> BroadcastHistory {
        await withCheckedContinuation { continuation in
            if case .terminated = sink.yield(.history(stream, after: position, limit: limit, continuation)) {
                continuation.resume(returning: .unavailable)
            }
        }
    }

    /// Records are written to `sockway_sessions` by the worker, after the publications made before them.
    public func keepSession(_ record: ByteBuffer, key: String, window: Duration) {
        writeSession(key, .keep(record, window: window))
    }

    public func parkSession(key: String) {
        writeSession(key, .park)
    }

    public func forgetSession(key: String) {
        writeSession(key, .forget)
    }

    /// A session open on another node counts as gone once that node's connection to PostgreSQL is
    /// (PostgreSQL sees a killed process's connection close at once), or its heartbeat stopped.
    public func takeSession(key: String) async -> ByteBuffer? {
        await withCheckedContinuation { continuation in
            if case .terminated = sink.yield(.takeSession(key, continuation)) {
                continuation.resume(returning: nil)
            }
        }
    }

    /// Written to `sockway_members` at each heartbeat, when the counts changed (at most
    /// ``maxReportedRooms`` rooms per stream, the largest).
    public func reportMembers(of stream: String, _ counts: @escaping @Sendable () -> [String: Int]) {
        let replaced = shared.withLockedValue { $0.members.set(counts, for: stream) }
        withExtendedLifetime(replaced) {}
    }

    /// The most rooms per stream a node reports.
    public static let maxReportedRooms = 10_000

    /// Summed over the nodes heard of within three heartbeats, from their last reports. Throws
    /// ``PostgresClusterError/unavailable`` while PostgreSQL is unreachable.
    public func members(of stream: String) async throws -> [String: Int] {
        try await withCheckedThrowingContinuation { continuation in
            if case .terminated = sink.yield(.members(stream, continuation)) {
                continuation.resume(throwing: PostgresClusterError.unavailable)
            }
        }
    }

    /// Every stream's rooms and their members on the live nodes, for a tool (`sockway nodes --rooms`).
    public static func liveMembers(
        _ configuration: Configuration,
        logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> [ClusterRoom] {
        try await withConnection(configuration, logger: logger, eventLoopGroup: eventLoopGroup) { connection in
            try await OutboxWorker.rooms(on: connection, stream: nil, heartbeatInterval: configuration.heartbeatInterval, logger: logger)
        }
    }

    var memberCounters: MemberCounters { shared.withLockedValue { $0.members } }

    private func writeSession(_ key: String, _ write: SessionWrite) {
        wakeWorker { shared in
            if let earlier = shared.sessionWrites[key] {
                shared.sessionWrites[key] = earlier.then(write)
            } else if shared.sessionWrites.count < configuration.maxBacklog {
                shared.sessionWrites[key] = write
            } else {
                shared.statistics.droppedSessionWrites += 1
            }
        }
    }

    public func subscribe(
        to stream: String,
        _ deliver: @escaping @Sendable (BroadcastDelivery) -> Void
    ) -> BroadcastSubscription {
        let (id, first) = shared.withLockedValue { $0.subscribers.add(deliver, to: stream) }
        if first { sink.yield(.subscribed(stream)) }
        return BroadcastSubscription { [weak self] in
            let removed = self?.shared.withLockedValue { $0.subscribers.remove(id, from: stream) }
            withExtendedLifetime(removed) {}  // released here, outside the lock
        }
    }

    // MARK: Service

    public func run() async throws {
        let worker = OutboxWorker(bus: self, logger: logger)
        await withDiscardingTaskGroup { group in
            group.addTask { await self.maintainConnection() }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: self.configuration.checkInterval)
                    self.sink.yield(.check)
                }
            }
            await withGracefulShutdownHandler {
                for await event in events {
                    await worker.handle(event)
                }
            } onGracefulShutdown: {
                self.sink.finish()
            }
            await worker.shutDown()
            group.cancelAll()
        }
    }

    /// Connects, listens and reports; after a failure waits (doubling, with jitter) and connects again.
    private func maintainConnection() async {
        var delay = configuration.reconnectDelay
        var generation = 0
        var failures = 0
        while !Task.isCancelled {
            generation += 1
            var connection: PostgresConnection?
            do {
                let made = try await PostgresConnection.connect(
                    on: eventLoopGroup.any(),
                    configuration: configuration.connection,
                    id: generation,
                    logger: logger
                )
                connection = made
                try await PostgresOutboxSchema.create(on: made, logger: logger)
                delay = configuration.reconnectDelay
                if failures > 0 {
                    logger.notice("cluster: reconnected to PostgreSQL", metadata: ["after_failures": "\(failures)"])
                }
                failures = 0
                try await made.listen(on: configuration.channel) { notifications in
                    sink.yield(.connected(made, generation: generation))
                    for try await notification in notifications {
                        sink.yield(.notified(notification.payload))
                    }
                }
            } catch {
                if !Task.isCancelled {
                    failures += 1
                    let message: Logger.Message = "cluster: PostgreSQL connection failed; local delivery goes on"
                    let metadata: Logger.Metadata = ["error": "\(String(reflecting: error))", "retry_in": "\(delay)"]
                    if failures == 1 { logger.warning(message, metadata: metadata) } else { logger.debug(message, metadata: metadata) }
                }
            }
            sink.yield(.disconnected(generation: generation))
            try? await connection?.close()
            guard !Task.isCancelled else { return }
            let jitter = Double.random(in: 0.8...1.2)
            try? await Task.sleep(for: delay * jitter)
            delay = min(delay * 2, configuration.maxReconnectDelay)
        }
    }

    // MARK: For the worker

    func takePending() -> (publications: [Outgoing], sessions: [String: SessionWrite]) {
        shared.withLockedValue { shared in
            shared.wakeQueued = false
            defer {
                shared.pending.removeAll(keepingCapacity: true)
                shared.sessionWrites.removeAll()
            }
            return (shared.pending, shared.sessionWrites)
        }
    }

    /// Session writes that could not be made: back in front of any made since.
    func restoreSessionWrites(_ writes: [String: SessionWrite]) {
        shared.withLockedValue { shared in
            for (key, write) in writes {
                shared.sessionWrites[key] = shared.sessionWrites[key].map { write.then($0) } ?? write
            }
        }
    }

    func handlers(of stream: String) -> [BroadcastSubscribers.Deliver] {
        shared.withLockedValue { $0.subscribers.handlers(of: stream) }
    }

    var subscribedStreams: [String] { shared.withLockedValue { $0.subscribers.streams } }

    func count(_ update: (inout Statistics) -> Void) {
        shared.withLockedValue { update(&$0.statistics) }
    }

    func setConnected(_ connected: Bool) {
        let waiters = shared.withLockedValue { shared -> [CheckedContinuation<Void, Never>] in
            shared.connected = connected
            guard connected else { return [] }
            defer { shared.connectedWaiters.removeAll() }
            return shared.connectedWaiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// A node of the cluster as the registry knows it.
public struct ClusterNode: Sendable, Hashable {
    public var id: String
    public var address: String?
    /// The publication format it writes (`BroadcastWire.version` of its release).
    public var wireVersion: Int
    public var sessions: Int
    /// How long ago its last heartbeat was written, as PostgreSQL's clock sees it.
    public var heartbeatAge: Duration
}

/// A room of a stream, and its members on the live nodes.
public struct ClusterRoom: Sendable, Hashable {
    public var stream: String
    public var room: String
    public var members: Int
}

/// Why a cluster could not be set up.
public enum PostgresClusterError: Error, Sendable, Hashable, CustomStringConvertible {
    case invalidURL(String)
    case invalidNodeID(String)
    /// No connection to PostgreSQL now (or the bus has stopped).
    case unavailable

    public var description: String {
        switch self {
        case .invalidURL(let reason): "invalid PostgreSQL URL: \(reason)"
        case .invalidNodeID(let id): "invalid node id \"\(id)\": use 1 to 64 letters, digits, '.', '_' or '-'"
        case .unavailable: "PostgreSQL is not reachable now"
        }
    }
}
