import NIOConcurrencyHelpers
import NIOCore

/// The bus of a single process: a publication reaches the stream's subscribers at once, on the
/// publisher's thread.
///
/// Each stream is delivered by one thread at a time: a publisher that finds another one delivering
/// the same stream leaves its publication to it and returns, so every subscriber sees one order, and a
/// subscriber that publishes from inside its delivery cannot deadlock or recurse.
public final class InProcessBroadcastBus: BroadcastBus {
    public let nodeID: String

    private let state = NIOLockedValueBox(State())

    /// A stream that nobody subscribes to and nobody is publishing on is forgotten; it comes back with
    /// a new epoch, so a position from its earlier history is never mistaken for one in the new.
    private struct Stream {
        let epoch = BroadcastEpoch.make()
        var top: UInt64 = 0
        var pending: [ByteBuffer] = []
        var draining = false
    }

    private struct State {
        var subscribers = BroadcastSubscribers()
        var streams: [String: Stream] = [:]
    }

    public init(nodeID: String = "local") {
        self.nodeID = nodeID
    }

    public func publish(_ payload: ByteBuffer, on stream: String) {
        let shouldDrain = state.withLockedValue { state -> Bool in
            state.streams[stream, default: Stream()].pending.append(payload)
            guard !state.streams[stream]!.draining else { return false }
            state.streams[stream]!.draining = true
            return true
        }
        guard shouldDrain else { return }
        drain(stream)
    }

    private func drain(_ stream: String) {
        while true {
            let next = state.withLockedValue { state -> (epoch: String, first: UInt64, batch: [ByteBuffer], handlers: [BroadcastSubscribers.Deliver])? in
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
                state.streams[stream] = entry
                return (entry.epoch, first, batch, state.subscribers.handlers(of: stream))
            }
            guard let next else { return }
            for (index, payload) in next.batch.enumerated() {
                let delivery = BroadcastDelivery(
                    stream: stream,
                    position: BroadcastPosition(epoch: next.epoch, offset: next.first + UInt64(index)),
                    origin: nodeID,
                    payload: payload
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
            self?.state.withLockedValue { state in
                state.subscribers.remove(id, from: stream)
                if state.subscribers.handlers(of: stream).isEmpty, state.streams[stream]?.draining == false {
                    state.streams[stream] = nil
                }
            }
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
