import NIOConcurrencyHelpers
import NIOCore
import SockwayAsync
import SockwaySockJS

/// An open client session: the same shape as the server's `SockwaySession`-side handle.
///
/// Every method may be called from any thread; work happens on the session's event loop.
public final class SockwayClientSession: Sendable {
    /// The transport that opened.
    public let transport: SockwayClientTransport
    /// The loop all of the session's connections run on.
    public let eventLoop: any EventLoop

    let core: NIOLoopBoundBox<ClientSessionCore>
    private let inbound: InboundQueue
    private let meter: TrafficMeter
    private let ending = NIOLockedValueBox<SockJSCloseReason?>(nil)

    init(transport: SockwayClientTransport, eventLoop: any EventLoop, meter: TrafficMeter, configuration: SockwayClientConfiguration) {
        self.transport = transport
        self.eventLoop = eventLoop
        self.meter = meter
        let inbound = InboundQueue(maxMessages: configuration.maxQueuedMessages, maxBytes: configuration.maxQueuedBytes)
        self.inbound = inbound
        let ending = self.ending
        self.core = NIOLoopBoundBox.makeBoxSendingValue(
            ClientSessionCore(
                kind: transport,
                inbound: inbound,
                configuration: configuration,
                onClose: { reason in ending.withLockedValue { $0 = reason } }
            ),
            eventLoop: eventLoop
        )
    }

    /// Messages from the server, in order. Ends when the session closes.
    public var messages: SockwayClientMessages { SockwayClientMessages(queue: inbound) }

    /// The messages that have arrived and not been read yet, at most `limit`, in order; waits for at
    /// least one. `nil` once the session has closed and everything was read. For consumers that keep
    /// up with high rates: one wake-up per batch rather than per message. Do not mix with `messages`.
    public func nextBatch(limit: Int = 1024) async -> [String]? {
        await inbound.nextBatch(limit: max(1, limit))
    }

    /// The event-loop face, for consumers that keep up with high rates (DESIGN.md, "Where the time
    /// goes"): from now on each batch of messages goes to `handler` on ``eventLoop`` as it arrives,
    /// instead of queuing for ``messages`` and ``nextBatch(limit:)``. Messages already queued come
    /// first; ``SockwayClientEvent/closed(_:)`` comes last, once. Set it once; do not mix with the
    /// other faces.
    public func onEvent(_ handler: @escaping @Sendable (SockwayClientEvent) -> Void) {
        setHandler(.strings(handler))
    }

    /// The event-loop face without a `String` per message: like ``onEvent(_:)``, but each batch comes
    /// as the bytes it arrived in (`SockJSMessageBatch`), for consumers that look at millions of
    /// messages a second (the bench's receivers). Set it once; do not mix with the other faces.
    public func onBatchEvent(_ handler: @escaping @Sendable (SockwayClientBatchEvent) -> Void) {
        setHandler(.batches(handler))
    }

    private func setHandler(_ handler: ClientSessionCore.Handler) {
        let core = self.core
        if eventLoop.inEventLoop {
            core.value.setHandler(handler)
        } else {
            eventLoop.execute { core.value.setHandler(handler) }
        }
    }

    /// Sends a message. Over HTTP transports, messages sent while a send request is in flight go
    /// together in the next one. After the session closed, messages are dropped.
    public func send(_ message: String) {
        send(contentsOf: CollectionOfOne(message))
    }

    /// Sends several messages with one hop to the session's loop. WebSocket transports send a frame per
    /// message, as sockjs-client does; HTTP transports send them in one request.
    public func send<Messages: Sequence<String>>(contentsOf messages: Messages) {
        var batch = SockwayOutgoingBatch()
        for message in messages { batch.append(message) }
        send(batch)
    }

    /// Sends a batch of messages built as bytes (the bytes face), with one hop to the session's loop.
    public func send(_ batch: SockwayOutgoingBatch) {
        guard batch.count > 0 else { return }
        if eventLoop.inEventLoop {
            core.value.send(batch)
        } else {
            let core = self.core
            eventLoop.execute { core.value.send(batch) }
        }
    }

    /// Closes the session (a WebSocket close frame; HTTP transports drop their connections, which the
    /// server sees as the client going away).
    public func close() {
        let core = self.core
        eventLoop.execute { core.value.close() }
    }

    /// Drops the session's connections at once, with no WebSocket close frame: what a browser tab that
    /// is killed, or a network that fails, looks like to the server.
    public func abort() {
        let core = self.core
        eventLoop.execute { core.value.end(ClientSessionCore.closedByClient, polite: false) }
    }

    /// Why the session ended (the server's close frame, or a local reason), once it has.
    public var closeReason: SockJSCloseReason? { ending.withLockedValue { $0 } }

    /// Bytes and requests so far, counted at the session's sockets.
    public var traffic: SockwayTraffic { meter.snapshot }
}

/// What the event-loop face (``SockwayClientSession/onEvent(_:)``) hands its handler.
public enum SockwayClientEvent: Sendable {
    /// Messages, in order, as one frame or response brought them.
    case messages([String])
    /// The session ended; nothing follows.
    case closed(SockJSCloseReason)
}

/// What the bytes-level event-loop face (``SockwayClientSession/onBatchEvent(_:)``) hands its handler.
public enum SockwayClientBatchEvent: Sendable {
    /// Messages, in order, as one frame or response brought them.
    case messages(SockJSMessageBatch)
    /// The session ended; nothing follows.
    case closed(SockJSCloseReason)
}

/// The messages a client session receives, as an `AsyncSequence`.
public struct SockwayClientMessages: AsyncSequence, Sendable {
    public typealias Element = String
    let queue: InboundQueue

    public struct AsyncIterator: AsyncIteratorProtocol {
        let queue: InboundQueue
        public mutating func next() async -> String? {
            await queue.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(queue: queue)
    }
}

/// What the session asks of a transport. Loop-bound, like everything a transport does.
protocol ClientTransportDriver: AnyObject {
    func start()
    func send(_ batch: SockwayOutgoingBatch)
    /// Stop: close connections. `polite` sends a WebSocket close frame first.
    func stop(polite: Bool)
}

/// A client session's state, on its event loop: frames in from the transport, messages out to it.
final class ClientSessionCore {
    enum Phase {
        case connecting
        case open
        case closed
    }

    let kind: SockwayClientTransport
    let configuration: SockwayClientConfiguration
    var transport: (any ClientTransportDriver)?
    var opened: EventLoopPromise<Void>?
    private(set) var phase = Phase.connecting
    private let inbound: InboundQueue
    enum Handler {
        case strings(@Sendable (SockwayClientEvent) -> Void)
        case batches(@Sendable (SockwayClientBatchEvent) -> Void)

        func messages(_ batch: SockJSMessageBatch) {
            switch self {
            case .strings(let handler): handler(.messages(batch.strings))
            case .batches(let handler): handler(.messages(batch))
            }
        }

        func closed(_ reason: SockJSCloseReason) {
            switch self {
            case .strings(let handler): handler(.closed(reason))
            case .batches(let handler): handler(.closed(reason))
            }
        }
    }

    private var handler: Handler?
    private var closeReason: SockJSCloseReason?
    private let onClose: @Sendable (SockJSCloseReason) -> Void

    static let connectionLost = SockJSCloseReason(code: 1006, reason: "Connection lost")
    static let sendBufferFull = SockJSCloseReason(code: 1013, reason: "Send buffer full")
    static let closedByClient = SockJSCloseReason(code: 1000, reason: "Closed by client")
    /// An open frame on a session that is already open: the server forgot it (it timed out) and this
    /// request made a new one, so messages may have been lost. sockjs-client's words.
    static let serverLostSession = SockJSCloseReason(code: 1006, reason: "Server lost session")

    init(
        kind: SockwayClientTransport,
        inbound: InboundQueue,
        configuration: SockwayClientConfiguration,
        onClose: @escaping @Sendable (SockJSCloseReason) -> Void
    ) {
        self.kind = kind
        self.inbound = inbound
        self.configuration = configuration
        self.onClose = onClose
    }

    // MARK: From the transport

    /// A SockJS frame arrived.
    func received(_ frame: SockJSReceivedFrame) {
        switch frame {
        case .open:
            guard phase == .connecting else {
                if phase == .open { end(Self.serverLostSession, polite: false) }
                return
            }
            phase = .open
            opened?.succeed()
            opened = nil
        case .heartbeat:
            break
        case .messages(let messages):
            deliver(messages)
        case .close(let reason):
            if phase == .connecting {
                fail(SockwayClientError.closedBeforeOpen(reason))
            } else {
                end(reason, polite: true)
            }
        }
    }

    /// The raw WebSocket opened (it has no open frame).
    func rawOpened() {
        received(.open)
    }

    /// Messages arrived (raw WebSocket, or the contents of an `a` frame).
    func deliver(_ messages: SockJSMessageBatch) {
        guard phase == .open else { return }
        if let handler {
            handler.messages(messages)
            return
        }
        if !inbound.push(messages.strings) {
            end(SockJSCloseReason(code: 1013, reason: "Receive queue full"), polite: true)
        }
    }

    /// The transport cannot go on.
    func fail(_ error: any Error) {
        switch phase {
        case .connecting:
            phase = .closed
            transport?.stop(polite: false)
            transport = nil
            opened?.fail(error)
            opened = nil
            closeReason = Self.connectionLost
            onClose(Self.connectionLost)
            inbound.finish()
        case .open:
            // What went wrong, as sockjs-client says it ("Sending error: http status 404").
            end(SockJSCloseReason(code: 1006, reason: "Connection lost: \(error)"), polite: false)
        case .closed:
            break
        }
    }

    /// The WebSocket closed with a close frame (raw WebSocket: the server's code and reason).
    func webSocketClosed(_ reason: SockJSCloseReason) {
        end(reason, polite: false)
    }

    // MARK: From the application

    func setHandler(_ handler: Handler) {
        guard self.handler == nil else { return }
        let queued = inbound.takeAll()
        if !queued.isEmpty { handler.messages(SockJSMessageBatch(queued)) }
        if phase == .closed {
            handler.closed(closeReason ?? Self.connectionLost)
        } else {
            self.handler = handler
        }
    }

    func send(_ batch: SockwayOutgoingBatch) {
        guard phase == .open, batch.count > 0 else { return }
        transport?.send(batch)
    }

    func close() {
        switch phase {
        case .connecting:
            fail(SockwayClientError.connectionClosed)
        case .open:
            end(Self.closedByClient, polite: true)
        case .closed:
            break
        }
    }

    /// Ends an open session.
    func end(_ reason: SockJSCloseReason, polite: Bool) {
        guard phase != .closed else { return }
        phase = .closed
        closeReason = reason
        onClose(reason)
        if let handler {
            self.handler = nil
            handler.closed(reason)
        }
        transport?.stop(polite: polite)
        transport = nil
        inbound.finish()
    }
}
