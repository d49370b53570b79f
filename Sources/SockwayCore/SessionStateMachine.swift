import NIOCore

/// Why a session ended: a code and a reason, as SockJS's `c[code,"reason"]` frame, a WebSocket close
/// frame or an Engine.IO close report carries them.
public struct SockwayCloseReason: Hashable, Sendable, CustomStringConvertible {
    public var code: Int
    public var reason: String

    public init(code: Int, reason: String) {
        self.code = code
        self.reason = reason
    }

    /// `3000 "Go away!"`: the application closed the session (SockJS's conventional reply).
    public static let goAway = SockwayCloseReason(code: 3000, reason: "Go away!")
    /// `2010`: a second receiving request arrived while one is attached. Sent to the newcomer only.
    public static let anotherConnectionStillOpen = SockwayCloseReason(code: 2010, reason: "Another connection still open")
    /// `1002`: the receiving request was cut by the network, so messages may have been lost.
    public static let connectionInterrupted = SockwayCloseReason(code: 1002, reason: "Connection interrupted")
    /// `1000`: the client stopped polling and the disconnect delay ran out.
    public static let sessionTimedOut = SockwayCloseReason(code: 1000, reason: "Session timed out")
    /// `1001`: the server is shutting down.
    public static let serverShuttingDown = SockwayCloseReason(code: 1001, reason: "Server shutting down")
    /// `1013`: the outbound queue of a session whose client does not keep up is full.
    public static let sendQueueFull = SockwayCloseReason(code: 1013, reason: "Send queue full")
    /// `1013`: the server's bound on bytes queued over all sessions is reached, and this session's
    /// client is not taking its messages.
    public static let serverQueuesFull = SockwayCloseReason(code: 1013, reason: "Server queues full")
    /// `1013`: the application does not consume inbound messages fast enough.
    public static let receiveQueueFull = SockwayCloseReason(code: 1013, reason: "Receive queue full")
    /// `1009`: an inbound message or payload is over the configured limit.
    public static let messageTooBig = SockwayCloseReason(code: 1009, reason: "Message too big")
    /// `1000`: a normal closure initiated by the client.
    public static let normalClosure = SockwayCloseReason(code: 1000, reason: "Normal closure")

    public var description: String { "\(code) \"\(reason)\"" }
}

/// How a receiver takes a session's frames.
public enum SessionReceiverKind: Hashable, Sendable {
    /// Ends after one frame.
    case polling
    /// Takes frames until its transport's byte budget is spent, then reports that it detached.
    case streaming
    /// A WebSocket: takes frames until it closes.
    case webSocket
}

/// The life of a session, whatever its protocol family: `connecting → open → closing → closed`.
public enum SessionPhase: Hashable, Sendable {
    case connecting
    case open
    case closing(SockwayCloseReason)
    case closed
}

/// What the I/O layer must do for a session. `write` and `finishReceiver` concern the receiver the
/// event was about: the attaching one for `receiverAttached`, the attached one otherwise.
public enum SessionAction<Frame: Hashable & Sendable>: Hashable, Sendable {
    case write(Frame)
    /// End the receiver's response, or close its WebSocket.
    case finishReceiver
    /// The attaching receiver is refused: write this frame to it and end it.
    case reject(Frame)
    /// Write this frame, if any, to the receiver attached before the event, and end it (it is
    /// superseded, or the session ends under it).
    case endAttached(Frame?)
    /// Tell the application the session is open.
    case notifyOpen
    /// Tell the application the session is closed.
    case notifyClosed(SockwayCloseReason)
    /// Arm the session's timer (replacing any armed one) and call `timerFired(now:)` then.
    case armTimer(NIODeadline)
    /// Forget the session: it is closed and nothing refers to it any more.
    case reap
}

/// The result of handing queued messages to the attached receiver.
public enum SessionFlushAction<Frame: Hashable & Sendable>: Hashable, Sendable {
    case none
    case write(Frame)
    /// A polling receiver took its one frame: write it, end the response, arm the timer.
    case writeAndFinish(Frame, armTimer: NIODeadline)
}

/// The result of queueing a message for the client.
public enum SessionEnqueueResult: Hashable, Sendable {
    case queued
    /// The session is not open; the message was dropped.
    case notOpen
    /// The outbox is full: the caller must close the session with ``SockwayCloseReason/sendQueueFull``.
    case overflow
    /// The protocol cannot carry this kind of message (binary over SockJS); it was dropped.
    case unsupported
}

/// What to do with messages a client sent over HTTP, decided before they reach the application: a
/// send is acknowledged only once it was handed over.
public enum SessionSendDecision: Hashable, Sendable {
    /// Hand the messages to the application now, then answer with the machine's
    /// ``SessionStateMachine/sendOutcomeAfterDelivery``.
    case deliver
    /// Hold the request, messages undelivered, until the outbox drains: the client sends faster than
    /// it takes the replies. Held requests are handed over in the order they arrived.
    case hold
    /// Refuse the request; its messages are not delivered.
    case refuse(SessionSendRefusal)
}

/// Why a send was refused; the client can tell the two apart by the HTTP status.
public enum SessionSendRefusal: Hashable, Sendable {
    /// The session is closing or closed: it takes no more messages.
    case closed
    /// Too many requests are held already, or one was held too long.
    case busy
}

/// The answer to a send.
public enum SessionSendOutcome: Hashable, Sendable {
    /// Handed to the application while the session was open.
    case accepted
    case refused(SessionSendRefusal)
}

/// A session's rules as a plain value: one per protocol family (SockJS, Engine.IO), driven by one
/// I/O core. Time comes in as `now` on every event, and the machine asks for one timer at a time.
///
/// At most one receiver (a polling or streaming response, or a WebSocket) is attached at a time;
/// messages sent while none is attached wait in a bounded outbox and reach the next receiver in
/// order, exactly once.
public protocol SessionStateMachine: Sendable {
    /// What the machine asks a receiver to write.
    associatedtype Frame: Hashable & Sendable

    var phase: SessionPhase { get }
    /// The kind of the attached receiver, if any.
    var receiver: SessionReceiverKind? { get }
    /// The armed timer's deadline, if any.
    var deadline: NIODeadline? { get }
    /// Messages waiting in the outbox.
    var queuedMessages: Int { get }
    /// Bytes of the messages waiting in the outbox.
    var queuedBytes: Int { get }
    /// The outbox is at least half full: a client whose messages the application answers should wait.
    var isBackedUp: Bool { get }

    /// A receiver wants the session's frames.
    mutating func receiverAttached(_ kind: SessionReceiverKind, now: NIODeadline) -> [SessionAction<Frame>]
    /// The attached receiver went away: it finished normally, or it was `aborted` by the network.
    /// A WebSocket receiver may give the `reason` its connection ended with.
    mutating func receiverDetached(aborted: Bool, reason: SockwayCloseReason?, now: NIODeadline) -> [SessionAction<Frame>]
    /// The response of the receiver that went last has been written out in full.
    mutating func responseDrained(now: NIODeadline) -> [SessionAction<Frame>]
    /// Queues a text message. Follow a run of enqueues with one ``flush(now:)``.
    mutating func enqueue(_ message: String) -> SessionEnqueueResult
    /// Queues messages in order until one does not fit; the result for the last one tried.
    mutating func enqueue(contentsOf messages: [String]) -> SessionEnqueueResult
    /// Queues a binary message, in order with the text ones, if the protocol carries them.
    mutating func enqueueBinary(_ message: ByteBuffer) -> SessionEnqueueResult
    /// Hands the queued messages to the attached receiver.
    mutating func flush(now: NIODeadline) -> SessionFlushAction<Frame>
    /// The application (or the server) closes the session.
    mutating func closeRequested(_ reason: SockwayCloseReason, now: NIODeadline) -> [SessionAction<Frame>]
    /// The armed timer fired. Stale firings (a deadline that moved) do nothing.
    mutating func timerFired(now: NIODeadline) -> [SessionAction<Frame>]
}

extension SessionStateMachine {
    /// Whether inbound messages should reach the application.
    @inlinable public var isOpen: Bool { phase == .open }

    /// A send request arrived, with `held` requests of this session held already (at most `maxHeld`).
    /// `applicationBackedUp`: the application has not read half its inbound bound yet (async face).
    @inlinable
    public func sendArrived(held: Int, maxHeld: Int, applicationBackedUp: Bool = false) -> SessionSendDecision {
        guard phase == .open else { return .refuse(.closed) }
        // Behind a held request even when the outbox has room: held requests go first, in order.
        guard isBackedUp || applicationBackedUp || held > 0 else { return .deliver }
        return held < maxHeld ? .hold : .refuse(.busy)
    }

    /// The answer to a send whose messages were just handed to the application: accepted, unless the
    /// session closed on a bound while taking them (its outbox or inbound queue overflowed), and then
    /// what the messages caused may be lost. An application that closes the session itself has
    /// still taken them.
    @inlinable
    public var sendOutcomeAfterDelivery: SessionSendOutcome {
        switch phase {
        case .open: .accepted
        case .closing(let reason) where reason == .sendQueueFull || reason == .receiveQueueFull: .refused(.closed)
        case .closing: .accepted
        case .connecting, .closed: .refused(.closed)
        }
    }
}

/// A session's bounded queue of messages waiting for a receiver.
///
/// An array, not a ring: it is only ever drained whole, by handing it over, and an empty array costs an
/// idle session no allocation.
public struct SessionOutbox<Message: Sendable>: Sendable {
    // Inlinable: the outbox is on every message's path, and a generic from another module is not
    // specialized for its callers otherwise.
    public let maxMessages: Int
    public let maxBytes: Int
    @usableFromInline var messages: [Message] = []
    /// Bytes of the queued messages.
    @inlinable public var bytes: Int { byteCount }
    @usableFromInline var byteCount = 0

    @inlinable
    public init(maxMessages: Int, maxBytes: Int) {
        self.maxMessages = maxMessages
        self.maxBytes = maxBytes
    }

    @inlinable public var count: Int { messages.count }
    @inlinable public var isEmpty: Bool { messages.isEmpty }

    /// At least half full, in messages or bytes.
    @inlinable public var isBackedUp: Bool { messages.count * 2 >= maxMessages || byteCount * 2 >= maxBytes }

    /// Queues a message of `size` bytes; `false` when it does not fit. One message is always taken into
    /// an empty outbox, however large: the bounds limit what piles up behind a slow receiver, not the
    /// size of a message (that is the inbound limit's job).
    @inlinable
    public mutating func append(_ message: Message, size: Int) -> Bool {
        guard messages.isEmpty || (messages.count < maxMessages && byteCount + size <= maxBytes) else { return false }
        messages.append(message)
        byteCount += size
        return true
    }

    /// Queues a control message (a ping, a close) whatever the bounds: there is at most one of each.
    @inlinable
    public mutating func appendControl(_ message: Message) {
        messages.append(message)
    }

    /// Everything queued, oldest first, leaving the outbox empty; `nil` if it was empty.
    @inlinable
    public mutating func drain() -> [Message]? {
        guard !messages.isEmpty else { return nil }
        let batch = messages
        messages = []
        byteCount = 0
        return batch
    }

    @inlinable
    public mutating func removeAll() {
        messages.removeAll()
        byteCount = 0
    }
}
