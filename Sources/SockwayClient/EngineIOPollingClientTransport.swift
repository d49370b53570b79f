import NIOCore
import NIOHTTP1
import SockwayEngineIO
import SockwaySockJS

/// Engine.IO v4 HTTP long-polling: one connection polls (`GET`, the first one the handshake), another
/// sends (`POST`, at most one in flight, with what queued meanwhile joined into the next body), as a
/// browser uses two connections. Pings are answered with pongs through the send queue. No upgrade:
/// the session stays on polling.
final class EngineIOPollingClientTransport: ClientTransportDriver {
    private weak var core: ClientSessionCore?
    private let target: ClientTarget
    private let meter: TrafficMeter
    private let timeout: TimeAmount
    private let loop: any EventLoop
    private let configuration: SockwayClientConfiguration

    private var machine = EngineIOClientMachine()
    private var queue: EngineIOSendQueue
    private var receiver: HTTPClientConnection?
    private var sender: HTTPClientConnection?
    private var connectingSender = false
    private var sending = false
    private var stopped = false
    /// The server ended the session: a client close has nobody to tell.
    private var serverClosed = false
    /// A polite stop came while a `POST` was in flight: the `close` packet goes after it.
    private var closeAfterSend = false

    init(core: ClientSessionCore, target: ClientTarget, meter: TrafficMeter, timeout: TimeAmount, loop: any EventLoop) {
        self.core = core
        self.target = target
        self.meter = meter
        self.timeout = timeout
        self.loop = loop
        self.configuration = core.configuration
        self.queue = EngineIOSendQueue(limit: core.configuration.maxSendRequestBytes)
    }

    func start() {
        poll()
    }

    private var path: String { EngineIOClientMachine.pollingPath(sid: machine.handshake?.sid) }

    // MARK: Receiving

    /// Makes the next `GET`, on the open connection or a new one.
    private func poll() {
        guard !stopped else { return }
        if let receiver, receiver.isReusable {
            request(on: receiver)
            return
        }
        receiver?.close()
        receiver = nil
        HTTPClientConnection.connect(
            to: target,
            on: loop,
            meter: meter,
            timeout: timeout,
            receiveBytesPerSecond: configuration.receiveBytesPerSecond
        ).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let connection):
                guard !self.stopped else { return connection.close() }
                self.receiver = connection
                self.request(on: connection)
            case .failure(let error):
                self.core?.fail(error)
            }
        }
    }

    private func request(on connection: HTTPClientConnection) {
        // A payload is decoded whole, so the body is gathered first (bounded).
        let limit = configuration.maxMessageBytes + 1024
        var body = ByteBuffer()
        var status = 0
        var failed = false
        connection.request(
            .GET,
            path,
            headers: configuration.extraHeaders,
            response: .init(
                onHead: { status = Int($0.status.code) },
                onBody: { part in
                    guard !failed, !self.stopped else { return }
                    guard body.readableBytes + part.readableBytes <= limit else {
                        failed = true
                        self.core?.fail(SockwayClientError.protocolError("polling response larger than \(limit) bytes"))
                        return
                    }
                    var part = part
                    body.writeBuffer(&part)
                },
                onEnd: { error in
                    guard !failed, !self.stopped else { return }
                    if let error { return self.core?.fail(error) ?? () }
                    guard status == 200 else { return self.core?.fail(SockwayClientError.unexpectedStatus(status)) ?? () }
                    self.handle(self.machine.receivedPollingBody(body, maxPayload: limit))
                    self.poll()
                }
            )
        )
    }

    private func handle(_ actions: [EngineIOClientMachine.Action]) {
        for action in actions {
            guard !stopped, let core else { return }
            switch action {
            case .open(let handshake):
                // Bodies stay under what the server takes.
                queue.limit = max(1, min(configuration.maxSendRequestBytes, handshake.maxPayload))
                core.received(.open)
            case .deliver(let messages):
                core.deliver(messages)
            case .sendPong:
                queue.append(.pong)
                flush()
            case .close(let reason):
                serverClosed = true
                core.received(.close(reason))
            case .fail(let why):
                core.fail(SockwayClientError.protocolError(why))
            }
        }
    }

    // MARK: Sending

    func send(_ messages: SockwayOutgoingBatch) {
        guard queue.append(messages) else {
            core?.fail(SockwayClientError.protocolError("a message holds U+001E, which Engine.IO polling cannot carry"))
            return
        }
        if queue.byteCount > configuration.maxPendingSendBytes {
            core?.end(ClientSessionCore.sendBufferFull, polite: false)
            return
        }
        flush()
    }

    private func flush() {
        guard !sending, !stopped, machine.isOpen, !queue.isEmpty else { return }
        guard let sender, sender.isReusable else {
            guard !connectingSender else { return }
            connectingSender = true
            sender?.close()
            sender = nil
            HTTPClientConnection.connect(to: target, on: loop, meter: meter, timeout: timeout).assumeIsolated().whenComplete { result in
                self.connectingSender = false
                switch result {
                case .success(let connection):
                    guard !self.stopped else { return connection.close() }
                    self.sender = connection
                    self.flush()
                case .failure(let error):
                    self.core?.fail(error)
                }
            }
            return
        }
        guard let body = queue.next() else { return }
        sending = true
        post(body, on: sender) { error, status in
            self.sending = false
            if self.stopped {
                if self.closeAfterSend { self.sendClosePacket() }
                return
            }
            if let error { return self.core?.fail(error) ?? () }
            guard status == 200 else { return self.core?.fail(SockwayClientError.unexpectedStatus(status)) ?? () }
            self.flush()
        }
    }

    private func post(_ body: ByteBuffer, on connection: HTTPClientConnection, done: @escaping ((any Error)?, Int) -> Void) {
        var status = 0
        connection.request(
            .POST,
            path,
            headers: [("Content-Type", "text/plain;charset=UTF-8")] + configuration.extraHeaders,
            body: body,
            response: .init(
                onHead: { status = Int($0.status.code) },
                onBody: { _ in },
                onEnd: { error in done(error, status) }
            )
        )
    }

    /// Tells the server the session is over (a `close` packet), so that it ends it now rather than
    /// after a missed ping; then drops the connection.
    private func sendClosePacket() {
        closeAfterSend = false
        var body = ByteBuffer()
        EngineIOPacket.close.writePollingPacket(into: &body)
        let send: (HTTPClientConnection) -> Void = { connection in
            self.post(body, on: connection) { _, _ in connection.close() }
            // Whatever the server does, the connection goes.
            self.loop.assumeIsolated().scheduleTask(in: .seconds(1)) { connection.close() }
        }
        if let sender, sender.isReusable {
            self.sender = nil
            send(sender)
            return
        }
        sender?.close()
        sender = nil
        HTTPClientConnection.connect(to: target, on: loop, meter: meter, timeout: timeout).assumeIsolated().whenComplete { result in
            if case .success(let connection) = result { send(connection) }
        }
    }

    func stop(polite: Bool) {
        guard !stopped else { return }
        stopped = true
        receiver?.close()
        receiver = nil
        queue = EngineIOSendQueue(limit: 1)
        if polite, machine.isOpen, !serverClosed {
            if sending {
                closeAfterSend = true
            } else {
                sendClosePacket()
            }
            return
        }
        sender?.close()
        sender = nil
    }
}
