import Logging
import NIOCore
import PostgresNIO
import SockwayCluster

/// The one task that talks to PostgreSQL for a ``PostgresBroadcastBus``: it writes this node's
/// publications, reads others' and delivers both, one event at a time, so each stream's subscribers
/// see the outbox's order.
final class OutboxWorker {
    private let bus: PostgresBroadcastBus
    private let logger: Logger
    private var connection: PostgresConnection?
    private var generation = 0
    private var cursors: [String: OutboxCursor] = [:]
    /// Streams subscribed to while PostgreSQL was away: their cursors start at the top once it is back.
    private var unstarted: Set<String> = []
    /// Own publications delivered here while PostgreSQL was away, to be written when it is back.
    private var backlog: [PostgresBroadcastBus.Outgoing] = []
    private var checks = 0
    private var awaySince: ContinuousClock.Instant? = .now
    private var awayDeliveredLocally = 0
    private var awayDropped = 0
    private var loggedNewerVersion = false
    private var nextHeartbeat = ContinuousClock.now
    private let startedAt = ContinuousClock.now

    /// Rows read per query while catching up.
    private static let readLimit = 1000

    init(bus: PostgresBroadcastBus, logger: Logger) {
        self.bus = bus
        self.logger = logger
    }

    func handle(_ event: PostgresBroadcastBus.Event) async {
        switch event {
        case .wake:
            await publishPending()
        case .subscribed(let stream):
            guard cursors[stream] == nil else { return }
            unstarted.insert(stream)
            if connection != nil { await attempt { try await self.startStreams() } }
        case .notified(let text):
            await notified(text)
        case .connected(let made, let generation):
            connection = made
            self.generation = generation
            bus.count { $0.connections += 1 }
            await attempt { try await self.catchUp() }
        case .disconnected(let generation):
            if generation == self.generation, connection != nil { lose(nil) }
        case .check:
            await attempt { try await self.check() }
            if ContinuousClock.now >= nextHeartbeat { await attempt { try await self.heartbeat() } }
        case .nodes(let continuation):
            do {
                continuation.resume(returning: try await nodes())
            } catch {
                continuation.resume(throwing: error is OutboxUnavailable ? PostgresClusterError.unavailable : error)
                if !(error is OutboxUnavailable) { lose(error) }
            }
        }
    }

    func shutDown() async {
        await publishPending()
        if let connection {
            // Leaving: out of the registry at once rather than after three missed heartbeats.
            _ = try? await connection.query("DELETE FROM sockway_nodes WHERE node_id = \(bus.nodeID)", logger: logger)
            try? await connection.close()
        }
        connection = nil
        bus.setConnected(false)
    }

    // MARK: Writing

    private func publishPending() async {
        let pending = bus.takePending()
        guard !pending.isEmpty else { return }
        guard connection != nil else { return deliverHereOnly(pending) }
        if let failure = await writeByStream(pending) {
            lose(failure.error)
            // What was not written is delivered here and kept for later.
            deliverHereOnly(failure.unwritten)
        }
    }

    /// Writes `items`, one call per stream in order of first use; on a failure, what was not written
    /// (from the failing stream on) and why.
    private func writeByStream(_ items: [PostgresBroadcastBus.Outgoing]) async -> (unwritten: [PostgresBroadcastBus.Outgoing], error: any Error)? {
        let groups = Self.byStream(items)
        for (index, group) in groups.enumerated() {
            do {
                try await write(group.items, on: group.stream)
            } catch {
                return (groups[index...].flatMap(\.items), error)
            }
        }
        return nil
    }

    /// Groups `items` by stream, each group in publication order, the groups in order of first use.
    private static func byStream(_ items: [PostgresBroadcastBus.Outgoing]) -> [(stream: String, items: [PostgresBroadcastBus.Outgoing])] {
        var order: [String] = []
        var groups: [String: [PostgresBroadcastBus.Outgoing]] = [:]
        for item in items {
            if groups[item.stream] == nil { order.append(item.stream) }
            groups[item.stream, default: []].append(item)
        }
        return order.map { ($0, groups[$0]!) }
    }

    private func write(_ items: [PostgresBroadcastBus.Outgoing], on stream: String) async throws {
        guard let connection else { throw OutboxUnavailable() }
        let configuration = bus.configuration
        let payloads = items.map(\.payload)
        let rows = try await connection.query(
            """
            SELECT out_epoch, out_first FROM sockway_publish(\(stream), \(bus.nodeID), \(payloads), \
            \(Int64(configuration.retainedPerStream)), \(configuration.channel))
            """,
            logger: logger
        )
        var result: (String, Int64)?
        for try await row in rows.decode((String, Int64).self) { result = row }
        guard let (epoch, first) = result else { throw OutboxUnavailable() }
        bus.count { $0.published += items.count }
        let alreadyDelivered = items.allSatisfy(\.delivered)
        guard var cursor = cursors[stream] else { return }
        let (action, historyLost) = cursor.published(
            epoch: epoch,
            first: UInt64(first),
            count: UInt64(items.count),
            alreadyDelivered: alreadyDelivered
        )
        cursors[stream] = cursor
        if historyLost { historyWasLost(stream) }
        switch action {
        case .deliverNow:
            let handlers = bus.handlers(of: stream)
            for (index, item) in items.enumerated() {
                let position = BroadcastPosition(epoch: epoch, offset: UInt64(first) + UInt64(index))
                deliver(BroadcastDelivery(stream: stream, position: position, origin: bus.nodeID, payload: item.payload), to: handlers)
            }
        case .read(let epoch, let after):
            try await read(stream, epoch: epoch, after: after, top: UInt64(first) + UInt64(items.count) - 1)
        case .nothing:
            break
        }
    }

    /// PostgreSQL is away: deliver `items` to this node's subscribers now and keep them for the outbox.
    private func deliverHereOnly(_ items: [PostgresBroadcastBus.Outgoing]) {
        for var item in items {
            if !item.delivered {
                let delivery = BroadcastDelivery(stream: item.stream, position: nil, origin: bus.nodeID, payload: item.payload)
                deliver(delivery, to: bus.handlers(of: item.stream))
                item.delivered = true
                awayDeliveredLocally += 1
                bus.count { $0.deliveredLocallyOnly += 1 }
            }
            backlog.append(item)
        }
        let excess = backlog.count - bus.configuration.maxBacklog
        if excess > 0 {
            backlog.removeFirst(excess)
            awayDropped += excess
            bus.count { $0.droppedFromCluster += excess }
        }
    }

    /// Writes what was kept while PostgreSQL was away, dropping what is older than the retention
    /// (the other nodes would have trimmed it anyway).
    private func flushBacklog() async throws {
        guard !backlog.isEmpty else { return }
        let oldest = ContinuousClock.now - bus.configuration.retention
        let kept = backlog.filter { $0.madeAt >= oldest }
        let dropped = backlog.count - kept.count
        if dropped > 0 {
            awayDropped += dropped
            bus.count { $0.droppedFromCluster += dropped }
        }
        backlog.removeAll()
        if let failure = await writeByStream(kept) {
            backlog = failure.unwritten
            throw failure.error
        }
    }

    // MARK: Reading

    private func notified(_ text: String) async {
        switch OutboxNotification(text) {
        case .unreadable:
            bus.count { $0.ignoredMalformed += 1 }
            logger.debug("cluster: unreadable notification ignored", metadata: ["notification": "\(text.prefix(100))"])
        case .newerVersion(let version):
            bus.count { $0.ignoredNewerVersion += 1 }
            logNewerVersion(version)
        case .wake(let epoch, let top, _, let stream):
            guard var cursor = cursors[stream] else { return }
            let (observation, historyLost) = cursor.observed(epoch: epoch, top: top)
            cursors[stream] = cursor
            if historyLost { historyWasLost(stream) }
            if case .read(let epoch, let after) = observation {
                await attempt { try await self.read(stream, epoch: epoch, after: after, top: top) }
            }
        }
    }

    /// Reads the stream after `after` and delivers what this node has not delivered yet.
    private func read(_ stream: String, epoch: String, after: UInt64, top: UInt64) async throws {
        guard let connection else { throw OutboxUnavailable() }
        var after = after
        while true {
            let rows = try await connection.query(
                """
                SELECT "offset", origin, payload FROM sockway_publications \
                WHERE stream = \(stream) AND epoch = \(epoch) AND "offset" > \(Int64(after)) \
                ORDER BY "offset" LIMIT \(Self.readLimit)
                """,
                logger: logger
            )
            var read: [(offset: UInt64, origin: String, payload: ByteBuffer)] = []
            for try await (offset, origin, payload) in rows.decode((Int64, String, ByteBuffer).self) {
                read.append((UInt64(offset), origin, payload))
            }
            guard var cursor = cursors[stream] else { return }
            let accepted = cursor.accept(epoch: epoch, offsets: read.map(\.offset))
            var missed = accepted.missed
            if read.count < Self.readLimit { missed += cursor.caughtUp(epoch: epoch, top: top) }
            cursors[stream] = cursor
            if missed > 0 {
                bus.count { $0.missed += Int(missed) }
                logger.warning(
                    "cluster: publications trimmed from the outbox before this node read them",
                    metadata: ["stream": "\(stream)", "missed": "\(missed)"]
                )
            }
            let handlers = bus.handlers(of: stream)
            for index in accepted.deliver {
                let row = read[index]
                guard let version = BroadcastWire.version(of: row.payload) else {
                    bus.count { $0.ignoredMalformed += 1 }
                    continue
                }
                guard version <= BroadcastWire.version else {
                    bus.count { $0.ignoredNewerVersion += 1 }
                    logNewerVersion(Int(version))
                    continue
                }
                let position = BroadcastPosition(epoch: epoch, offset: row.offset)
                deliver(BroadcastDelivery(stream: stream, position: position, origin: row.origin, payload: row.payload), to: handlers)
                bus.count { $0.delivered += 1 }
            }
            guard read.count == Self.readLimit, let last = read.last else { return }
            after = last.offset
        }
    }

    private func deliver(_ delivery: BroadcastDelivery, to handlers: [BroadcastSubscribers.Deliver]) {
        for handler in handlers { handler(delivery) }
    }

    // MARK: Connection

    /// Right after connecting: cursors for new streams, what others published while this node was
    /// away, then what this node kept for the outbox meanwhile.
    private func catchUp() async throws {
        try await heartbeat()
        try await startStreams()
        try await check()
        try await flushBacklog()
        bus.setConnected(true)
        if let awaySince {
            let away = ContinuousClock.now - awaySince
            if awayDeliveredLocally > 0 || awayDropped > 0 || bus.statistics.connections > 1 {
                logger.notice(
                    "cluster: PostgreSQL is back",
                    metadata: [
                        "away": "\(away)",
                        "delivered_here_only": "\(awayDeliveredLocally)",
                        "dropped_from_cluster": "\(awayDropped)",
                    ]
                )
            }
        }
        awaySince = nil
        awayDeliveredLocally = 0
        awayDropped = 0
    }

    private func startStreams() async throws {
        guard !unstarted.isEmpty else { return }
        let streams = Array(unstarted)
        let tops = try await tops(of: streams)
        for stream in streams {
            let top = tops[stream]
            cursors[stream] = OutboxCursor(epoch: top?.epoch, top: top?.top ?? 0)
            unstarted.remove(stream)
        }
    }

    /// The safety net behind notifications: every stream's top, and reads where it moved; old rows
    /// trimmed every tenth time.
    private func check() async throws {
        guard let connection else { return }
        try await startStreams()
        let tops = try await tops(of: Array(cursors.keys))
        for (stream, top) in tops {
            guard var cursor = cursors[stream] else { continue }
            let (observation, historyLost) = cursor.observed(epoch: top.epoch, top: top.top)
            cursors[stream] = cursor
            if historyLost { historyWasLost(stream) }
            if case .read(let epoch, let after) = observation {
                try await read(stream, epoch: epoch, after: after, top: top.top)
            }
        }
        checks += 1
        if checks % 10 == 0 {
            let seconds = Double(bus.configuration.retention.components.seconds)
            try await connection.query(
                "DELETE FROM sockway_publications WHERE created_at < clock_timestamp() - make_interval(secs => \(seconds))",
                logger: logger
            )
        }
    }

    // MARK: Registry

    /// Writes this node's row: address, wire version, session count, heartbeat time.
    private func heartbeat() async throws {
        guard let connection else { return }
        let configuration = bus.configuration
        let startedSecondsAgo = (ContinuousClock.now - startedAt).components.seconds
        try await connection.query(
            """
            INSERT INTO sockway_nodes (node_id, address, wire_version, started_at, heartbeat_at, sessions)
            VALUES (\(bus.nodeID), \(configuration.advertisedAddress), \(Int(BroadcastWire.version)), \
            clock_timestamp() - make_interval(secs => \(Double(startedSecondsAgo))), clock_timestamp(), \(bus.sessionCount))
            ON CONFLICT (node_id) DO UPDATE SET address = EXCLUDED.address, wire_version = EXCLUDED.wire_version, \
            heartbeat_at = EXCLUDED.heartbeat_at, sessions = EXCLUDED.sessions
            """,
            logger: logger
        )
        nextHeartbeat = ContinuousClock.now + configuration.heartbeatInterval
    }

    private func nodes() async throws -> [ClusterNode] {
        guard let connection else { throw OutboxUnavailable() }
        return try await Self.nodes(on: connection, heartbeatInterval: bus.configuration.heartbeatInterval, logger: logger)
    }

    /// The registry's live nodes: heard of within three heartbeat intervals.
    static func nodes(on connection: PostgresConnection, heartbeatInterval interval: Duration, logger: Logger) async throws -> [ClusterNode] {
        let window = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        let rows = try await connection.query(
            """
            SELECT node_id, address, wire_version, sessions, \
            EXTRACT(EPOCH FROM clock_timestamp() - heartbeat_at)::float8 FROM sockway_nodes \
            WHERE heartbeat_at > clock_timestamp() - make_interval(secs => \(window * 3)) ORDER BY node_id
            """,
            logger: logger
        )
        var nodes: [ClusterNode] = []
        for try await (id, address, version, sessions, age) in rows.decode((String, String?, Int, Int, Double).self) {
            nodes.append(ClusterNode(id: id, address: address, wireVersion: version, sessions: sessions, heartbeatAge: .milliseconds(Int64(age * 1000))))
        }
        return nodes
    }

    private func tops(of streams: [String]) async throws -> [String: (epoch: String, top: UInt64)] {
        guard let connection, !streams.isEmpty else { return [:] }
        let rows = try await connection.query(
            "SELECT stream, epoch, top FROM sockway_streams WHERE stream = ANY(\(streams))",
            logger: logger
        )
        var tops: [String: (epoch: String, top: UInt64)] = [:]
        for try await (stream, epoch, top) in rows.decode((String, String, Int64).self) {
            tops[stream] = (epoch, UInt64(top))
        }
        return tops
    }

    /// Runs `body`; a failure means the connection is gone.
    private func attempt(_ body: () async throws -> Void) async {
        do { try await body() } catch { lose(error) }
    }

    private func lose(_ error: (any Error)?) {
        guard let lost = connection else { return }
        if let error {
            logger.warning(
                "cluster: PostgreSQL query failed; local delivery goes on",
                metadata: ["error": "\(String(reflecting: error))"]
            )
        }
        connection = nil
        awaySince = .now
        bus.setConnected(false)
        // The listening task sees the connection close and reconnects.
        lost.close().whenComplete { _ in }
    }

    private func historyWasLost(_ stream: String) {
        bus.count { $0.missed += 1 }
        logger.warning("cluster: the stream's history was lost (new epoch); following the new one", metadata: ["stream": "\(stream)"])
    }

    private func logNewerVersion(_ version: Int) {
        let message: Logger.Message = "cluster: ignored a publication from a node of a newer release"
        let metadata: Logger.Metadata = ["version": "\(version)", "supported": "\(BroadcastWire.version)"]
        if loggedNewerVersion { logger.debug(message, metadata: metadata) } else { logger.warning(message, metadata: metadata) }
        loggedNewerVersion = true
    }
}

/// No connection to PostgreSQL at the moment.
struct OutboxUnavailable: Error {}

/// A notification of the outbox: `version epoch top origin stream`.
enum OutboxNotification: Equatable {
    case wake(epoch: String, top: UInt64, origin: String, stream: String)
    case newerVersion(Int)
    case unreadable

    init(_ text: String) {
        let parts = text.split(separator: " ", maxSplits: 4, omittingEmptySubsequences: false)
        guard parts.count == 5, let version = Int(parts[0]) else {
            self = .unreadable
            return
        }
        guard version <= Int(BroadcastWire.version) else {
            self = .newerVersion(version)
            return
        }
        guard let top = UInt64(parts[2]), !parts[1].isEmpty, !parts[4].isEmpty else {
            self = .unreadable
            return
        }
        self = .wake(epoch: String(parts[1]), top: top, origin: String(parts[3]), stream: String(parts[4]))
    }
}
