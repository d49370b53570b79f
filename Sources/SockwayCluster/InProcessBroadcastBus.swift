import NIOConcurrencyHelpers
import NIOCore

/// The bus of a single process: a publication reaches the stream's subscribers at once, on the
/// publisher's thread.
///
/// With a ``Retention``, each stream keeps its latest publications for
/// ``BroadcastBus/history(of:after:limit:)`` (a Socket.IO client that comes back gets what it
/// missed); sessions parked for recovery are kept here too, until their window has passed.
///
/// Each stream is delivered by one thread at a time: a publisher that finds another one delivering
/// the same stream leaves its publication to it and returns, so every subscriber sees one order, and a
/// subscriber that publishes from inside its delivery cannot deadlock or recurse.
public final class InProcessBroadcastBus: BroadcastBus {
    /// How much of each stream's past is kept for clients that come back.
    public struct Retention: Sendable, Hashable {
        /// The most publications kept per stream.
        public var count: Int
        /// How long a publication is kept.
        public var age: Duration

        public init(count: Int, age: Duration) {
            self.count = count
            self.age = age
        }

        /// No history: a client that was away is never told what it missed.
        public static let none = Retention(count: 0, age: .zero)
    }

    public let nodeID: String
    public let retention: Retention

    private let state = NIOLockedValueBox(State())

    /// A stream that nobody subscribes to and nobody is publishing on is forgotten; it comes back with
    /// a new epoch, so a position from its earlier history is never mistaken for one in the new.
    private struct Stream {
        let epoch = BroadcastEpoch.make()
        var top: UInt64 = 0
        var pending: [(payload: ByteBuffer, value: (any Sendable)?)] = []
        var draining = false
        /// The latest publications, the last one at `top`.
        var history = CircularBuffer<(at: ContinuousClock.Instant, payload: ByteBuffer)>()
    }

    private struct ShelvedSession {
        var record: ByteBuffer
        var window: Duration
        var parkedUntil: ContinuousClock.Instant?
    }

    private struct State {
        var subscribers = BroadcastSubscribers()
        var streams: [String: Stream] = [:]
        var sessions: [String: ShelvedSession] = [:]
        /// Parked sessions in the order they were parked, to drop them once their window has passed.
        var parked = CircularBuffer<(key: String, until: ContinuousClock.Instant)>()
        var members = MemberCounters()
    }

    public init(nodeID: String = "local", retention: Retention = .none) {
        self.nodeID = nodeID
        self.retention = retention
    }

    public func publish(_ payload: ByteBuffer, on stream: String) {
        enqueue((payload, nil), on: stream)
    }

    /// Without a retention nothing is encoded: the subscribers get `value`.
    public func publish(_ value: some Sendable, on stream: String, encode: () -> ByteBuffer) {
        enqueue((retention.count > 0 ? encode() : ByteBuffer(), value), on: stream)
    }

    private func enqueue(_ publication: (payload: ByteBuffer, value: (any Sendable)?), on stream: String) {
        let shouldDrain = state.withLockedValue { state -> Bool in
            state.streams[stream, default: Stream()].pending.append(publication)
            guard !state.streams[stream]!.draining else { return false }
            state.streams[stream]!.draining = true
            return true
        }
        guard shouldDrain else { return }
        drain(stream)
    }

    private func drain(_ stream: String) {
        while true {
            let next = state.withLockedValue { state -> (epoch: String, first: UInt64, batch: [(payload: ByteBuffer, value: (any Sendable)?)], handlers: [BroadcastSubscribers.Deliver])? in
                guard var entry = state.streams[stream], !entry.pending.isEmpty else {
                    if state.subscribers.handlers(of: stream).isEmpty {
                        state.streams[stream] = nil
                    } else {
                        state.streams[stream]?.draining = false
                    }
                    return nil
                }
                let batch = entry.pending
                entry.pending.removeAll(keepingCapacity: true)
                let first = entry.top + 1
                entry.top += UInt64(batch.count)
                if retention.count > 0 {
                    let now = ContinuousClock.now
                    for publication in batch.suffix(retention.count) {
                        if entry.history.count == retention.count { entry.history.removeFirst() }
                        entry.history.append((now, publication.payload))
                    }
                }
                state.streams[stream] = entry
                return (entry.epoch, first, batch, state.subscribers.handlers(of: stream))
            }
            guard let next else { return }
            for (index, publication) in next.batch.enumerated() {
                let delivery = BroadcastDelivery(
                    stream: stream,
                    position: BroadcastPosition(epoch: next.epoch, offset: next.first + UInt64(index)),
                    origin: nodeID,
                    payload: publication.payload,
                    value: publication.value
                )
                for handler in next.handlers { handler(delivery) }
            }
        }
    }

    public func subscribe(
        to stream: String,
        _ deliver: @escaping @Sendable (BroadcastDelivery) -> Void
    ) -> BroadcastSubscription {
        let id = state.withLockedValue { $0.subscribers.add(deliver, to: stream).id }
        return BroadcastSubscription { [weak self] in
            let removed = self?.state.withLockedValue { state in
                let removed = state.subscribers.remove(id, from: stream)
                if state.subscribers.handlers(of: stream).isEmpty, state.streams[stream]?.draining == false {
                    state.streams[stream] = nil
                }
                return removed
            }
            withExtendedLifetime(removed) {}  // released here, outside the lock
        }
    }
}

extension InProcessBroadcastBus {
    public func history(of stream: String, after position: BroadcastPosition, limit: Int) async -> BroadcastHistory {
        state.withLockedValue { state in
            guard var entry = state.streams[stream], entry.epoch == position.epoch, position.offset <= entry.top else {
                return .unavailable
            }
            let oldest = ContinuousClock.now - retention.age
            while let first = entry.history.first, first.at < oldest { entry.history.removeFirst() }
            state.streams[stream] = entry
            let missed = entry.top - position.offset
            guard missed <= UInt64(min(limit, entry.history.count)) else { return .unavailable }
            let first = entry.top - missed + 1
            let kept = entry.history.suffix(Int(missed))
            return .publications(kept.enumerated().map { index, item in
                BroadcastDelivery(
                    stream: stream,
                    position: BroadcastPosition(epoch: entry.epoch, offset: first + UInt64(index)),
                    origin: nodeID,
                    payload: item.payload
                )
            })
        }
    }

    public func keepSession(_ record: ByteBuffer, key: String, window: Duration) {
        state.withLockedValue { state in
            state.sessions[key] = ShelvedSession(record: record, window: window)
        }
    }

    public func parkSession(key: String) {
        state.withLockedValue { state in
            let now = ContinuousClock.now
            Self.dropExpired(&state, now: now)
            guard let window = state.sessions[key]?.window else { return }
            state.sessions[key]?.parkedUntil = now + window
            state.parked.append((key, now + window))
        }
    }

    public func forgetSession(key: String) {
        _ = state.withLockedValue { $0.sessions.removeValue(forKey: key) }
    }

    /// In one process a session's node never dies without its process: only parked sessions are taken.
    public func takeSession(key: String) async -> ByteBuffer? {
        state.withLockedValue { state in
            let now = ContinuousClock.now
            Self.dropExpired(&state, now: now)
            guard let session = state.sessions[key], let until = session.parkedUntil, until > now else { return nil }
            state.sessions[key] = nil
            return session.record
        }
    }

    public func reportMembers(of stream: String, _ counts: @escaping @Sendable () -> [String: Int]) {
        let replaced = state.withLockedValue { $0.members.set(counts, for: stream) }
        withExtendedLifetime(replaced) {}
    }

    /// This process's counts, counted now.
    public func members(of stream: String) async throws -> [String: Int] {
        let members = state.withLockedValue { $0.members }
        return members.counts(of: stream)
    }

    private static func dropExpired(_ state: inout State, now: ContinuousClock.Instant) {
        while let first = state.parked.first, first.until <= now {
            state.parked.removeFirst()
            // Only if it is still that parking (not taken and parked again since).
            if let until = state.sessions[first.key]?.parkedUntil, until <= now { state.sessions[first.key] = nil }
        }
    }
}

/// A new history identity: 16 random hex digits.
package enum BroadcastEpoch {
    package static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        let value = generator.next() as UInt64
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
