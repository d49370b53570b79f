import NIOConcurrencyHelpers
import NIOCore

/// A bounded hand-over from a session's event loop (which pushes) to a front's writing task (which
/// takes): the foreign counterpart of a channel's write buffer.
///
/// The session asks ``isWritable`` before it flushes, as it asks a channel, so at most
/// ``highWaterMark`` bytes and one frame wait here; beyond that messages stay in the session's own
/// bounded outbox. The writer takes everything at once and writes it only as fast as its connection
/// does, so a slow client stops the session's flushes; once it took what was here, the session is
/// told it may write again.
final class ForeignOutbound<Element: Sendable>: Sendable {
    /// What waits here before the session stops flushing: NIO's default write-buffer high-water mark.
    static var highWaterMark: Int { 64 * 1024 }

    private struct State {
        var queue: [Element] = []
        var bytes = 0
        /// The producer finished: the writer ends after what is queued.
        var finished = false
        /// The consumer is gone: nothing is kept.
        var gone = false
        /// The producer found it full: tell it once there is room.
        var stalled = false
        var waiter: CheckedContinuation<[Element]?, Never>?
        var onWritable: (@Sendable () -> Void)?
        var onGone: (@Sendable () -> Void)?
    }

    private let state = NIOLockedValueBox(State())

    init() {}

    /// What to call (from the writer's task) when there is room again, and when the writer is gone.
    /// Both are dropped once the hand-over ends, so a receiver they hold is released.
    func setHandlers(onWritable: @escaping @Sendable () -> Void, onGone: @escaping @Sendable () -> Void) {
        state.withLockedValue { state in
            guard !state.finished, !state.gone else { return }
            state.onWritable = onWritable
            state.onGone = onGone
        }
    }

    /// Whether the producer may write more now.
    var isWritable: Bool {
        state.withLockedValue { state in
            guard !state.finished, !state.gone else { return false }
            if state.bytes >= Self.highWaterMark {
                state.stalled = true
                return false
            }
            return true
        }
    }

    /// Bytes waiting for the writer.
    var bufferedBytes: Int { state.withLockedValue { $0.bytes } }

    /// Queues `element` (its size `bytes`); dropped once the hand-over has ended.
    func push(_ element: Element, bytes: Int) {
        let waiter = state.withLockedValue { state -> CheckedContinuation<[Element]?, Never>? in
            guard !state.finished, !state.gone else { return nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.queue.append(element)
            state.bytes += bytes
            return nil
        }
        waiter?.resume(returning: [element])
    }

    /// No more elements: the writer ends after those queued.
    func finish() {
        let waiter = state.withLockedValue { state -> CheckedContinuation<[Element]?, Never>? in
            guard !state.finished else { return nil }
            state.finished = true
            state.onWritable = nil
            state.onGone = nil
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// Everything queued without waiting: `.some(nil)` once finished and taken (or gone), `nil` when
    /// there is nothing yet.
    func takeReady() -> [Element]?? {
        let ready = state.withLockedValue { state -> [Element]?? in
            if !state.queue.isEmpty {
                let batch = state.queue
                state.queue = []
                state.bytes = 0
                return .some(batch)
            }
            if state.finished || state.gone { return .some(nil) }
            return nil
        }
        if case .some(.some) = ready { wakeIfStalled() }
        return ready
    }

    private func wakeIfStalled() {
        let wake = state.withLockedValue { state -> (@Sendable () -> Void)? in
            guard state.stalled else { return nil }
            state.stalled = false
            return state.onWritable
        }
        wake?()
    }

    /// Everything queued, waiting for some if there is none; `nil` once finished and taken, or gone.
    func next() async -> [Element]? {
        let batch = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[Element]?, Never>) in
                let ready = state.withLockedValue { state -> [Element]?? in
                    if !state.queue.isEmpty {
                        let batch = state.queue
                        state.queue = []
                        state.bytes = 0
                        return .some(batch)
                    }
                    if state.finished || state.gone { return .some(nil) }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            clientGone()
        }
        wakeIfStalled()
        return batch
    }

    /// The writer is gone: what is queued is dropped and the producer told, once.
    func clientGone() {
        let (waiter, onGone) = state.withLockedValue { state -> (CheckedContinuation<[Element]?, Never>?, (@Sendable () -> Void)?) in
            guard !state.gone else { return (nil, nil) }
            state.gone = true
            state.queue = []
            state.bytes = 0
            let taken = (state.waiter, state.onGone)
            state.waiter = nil
            state.onGone = nil
            state.onWritable = nil
            return taken
        }
        waiter?.resume(returning: nil)
        onGone?()
    }
}
