import NIOCore
import NIOHTTP1
import NIOWebSocket
import SockwaySockJS
import SockwayWebSocket

/// A WebSocket connection carrying one session: SockJS-framed (`/<server>/<session>/websocket`) or raw
/// (`/websocket`, one WebSocket message per message, no SockJS frames).
///
/// The session lives on this connection's loop, so the whole per-message path (decode, unframe,
/// deliver, frame, write) runs here without a hop.
final class SockwayWebSocketHandler: ChannelDuplexHandler, SessionReceiver {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Framing {
        case sockJS
        case raw
    }

    /// How long we wait for the client's close frame after sending ours.
    static let closeHandshakeTimeout = TimeAmount.seconds(5)
    /// Room for the largest server frame header, so it is written in place.
    static let headroom = WebSocketFrameWriter.headroom

    private let runtime: EndpointRuntime
    private let framing: Framing
    private let sessionID: String
    private let requestHeaders: HTTPHeaders
    private var protocolState: WebSocketConnectionStateMachine
    private var reader: WebSocketFrameReader
    private var core: SockJSSessionCore?
    private var context: ChannelHandlerContext?
    private var inReadCycle = false
    private var needsFlush = false
    private var closeReason: SockJSCloseReason?
    private var finished = false
    private var closeTimer: Scheduled<Void>?
    private var keepalive: WebSocketKeepalive?
    private var keepaliveTimer: Scheduled<Void>?
    /// Bytes of binary messages written but not yet out of the channel.
    private var pendingBinaryBytes = 0
    /// Reading is paused while the session's outbox is backed up (the client sends faster than it
    /// takes the replies); `readPending` is a read asked for meanwhile.
    private var readsPaused = false
    private var readPending = false

    let kind = SockJSSessionStateMachine.ReceiverKind.webSocket

    init(
        runtime: EndpointRuntime,
        framing: Framing,
        sessionID: String,
        requestHeaders: HTTPHeaders,
        compression: PerMessageDeflateCodec? = nil
    ) {
        self.runtime = runtime
        self.framing = framing
        self.sessionID = sessionID
        self.requestHeaders = runtime.endpoint.options.keptHeaders(requestHeaders)
        self.protocolState = WebSocketConnectionStateMachine(
            configuration: .init(maxMessageSize: runtime.endpoint.options.maxMessageBytes),
            compression: compression
        )
        self.reader = WebSocketFrameReader(maxFrameSize: runtime.endpoint.options.maxMessageBytes)
    }

    /// Writes one frame; `payload` should have ``headroom`` bytes before it.
    private func writeFrame(
        _ opcode: WebSocketOpcode,
        _ payload: consuming ByteBuffer,
        rsv1: Bool = false,
        context: ChannelHandlerContext,
        promise: EventLoopPromise<Void>? = nil
    ) {
        let frame = WebSocketFrameWriter.frame(opcode: opcode, rsv1: rsv1, payload: consume payload, allocator: context.channel.allocator)
        context.write(wrapOutboundOut(frame), promise: promise)
    }

    private func writeFrame(_ frame: WebSocketFrame, context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        let promise = context.eventLoop.makePromise(of: Void.self)
        writeFrame(frame.opcode, frame.data, context: context, promise: promise)
        context.flush()
        return promise.futureResult
    }

    /// Writes one text message, compressed when permessage-deflate is on and it pays.
    /// The buffer is consumed so that the frame header goes into its headroom without a copy.
    private func writeText(_ buffer: consuming ByteBuffer, context: ChannelHandlerContext) {
        let (data, compressed) = protocolState.prepareOutbound(consume buffer, allocator: context.channel.allocator, headroom: Self.headroom)
        writeFrame(.text, consume data, rsv1: compressed, context: context)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let loop = context.eventLoop
        let store = runtime.store
        let core = runtime.makeCore(on: loop, heartbeats: framing == .sockJS) { reaped in
            store.removeAnonymous(reaped, on: loop)
        }
        core.setHandle(
            SockwaySession(
                id: sessionID,
                transport: framing == .sockJS ? "websocket" : "raw-websocket",
                remoteAddress: context.channel.remoteAddress,
                headers: requestHeaders,
                eventLoop: loop,
                core: core,
                inboundLimit: runtime.endpoint.inboundLimit,
                outboxLimit: runtime.endpoint.options.outboxLimit
            )
        )
        store.insertAnonymous(core, on: loop)
        self.core = core
        if context.channel.isActive {
            core.attach(self)
        }
        let options = runtime.endpoint.options
        keepalive = WebSocketKeepalive(pingInterval: options.webSocketPingInterval, idleTimeout: options.webSocketIdleTimeout, now: loop.now)
        scheduleKeepalive(context: context)
    }

    func channelActive(context: ChannelHandlerContext) {
        if let core, core.receiver == nil, !finished { core.attach(self) }
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        closeTimer?.cancel()
        keepaliveTimer?.cancel()
        self.context = nil
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inReadCycle = true
        guard !finished || protocolState.state == .closeSent else { return }
        if keepalive != nil { keepalive!.received(now: context.eventLoop.now) }
        reader.append(unwrapInboundIn(data))
        if let core {
            core.coalescingSends { readFrames(context: context) }
        } else {
            readFrames(context: context)
        }
    }

    private func readFrames(context: ChannelHandlerContext) {
        while true {
            let frame: WebSocketFrame?
            do {
                frame = try reader.next()
            } catch {
                if case .fail(let code, let reason) = protocolState.decodingFailed(tooBig: true) {
                    failConnection(code: code, reason: reason, context: context)
                } else {
                    context.close(promise: nil)
                }
                return
            }
            guard let frame else { return }
            frameReceived(frame, context: context)
            if protocolState.state == .closed { return }
        }
    }

    private func frameReceived(_ frame: WebSocketFrame, context: ChannelHandlerContext) {
        let action = protocolState.frameReceived(frame)
        switch action {
        case .none, .text, .binary:
            break
        case .sendPong, .replyClose, .closeConnection, .fail:
            // Replies to the messages before this frame go out before what it causes.
            core?.flushCoalescedSends()
        }
        switch action {
        case .none:
            break
        case .text(let text):
            receivedText(text, context: context)
        case .binary(let data):
            if framing == .raw {
                core?.deliverBinary(data)
            } else {
                failConnection(code: WebSocketCloseCode.unacceptableData, reason: "Binary messages are not supported", context: context)
            }
        case .sendPong(let data):
            writeFrame(.pong, data, context: context)
            needsFlush = true
        case .replyClose(let code, let reason, let echo):
            finished = true
            writeFrame(echo, context: context).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
            let sessionReason = SockJSCloseReason(code: Int(code == 1005 ? 1000 : code), reason: reason)
            core.map { $0.detach(self, aborted: false, reason: sessionReason) }
        case .closeConnection:
            finished = true
            context.close(promise: nil)
        case .fail(let code, let reason):
            failConnection(code: code, reason: reason, context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inReadCycle = false
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        if let core, !readsPaused, core.isBackedUp {
            // What this client's messages caused is piling up (in the outbox, or unread by an async
            // application): read no more from it until that drains, so that it slows down rather than
            // overflowing a queue (and losing the session).
            readsPaused = true
            core.whenDrained { [self] in
                readsPaused = false
                if readPending, let context = self.context {
                    readPending = false
                    context.read()
                }
            }
        }
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if readsPaused {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closeTimer?.cancel()
        keepaliveTimer?.cancel()
        finished = true
        core.map { $0.detach(self, aborted: true) }
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { core?.receiverBecameWritable(self) }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: Keepalive

    private func scheduleKeepalive(context: ChannelHandlerContext) {
        guard let deadline = keepalive?.nextDeadline, !finished else { return }
        keepaliveTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            keepaliveTimer = nil
            guard !finished, keepalive != nil else { return }
            switch keepalive!.tick(now: context.eventLoop.now) {
            case .none:
                break
            case .ping:
                writeFrame(.ping, ByteBuffer(), context: context)
                context.flush()
            case .close:
                failConnection(code: WebSocketCloseCode.goingAway, reason: "Idle timeout", context: context)
                return
            }
            scheduleKeepalive(context: context)
        }
    }

    private func receivedText(_ text: ByteBuffer, context: ChannelHandlerContext) {
        guard let core else { return }
        switch framing {
        case .raw:
            core.deliver([String(buffer: text)])
        case .sockJS:
            let parsed: Result<[String], SockJSPayloadError> = text.withUnsafeReadableBytes { bytes in
                do throws(SockJSPayloadError) {
                    return .success(try SockJSPayload.parseWebSocketMessage(bytes))
                } catch {
                    return .failure(error)
                }
            }
            switch parsed {
            case .success(let messages):
                core.deliver(messages)
            case .failure:
                // The suite expects the connection to drop without a SockJS close frame.
                failConnection(code: WebSocketCloseCode.invalidPayload, reason: "Broken framing", context: context)
            }
        }
    }

    private func failConnection(code: UInt16, reason: String, context: ChannelHandlerContext) {
        guard !finished else { return }
        core?.flushCoalescedSends()
        finished = true
        let frame = WebSocketConnectionStateMachine.closeFrame(code: code, reason: reason)
        writeFrame(frame, context: context).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
        core.map { $0.detach(self, aborted: false, reason: SockJSCloseReason(code: Int(code), reason: reason)) }
    }

    // MARK: SessionReceiver

    var isWritable: Bool { !finished && (context?.channel.isWritable ?? false) }

    func write(_ frame: SockJSFrame) -> Bool {
        guard let context, !finished else { return false }
        switch framing {
        case .sockJS:
            var buffer = context.channel.allocator.buffer(capacity: frame.estimatedByteCount + Self.headroom)
            buffer.moveWriterIndex(forwardBy: Self.headroom)
            buffer.moveReaderIndex(forwardBy: Self.headroom)
            frame.write(into: &buffer)
            writeText(consume buffer, context: context)
            if case .close(let reason) = frame { closeReason = reason }
        case .raw:
            switch frame {
            case .open, .heartbeat:
                // Raw sessions have no open frame and no heartbeat timer (pings, when configured,
                // come from the keepalive).
                return false
            case .messages(let messages):
                for message in messages {
                    var buffer = context.channel.allocator.buffer(capacity: message.utf8.count + Self.headroom)
                    buffer.moveWriterIndex(forwardBy: Self.headroom)
                    buffer.moveReaderIndex(forwardBy: Self.headroom)
                    buffer.writeString(message)
                    writeText(consume buffer, context: context)
                }
            case .close(let reason):
                closeReason = reason
                return false
            }
        }
        if inReadCycle {
            needsFlush = true
        } else {
            context.flush()
        }
        return false
    }

    /// Whether binary messages can go out on this connection (raw framing only).
    var carriesBinary: Bool { framing == .raw && !finished }

    /// Writes a binary message. Returns `false` when more than `limit` bytes of binary messages are
    /// already waiting in the channel: the caller closes the session rather than buffer without bound.
    func writeBinary(_ message: ByteBuffer, limit: Int) -> Bool {
        guard let context, !finished else { return true }
        guard pendingBinaryBytes + message.readableBytes <= limit || pendingBinaryBytes == 0 else { return false }
        let size = message.readableBytes
        pendingBinaryBytes += size
        let (data, compressed) = protocolState.prepareOutbound(message, allocator: context.channel.allocator, headroom: 0)
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenComplete { [self] _ in pendingBinaryBytes -= size }
        writeFrame(.binary, data, rsv1: compressed, context: context, promise: promise)
        if inReadCycle {
            needsFlush = true
        } else {
            context.flush()
        }
        return true
    }

    func finish() {
        guard let context, !finished else { return }
        let code: UInt16
        let reason: String
        switch framing {
        case .sockJS:
            // The SockJS close frame already told the client why; the WebSocket closes normally.
            code = WebSocketCloseCode.normalClosure
            reason = "Normal closure"
        case .raw:
            let requested = closeReason ?? .normalClosure
            let wire = UInt16(clamping: requested.code)
            code = WebSocketCloseCode.isSendable(wire) ? wire : WebSocketCloseCode.normalClosure
            reason = requested.reason
        }
        finished = true
        guard let frame = protocolState.closeRequested(code: code, reason: reason) else { return }
        writeFrame(frame.opcode, frame.data, context: context)
        context.flush()
        let channel = context.channel
        closeTimer = context.eventLoop.scheduleTask(in: Self.closeHandshakeTimeout) {
            channel.close(promise: nil)
        }
    }
}
