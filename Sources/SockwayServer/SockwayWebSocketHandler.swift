import NIOCore
import NIOHTTP1
import NIOWebSocket
import SockwayCore
import SockwaySockJS
import SockwayWebSocket

/// The session side of a WebSocket connection: what the connection hands the client's messages to,
/// and what writes the session's frames through it (``SockJSWebSocketLink``, or Engine.IO's).
/// Called on the connection's loop.
protocol WebSocketSessionLink: AnyObject {
    /// The connection is up: open or join the session.
    func connectionReady(_ connection: SockwayWebSocketHandler)
    /// Runs `body`, which hands over everything one read brought: what the application sends
    /// meanwhile goes out together at the end.
    func readCycle(_ body: () -> Void)
    /// A control frame is about to go out: replies to the messages before it go first.
    func flushCoalescedSends()
    func receivedText(_ text: ByteBuffer)
    func receivedBinary(_ data: ByteBuffer)
    /// The connection is over: the client closed it (`reason`), it failed, or it was cut (`aborted`).
    func connectionEnded(aborted: Bool, reason: SockwayCloseReason?)
    func connectionBecameWritable()
    /// Whether the session is backed up after a read: then the connection reads no more until
    /// `resume` is called.
    func pauseReadsIfBackedUp(resume: @escaping () -> Void) -> Bool
}

/// One WebSocket connection (RFC 6455, permessage-deflate): frames, pings, the close handshake and
/// backpressure. What its messages mean belongs to its ``WebSocketSessionLink``.
///
/// For SockJS and raw WebSocket sessions the session lives on this connection's loop, so the whole
/// per-message path (decode, unframe, deliver, frame, write) runs here without a hop.
final class SockwayWebSocketHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// How long we wait for the client's close frame after sending ours.
    static let closeHandshakeTimeout = TimeAmount.seconds(5)
    /// Room for the largest server frame header, so it is written in place.
    static let headroom = WebSocketFrameWriter.headroom

    private let options: SockwayEndpointOptions
    private var link: (any WebSocketSessionLink)?
    private var protocolState: WebSocketConnectionStateMachine
    private var reader: WebSocketFrameReader
    private var context: ChannelHandlerContext?
    private var inReadCycle = false
    private var needsFlush = false
    private(set) var finished = false
    private var readied = false
    private var closeTimer: Scheduled<Void>?
    private var keepalive: WebSocketKeepalive?
    private var keepaliveTimer: Scheduled<Void>?
    /// Bytes of binary messages written but not yet out of the channel.
    private var pendingBinaryBytes = 0
    /// Reading is paused while the session is backed up (the client sends faster than it takes the
    /// replies, or than the application reads); `readPending` is a read asked for meanwhile.
    private var readsPaused = false
    private var readPending = false

    init(
        options: SockwayEndpointOptions,
        link: any WebSocketSessionLink,
        compression: PerMessageDeflateCodec? = nil,
        refusals: RefusalLog? = nil,
        deflateTally: LoopTally? = nil
    ) {
        self.options = options
        self.link = link
        self.refusals = refusals
        self.deflateTally = compression == nil ? nil : deflateTally
        self.protocolState = WebSocketConnectionStateMachine(
            configuration: .init(maxMessageSize: options.maxMessageBytes),
            compression: compression
        )
        self.reader = WebSocketFrameReader(maxFrameSize: options.maxMessageBytes)
    }

    /// Where frames that break the protocol are logged (rate-limited); `nil` in tests.
    private let refusals: RefusalLog?
    /// Where permessage-deflate's byte counts go (compression on only).
    private let deflateTally: LoopTally?

    /// Adds what permessage-deflate did since the last time to the loop's counts.
    private func settleDeflateCounts() {
        guard let deflateTally else { return }
        let counts = protocolState.takeDeflateCounts()
        deflateTally.deflate.sentPlain += counts.sentPlain
        deflateTally.deflate.sentCompressed += counts.sentCompressed
        deflateTally.deflate.receivedPlain += counts.receivedPlain
        deflateTally.deflate.receivedCompressed += counts.receivedCompressed
    }

    var eventLoop: (any EventLoop)? { context?.eventLoop }
    var channel: (any Channel)? { context?.channel }
    var allocator: ByteBufferAllocator { context?.channel.allocator ?? ByteBufferAllocator() }

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
        if context.channel.isActive { ready() }
        keepalive = WebSocketKeepalive(pingInterval: options.webSocketPingInterval, idleTimeout: options.webSocketIdleTimeout, now: context.eventLoop.now)
        scheduleKeepalive(context: context)
    }

    func channelActive(context: ChannelHandlerContext) {
        ready()
        context.fireChannelActive()
    }

    private func ready() {
        guard !readied, !finished else { return }
        readied = true
        link?.connectionReady(self)
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
        deliverFrames(context: context)
    }

    /// Reads the buffered frames in one coalescing scope: replies the application sends meanwhile go
    /// out together.
    private func deliverFrames(context: ChannelHandlerContext) {
        if let link {
            link.readCycle { readFrames(context: context) }
        } else {
            readFrames(context: context)
        }
    }

    private func readFrames(context: ChannelHandlerContext) {
        // Paused mid-read (below): frames already read wait in the reader until the session drains.
        while !readsPaused {
            let frame: WebSocketFrame?
            do {
                frame = try reader.next()
            } catch {
                if case .fail(let code, let reason) = protocolState.decodingFailed(tooBig: true) {
                    refusals?.log(.malformedFrame(code: code), from: context.channel.remoteAddress)
                    failConnection(code: code, reason: reason, context: context)
                } else {
                    context.close(promise: nil)
                }
                return
            }
            guard let frame else { return }
            frameReceived(frame, context: context)
            if protocolState.state == .closed { return }
            // A compressed read can inflate a thousandfold (64 KiB read, 60 MiB of messages): the
            // session is checked after each compressed frame, not only once the read is delivered.
            if frame.rsv1 { pauseReadsIfBackedUp() }
        }
    }

    /// Stops delivering and reading while what this client's messages caused is piling up (in the
    /// outbox, in an async application's queue, or behind a delegate that paused receiving), so that it
    /// slows down rather than overflowing a queue (and losing the session).
    private func pauseReadsIfBackedUp() {
        guard let link, !readsPaused else { return }
        readsPaused = link.pauseReadsIfBackedUp { [self] in
            readsPaused = false
            guard let context = self.context else { return }
            if reader.bufferedBytes > 0 {
                // Frames read before the pause go first.
                deliverFrames(context: context)
                if needsFlush {
                    needsFlush = false
                    context.flush()
                }
                if readsPaused { return }
            }
            if readPending {
                readPending = false
                context.read()
            }
        }
    }

    private func frameReceived(_ frame: WebSocketFrame, context: ChannelHandlerContext) {
        let action = protocolState.frameReceived(frame)
        switch action {
        case .none, .text, .binary:
            break
        case .sendPong, .replyClose, .closeConnection, .fail:
            // Replies to the messages before this frame go out before what it causes.
            link?.flushCoalescedSends()
        }
        switch action {
        case .none:
            break
        case .text(let text):
            link?.receivedText(text)
        case .binary(let data):
            link?.receivedBinary(data)
        case .sendPong(let data):
            writeFrame(.pong, data, context: context)
            needsFlush = true
        case .replyClose(let code, let reason, let echo):
            finished = true
            writeFrame(echo, context: context).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
            end(aborted: false, reason: SockwayCloseReason(code: Int(code == 1005 ? 1000 : code), reason: reason))
        case .closeConnection:
            finished = true
            context.close(promise: nil)
        case .fail(let code, let reason):
            refusals?.log(.malformedFrame(code: code), from: context.channel.remoteAddress)
            failConnection(code: code, reason: reason, context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inReadCycle = false
        settleDeflateCounts()
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        pauseReadsIfBackedUp()
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
        end(aborted: true, reason: nil)
        settleDeflateCounts()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { link?.connectionBecameWritable() }
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

    /// Tells the link the connection is over, once, and lets it go.
    private func end(aborted: Bool, reason: SockwayCloseReason?) {
        guard let link else { return }
        self.link = nil
        link.connectionEnded(aborted: aborted, reason: reason)
    }

    private func failConnection(code: UInt16, reason: String, context: ChannelHandlerContext) {
        guard !finished else { return }
        link?.flushCoalescedSends()
        finished = true
        let frame = WebSocketConnectionStateMachine.closeFrame(code: code, reason: reason)
        writeFrame(frame, context: context).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
        end(aborted: false, reason: SockwayCloseReason(code: Int(code), reason: reason))
    }

    // MARK: Called by the link

    var isWritable: Bool { !finished && (context?.channel.isWritable ?? false) }

    /// Fails the connection: a close frame with `code` and `reason`, then the connection closes
    /// without waiting for the client's.
    func fail(code: UInt16, reason: String) {
        guard let context else { return }
        failConnection(code: code, reason: reason, context: context)
    }

    /// Writes one text message; `buffer` should have ``headroom`` bytes before its readable bytes.
    func writeTextMessage(_ buffer: consuming ByteBuffer) {
        guard let context, !finished else { return }
        writeText(buffer, context: context)
        flushUnlessReading(context: context)
    }

    /// Writes text messages in order, flushing once.
    func writeTextMessages(_ buffers: [ByteBuffer]) {
        guard let context, !finished else { return }
        for buffer in buffers { writeText(buffer, context: context) }
        flushUnlessReading(context: context)
    }

    /// A message to write with ``writeMessages(_:)``; text buffers should have ``headroom`` bytes before
    /// their readable bytes.
    enum OutboundMessage: Sendable {
        case text(ByteBuffer)
        case binary(ByteBuffer)
    }

    /// Writes text and binary messages in order, flushing once (`flushNow`: even during a read, when
    /// the reply must reach the client before anything this read causes elsewhere). The caller bounds
    /// them (they come out of a session's outbox).
    func writeMessages(_ messages: [OutboundMessage], flushNow: Bool = false) {
        guard let context, !finished else { return }
        for message in messages {
            switch message {
            case .text(let buffer):
                writeText(buffer, context: context)
            case .binary(let bytes):
                let (data, compressed) = protocolState.prepareOutbound(bytes, allocator: context.channel.allocator, headroom: 0)
                writeFrame(.binary, data, rsv1: compressed, context: context)
            }
        }
        if flushNow {
            context.flush()
        } else {
            flushUnlessReading(context: context)
        }
    }

    private func flushUnlessReading(context: ChannelHandlerContext) {
        if inReadCycle {
            needsFlush = true
        } else {
            settleDeflateCounts()
            context.flush()
        }
    }

    /// Writes a binary message. Returns `false` when more than `limit` bytes of binary messages are
    /// already waiting in the channel: the caller closes the session rather than buffer without bound.
    func writeBinaryMessage(_ message: ByteBuffer, limit: Int) -> Bool {
        guard let context, !finished else { return true }
        guard pendingBinaryBytes + message.readableBytes <= limit || pendingBinaryBytes == 0 else { return false }
        let size = message.readableBytes
        pendingBinaryBytes += size
        let (data, compressed) = protocolState.prepareOutbound(message, allocator: context.channel.allocator, headroom: 0)
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenComplete { [self] _ in pendingBinaryBytes -= size }
        writeFrame(.binary, data, rsv1: compressed, context: context, promise: promise)
        flushUnlessReading(context: context)
        return true
    }

    /// Starts the close handshake with `code` and `reason`; the connection closes when the client
    /// answers, or after ``closeHandshakeTimeout``.
    func close(code: UInt16, reason: String) {
        guard let context, !finished else { return }
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

/// A SockJS session over a WebSocket (`/<server>/<session>/websocket`), or a raw WebSocket session
/// (`/websocket`, one WebSocket message per message, no SockJS frames). The session lives on the
/// connection's loop.
final class SockJSWebSocketLink: WebSocketSessionLink, SessionReceiver {
    enum Framing {
        case sockJS
        case raw
    }

    private let runtime: EndpointRuntime
    private let framing: Framing
    private let sessionID: String
    private let requestHeaders: HTTPHeaders
    private var core: SockJSSessionCore?
    private var connection: SockwayWebSocketHandler?
    private var closeReason: SockJSCloseReason?

    let kind = SessionReceiverKind.webSocket

    init(runtime: EndpointRuntime, framing: Framing, sessionID: String, requestHeaders: HTTPHeaders) {
        self.runtime = runtime
        self.framing = framing
        self.sessionID = sessionID
        self.requestHeaders = runtime.endpoint.options.keptHeaders(requestHeaders)
    }

    func connectionReady(_ connection: SockwayWebSocketHandler) {
        guard let loop = connection.eventLoop else { return }
        self.connection = connection
        guard let core = runtime.openWebSocketSession(framing: framing, id: sessionID, headers: requestHeaders, remoteAddress: connection.channel?.remoteAddress, on: loop) else {
            connection.close(code: WebSocketCloseCode.tryAgainLater, reason: "Try again later")
            return
        }
        self.core = core
        core.attach(self)
    }

    func readCycle(_ body: () -> Void) {
        if let core {
            core.coalescingSends(body)
        } else {
            body()
        }
    }

    func flushCoalescedSends() {
        core?.flushCoalescedSends()
    }

    func receivedText(_ text: ByteBuffer) {
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
                connection?.fail(code: WebSocketCloseCode.invalidPayload, reason: "Broken framing")
            }
        }
    }

    func receivedBinary(_ data: ByteBuffer) {
        if framing == .raw {
            core?.deliverBinary(data)
        } else {
            connection?.fail(code: WebSocketCloseCode.unacceptableData, reason: "Binary messages are not supported")
        }
    }

    func connectionEnded(aborted: Bool, reason: SockwayCloseReason?) {
        core?.detach(self, aborted: aborted, reason: reason)
        connection = nil
    }

    func connectionBecameWritable() {
        core?.receiverBecameWritable(self)
    }

    func pauseReadsIfBackedUp(resume: @escaping () -> Void) -> Bool {
        guard let core, core.isBackedUp else { return false }
        core.whenDrained(resume)
        return true
    }

    // MARK: SessionReceiver

    var isWritable: Bool { connection?.isWritable ?? false }

    func write(_ frame: SockJSFrame) -> Bool {
        guard let connection, !connection.finished else { return false }
        let headroom = SockwayWebSocketHandler.headroom
        switch framing {
        case .sockJS:
            var buffer = connection.allocator.buffer(capacity: frame.estimatedByteCount + headroom)
            buffer.moveWriterIndex(forwardBy: headroom)
            buffer.moveReaderIndex(forwardBy: headroom)
            frame.write(into: &buffer)
            if case .close(let reason) = frame { closeReason = reason }
            connection.writeTextMessage(buffer)
        case .raw:
            switch frame {
            case .open, .heartbeat:
                // Raw sessions have no open frame and no heartbeat timer (pings, when configured,
                // come from the keepalive).
                return false
            case .messages(let messages):
                var buffers: [ByteBuffer] = []
                buffers.reserveCapacity(messages.count)
                for message in messages {
                    var buffer = connection.allocator.buffer(capacity: message.utf8.count + headroom)
                    buffer.moveWriterIndex(forwardBy: headroom)
                    buffer.moveReaderIndex(forwardBy: headroom)
                    buffer.writeString(message)
                    buffers.append(buffer)
                }
                connection.writeTextMessages(buffers)
            case .close(let reason):
                closeReason = reason
                return false
            }
        }
        return false
    }

    /// Whether binary messages can go out on this connection (raw framing only).
    var carriesBinary: Bool { framing == .raw && !(connection?.finished ?? true) }

    func writeBinary(_ message: ByteBuffer, limit: Int) -> Bool {
        connection?.writeBinaryMessage(message, limit: limit) ?? true
    }

    func finish() {
        guard let connection else { return }
        switch framing {
        case .sockJS:
            // The SockJS close frame already told the client why; the WebSocket closes normally.
            connection.close(code: WebSocketCloseCode.normalClosure, reason: "Normal closure")
        case .raw:
            let requested = closeReason ?? .normalClosure
            let wire = UInt16(clamping: requested.code)
            let code = WebSocketCloseCode.isSendable(wire) ? wire : WebSocketCloseCode.normalClosure
            connection.close(code: code, reason: requested.reason)
        }
    }
}
