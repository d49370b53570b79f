import NIOCore
import NIOHTTP1
import SockwaySockJS

/// A polling or streaming HTTP response that receives a session's frames.
///
/// Lives on the session's loop; the response itself belongs to the connection's handler, possibly on
/// another loop, and every operation on it goes through that handler.
final class HTTPReceiver: SessionReceiver, @unchecked Sendable {
    // Mutable state below is touched only on the session's event loop.
    let kind: SockJSSessionStateMachine.ReceiverKind
    private let transport: SockJSTransport
    private let callback: String?
    private let connection: NIOLoopBound<SockwayHTTPHandler>
    private let channel: any Channel
    private var remainingBytes: Int
    private var scratch = ByteBuffer()
    private var finished = false

    init(
        transport: SockJSTransport,
        callback: String?,
        responseLimit: Int,
        connection: NIOLoopBound<SockwayHTTPHandler>,
        channel: any Channel
    ) {
        self.transport = transport
        self.callback = callback
        self.connection = connection
        self.channel = channel
        switch transport.role {
        case .receiver(.polling):
            kind = .polling
            remainingBytes = .max
        default:
            kind = .streaming
            remainingBytes = responseLimit
        }
    }

    var isWritable: Bool { !finished && channel.isWritable }

    func write(_ frame: SockJSFrame) -> Bool {
        guard !finished else { return true }
        // Room for the frame and the transport's wrapping (a `<script>` element, a callback name).
        var buffer = channel.allocator.buffer(capacity: frame.estimatedByteCount + 48 + (callback?.utf8.count ?? 0))
        transport.writeFrame(frame, callback: callback, into: &buffer, scratch: &scratch)
        remainingBytes -= buffer.readableBytes
        let bytes = buffer
        onConnection { $0.writeReceiverBody(bytes) }
        return remainingBytes <= 0
    }

    func finish() {
        guard !finished else { return }
        finished = true
        onConnection { [self] in $0.endReceiver(self) }
    }

    private func onConnection(_ body: @escaping @Sendable (SockwayHTTPHandler) -> Void) {
        connection.run(body)
    }
}

extension NIOLoopBound where Value == SockwayHTTPHandler {
    /// Runs `body` with the handler on its loop: at once when called there, else in order after what
    /// was asked before.
    func run(_ body: @escaping @Sendable (SockwayHTTPHandler) -> Void) {
        if eventLoop.inEventLoop {
            body(value)
        } else {
            eventLoop.execute { body(self.value) }
        }
    }
}

extension EndpointRuntime {
    /// The session `id` for a receiving request: the existing one if the request matches its binding,
    /// else a new one if the server's session bounds have room. Refusals are logged. Call on the owner loop.
    func admitReceiver(
        toSession id: String,
        transport: SockJSTransport,
        remoteAddress: SocketAddress?,
        headers: HTTPHeaders,
        binding: SessionBindingToken
    ) -> Result<SockJSSessionCore, SockwayRefusal> {
        let loop = store.owner(of: id)
        loop.preconditionInEventLoop()
        if let existing = store.session(id: id) {
            guard existing.binding == binding else {
                refusals.log(.sessionOwnerMismatch, from: remoteAddress)
                return .failure(.sessionOwnerMismatch)
            }
            return .success(existing)
        }
        let place: SessionBudget.Place
        switch budget.admit(remoteAddress, logging: refusals) {
        case .success(let granted): place = granted
        case .failure(let refusal): return .failure(refusal)
        }
        let store = self.store
        let budget = self.budget
        let core = makeCore(on: loop, transport: MeteredTransport(sessionTransport: transport.name)) { reaped in
            store.remove(id: id, core: reaped)
            budget.release(place)
        }
        core.binding = binding
        core.setHandle(
            SockwaySession(
                id: id,
                transport: transport.name,
                remoteAddress: remoteAddress,
                headers: endpoint.options.keptHeaders(headers),
                eventLoop: loop,
                core: core,
                inboundLimit: endpoint.inboundLimit,
                outboxLimit: endpoint.options.outboxLimit
            )
        )
        store.insert(core, id: id)
        return .success(core)
    }

    /// Hands messages to session `id` (see ``SessionCore/acceptSend(_:answer:)``) and calls `answer`
    /// on the owner loop with the outcome; `.refused(.closed)` if there is no such session. Call on
    /// the owner loop.
    func acceptSend(
        _ messages: [String],
        toSession id: String,
        binding: SessionBindingToken,
        remoteAddress: SocketAddress?,
        answer: @escaping (SockJSSessionStateMachine.SendOutcome) -> Void
    ) {
        guard let core = store.session(id: id) else { return answer(.refused(.closed)) }
        guard core.binding == binding else {
            // As for an unknown session: the id alone must not tell a stranger that it exists.
            refusals.log(.sessionOwnerMismatch, from: remoteAddress)
            return answer(.refused(.closed))
        }
        core.acceptSend(messages, answer: answer)
    }
}
