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
    private var parkedLeftovers = false
    private var startedMembers = false
    /// The member counts last written per stream (`nil`: never, so the first heartbeat clears what an
    /// earlier run left).
    private var membersWritten: [String: [String: Int]] = [:]
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
        case .history(let stream, let after, let limit, let continuation):
            var history = BroadcastHistory.unavailable
            await attempt { history = try await self.history(of: stream, after: after, limit: limit) }
            continuation.resume(returning: history)
        case .members(let stream, let continuation):
            do {
                guard let connection else { throw OutboxUnavailable() }
                let rooms = try await Self.rooms(on: connection, stream: stream, heartbeatInterval: bus.configuration.heartbeatInterval, logger: logger)
                continuation.resume(returning: Dictionary(rooms.map { ($0.room, $0.members) }, uniquingKeysWith: +))
            } catch {
                continuation.resume(throwing: error is OutboxUnavailable ? PostgresClusterError.unavailable : error)
                if !(error is OutboxUnavailable) { lose(error) }
            }
        case .takeSession(let key, let continuation):
            // This node's own writes first: a session parked here a moment ago can be taken here.
            await publishPending()
            var record: ByteBuffer?
            await attempt { record = try await self.takeSession(key) }
            bus.count { if record == nil { $0.sessionsNotFound += 1 } else { $0.sessionsTaken += 1 } }
            continuation.resume(returning: record)
        }
    }

    func shutDown() async {
        await publishPending()
        if let connection {
            // Leaving: out of the registry at once rather than after three missed heartbeats.
            _ = try? await connection.query("DELETE FROM sockway_nodes WHERE node_id = \(bus.nodeID)", logger: logger)
            _ = try? await connection.query("DELETE FROM sockway_members WHERE node_id = \(bus.nodeID)", logger: logger)
            try? await connection.close()
        }
        connection = nil
        bus.setConnected(false)
    }

    // MARK: Writing

    private func publishPending() async {
        let (pending, sessions) = bus.takePending()
        if !pending.isEmpty {
            if connection == nil {
                deliverHereOnly(pending)
            } else if let failure = await writeByStream(pending) {
                lose(failure.error)
                // What was not written is delivered here and kept for later.
                deliverHereOnly(failure.unwritten)
            }
        }
        guard !sessions.isEmpty else { return }
        guard connection != nil else { return bus.restoreSessionWrites(sessions) }
        do {
            try await writeSessions(sessions)
        } catch {
            bus.restoreSessionWrites(sessions)
            lose(error)
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

    // MARK: Sessions

    private func writeSessions(_ writes: [String: PostgresBroadcastBus.SessionWrite]) async throws {
        guard let connection else { throw OutboxUnavailable() }
        var keys: [String] = [], records: [ByteBuffer] = [], windows: [Double] = [], parked: [Bool] = []
        var parks: [String] = [], forgets: [String] = []
        for (key, write) in writes {
            switch write {
            case .keep(let record, let window), .keepParked(let record, let window):
                keys.append(key)
                records.append(record)
                windows.append(Self.seconds(window))
                if case .keepParked = write { parked.append(true) } else { parked.append(false) }
            case .park: parks.append(key)
            case .forget: forgets.append(key)
            }
        }
        if !keys.isEmpty {
            try await connection.query(
                """
                INSERT INTO sockway_sessions AS s (key, node_id, record, window_seconds, parked_until)                 SELECT k, \(bus.nodeID), r, w, CASE WHEN p THEN clock_timestamp() + make_interval(secs => w) END                 FROM unnest(\(keys)::text[], \(records)::bytea[], \(windows)::float8[], \(parked)::bool[]) AS t(k, r, w, p)                 ON CONFLICT (key) DO UPDATE SET node_id = EXCLUDED.node_id, record = EXCLUDED.record,                 window_seconds = EXCLUDED.window_seconds, parked_until = EXCLUDED.parked_until, updated_at = clock_timestamp()
                """,
                logger: logger
            )
        }
        // Only this node's records: one resumed elsewhere since belongs to that node now.
        if !parks.isEmpty {
            try await connection.query(
                """
                UPDATE sockway_sessions SET parked_until = clock_timestamp() + make_interval(secs => window_seconds)                 WHERE key = ANY(\(parks)) AND node_id = \(bus.nodeID) AND parked_until IS NULL
                """,
                logger: logger
            )
        }
        if !forgets.isEmpty {
            try await connection.query(
                "DELETE FROM sockway_sessions WHERE key = ANY(\(forgets)) AND node_id = \(bus.nodeID)",
                logger: logger
            )
        }
    }

    /// Deletes and returns the record if it is parked and in its window, or open on a node whose
    /// listening connection is gone (or that left the registry), within its window of that node's
    /// last heartbeat.
    private func takeSession(_ key: String) async throws -> ByteBuffer? {
        guard let connection else { throw OutboxUnavailable() }
        let rows = try await connection.query(
            """
            DELETE FROM sockway_sessions AS s WHERE s.key = \(key) AND (
                (s.parked_until IS NOT NULL AND s.parked_until > clock_timestamp())
                OR (s.parked_until IS NULL AND NOT \(unescaped: Self.nodeAlive)
                    AND \(unescaped: Self.nodeLastSeen) + make_interval(secs => s.window_seconds) > clock_timestamp())
            ) RETURNING s.record
            """,
            logger: logger
        )
        var record: ByteBuffer?
        for try await value in rows.decode(ByteBuffer.self) { record = value }
        return record
    }

    /// The publications of `stream` after `position`, if the outbox still has every one of them.
    private func history(of stream: String, after position: BroadcastPosition, limit: Int) async throws -> BroadcastHistory {
        guard let connection else { throw OutboxUnavailable() }
        let top = try await tops(of: [stream])[stream]
        guard let top, top.epoch == position.epoch, position.offset <= top.top else { return .unavailable }
        guard top.top - position.offset <= UInt64(limit) else { return .unavailable }
        guard top.top > position.offset else { return .publications([]) }
        let rows = try await connection.query(
            """
            SELECT "offset", origin, payload FROM sockway_publications \
            WHERE stream = \(stream) AND epoch = \(position.epoch) AND "offset" > \(Int64(position.offset)) \
            AND "offset" <= \(Int64(top.top)) ORDER BY "offset"
            """,
            logger: logger
        )
        var publications: [BroadcastDelivery] = []
        var expected = position.offset + 1
        for try await (offset, origin, payload) in rows.decode((Int64, String, ByteBuffer).self) {
            // A gap: trimmed while the client was away.
            guard UInt64(offset) == expected else { return .unavailable }
            expected += 1
            let at = BroadcastPosition(epoch: position.epoch, offset: UInt64(offset))
            publications.append(BroadcastDelivery(stream: stream, position: at, origin: origin, payload: payload))
        }
        guard expected == top.top + 1 else { return .unavailable }
        return .publications(publications)
    }

    /// SQL: the node of session row `s` holds its listening connection (PostgreSQL drops a killed
    /// process's connection at once, long before its heartbeat is missed).
    private static let nodeAlive =
        "EXISTS (SELECT 1 FROM sockway_nodes n JOIN pg_stat_activity a ON a.pid = n.backend_pid WHERE n.node_id = s.node_id)"
    /// SQL: when the node of session row `s` was last heard of (its row is gone after a clean stop).
    private static let nodeLastSeen =
        "coalesce((SELECT n.heartbeat_at FROM sockway_nodes n WHERE n.node_id = s.node_id), s.updated_at)"

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
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
        if !parkedLeftovers, let connection {
            // Sessions an earlier run of this node left open (it was killed) ended when it did.
            try await connection.query(
                """
                UPDATE sockway_sessions AS s SET parked_until = \(unescaped: Self.nodeLastSeen) + make_interval(secs => s.window_seconds) \
                WHERE s.node_id = \(bus.nodeID) AND s.parked_until IS NULL
                """,
                logger: logger
            )
            parkedLeftovers = true
        }
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
            try await connection.query(
                """
                DELETE FROM sockway_sessions AS s WHERE s.parked_until < clock_timestamp() \
                OR (s.parked_until IS NULL AND NOT \(unescaped: Self.nodeAlive) \
                    AND \(unescaped: Self.nodeLastSeen) + make_interval(secs => s.window_seconds) < clock_timestamp())
                """,
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
            INSERT INTO sockway_nodes (node_id, address, wire_version, started_at, heartbeat_at, sessions, backend_pid)
            VALUES (\(bus.nodeID), \(configuration.advertisedAddress), \(Int(BroadcastWire.version)), \
            clock_timestamp() - make_interval(secs => \(Double(startedSecondsAgo))), clock_timestamp(), \(bus.sessionCount), \
            pg_backend_pid())
            ON CONFLICT (node_id) DO UPDATE SET address = EXCLUDED.address, wire_version = EXCLUDED.wire_version, \
            heartbeat_at = EXCLUDED.heartbeat_at, sessions = EXCLUDED.sessions, backend_pid = EXCLUDED.backend_pid
            """,
            logger: logger
        )
        nextHeartbeat = ContinuousClock.now + configuration.heartbeatInterval
        bus.setAddresses(try await nodes())
        try await writeMembers()
    }

    /// This node's rows of `sockway_members`, rewritten for each stream whose counts changed.
    private func writeMembers() async throws {
        guard let connection else { return }
        let counters = bus.memberCounters
        if !startedMembers {
            try await connection.query("DELETE FROM sockway_members WHERE node_id = \(bus.nodeID)", logger: logger)
            startedMembers = true
        }
        for stream in counters.streams {
            var counts = counters.counts(of: stream).filter { $0.value > 0 }
            if counts.count > PostgresBroadcastBus.maxReportedRooms {
                counts = Dictionary(uniqueKeysWithValues: counts.sorted { $0.value > $1.value }.prefix(PostgresBroadcastBus.maxReportedRooms).map { ($0.key, $0.value) })
            }
            guard membersWritten[stream] != counts else { continue }
            try await connection.query("BEGIN", logger: logger)
            do {
                try await connection.query("DELETE FROM sockway_members WHERE node_id = \(bus.nodeID) AND stream = \(stream)", logger: logger)
                if !counts.isEmpty {
                    let rooms = Array(counts.keys)
                    let members = rooms.map { Int64(counts[$0]!) }
                    try await connection.query(
                        """
                        INSERT INTO sockway_members (node_id, stream, room, members) \
                        SELECT \(bus.nodeID), \(stream), r, m FROM unnest(\(rooms)::text[], \(members)::bigint[]) AS t(r, m)
                        """,
                        logger: logger
                    )
                }
                try await connection.query("COMMIT", logger: logger)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
            membersWritten[stream] = counts
        }
    }

    /// Rooms and their members on the nodes heard of within three heartbeat intervals (of `stream`,
    /// or of every stream).
    static func rooms(on connection: PostgresConnection, stream: String?, heartbeatInterval interval: Duration, logger: Logger) async throws -> [ClusterRoom] {
        let window = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        let rows = try await connection.query(
            """
            SELECT m.stream, m.room, sum(m.members)::bigint FROM sockway_members m JOIN sockway_nodes n USING (node_id) \
            WHERE n.heartbeat_at > clock_timestamp() - make_interval(secs => \(window * 3)) \
            AND (\(stream)::text IS NULL OR m.stream = \(stream)) GROUP BY m.stream, m.room ORDER BY m.stream, m.room
            """,
            logger: logger
        )
        var rooms: [ClusterRoom] = []
        for try await (stream, room, members) in rows.decode((String, String, Int64).self) {
            rooms.append(ClusterRoom(stream: stream, room: room, members: Int(members)))
        }
        return rooms
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
