import NIOCore
import NIOWebSocket
import SockwayCore
import SockwayServer
import SockwayWebSocket

/// A `tcp://` upstream connection: messages cut by a ``SockwayTCPFraming``, each a text message (it
/// must be UTF-8).
final class UpstreamTCPHandler: ChannelInboundHandler, BufferedUpstreamLink, UpstreamLinkSource {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var connector: UpstreamConnector?
    weak var delegate: (any UpstreamLinkDelegate)?
    private let framing: SockwayTCPFraming
    private var reader: TCPMessageReader
    private(set) var context: ChannelHandlerContext?
    var output = ByteBuffer()
    var ended = false

    init(connector: UpstreamConnector, framing: SockwayTCPFraming, maxMessageBytes: Int) {
        self.connector = connector
        self.framing = framing
        self.reader = TCPMessageReader(framing: framing, maxMessageBytes: maxMessageBytes)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        connector.take()?.opened(self)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !ended else { return }
        reader.append(unwrapInboundIn(data))
        do {
            while !ended, let message = try reader.next() {
                guard message.withUnsafeReadableBytes(UTF8Validator.isValid) else {
                    return fail(SockwayCloseReason(code: 1007, reason: "Upstream sent invalid UTF-8"))
                }
                delegate?.upstreamReceived(text: String(buffer: message))
            }
        } catch {
            fail(SockwayCloseReason(code: 1009, reason: "Upstream message too big"))
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { delegate?.upstreamBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connector.take()?.fail("connection closed")
        report(SockwayCloseReason(code: 1000, reason: "Upstream closed the connection"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        report(SockwayCloseReason(code: 1014, reason: "Upstream connection lost (\(UpstreamConnector.describe(error)))"))
        context.close(promise: nil)
    }

    /// A protocol error of the upstream's: the client hears why, the connection is closed.
    private func fail(_ reason: SockwayCloseReason) {
        delegate?.upstreamReadComplete()
        report(reason)
        context?.close(promise: nil)
    }

    private func report(_ reason: SockwayCloseReason) {
        guard !ended else { return }
        ended = true
        delegate?.upstreamClosed(reason)
    }

    // MARK: UpstreamLink

    func write(text: String) throws(TCPFramingError) {
        try TCPMessageReader.append(text, framing: framing, to: &output)
    }

    func write(binary: ByteBuffer) throws(TCPFramingError) {
        try TCPMessageReader.append(binary, framing: framing, to: &output)
    }

    func close(_ reason: SockwayCloseReason) {
        ended = true
        guard let context else { return }
        flush()
        // After what was written: an empty write completes once those before it have.
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(ByteBuffer())).whenComplete { _ in channel.close(promise: nil) }
    }
}

/// A `ws://` upstream connection after its handshake, on Sockway's own frame reader and writer (NIO's
/// encoder masks byte by byte): messages reassembled from frames (bounded), text checked as UTF-8,
/// pings answered, closes carried to the client with their code and reason. Client messages are
/// masked into one buffer per delivery and written once.
final class UpstreamWebSocketHandler: ChannelInboundHandler, BufferedUpstreamLink, UpstreamLinkSource {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    weak var delegate: (any UpstreamLinkDelegate)?
    private let maxMessageBytes: Int
    private var reader: WebSocketFrameReader
    private var maskKeys = WebSocketMaskKeySource()
    private(set) var context: ChannelHandlerContext?
    var output = ByteBuffer()
    private var message = ByteBuffer()
    private var messageOpcode: WebSocketOpcode?
    /// The client side's close was sent: waiting for the upstream's reply, then the connection ends.
    private var closeSent = false
    var ended = false
    private var closeTimer: Scheduled<Void>?

    init(maxMessageBytes: Int) {
        self.maxMessageBytes = maxMessageBytes
        // A frame's payload is at most a whole message; control frames are smaller still.
        self.reader = WebSocketFrameReader(maxFrameSize: max(maxMessageBytes, 125))
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        closeTimer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !ended || closeSent else { return }
        reader.append(unwrapInboundIn(data))
        do {
            while !ended || closeSent, let frame = try reader.next() {
                if !frameReceived(frame, context: context) { return }
            }
        } catch {
            fail(code: 1009, reason: "Upstream message too big")
        }
    }

    /// Handles one frame; `false` once the connection is done with.
    private func frameReceived(_ frame: WebSocketFrame, context: ChannelHandlerContext) -> Bool {
        // A server must not mask (RFC 6455 §5.1), and no extension was agreed.
        guard frame.maskKey == nil, !frame.rsv1, !frame.rsv2, !frame.rsv3 else {
            fail(code: 1002, reason: "Upstream broke the WebSocket protocol")
            return false
        }
        switch frame.opcode {
        case .text, .binary:
            guard messageOpcode == nil else {
                fail(code: 1002, reason: "Upstream broke the WebSocket protocol")
                return false
            }
            if frame.fin {
                deliver(frame.data, opcode: frame.opcode)
            } else {
                messageOpcode = frame.opcode
                append(frame.data)
            }
        case .continuation:
            guard let opcode = messageOpcode else {
                fail(code: 1002, reason: "Upstream broke the WebSocket protocol")
                return false
            }
            append(frame.data)
            if frame.fin, !ended {
                let complete = message
                message = ByteBuffer()
                messageOpcode = nil
                deliver(complete, opcode: opcode)
            }
        case .ping:
            guard !closeSent, frame.fin, frame.data.readableBytes <= 125 else { return true }
            WebSocketFrameWriter.appendMaskedFrame(opcode: .pong, payload: frame.data, maskKey: maskKeys.next(), to: &output)
            flush()
        case .pong:
            break
        case .connectionClose:
            var data = frame.data
            let code = data.readInteger(as: UInt16.self).map(Int.init)
            let reason = data.readString(length: data.readableBytes) ?? ""
            if closeSent {
                context.close(promise: nil)
                return false
            }
            // Reported first: closing the connection below may end it at once.
            delegate?.upstreamReadComplete()
            report(SockwayCloseReason(code: code.map(Self.clientCode) ?? 1000, reason: code == nil ? "Upstream closed" : reason))
            // Echo the code (RFC 6455 §5.5.1), then the connection ends.
            var echo = ByteBuffer()
            if let code { echo.writeInteger(UInt16(code)) }
            WebSocketFrameWriter.appendMaskedFrame(opcode: .connectionClose, payload: echo, maskKey: maskKeys.next(), to: &output)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(output)).whenComplete { _ in channel.close(promise: nil) }
            output = ByteBuffer()
            return false
        default:
            fail(code: 1002, reason: "Upstream broke the WebSocket protocol")
            return false
        }
        return !ended || closeSent
    }

    /// A code the upstream may send but a SockJS or WebSocket client should not get as is.
    private static func clientCode(_ code: Int) -> Int {
        WebSocketCloseCode.isSendable(UInt16(truncatingIfNeeded: code)) ? code : 1014
    }

    private func append(_ data: ByteBuffer) {
        guard message.readableBytes + data.readableBytes <= maxMessageBytes else {
            return fail(code: 1009, reason: "Upstream message too big")
        }
        var data = data
        message.writeBuffer(&data)
    }

    private func deliver(_ data: ByteBuffer, opcode: WebSocketOpcode) {
        guard !closeSent else { return }
        if opcode == .text {
            guard data.withUnsafeReadableBytes(UTF8Validator.isValid) else {
                return fail(code: 1007, reason: "Upstream sent invalid UTF-8")
            }
            delegate?.upstreamReceived(text: String(buffer: data))
        } else {
            delegate?.upstreamReceived(binary: data)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if !ended { delegate?.upstreamReadComplete() }
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && !ended { delegate?.upstreamBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closeTimer?.cancel()
        report(SockwayCloseReason(code: 1014, reason: "Upstream connection lost"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        report(SockwayCloseReason(code: 1014, reason: "Upstream connection lost (\(UpstreamConnector.describe(error)))"))
        context.close(promise: nil)
    }

    /// The upstream broke a rule: it gets a close frame with `code`, the client the same code and why.
    private func fail(code: Int, reason: String) {
        guard !ended else { return }
        delegate?.upstreamReadComplete()
        report(SockwayCloseReason(code: code, reason: reason))
        sendClose(code: code, reason: "")
    }

    private func report(_ reason: SockwayCloseReason) {
        guard !ended else { return }
        ended = true
        delegate?.upstreamClosed(reason)
    }

    /// Writes a close frame and closes the connection once the upstream answers, or after 2 s.
    private func sendClose(code: Int, reason: String) {
        guard let context, !closeSent else { return }
        closeSent = true
        var payload = ByteBuffer()
        payload.writeInteger(UInt16(code))
        // A close frame's payload is at most 125 bytes (RFC 6455 §5.5).
        var reasonBytes = Array(reason.utf8.prefix(123))
        while !reasonBytes.isEmpty, String(validating: reasonBytes, as: UTF8.self) == nil { reasonBytes.removeLast() }
        payload.writeBytes(reasonBytes)
        WebSocketFrameWriter.appendMaskedFrame(opcode: .connectionClose, payload: payload, maskKey: maskKeys.next(), to: &output)
        flush()
        let channel = context.channel
        closeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(2)) {
            channel.close(promise: nil)
        }
    }

    // MARK: UpstreamLink

    func write(text: String) throws(TCPFramingError) {
        guard !ended else { return }
        var text = text
        let key = maskKeys.next()
        text.withUTF8 { bytes in
            WebSocketFrameWriter.appendMaskedFrame(opcode: .text, payload: UnsafeRawBufferPointer(bytes), maskKey: key, to: &output)
        }
    }

    func write(binary: ByteBuffer) throws(TCPFramingError) {
        guard !ended else { return }
        WebSocketFrameWriter.appendMaskedFrame(opcode: .binary, payload: binary, maskKey: maskKeys.next(), to: &output)
    }

    /// The client's close, passed on: its code when it is the client's own (1000, 3000–4999), else
    /// 1001 (the session ended for another reason: timed out, cut, shut down) with the reason.
    func close(_ reason: SockwayCloseReason) {
        guard !ended else { return }
        ended = true
        if reason.code == 1000 || (3000...4999).contains(reason.code) {
            sendClose(code: reason.code, reason: reason.reason)
        } else {
            sendClose(code: 1001, reason: "Client gone: \(reason.code) \(reason.reason)")
        }
    }
}

/// What both upstream handlers share: the connection, and the bytes written since the last flush.
protocol BufferedUpstreamLink: UpstreamLink {
    var context: ChannelHandlerContext? { get }
    var output: ByteBuffer { get set }
    var ended: Bool { get set }
}

extension BufferedUpstreamLink {
    var isWritable: Bool { context?.channel.isWritable ?? false }

    func flush() {
        guard let context, output.readableBytes > 0 else { return }
        context.writeAndFlush(NIOAny(output), promise: nil)
        output = ByteBuffer()
    }

    func setReading(_ on: Bool) {
        context?.channel.setOption(.autoRead, value: on).whenFailure { _ in }
    }

    func abort() {
        ended = true
        context?.close(promise: nil)
    }
}

extension Optional where Wrapped == UpstreamConnector {
    /// The connector, once: later calls get `nil`.
    fileprivate mutating func take() -> UpstreamConnector? {
        defer { self = nil }
        return self
    }
}
