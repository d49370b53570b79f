#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import SockwayEngineIO
import SockwaySockJS
import SockwayWebSocket
import SockwayZlib

/// The WebSocket transports: SockJS frames in text messages (`websocket`), plain messages (the raw
/// `/websocket` URL), or Engine.IO packets (a WebSocket-only Engine.IO session, pings answered with
/// pongs). permessage-deflate is offered when configured.
final class WebSocketClientTransport: ClientTransportDriver {
    private weak var core: ClientSessionCore?
    private let target: ClientTarget
    private let path: String
    private let meter: TrafficMeter
    private let timeout: TimeAmount
    private let loop: any EventLoop
    private let configuration: SockwayClientConfiguration
    /// What a text message carries.
    private enum Framing {
        /// The message itself.
        case raw
        /// A SockJS frame; sends are `["message"]`.
        case sockJS
        /// An Engine.IO packet; sends are `4message`.
        case engineIO
    }

    private let framing: Framing
    private var engineIO = EngineIOClientMachine()
    private var channel: (any Channel)?
    private var deflate: ClientDeflate?
    private var stopped = false
    fileprivate var upgraded = false
    private var maskKeys = WebSocketMaskKeySource()
    /// Where each outgoing message is built before it is masked into the batch's buffer.
    private var scratch = ByteBuffer()

    static let deflateOffer = "permessage-deflate; client_max_window_bits"

    init(core: ClientSessionCore, target: ClientTarget, path: String, meter: TrafficMeter, timeout: TimeAmount, loop: any EventLoop) {
        self.core = core
        self.target = target
        self.path = path
        self.meter = meter
        self.timeout = timeout
        self.loop = loop
        self.configuration = core.configuration
        switch core.kind {
        case .rawWebSocket: framing = .raw
        case .engineIOWebSocket: framing = .engineIO
        default: framing = .sockJS
        }
    }

    func start() {
        let bound = NIOLoopBound(self, eventLoop: loop)
        let maxFrame = configuration.maxMessageBytes
        let upgrader = WebSocketClientUpgrader(
            handshake: NIOWebSocketClientUpgrader(maxFrameSize: maxFrame, automaticErrorHandling: false, upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeSucceededVoidFuture()
            }),
            install: { channel, response in
                let transport = bound.value
                transport.upgraded = true
                if transport.configuration.webSocketCompression {
                    transport.deflate = try ClientDeflate(responseHeader: response.headers[canonicalForm: "sec-websocket-extensions"].map(String.init))
                }
                try channel.pipeline.syncOperations.addHandler(WebSocketClientHandler(transport: transport, maxMessageBytes: maxFrame))
                transport.opened()
            }
        )
        let meter = self.meter
        let tls = target.tls
        let receiveLimit = configuration.receiveBytesPerSecond
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: .init(low: 32 * 1024, high: max(64 * 1024, configuration.maxPendingSendBytes)))
        TrafficCountingHandler.applyReceiveLimit(receiveLimit, to: bootstrap)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(TrafficCountingHandler(meter: meter, receiveBytesPerSecond: receiveLimit))
                    if let tls { try sync.addHandler(tls.makeHandler()) }
                    // Bytes after the 101 (the server's first frames can share its packet) go to the
                    // WebSocket handler rather than being dropped.
                    try sync.addHTTPClientHandlers(
                        leftOverBytesStrategy: .forwardBytes,
                        withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in })
                    )
                    try sync.addHandler(HandshakeWatcher(transport: bound))
                }
            }
            .connect(host: target.host, port: target.port)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    guard !self.stopped else { return channel.close(promise: nil) }
                    self.channel = channel
                    self.sendHandshake(on: channel)
                case .failure(let error):
                    self.core?.fail(error)
                }
            }
    }

    private func sendHandshake(on channel: any Channel) {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: target.hostHeader)
        if configuration.webSocketCompression {
            headers.add(name: "Sec-WebSocket-Extensions", value: Self.deflateOffer)
        }
        for (name, value) in configuration.extraHeaders { headers.add(name: name, value: value) }
        meter.countRequest()
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target.prefix + path, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    private func opened() {
        // SockJS and Engine.IO sessions open with their first frame.
        if framing == .raw { core?.rawOpened() }
    }

    fileprivate func handshakeFailed(_ error: any Error) {
        core?.fail(error)
    }

    // MARK: Messages

    fileprivate func receivedText(_ text: ByteBuffer) {
        guard let core else { return }
        switch framing {
        case .raw:
            core.deliver(SockJSMessageBatch(message: text))
            return
        case .engineIO:
            if let action = engineIO.receivedWebSocketFrame(text, binary: false) { handle(action, core: core) }
            return
        case .sockJS:
            break
        }
        // An empty message carries nothing; anything else is one SockJS frame.
        guard text.readableBytes > 0 else { return }
        do {
            core.received(try SockJSReceivedFrame.parse(text))
        } catch {
            core.fail(SockwayClientError.protocolError("not a SockJS frame"))
        }
    }

    /// A binary message: only Engine.IO reads it (and drops it: the session's faces carry text).
    fileprivate func receivedBinary(_ data: ByteBuffer) {
        guard framing == .engineIO, let core else { return }
        if let action = engineIO.receivedWebSocketFrame(data, binary: true) { handle(action, core: core) }
    }

    private func handle(_ action: EngineIOClientMachine.Action, core: ClientSessionCore) {
        switch action {
        case .open:
            core.received(.open)
        case .deliver(let messages):
            core.deliver(messages)
        case .sendPong:
            guard let channel, upgraded, !stopped else { return }
            var frame = channel.allocator.buffer(capacity: 8)
            appendFrame(.text, payload: EngineIOPacket.pong.webSocketFrame(allocator: channel.allocator).data, to: &frame, allocator: channel.allocator)
            channel.writeAndFlush(frame, promise: nil)
        case .close(let reason):
            core.received(.close(reason))
        case .fail(let why):
            core.fail(SockwayClientError.protocolError(why))
        }
    }

    fileprivate func inflate(_ data: ByteBuffer, final: Bool, into message: inout ByteBuffer, limit: Int) throws {
        guard let deflate else { throw SockwayClientError.protocolError("compressed frame without permessage-deflate") }
        try deflate.inflate(data, final: final, into: &message, limit: limit)
    }

    fileprivate func closed(_ reason: SockJSCloseReason?) {
        if let reason {
            core?.webSocketClosed(reason)
        } else {
            core?.fail(SockwayClientError.connectionClosed)
        }
    }

    func send(_ messages: SockwayOutgoingBatch) {
        guard let channel, upgraded, !stopped else { return }
        guard channel.isWritable else {
            core?.end(ClientSessionCore.sendBufferFull, polite: false)
            return
        }
        // Every message is its own frame (sockjs-client's `send` takes one message); the batch's frames
        // go out in one buffer and one write.
        var batch = channel.allocator.buffer(capacity: messages.byteCount + messages.count * 16)
        messages.forEach { message in
            scratch.clear()
            switch framing {
            case .raw:
                scratch.writeBytes(message)
            case .sockJS:
                scratch.writeInteger(UInt8(ascii: "["))
                SockJSJSON.writeQuoted(utf8: message, into: &scratch)
                scratch.writeInteger(UInt8(ascii: "]"))
            case .engineIO:
                // A text message packet, as `EngineIOPacket.writeWebSocketFrameData` writes it.
                scratch.writeInteger(EngineIOPacket.PacketType.message.wireByte)
                scratch.writeBytes(message)
            }
            appendFrame(.text, payload: scratch, to: &batch, allocator: channel.allocator)
        }
        channel.writeAndFlush(batch, promise: nil)
    }

    /// Frames are masked a word at a time (RFC 6455 §5.3), compressed first when deflate was agreed.
    private func appendFrame(_ opcode: WebSocketOpcode, payload: ByteBuffer, to output: inout ByteBuffer, allocator: ByteBufferAllocator) {
        if opcode == .text, let deflate, let deflated = try? deflate.compress(payload, allocator: allocator) {
            WebSocketFrameWriter.appendMaskedFrame(opcode: opcode, rsv1: true, payload: deflated, maskKey: maskKeys.next(), to: &output)
        } else {
            WebSocketFrameWriter.appendMaskedFrame(opcode: opcode, payload: payload, maskKey: maskKeys.next(), to: &output)
        }
    }

    /// A control frame (pong, close), flushed at once.
    fileprivate func writeControl(_ opcode: WebSocketOpcode, payload: ByteBuffer) -> EventLoopFuture<Void>? {
        guard let channel else { return nil }
        var frame = channel.allocator.buffer(capacity: payload.readableBytes + 6)
        appendFrame(opcode, payload: payload, to: &frame, allocator: channel.allocator)
        return channel.writeAndFlush(frame)
    }

    func stop(polite: Bool) {
        guard !stopped else { return }
        stopped = true
        guard let channel else { return }
        if polite, upgraded, channel.isActive {
            var data = channel.allocator.buffer(capacity: 2)
            data.writeInteger(UInt16(1000))
            writeControl(.connectionClose, payload: data)?.assumeIsolated().whenComplete { _ in
                // Give the server a moment to answer, then drop the connection either way.
                channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
            }
        } else {
            channel.close(promise: nil)
        }
    }
}

/// Last in the pipeline: reports a handshake that fails (a refused upgrade, the connection dropped)
/// before the WebSocket handler is in place.
final class HandshakeWatcher: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    private let transport: NIOLoopBound<WebSocketClientTransport>

    init(transport: NIOLoopBound<WebSocketClientTransport>) {
        self.transport = transport
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Until the upgrade only response parts come this way (the WebSocket's bytes, after it, pass on).
        // A response other than the 101 is a refused handshake: over a connection kept alive (a proxy
        // that does not forward `Upgrade`) nothing else would end it before the open timeout.
        if !transport.value.upgraded, case .head(let head) = unwrapInboundIn(data) {
            transport.value.handshakeFailed(SockwayClientError.unexpectedStatus(Int(head.status.code)))
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !transport.value.upgraded { transport.value.handshakeFailed(error) }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !transport.value.upgraded { transport.value.handshakeFailed(SockwayClientError.connectionClosed) }
        context.fireChannelInactive()
    }
}

/// Reads the server's frames (Sockway's sans-I/O reader), reassembles messages, answers pings and
/// close frames.
final class WebSocketClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let transport: WebSocketClientTransport
    private let maxMessageBytes: Int
    private var reader: WebSocketFrameReader
    private var message = ByteBuffer()
    private var messageOpcode: WebSocketOpcode?
    private var compressed = false
    private var closeReason: SockJSCloseReason?
    private var closing = false

    init(transport: WebSocketClientTransport, maxMessageBytes: Int) {
        self.transport = transport
        self.maxMessageBytes = maxMessageBytes
        self.reader = WebSocketFrameReader(maxFrameSize: maxMessageBytes)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        reader.append(unwrapInboundIn(data))
        do {
            while !closing, let frame = try reader.next() {
                try handle(frame, context: context)
            }
        } catch {
            closing = true
            transport.closed(nil)
            context.close(promise: nil)
        }
    }

    private func handle(_ frame: WebSocketFrame, context: ChannelHandlerContext) throws {
        // A server must not mask (RFC 6455 §5.1).
        guard frame.maskKey == nil else { throw SockwayClientError.protocolError("masked frame from the server") }
        switch frame.opcode {
        case .text, .binary, .continuation:
            if frame.opcode != .continuation {
                messageOpcode = frame.opcode
                compressed = frame.rsv1
                message.clear()
            }
            if compressed {
                try transport.inflate(frame.data, final: frame.fin, into: &message, limit: maxMessageBytes)
            } else if frame.fin && frame.opcode != .continuation {
                // A whole message in one frame (the usual case): its bytes are the slice that was read.
                if messageOpcode == .text { transport.receivedText(frame.data) } else { transport.receivedBinary(frame.data) }
                messageOpcode = nil
                return
            } else {
                var data = frame.data
                guard message.readableBytes + data.readableBytes <= maxMessageBytes else {
                    throw SockwayClientError.protocolError("message too big")
                }
                message.writeBuffer(&data)
            }
            guard frame.fin else { return }
            let complete = message
            message = ByteBuffer()
            if messageOpcode == .text { transport.receivedText(complete) } else { transport.receivedBinary(complete) }
            messageOpcode = nil
        case .ping:
            _ = transport.writeControl(.pong, payload: frame.data)
        case .connectionClose:
            closing = true
            var data = frame.data
            let code = data.readInteger(as: UInt16.self).map(Int.init) ?? 1005
            let reason = data.readString(length: data.readableBytes) ?? ""
            closeReason = SockJSCloseReason(code: code, reason: reason)
            var echo = context.channel.allocator.buffer(capacity: 2)
            echo.writeInteger(UInt16(code == 1005 ? 1000 : code))
            if let written = transport.writeControl(.connectionClose, payload: echo) {
                written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        transport.closed(closeReason)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// The client's side of permessage-deflate (RFC 7692): compress what it sends with the window the
/// server allowed, inflate what it receives, resetting either side where no-context-takeover was agreed.
final class ClientDeflate {
    private let deflater: Deflater
    private let inflater: Inflater
    private let resetDeflater: Bool
    private let resetInflater: Bool

    /// `nil` when the server declined the offer.
    convenience init?(responseHeader: [String]) throws {
        guard let agreed = responseHeader.flatMap({ $0.split(separator: ",") }).first(where: {
            $0.split(separator: ";").first.map(trimmed) == "permessage-deflate"
        }) else { return nil }
        var clientWindow = 15
        var clientNoContext = false
        var serverNoContext = false
        for parameter in agreed.split(separator: ";").dropFirst() {
            let parts = parameter.split(separator: "=", maxSplits: 1).map(trimmed)
            switch parts[0] {
            case "client_no_context_takeover": clientNoContext = true
            case "server_no_context_takeover": serverNoContext = true
            case "client_max_window_bits":
                if parts.count == 2, let bits = Int(parts[1].filter { $0 != "\"" }) {
                    clientWindow = min(15, max(9, bits))
                }
            case "server_max_window_bits": break
            default: throw SockwayClientError.protocolError("unknown permessage-deflate parameter \(parts[0])")
            }
        }
        try self.init(clientWindow: clientWindow, resetDeflater: clientNoContext, resetInflater: serverNoContext)
    }

    init(clientWindow: Int, resetDeflater: Bool, resetInflater: Bool) throws {
        // Reset after every message (the server asked for client_no_context_takeover, as Sockway does),
        // zlib clears its whole hash table each time: 64 KiB at the default memLevel 8, which costs more
        // than compressing a short message. memLevel 4 clears 4 KiB; each message is compressed on its
        // own anyway, so the smaller table loses little.
        self.deflater = try Deflater(windowBits: clientWindow, memoryLevel: resetDeflater ? 4 : 8)
        self.inflater = try Inflater()
        self.resetDeflater = resetDeflater
        self.resetInflater = resetInflater
    }

    func compress(_ payload: ByteBuffer, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        var output = allocator.buffer(capacity: payload.readableBytes / 2 + 32)
        try payload.withUnsafeReadableBytes { try deflater.compressMessage($0, into: &output) }
        if resetDeflater { deflater.reset() }
        return output
    }

    func inflate(_ data: ByteBuffer, final: Bool, into output: inout ByteBuffer, limit: Int) throws {
        try data.withUnsafeReadableBytes { try inflater.inflateFragment($0, into: &output, limit: limit) }
        if final {
            try inflater.finishMessage(into: &output, limit: limit)
            if resetInflater { inflater.reset() }
        }
    }
}

/// `text` without leading and trailing spaces and tabs.
private func trimmed(_ text: Substring) -> String {
    String(text.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
}
