import NIOCore
import SockwayCore

/// The life of one SockJS session, independent of the transport that carries it.
///
/// `connecting → open → closing → closed`. At most one receiver (a polling or streaming response, or a
/// WebSocket) is attached at a time. Messages sent while none is attached wait in a bounded outbox and
/// reach the next receiver in order, exactly once. Time comes in as `now` on every event, and the
/// machine asks for one timer at a time: a heartbeat while a receiver is attached, the disconnect
/// deadline while none is.
public struct SockJSSessionStateMachine: SessionStateMachine {
    public struct Configuration: Hashable, Sendable {
        /// Interval of `h` frames on an attached receiver; `nil` for none, which only a session whose
        /// receiver is a WebSocket may use (a poll ends at its first heartbeat). The raw WebSocket URL
        /// has no heartbeat frame, so its sessions carry no timer at all while open.
        public var heartbeatInterval: TimeAmount?
        /// How long a session without a receiver lives before it is closed and removed.
        public var disconnectDelay: TimeAmount
        /// Most messages waiting for a receiver.
        public var maxQueuedMessages: Int
        /// Most bytes (UTF-8) of messages waiting for a receiver.
        public var maxQueuedBytes: Int

        public init(
            heartbeatInterval: TimeAmount? = .seconds(25),
            disconnectDelay: TimeAmount = .seconds(5),
            maxQueuedMessages: Int = 16384,
            maxQueuedBytes: Int = 1 << 20
        ) {
            self.heartbeatInterval = heartbeatInterval
            self.disconnectDelay = disconnectDelay
            self.maxQueuedMessages = maxQueuedMessages
            self.maxQueuedBytes = maxQueuedBytes
        }
    }

    public typealias ReceiverKind = SessionReceiverKind
    public typealias Phase = SessionPhase
    public typealias Action = SessionAction<SockJSFrame>
    public typealias FlushAction = SessionFlushAction<SockJSFrame>
    public typealias EnqueueResult = SessionEnqueueResult
    public typealias SendDecision = SessionSendDecision
    public typealias SendRefusal = SessionSendRefusal
    public typealias SendOutcome = SessionSendOutcome

    public let configuration: Configuration
    public private(set) var phase: Phase = .connecting
    public private(set) var receiver: ReceiverKind?
    /// The armed timer's deadline, if any.
    public private(set) var deadline: NIODeadline?
    private var outbox: SessionOutbox<String>

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
        self.outbox = SessionOutbox(maxMessages: configuration.maxQueuedMessages, maxBytes: configuration.maxQueuedBytes)
    }

    public var queuedMessages: Int { outbox.count }
    public var queuedBytes: Int { outbox.bytes }

    /// The outbox is at least half full (in messages or bytes): a sender whose messages the application
    /// answers should wait before sending more (the machine does not make it wait; the server holds its
    /// `xhr_send` answer), so that a client outpacing its own receiver slows down instead of
    /// overflowing the outbox.
    public var isBackedUp: Bool { outbox.isBackedUp }

    /// A receiver wants the session's frames.
    public mutating func receiverAttached(_ kind: ReceiverKind, now: NIODeadline) -> [Action] {
        if receiver != nil {
            return [.reject(.close(.anotherConnectionStillOpen))]
        }
        var actions: [Action] = []
        switch phase {
        case .closed:
            return [.reject(.close(.goAway))]
        case .closing(let reason):
            // Serve what is left, then the close frame, to every receiver until the session is reaped.
            // A polling receiver takes one frame, so the close frame waits for the next poll.
            let batch = drainOutbox()
            if let batch { actions.append(.write(.messages(batch))) }
            if batch == nil || kind != .polling { actions.append(.write(.close(reason))) }
            actions.append(.finishReceiver)
            if kind == .webSocket {
                phase = .closed
                deadline = nil
                actions.append(.reap)
            } else {
                actions.append(arm(now + configuration.disconnectDelay))
            }
            return actions
        case .connecting:
            phase = .open
            actions.append(.write(.open))
            actions.append(.notifyOpen)
            if kind == .polling {
                actions.append(.finishReceiver)
                actions.append(arm(now + configuration.disconnectDelay))
                return actions
            }
        case .open:
            if let batch = drainOutbox() {
                actions.append(.write(.messages(batch)))
                if kind == .polling {
                    actions.append(.finishReceiver)
                    actions.append(arm(now + configuration.disconnectDelay))
                    return actions
                }
            }
        }
        receiver = kind
        if let interval = configuration.heartbeatInterval {
            actions.append(arm(now + interval))
        } else {
            deadline = nil
        }
        return actions
    }

    /// The attached receiver went away: it finished normally (response limit reached, or the
    /// transport's own end), or it was `aborted` by the network. A WebSocket receiver may give the
    /// `reason` its connection ended with (the client's close frame, or a protocol failure).
    public mutating func receiverDetached(
        aborted: Bool,
        reason: SockJSCloseReason? = nil,
        now: NIODeadline
    ) -> [Action] {
        guard let kind = receiver else { return [] }
        receiver = nil
        if kind == .webSocket {
            var actions: [Action] = []
            if phase == .open || phase == .connecting {
                actions.append(.notifyClosed(reason ?? (aborted ? .connectionInterrupted : .normalClosure)))
            }
            phase = .closed
            deadline = nil
            actions.append(.reap)
            return actions
        }
        var actions: [Action] = []
        if aborted, phase == .open {
            // Frames may have been lost in the cut connection: the session cannot go on reliably.
            phase = .closing(.connectionInterrupted)
            outbox.removeAll()
            actions.append(.notifyClosed(.connectionInterrupted))
        }
        actions.append(arm(now + configuration.disconnectDelay))
        return actions
    }

    /// The response of the receiver that went last (a poll, or a stream at its limit) has been written
    /// out in full. A client downloading a large poll slowly is still there: the disconnect delay
    /// counts from now, not from when the response was handed over.
    public mutating func responseDrained(now: NIODeadline) -> [Action] {
        guard receiver == nil, phase != .closed, let deadline, deadline < now + configuration.disconnectDelay else { return [] }
        return [arm(now + configuration.disconnectDelay)]
    }

    /// Queues a message for the client. Follow a run of enqueues with one ``flush(now:)``.
    public mutating func enqueue(_ message: String) -> EnqueueResult {
        guard phase == .open else { return .notOpen }
        return outbox.append(message, size: message.utf8.count) ? .queued : .overflow
    }

    /// SockJS frames carry text only.
    public mutating func enqueueBinary(_ message: ByteBuffer) -> EnqueueResult {
        phase == .open ? .unsupported : .notOpen
    }

    /// Queues messages in order until one does not fit (those before it stay queued); the result for
    /// the last one tried. One call for a batch: the caller's state is touched once, not per message.
    public mutating func enqueue(contentsOf messages: [String]) -> EnqueueResult {
        guard phase == .open else { return .notOpen }
        for message in messages {
            let result = enqueue(message)
            guard result == .queued else { return result }
        }
        return .queued
    }

    /// Hands the queued messages to the attached receiver as one frame. Call it when the receiver can
    /// take more (a WebSocket or streaming response whose channel is writable).
    public mutating func flush(now: NIODeadline) -> FlushAction {
        guard let kind = receiver, phase == .open, let batch = drainOutbox() else { return .none }
        if kind == .polling {
            receiver = nil
            deadline = now + configuration.disconnectDelay
            return .writeAndFinish(.messages(batch), armTimer: now + configuration.disconnectDelay)
        }
        return .write(.messages(batch))
    }

    /// The application (or the server) closes the session.
    public mutating func closeRequested(_ reason: SockJSCloseReason, now: NIODeadline) -> [Action] {
        switch phase {
        case .connecting, .open:
            phase = .closing(reason)
        case .closing, .closed:
            return []
        }
        var actions: [Action] = [.notifyClosed(reason)]
        if let kind = receiver {
            // Deliver what is queued first; a polling receiver takes only that, and the next poll
            // gets the close frame.
            let batch = drainOutbox()
            if let batch { actions.append(.write(.messages(batch))) }
            if batch == nil || kind != .polling { actions.append(.write(.close(reason))) }
            actions.append(.finishReceiver)
            receiver = nil
            if kind == .webSocket {
                phase = .closed
                deadline = nil
                actions.append(.reap)
                return actions
            }
            actions.append(arm(now + configuration.disconnectDelay))
        }
        return actions
    }

    /// The armed timer fired. Stale firings (a deadline that moved) do nothing.
    public mutating func timerFired(now: NIODeadline) -> [Action] {
        guard let deadline, deadline <= now else { return [] }
        self.deadline = nil
        if let kind = receiver {
            if kind == .polling {
                receiver = nil
                return [.write(.heartbeat), .finishReceiver, arm(now + configuration.disconnectDelay)]
            }
            guard let interval = configuration.heartbeatInterval else { return [] }
            return [.write(.heartbeat), arm(now + interval)]
        }
        var actions: [Action] = []
        if phase == .open || phase == .connecting {
            actions.append(.notifyClosed(.sessionTimedOut))
        }
        phase = .closed
        outbox.removeAll()
        actions.append(.reap)
        return actions
    }

    private mutating func arm(_ deadline: NIODeadline) -> Action {
        self.deadline = deadline
        return .armTimer(deadline)
    }

    private mutating func drainOutbox() -> [String]? {
        outbox.drain()
    }
}
