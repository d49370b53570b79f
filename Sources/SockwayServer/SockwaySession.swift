import NIOConcurrencyHelpers
import SockwayAsync
import NIOCore
import NIOHTTP1
import SockwaySockJS

/// One client's ordered, two-way message channel, whatever transport carries it.
///
/// A handle: every method may be called from any thread. Calls on the session's event loop take the
/// direct path; calls from elsewhere are batched into one hop to the loop.
public final class SockwaySession: Sendable {
    /// The session id from the URL (for WebSocket transports it need not be unique).
    public let id: String
    /// The transport that opened the session (`websocket`, `xhr-streaming`, `raw-websocket`, …).
    public let transport: String
    /// The peer of the request that opened the session.
    public let remoteAddress: SocketAddress?
    /// The headers of the request that opened the session, those named in
    /// ``SockwayEndpointOptions/sessionHeaders``.
    public let headers: HTTPHeaders
    /// The loop on which the session lives and its delegate runs.
    public let eventLoop: any EventLoop

    let core: NIOLoopBound<any SessionFace>
    private let offLoop = NIOLockedValueBox(OffLoopSends())
    /// Only sessions of async endpoints have one.
    private let inbound: InboundQueue?
    /// Bound of sends waiting for their hop to the loop (the outbox's bounds).
    private let offLoopLimit: (messages: Int, bytes: Int)
    /// Whether a hop's first send is timed (metrics on: the wait from send to write is measured).
    private let stampsSends: Bool

    struct OffLoopSends {
        var pending: [String] = []
        var pendingBytes = 0
        var scheduled = false
        var overflowed = false
        /// When the first of `pending` was sent, if ``stampsSends``.
        var firstSentAt: NIODeadline?
    }

    init(
        id: String,
        transport: String,
        remoteAddress: SocketAddress?,
        headers: HTTPHeaders,
        eventLoop: any EventLoop,
        core: any SessionFace,
        inboundLimit: (messages: Int, bytes: Int)?,
        outboxLimit: (messages: Int, bytes: Int)
    ) {
        self.id = id
        self.transport = transport
        self.remoteAddress = remoteAddress
        self.headers = headers
        self.eventLoop = eventLoop
        self.core = NIOLoopBound(core, eventLoop: eventLoop)
        self.inbound = inboundLimit.map { InboundQueue(maxMessages: $0.messages, maxBytes: $0.bytes) }
        self.offLoopLimit = outboxLimit
        self.stampsSends = core.timesSends
    }

    /// Sends a message to the client. Messages are delivered in order; while no receiver is attached
    /// they wait in the session's bounded outbox (overflow closes the session with 1013).
    public func send(_ message: String) {
        if eventLoop.inEventLoop {
            core.value.send(message)
        } else {
            sendOffLoop(CollectionOfOne(message))
        }
    }

    /// Sends several messages; over polling and streaming transports they travel as one frame.
    public func send<Messages: Sequence<String>>(contentsOf messages: Messages) {
        if eventLoop.inEventLoop {
            core.value.send(contentsOf: Array(messages))
        } else {
            sendOffLoop(messages)
        }
    }

    /// Sends a binary message. Only the raw WebSocket URL and Engine.IO carry binary messages; on every
    /// other transport (SockJS frames are text) the message is dropped (see ``carriesBinary``).
    public func sendBinary(_ message: ByteBuffer) {
        if eventLoop.inEventLoop {
            core.value.sendBinary(message)
        } else {
            let core = self.core
            eventLoop.execute { core.value.sendBinary(message) }
        }
    }

    /// Closes the session: the client gets `c[code,"reason"]` (or a WebSocket close frame on the raw
    /// endpoint). Default 3000 "Go away!", as SockJS servers conventionally send.
    public func close(code: Int = 3000, reason: String = "Go away!") {
        let closeReason = SockJSCloseReason(code: code, reason: reason)
        onLoop { $0.close(closeReason) }
    }

    /// Whether a binary message sent with ``sendBinary(_:)`` reaches the client: on the raw WebSocket
    /// URL and on Engine.IO, not in SockJS frames (which carry text).
    public var carriesBinary: Bool {
        transport == "raw-websocket" || transport.hasPrefix("engineio")
    }

    /// Holds the client's messages back until ``resumeReceiving()``: WebSocket reads pause and HTTP
    /// sends wait (bounded by ``SockwayEndpointOptions/maxHeldSendRequests`` and the send hold time),
    /// so a client cannot send faster than the application passes messages on. Messages of a read
    /// already under way are still delivered. For delegates whose own output is slow (a bridge's
    /// upstream); the async face needs none, its inbound queue does the same.
    public func pauseReceiving() {
        onLoop { $0.setReceivingPaused(true) }
    }

    /// Lets the client's messages through again after ``pauseReceiving()``.
    public func resumeReceiving() {
        onLoop { $0.setReceivingPaused(false) }
    }

    /// On the session's event loop: whether the outbox holds more than half its bound, that is the
    /// client takes messages slower than they are sent. A producer should stop until
    /// ``whenSendQueueDrained(_:)`` calls back.
    public var isSendQueueBackedUp: Bool {
        core.value.isOutboxBackedUp
    }

    /// Calls `body` on the session's event loop once the outbox is below half its bound, or the session
    /// is no longer open (at once if that is so now).
    public func whenSendQueueDrained(_ body: @escaping @Sendable () -> Void) {
        onLoop { $0.whenOutboxDrained(body) }
    }

    /// Runs `body` with the core: now on the session's loop, else in one hop to it. (The message path,
    /// `send`, keeps its own batching instead.)
    private func onLoop(_ body: @escaping @Sendable (any SessionFace) -> Void) {
        if eventLoop.inEventLoop {
            body(core.value)
        } else {
            let core = self.core
            eventLoop.execute { body(core.value) }
        }
    }

    /// Messages from the client, for sessions of ``SockwayEndpoint/async(_:options:body:)`` endpoints.
    /// Ends when the session closes. Sessions with a delegate get their messages there instead (for
    /// them this sequence is empty).
    public var messages: SockwayMessages { SockwayMessages(queue: inbound) }

    private func sendOffLoop<Messages: Sequence<String>>(_ messages: Messages) {
        let limit = offLoopLimit
        let stamp = stampsSends
        let schedule = offLoop.withLockedValue { state -> Bool in
            if state.overflowed { return false }
            for message in messages {
                state.pending.append(message)
                state.pendingBytes += message.utf8.count
            }
            if state.pending.count > limit.messages || state.pendingBytes > limit.bytes {
                // The outbox could not take these either: close now rather than hold them.
                state.overflowed = true
                state.pending = []
            }
            if state.scheduled { return false }
            state.scheduled = true
            if stamp { state.firstSentAt = .now() }
            return true
        }
        guard schedule else { return }
        let core = self.core
        eventLoop.execute { [offLoop] in
            let (batch, overflowed, sentAt) = offLoop.withLockedValue { state in
                defer { state = OffLoopSends() }
                return (state.pending, state.overflowed, state.firstSentAt)
            }
            if overflowed {
                core.value.outboxOverflowed()
            } else {
                core.value.send(contentsOf: batch, sentAt: sentAt)
            }
        }
    }

    func deliverToStream(_ messages: [String]) -> Bool {
        inbound?.push(messages) ?? true
    }

    /// Whether the async face's unread messages fill half its bound: the application lags.
    var inboundIsBackedUp: Bool { inbound?.isBackedUp ?? false }

    /// Calls `body` (on any thread) once the application has read the inbound queue below half.
    func whenInboundDrained(_ body: @escaping @Sendable () -> Void) {
        guard let inbound else { return body() }
        inbound.whenDrained(body)
    }

    func finishStream() {
        inbound?.finish()
    }
}

/// The inbound messages of a session, as an `AsyncSequence`. Bounded: see
/// ``SockwayEndpointOptions/maxInboundQueuedMessages``.
public struct SockwayMessages: AsyncSequence, Sendable {
    public typealias Element = String
    let queue: InboundQueue?

    public struct AsyncIterator: AsyncIteratorProtocol {
        let queue: InboundQueue?
        public mutating func next() async -> String? {
            await queue?.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(queue: queue)
    }
}
