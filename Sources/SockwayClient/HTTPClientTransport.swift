import NIOCore
import NIOHTTP1
import SockwaySockJS

/// The HTTP transports: one connection receives (a stream, or one poll after another), another sends
/// (`xhr_send` or `jsonp_send`, one request at a time, with what queued meanwhile batched into the
/// next), as a browser uses two connections for them.
final class HTTPClientTransport: ClientTransportDriver {
    private weak var core: ClientSessionCore?
    private let kind: SockwayClientTransport
    private let target: ClientTarget
    private let sessionPath: String
    private let meter: TrafficMeter
    private let timeout: TimeAmount
    private let loop: any EventLoop
    private let configuration: SockwayClientConfiguration

    private var receiver: HTTPClientConnection?
    private var sender: HTTPClientConnection?
    private var connectingSender = false
    /// The send requests' JSON arrays, built as messages are sent: full ones (`[...]`, at most
    /// `maxSendRequestBytes` unless one message is bigger) waiting their turn, then the one being
    /// filled (`[` and the quoted messages so far; empty while nothing waits).
    private var ready: [ByteBuffer] = []
    private var readyBytes = 0
    private var pending = ByteBuffer()
    private var sending = false
    private var stopped = false

    init(core: ClientSessionCore, kind: SockwayClientTransport, target: ClientTarget, sessionPath: String, meter: TrafficMeter, timeout: TimeAmount, loop: any EventLoop) {
        self.core = core
        self.kind = kind
        self.target = target
        self.sessionPath = sessionPath
        self.meter = meter
        self.timeout = timeout
        self.loop = loop
        self.configuration = core.configuration
    }

    func start() {
        receive()
    }

    // MARK: Receiving

    private var receiveRequest: (method: HTTPMethod, path: String, headers: [(String, String)], format: SockJSBodyDecoder.Format) {
        switch kind {
        case .xhrStreaming:
            return (.POST, sessionPath + "/xhr_streaming", [], .lines)
        case .eventSource:
            return (.GET, sessionPath + "/eventsource", [("Accept", "text/event-stream")], .eventSource)
        case .jsonpPolling:
            return (.GET, sessionPath + "/jsonp?c=_sockway.cb", [], .jsonp)
        case .xhrPolling, .webSocket, .rawWebSocket, .engineIOPolling, .engineIOWebSocket:
            return (.POST, sessionPath + "/xhr", [], .lines)
        }
    }

    /// Makes the next receiving request, on the open connection or a new one.
    private func receive() {
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
        let (method, path, headers, format) = receiveRequest
        var decoder = SockJSBodyDecoder(format: format, maxLineBytes: configuration.maxMessageBytes + 1024)
        var failed = false
        connection.request(
            method,
            path,
            headers: headers + configuration.extraHeaders,
            response: .init(
                onHead: { head in
                    guard head.status == .ok else {
                        failed = true
                        self.core?.fail(SockwayClientError.unexpectedStatus(Int(head.status.code)))
                        return
                    }
                },
                onBody: { bytes in
                    guard !failed, !self.stopped else { return }
                    decoder.append(bytes)
                    do {
                        while !self.stopped, let frame = try decoder.next() {
                            self.core?.received(frame)
                        }
                    } catch {
                        failed = true
                        self.core?.fail(SockwayClientError.protocolError("\(error)"))
                    }
                },
                onEnd: { error in
                    guard !failed, !self.stopped else { return }
                    if let error { return self.core?.fail(error) ?? () }
                    // A poll answered, or a stream reached its response limit: ask again.
                    self.receive()
                }
            )
        )
    }

    // MARK: Sending

    func send(_ messages: SockwayOutgoingBatch) {
        // Built in a local: a stored property of a class costs an exclusivity check per access.
        var array = ByteBuffer()
        swap(&array, &pending)
        let limit = configuration.maxSendRequestBytes
        // The usual case: every message plain, and all of them fit the request being filled.
        if array.readableBytes == 0 { array = Self.openRequest(for: messages, limit: limit) }
        if !(array.readableBytes + messages.byteCount + 3 * messages.count < limit && messages.appendQuotedIfPlain(to: &array)) {
            append(messages, to: &array, limit: limit)
        }
        pending = array
        if readyBytes + pending.readableBytes > configuration.maxPendingSendBytes {
            core?.end(ClientSessionCore.sendBufferFull, polite: false)
            return
        }
        flush()
    }

    /// Message by message: escapes, and a new request whenever the one being filled is full.
    private func append(_ messages: SockwayOutgoingBatch, to array: inout ByteBuffer, limit: Int) {
        messages.forEach { message in
            if array.readableBytes == 1 {
                // Only `[`: the first message goes in whatever its size.
            } else if array.readableBytes + message.count + 3 > limit {
                array.writeInteger(UInt8(ascii: "]"))
                readyBytes += array.readableBytes
                ready.append(array)
                array = Self.openRequest(for: messages, limit: limit)
            } else {
                array.writeInteger(UInt8(ascii: ","))
            }
            SockJSJSON.writeQuoted(utf8: message, into: &array)
        }
    }

    /// A request's array with its `[`, sized for the batch (quotes and commas), at most for the limit.
    private static func openRequest(for messages: SockwayOutgoingBatch, limit: Int) -> ByteBuffer {
        var array = ByteBuffer()
        array.reserveCapacity(min(limit, messages.byteCount + 3 * messages.count) + 8)
        array.writeInteger(UInt8(ascii: "["))
        return array
    }

    private func flush() {
        guard !sending, !ready.isEmpty || pending.readableBytes > 0, !stopped else { return }
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
        var array: ByteBuffer
        if ready.isEmpty {
            // Taken out first: closing it while `pending` still holds it would copy it.
            array = ByteBuffer()
            swap(&array, &pending)
            array.writeInteger(UInt8(ascii: "]"))
        } else {
            array = ready.removeFirst()
            readyBytes -= array.readableBytes
        }
        sending = true
        let body: ByteBuffer
        let path: String
        let contentType: String
        if kind == .jsonpPolling {
            var form = sender.channel.allocator.buffer(capacity: array.readableBytes * 3 + 3)
            SockJSMessageArray.writeForm(array: array, into: &form)
            body = form
            path = sessionPath + "/jsonp_send"
            contentType = "application/x-www-form-urlencoded"
        } else {
            body = array
            path = sessionPath + "/xhr_send"
            contentType = "text/plain;charset=UTF-8"
        }
        var status = 0
        sender.request(
            .POST,
            path,
            headers: [("Content-Type", contentType)] + configuration.extraHeaders,
            body: body,
            response: .init(
                onHead: { status = Int($0.status.code) },
                onBody: { _ in },
                onEnd: { error in
                    self.sending = false
                    guard !self.stopped else { return }
                    if let error { return self.core?.fail(error) ?? () }
                    guard status == 204 || status == 200 else {
                        return self.core?.fail(SockwayClientError.unexpectedStatus(status)) ?? ()
                    }
                    self.flush()
                }
            )
        )
    }

    func stop(polite: Bool) {
        stopped = true
        receiver?.close()
        sender?.close()
        receiver = nil
        sender = nil
        pending = ByteBuffer()
        ready = []
        readyBytes = 0
    }
}
