import NIOCore
import NIOHTTP1
import SockwayCore
import SockwaySockJS
import SockwayWebSocket

/// A message for a foreign front to write on a WebSocket; ``close(code:reason:)`` comes last.
package enum ForeignWebSocketFrame: Sendable {
    case text(String)
    case binary(ByteBuffer)
    case close(code: UInt16, reason: String)
}

/// A message a foreign front read from its client.
enum ForeignWebSocketMessage: Sendable {
    case text(String)
    case binary(ByteBuffer)
}

/// The session side of one WebSocket connection over a foreign front.
package final class ForeignWebSocket: Sendable {
    private let side: Side
    private let outbound: ForeignOutbound<ForeignWebSocketFrame>
    /// The largest message the endpoint takes from the client.
    package let maxMessageBytes: Int

    /// A SockJS (or raw) session's link, or an Engine.IO connection.
    enum Side: Sendable {
        case sockJS(NIOLoopBound<ForeignWebSocketLink>)
        case engineIO(NIOLoopBound<ForeignEngineIOConnection>)
    }

    init(side: Side, outbound: ForeignOutbound<ForeignWebSocketFrame>, maxMessageBytes: Int) {
        self.side = side
        self.outbound = outbound
        self.maxMessageBytes = maxMessageBytes
    }

    /// What to write next, in order; `nil` once the session has closed the connection (after its
    /// ``ForeignWebSocketFrame/close(code:reason:)``) or the client is gone.
    package func next() async -> [ForeignWebSocketFrame]? {
        await outbound.next()
    }

    /// A text message from the client. Returns once the session takes more: while what the client's
    /// messages caused is backed up (the outbox, the application's inbound queue), this waits, and a
    /// caller that reads the next message only then stops reading from the connection.
    package func received(text: String) async {
        await received(.text(text))
    }

    /// A binary message from the client (raw WebSocket and Engine.IO; SockJS framing fails the
    /// connection).
    package func received(binary: ByteBuffer) async {
        await received(.binary(binary))
    }

    /// Hands `message` to the session on its loop and waits until it takes more.
    private func received(_ message: ForeignWebSocketMessage) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            switch side {
            case .sockJS(let link):
                link.eventLoop.execute {
                    link.value.received(message)
                    link.value.whenReady { continuation.resume() }
                }
            case .engineIO(let connection):
                connection.eventLoop.execute {
                    connection.value.received(message) { continuation.resume() }
                }
            }
        }
    }

    /// The connection is over: the client closed it, or it was cut (`aborted`).
    package func connectionEnded(aborted: Bool) {
        switch side {
        case .sockJS(let link):
            link.eventLoop.execute { link.value.connectionEnded(aborted: aborted) }
        case .engineIO(let connection):
            connection.eventLoop.execute { connection.value.connectionEnded(aborted: aborted) }
        }
    }
}

/// An Engine.IO WebSocket over a foreign front: stands in for Sockway's own connection handler
/// before an ``EngineIOWebSocketLink``, which does the rest (WebSocket-only sessions, the upgrade of
/// a polling session, backpressure). Used on its loop.
final class ForeignEngineIOConnection: EngineIOConnection {
    private let link: EngineIOWebSocketLink
    private let outbound: ForeignOutbound<ForeignWebSocketFrame>
    private let loop: any EventLoop
    let remoteAddress: SocketAddress?
    private var ended = false

    init(link: EngineIOWebSocketLink, outbound: ForeignOutbound<ForeignWebSocketFrame>, remoteAddress: SocketAddress?, on loop: any EventLoop) {
        self.link = link
        self.outbound = outbound
        self.loop = loop
        self.remoteAddress = remoteAddress
    }

    /// Starts the link (on `loop`).
    func open() {
        let this = NIOLoopBound(self, eventLoop: loop)
        let loop = self.loop
        outbound.setHandlers(
            onWritable: { loop.execute { this.value.link.connectionBecameWritable() } },
            onGone: { loop.execute { this.value.connectionEnded(aborted: true) } }
        )
        link.connectionReady(self as any EngineIOConnection)
    }

    /// One message from the client; `ready` is called once the link takes more (at once, unless the
    /// session is backed up).
    func received(_ message: ForeignWebSocketMessage, ready: @escaping () -> Void) {
        guard !ended else { return ready() }
        link.readCycle {
            switch message {
            case .text(let text): link.receivedText(ByteBuffer(string: text))
            case .binary(let data): link.receivedBinary(data)
            }
        }
        if !link.pauseReadsIfBackedUp(resume: ready) { ready() }
    }

    func connectionEnded(aborted: Bool) {
        guard !ended else { return }
        ended = true
        outbound.finish()
        link.connectionEnded(aborted: aborted, reason: nil)
    }

    // MARK: EngineIOConnection

    var eventLoop: (any EventLoop)? { loop }

    var writability: @Sendable () -> Bool {
        let outbound = self.outbound
        return { outbound.isWritable }
    }

    func writeMessages(_ messages: [SockwayWebSocketHandler.OutboundMessage], flushNow: Bool) {
        guard !ended else { return }
        for message in messages {
            switch message {
            case .text(let buffer): outbound.push(.text(String(buffer: buffer)), bytes: buffer.readableBytes)
            case .binary(let bytes): outbound.push(.binary(bytes), bytes: bytes.readableBytes)
            }
        }
    }

    func close(code: UInt16, reason: String) {
        guard !ended else { return }
        ended = true
        outbound.push(.close(code: code, reason: reason), bytes: 0)
        outbound.finish()
    }
}

/// A SockJS (or raw) WebSocket session over a foreign front; the foreign counterpart of
/// ``SockJSWebSocketLink``. Used on the session's loop.
final class ForeignWebSocketLink: SessionReceiver {
    let kind = SessionReceiverKind.webSocket
    private let framing: SockJSWebSocketLink.Framing
    private let outbound: ForeignOutbound<ForeignWebSocketFrame>
    private var core: SockJSSessionCore?
    private var closeReason: SockJSCloseReason?
    private var ended = false

    init(framing: SockJSWebSocketLink.Framing, outbound: ForeignOutbound<ForeignWebSocketFrame>) {
        self.framing = framing
        self.outbound = outbound
    }

    /// Opens the session, as ``SockJSWebSocketLink/connectionReady(_:)`` does for Sockway's own
    /// connections: admitted under the server's bounds (else closed with 1013), living on `loop`.
    func open(runtime: EndpointRuntime, sessionID: String, headers: HTTPHeaders, remoteAddress: SocketAddress?, on loop: any EventLoop) {
        guard let core = runtime.openWebSocketSession(framing: framing, id: sessionID, headers: headers, remoteAddress: remoteAddress, on: loop) else {
            end(code: WebSocketCloseCode.tryAgainLater, reason: "Try again later")
            return
        }
        self.core = core
        let this = NIOLoopBound(self, eventLoop: loop)
        outbound.setHandlers(
            onWritable: { loop.execute { this.value.core?.receiverBecameWritable(this.value) } },
            onGone: { loop.execute { this.value.connectionEnded(aborted: true) } }
        )
        core.attach(self)
    }

    func received(_ message: ForeignWebSocketMessage) {
        switch message {
        case .text(let text): receivedText(text)
        case .binary(let data): receivedBinary(data)
        }
    }

    private func receivedText(_ text: String) {
        guard let core else { return }
        switch framing {
        case .raw:
            core.coalescingSends { core.deliver([text]) }
        case .sockJS:
            var text = text
            let parsed: Result<[String], SockJSPayloadError> = text.withUTF8 { bytes in
                do throws(SockJSPayloadError) {
                    return .success(try SockJSPayload.parseWebSocketMessage(UnsafeRawBufferPointer(bytes)))
                } catch {
                    return .failure(error)
                }
            }
            switch parsed {
            case .success(let messages):
                core.coalescingSends { core.deliver(messages) }
            case .failure:
                // As on Sockway's own connections: dropped without a SockJS close frame.
                fail(code: WebSocketCloseCode.invalidPayload, reason: "Broken framing")
            }
        }
    }

    private func receivedBinary(_ data: ByteBuffer) {
        guard let core else { return }
        if framing == .raw {
            core.coalescingSends { core.deliverBinary(data) }
        } else {
            fail(code: WebSocketCloseCode.unacceptableData, reason: "Binary messages are not supported")
        }
    }

    /// Calls `body` once the session takes more from this client (at once if it does now).
    func whenReady(_ body: @escaping () -> Void) {
        guard let core else { return body() }
        core.whenDrained(body)
    }

    func connectionEnded(aborted: Bool) {
        ended = true
        outbound.finish()
        let core = self.core
        self.core = nil
        core?.detach(self, aborted: aborted)
    }

    private func fail(code: UInt16, reason: String) {
        guard !ended else { return }
        end(code: code, reason: reason)
        let core = self.core
        self.core = nil
        core?.detach(self, aborted: false, reason: SockwayCloseReason(code: Int(code), reason: reason))
    }

    private func end(code: UInt16, reason: String) {
        ended = true
        outbound.push(.close(code: code, reason: reason), bytes: 0)
        outbound.finish()
    }

    // MARK: SessionReceiver

    var isWritable: Bool { !ended && outbound.isWritable }

    func write(_ frame: SockJSFrame) -> Bool {
        guard !ended else { return false }
        switch framing {
        case .sockJS:
            var buffer = ByteBuffer()
            buffer.reserveCapacity(frame.estimatedByteCount)
            frame.write(into: &buffer)
            if case .close(let reason) = frame { closeReason = reason }
            outbound.push(.text(String(buffer: buffer)), bytes: buffer.readableBytes)
        case .raw:
            switch frame {
            case .open, .heartbeat:
                // Raw sessions have no open frame and no heartbeat.
                return false
            case .messages(let messages):
                for message in messages { outbound.push(.text(message), bytes: message.utf8.count) }
            case .close(let reason):
                closeReason = reason
            }
        }
        return false
    }

    var carriesBinary: Bool { framing == .raw && !ended }

    func writeBinary(_ message: ByteBuffer, limit: Int) -> Bool {
        guard !ended else { return true }
        let waiting = outbound.bufferedBytes
        guard waiting + message.readableBytes <= limit || waiting == 0 else { return false }
        outbound.push(.binary(message), bytes: message.readableBytes)
        return true
    }

    func finish() {
        guard !ended else { return }
        switch framing {
        case .sockJS:
            // The SockJS close frame already told the client why; the WebSocket closes normally.
            end(code: WebSocketCloseCode.normalClosure, reason: "Normal closure")
        case .raw:
            let requested = closeReason ?? .normalClosure
            let wire = UInt16(clamping: requested.code)
            end(code: WebSocketCloseCode.isSendable(wire) ? wire : WebSocketCloseCode.normalClosure, reason: requested.reason)
        }
    }
}
