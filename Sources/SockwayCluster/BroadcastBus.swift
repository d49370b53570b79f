import NIOConcurrencyHelpers
import NIOCore

/// Where a publication stands in its stream's history: the history's identity (`epoch`, new whenever
/// the history is lost) and the publication's offset in it (1, 2, 3, … without gaps).
public struct BroadcastPosition: Sendable, Hashable, CustomStringConvertible {
    public var epoch: String
    public var offset: UInt64

    public init(epoch: String, offset: UInt64) {
        self.epoch = epoch
        self.offset = offset
    }

    public var description: String { "\(epoch):\(offset)" }

    /// Reads what ``description`` wrote (`epoch:offset`); `nil` for anything else.
    public init?(_ text: some StringProtocol) {
        guard let colon = text.lastIndex(of: ":"), colon != text.startIndex,
            let offset = UInt64(text[text.index(after: colon)...])
        else { return nil }
        self.init(epoch: String(text[..<colon]), offset: offset)
    }
}

/// What a bus still has of a stream's past (``BroadcastBus/history(of:after:limit:)``).
public enum BroadcastHistory: Sendable {
    /// Every publication after the position, in the stream's order; empty when there is none.
    case publications([BroadcastDelivery])
    /// Not every one of them can be had: trimmed, from another epoch, more than the limit, or the
    /// bus keeps no history (or cannot reach it now).
    case unavailable
}

/// One publication as a subscriber receives it.
public struct BroadcastDelivery: Sendable {
    /// The stream it was published on.
    public var stream: String
    /// Its place in the stream's history; `nil` when the bus could not record it (a cluster node
    /// cut off from its database delivers its own publications at once, outside the history).
    public var position: BroadcastPosition?
    /// The node that published it.
    public var origin: String
    /// What the publisher passed to ``BroadcastBus/publish(_:on:)``; empty when the bus handed over
    /// ``value`` instead, without encoding it.
    public var payload: ByteBuffer
    /// What the publisher passed to ``BroadcastBus/publish(_:on:encode:)``, when the bus is one process's
    /// and did not need the bytes: use it rather than decoding ``payload``.
    public var value: (any Sendable)?

    public init(stream: String, position: BroadcastPosition?, origin: String, payload: ByteBuffer, value: (any Sendable)? = nil) {
        self.stream = stream
        self.position = position
        self.origin = origin
        self.payload = payload
        self.value = value
    }
}

/// The fan-out every broadcast group and room goes through: a publication on a stream reaches every
/// subscriber of that stream, on every node, in the order of the stream's history.
///
/// Sockway's SockJS broadcast groups and Socket.IO namespaces publish their messages here and deliver
/// what they receive to their local members, so one process (``InProcessBroadcastBus``, the default)
/// and several nodes sharing a database (`SockwayPostgres`) look the same to them. A stream's
/// publications are totally ordered: every subscriber on every node receives them in the same order,
/// and a publisher's own publications in the order it made them.
public protocol BroadcastBus: AnyObject, Sendable {
    /// This node's name in the cluster.
    var nodeID: String { get }

    /// Publishes `payload` on `stream`. Returns at once; may be called from any thread.
    func publish(_ payload: ByteBuffer, on stream: String)

    /// Publishes `value`, which `encode` turns into its payload, on `stream`. A bus that carries bytes
    /// (to other nodes, into a history) encodes it; a bus of one process hands `value` itself to the
    /// subscribers (``BroadcastDelivery/value``), which saves an encoding and a decoding per
    /// publication on a single node. The default encodes and calls ``publish(_:on:)``.
    func publish(_ value: some Sendable, on stream: String, encode: () -> ByteBuffer)

    /// Calls `deliver` with each publication on `stream` from now on, one call at a time, in the
    /// stream's order. Keep `deliver` short: it runs on the bus's own thread or the publisher's.
    func subscribe(
        to stream: String,
        _ deliver: @escaping @Sendable (BroadcastDelivery) -> Void
    ) -> BroadcastSubscription

    // MARK: Recovery

    /// The publications of `stream` after `position`, all of them or `.unavailable` (also when more
    /// than `limit` follow). What a client that was away missed; it may include publications this
    /// node is about to deliver, so compare positions.
    func history(of stream: String, after position: BroadcastPosition, limit: Int) async -> BroadcastHistory

    /// Records the state of an open session of this node under `key` (replacing an earlier record), so
    /// that a node can resume it within `window` of its end, even when this node dies without a word.
    func keepSession(_ record: ByteBuffer, key: String, window: Duration)

    /// The session of `key` ended here with a loss of connection: its record can be taken, by any
    /// node, until its window has passed.
    func parkSession(key: String)

    /// The session of `key` ended for good: its record goes.
    func forgetSession(key: String)

    /// Takes (removes and returns) the record of `key` if its session can be resumed: parked and
    /// within its window, or open on a node that is gone (its window counted from the node's last
    /// sign of life). `nil` otherwise, or when the bus cannot tell now.
    func takeSession(key: String) async -> ByteBuffer?

    // MARK: Membership

    /// Tells the bus how to count this node's members of each room of `stream` (asked when the bus
    /// needs the counts: at each heartbeat of a cluster's bus). Replaces an earlier counter.
    func reportMembers(of stream: String, _ counts: @escaping @Sendable () -> [String: Int])

    /// The members of each room of `stream` on every node, as of their last reports (a cluster's
    /// nodes report at each heartbeat). Throws when the bus cannot tell now.
    func members(of stream: String) async throws -> [String: Int]
}

/// The local members of each room of a stream, as reported, summed over every counter.
package struct MemberCounters: Sendable {
    private var counters: [String: @Sendable () -> [String: Int]] = [:]

    package init() {}

    /// Returns the counter it replaces, to be released outside the caller's lock.
    @discardableResult
    package mutating func set(_ counts: @escaping @Sendable () -> [String: Int], for stream: String) -> (@Sendable () -> [String: Int])? {
        counters.updateValue(counts, forKey: stream)
    }

    package func counts(of stream: String) -> [String: Int] {
        counters[stream]?() ?? [:]
    }

    package var streams: [String] { Array(counters.keys) }
}

extension BroadcastBus {
    public func publish(_ value: some Sendable, on stream: String, encode: () -> ByteBuffer) {
        publish(encode(), on: stream)
    }
}

/// A subscription to a stream; ``cancel()`` ends it (so does releasing it).
public final class BroadcastSubscription: Sendable {
    private let onCancel: NIOLockedValueBox<(@Sendable () -> Void)?>

    public init(onCancel: @escaping @Sendable () -> Void) {
        self.onCancel = NIOLockedValueBox(onCancel)
    }

    public func cancel() {
        let action = onCancel.withLockedValue { action in
            defer { action = nil }
            return action
        }
        action?()
    }

    deinit { cancel() }
}

/// The subscribers of a bus's streams: registration from any thread, a snapshot per delivery.
package struct BroadcastSubscribers: Sendable {
    package typealias Deliver = @Sendable (BroadcastDelivery) -> Void
    private var byStream: [String: [UInt64: Deliver]] = [:]
    private var nextID: UInt64 = 0

    package init() {}

    /// Adds `deliver`; returns its id and whether it is the stream's first subscriber.
    package mutating func add(_ deliver: @escaping Deliver, to stream: String) -> (id: UInt64, first: Bool) {
        nextID += 1
        let first = byStream[stream]?.isEmpty ?? true
        byStream[stream, default: [:]][nextID] = deliver
        return (nextID, first)
    }

    /// Removes the subscriber `id`; returns its closure, to be released by the caller outside its lock
    /// (what the closure holds may, going away, cancel other subscriptions of the same bus).
    package mutating func remove(_ id: UInt64, from stream: String) -> Deliver? {
        let removed = byStream[stream]?.removeValue(forKey: id)
        if byStream[stream]?.isEmpty == true { byStream[stream] = nil }
        return removed
    }

    package func handlers(of stream: String) -> [Deliver] {
        guard let handlers = byStream[stream] else { return [] }
        return Array(handlers.values)
    }

    package var streams: [String] { Array(byStream.keys) }
}

/// Where the nodes of a cluster can be reached: what lets a node forward a request that reached it
/// for a session another node holds (behind a load balancer without stickiness).
public protocol ClusterDirectory: AnyObject, Sendable {
    /// The base URL (`http://10.0.0.5:8080`) of the live node `id`; `nil` when it is not known.
    func address(of node: String) -> String?
}
