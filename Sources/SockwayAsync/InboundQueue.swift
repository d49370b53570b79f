import NIOConcurrencyHelpers

/// A bounded single-consumer queue from the event loop to a task: the loop pushes whole batches, the
/// task pops without a hop while anything is buffered.
package final class InboundQueue: Sendable {
    fileprivate struct State {
        var buffer = MessageFIFO()
        var bytes = 0
        var waiter: CheckedContinuation<String?, Never>?
        var finished = false
        /// Called once the queue is less than half full (``whenDrained(_:)``).
        var drained: (@Sendable () -> Void)?
    }

    private let state = NIOLockedValueBox(State())
    package let maxMessages: Int
    package let maxBytes: Int

    package init(maxMessages: Int, maxBytes: Int) {
        self.maxMessages = maxMessages
        self.maxBytes = maxBytes
    }

    /// Appends a batch; `false` if it would take the queue over a bound (the batch is dropped).
    package func push(_ messages: [String]) -> Bool {
        let batchBytes = messages.reduce(0) { $0 + $1.utf8.count }
        let (waiter, first, accepted): (CheckedContinuation<String?, Never>?, String?, Bool) = state.withLockedValue { state in
            if state.finished { return (nil, nil, true) }
            if state.buffer.count + messages.count > maxMessages || state.bytes + batchBytes > maxBytes {
                return (nil, nil, false)
            }
            var iterator = messages.makeIterator()
            if let waiter = state.waiter, let first = iterator.next() {
                state.waiter = nil
                while let next = iterator.next() {
                    state.buffer.append(next)
                    state.bytes += next.utf8.count
                }
                return (waiter, first, true)
            }
            while let next = iterator.next() {
                state.buffer.append(next)
                state.bytes += next.utf8.count
            }
            return (nil, nil, true)
        }
        waiter?.resume(returning: first)
        return accepted
    }

    package func finish() {
        let (waiter, drained) = state.withLockedValue { state -> (CheckedContinuation<String?, Never>?, (@Sendable () -> Void)?) in
            state.finished = true
            defer {
                state.waiter = nil
                state.drained = nil
            }
            return (state.buffer.isEmpty ? state.waiter : nil, state.drained)
        }
        waiter?.resume(returning: nil)
        drained?()
    }

    /// Whether the queue is at least half full (in messages or bytes): the consumer lags, and whoever
    /// feeds it should wait (the server holds the client's sends).
    package var isBackedUp: Bool {
        state.withLockedValue { isBackedUp($0) }
    }

    /// Calls `body` once the queue is less than half full, from the consumer's thread (at once, from
    /// this one, if it is already, or finished). One callback at a time: a later one replaces it.
    package func whenDrained(_ body: @escaping @Sendable () -> Void) {
        let now = state.withLockedValue { state -> Bool in
            if state.finished || !isBackedUp(state) { return true }
            state.drained = body
            return false
        }
        if now { body() }
    }

    private func isBackedUp(_ state: State) -> Bool {
        state.buffer.count * 2 >= maxMessages || state.bytes * 2 >= maxBytes
    }

    /// The drained callback, taken out, if the queue has drained.
    private func takeDrained(_ state: inout State) -> (@Sendable () -> Void)? {
        guard let drained = state.drained, !isBackedUp(state) else { return nil }
        state.drained = nil
        return drained
    }

    /// Everything buffered, at most `limit` messages, in one lock; waits for at least one. `nil` once
    /// finished and drained. One wake-up per batch instead of one per message.
    package func nextBatch(limit: Int) async -> [String]? {
        let (ready, drained) = state.withLockedValue { state -> ([String]??, (@Sendable () -> Void)?) in
            if state.buffer.isEmpty { return (state.finished ? .some(nil) : nil, nil) }
            let batch = state.popBatch(limit: limit)
            return (.some(batch), takeDrained(&state))
        }
        drained?()
        if let ready { return ready }
        guard let first = await next() else { return nil }
        var batch = [first]
        let (rest, restDrained) = state.withLockedValue { state in (state.popBatch(limit: limit - 1), takeDrained(&state)) }
        restDrained?()
        batch += rest
        return batch
    }

    /// Everything buffered, without waiting (for a consumer that switches to callbacks).
    package func takeAll() -> [String] {
        let (all, drained) = state.withLockedValue { state in (state.popBatch(limit: .max), takeDrained(&state)) }
        drained?()
        return all
    }

    package func next() async -> String? {
        let (ready, drained) = state.withLockedValue { state in (state.popReady(), takeDrained(&state)) }
        drained?()
        if let ready {
            return ready
        }
        return await withCheckedContinuation { continuation in
            let immediate = state.withLockedValue { state -> String?? in
                if let ready = state.popReady() { return ready }
                state.waiter = continuation
                return nil
            }
            if let immediate { continuation.resume(returning: immediate) }
        }
    }
}

extension InboundQueue.State {
    /// The next element if one is ready (`.some(nil)` once finished and drained), `nil` to wait.
    fileprivate mutating func popBatch(limit: Int) -> [String] {
        var batch: [String] = []
        batch.reserveCapacity(min(limit, buffer.count))
        while batch.count < limit, let next = buffer.popFirst() {
            bytes -= next.utf8.count
            batch.append(next)
        }
        return batch
    }

    fileprivate mutating func popReady() -> String?? {
        if let first = buffer.popFirst() {
            bytes -= first.utf8.count
            return .some(first)
        }
        return finished ? .some(nil) : nil
    }
}

/// A FIFO of messages that costs nothing while empty (an idle session's queue allocates nothing).
package struct MessageFIFO {
    private var items: [String] = []
    private var head = 0

    package var count: Int { items.count - head }
    package var isEmpty: Bool { head == items.count }

    package mutating func append(_ message: String) {
        items.append(message)
    }

    package mutating func popFirst() -> String? {
        guard head < items.count else { return nil }
        let first = items[head]
        head += 1
        if head == items.count {
            items = []
            head = 0
        } else if head >= 1024 && head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return first
    }
}
