#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import SockwaySockJS
import SockwayWebSocket
import SockwayZlib

/// The WebSocket transports: SockJS frames in text messages (`websocket`), or plain messages (the raw
/// `/websocket` URL). permessage-deflate is offered when configured.
final class WebSocketClientTransport: ClientTransportDriver {
    private weak var core: ClientSessionCore?
    private let target: ClientTarget
    private let path: String
    private let meter: TrafficMeter
    private let timeout: TimeAmount
    private let loop: any EventLoop
    private let configuration: SockwayClientConfiguration
    private let raw: Bool
    private var channel: (any Channel)?
    private var deflate: ClientDeflate?
    private var stopped = false
    fileprivate var upgraded = false
    private var maskKeys = MaskKeySource()
    private var sink: FrameSink?

    static let deflateOffer = "permessage-deflate; client_max_window_bits"

    init(core: ClientSessionCore, target: ClientTarget, path: String, meter: TrafficMeter, timeout: TimeAmount, loop: any EventLoop) {
        self.core = core
        self.target = target
        self.path = path
        self.meter = meter
        self.timeout = timeout
        self.loop = loop
        self.configuration = core.configuration
        self.raw = core.kind == .rawWebSocket
    }

    func start() {
        let bound = NIOLoopBound(self, eventLoop: loop)
        let maxFrame = configuration.maxMessageBytes
        let upgrader = NIOWebSocketClientUpgrader(
            maxFrameSize: maxFrame,
            automaticErrorHandling: false,
            upgradePipelineHandler: { channel, response in
                channel.eventLoop.makeCompletedFuture {
                    let transport = bound.value
                    transport.upgraded = true
                    if transport.configuration.webSocketCompression {
                        transport.deflate = try ClientDeflate(responseHeader: response.headers[canonicalForm: "sec-websocket-extensions"].map(String.init))
                    }
                    // After NIO's frame decoder, which the upgrader has just appended.
                    try channel.pipeline.syncOperations.addHandler(WebSocketClientHandler(transport: transport, maxMessageBytes: maxFrame))
                    transport.opened()
                }
            }
        )
        let meter = self.meter
        ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: .init(low: 32 * 1024, high: max(64 * 1024, configuration.maxPendingSendBytes)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(TrafficCountingHandler(meter: meter))
                    try sync.addHandler(FrameSink())
                    // Bytes after the 101 (the server's first frames can share its packet) go to the
                    // WebSocket decoder rather than being dropped.
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
                    self.sink = try? channel.pipeline.syncOperations.handler(type: FrameSink.self)
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
        if raw { core?.rawOpened() }
    }

    fileprivate func handshakeFailed(_ error: any Error) {
        core?.fail(error)
    }

    // MARK: Messages

    fileprivate func receivedText(_ text: ByteBuffer) {
        guard let core else { return }
        if raw {
            core.deliver([String(buffer: text)])
            return
        }
        // An empty message carries nothing; anything else is one SockJS frame.
        guard text.readableBytes > 0 else { return }
        do {
            core.received(try SockJSFrame.parse(text))
        } catch {
            core.fail(SockwayClientError.protocolError("not a SockJS frame"))
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

    func send(_ messages: [String]) {
        guard let channel, upgraded, !stopped else { return }
        guard channel.isWritable else {
            core?.end(ClientSessionCore.sendBufferFull, polite: false)
            return
        }
        if raw {
            for message in messages {
                var buffer = channel.allocator.buffer(capacity: message.utf8.count)
                buffer.writeString(message)
                write(buffer, on: channel)
            }
        } else {
            // One frame per message, as sockjs-client sends them (its `send` takes one message).
            for message in messages {
                var buffer = channel.allocator.buffer(capacity: message.utf8.count + 4)
                SockJSMessageArray.writeArray(CollectionOfOne(message), into: &buffer)
                write(buffer, on: channel)
            }
        }
        channel.flush()
    }

    /// Data frames are built here, masked a word at a time, and written through the sink ahead of NIO's
    /// encoder (which masks a byte at a time); control frames take NIO's encoder.
    private func write(_ payload: ByteBuffer, on channel: any Channel) {
        var data = payload
        var compressed = false
        if let deflate, let deflated = try? deflate.compress(payload, allocator: channel.allocator) {
            data = deflated
            compressed = true
        }
        let frame = WebSocketFrameWriter.maskedFrame(
            opcode: .text,
            rsv1: compressed,
            payload: data,
            maskKey: maskKeys.next(),
            allocator: channel.allocator
        )
        sink?.context?.write(NIOAny(frame), promise: nil)
    }

    fileprivate func writeControl(_ frame: WebSocketFrame) {
        channel?.writeAndFlush(frame, promise: nil)
    }

    func stop(polite: Bool) {
        guard !stopped else { return }
        stopped = true
        guard let channel else { return }
        if polite, upgraded, channel.isActive {
            var data = channel.allocator.buffer(capacity: 2)
            data.writeInteger(UInt16(1000))
            channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: data)).assumeIsolated().whenComplete { _ in
                // Give the server a moment to answer, then drop the connection either way.
                channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
            }
        } else {
            channel.close(promise: nil)
        }
    }
}

/// Masking keys from the kernel's CSPRNG (RFC 6455 §5.3 asks for strong entropy), drawn 4 KiB at a
/// time from `/dev/urandom`: one read per 1,024 frames instead of a `getrandom` per frame.
struct MaskKeySource {
    private var pool = [UInt8](repeating: 0, count: 4096)
    private var index = 4096

    mutating func next() -> WebSocketMaskingKey {
        if index + 4 > pool.count {
            let descriptor = open("/dev/urandom", O_RDONLY)
            let filled = descriptor < 0 ? -1 : pool.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if descriptor >= 0 { close(descriptor) }
            if filled != pool.count {
                var generator = SystemRandomNumberGenerator()
                for offset in stride(from: 0, to: pool.count, by: 8) {
                    withUnsafeBytes(of: generator.next() as UInt64) { pool.replaceSubrange(offset..<offset + 8, with: $0) }
                }
            }
            index = 0
        }
        defer { index += 4 }
        // NIO's only public initialiser is generic over a collection (unspecialised, it allocates);
        // the key is four plain bytes.
        if MemoryLayout<WebSocketMaskingKey>.size == 4 {
            return pool.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: index, as: WebSocketMaskingKey.self) }
        }
        return WebSocketMaskingKey(pool[index..<index + 4])!
    }
}

/// Just after the traffic counter: what the transport writes through its context reaches the socket
/// without passing NIO's WebSocket encoder.
final class FrameSink: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    private(set) var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }
}

/// Last in the pipeline: reports a handshake that fails (a refused upgrade, the connection dropped)
/// before the WebSocket handler is in place.
final class HandshakeWatcher: ChannelInboundHandler {
    typealias InboundIn = NIOAny
    private let transport: NIOLoopBound<WebSocketClientTransport>

    init(transport: NIOLoopBound<WebSocketClientTransport>) {
        self.transport = transport
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

/// Reassembles the server's messages, answers pings and close frames.
final class WebSocketClientHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let transport: WebSocketClientTransport
    private let maxMessageBytes: Int
    private var message = ByteBuffer()
    private var messageOpcode: WebSocketOpcode?
    private var compressed = false
    private var closeReason: SockJSCloseReason?

    init(transport: WebSocketClientTransport, maxMessageBytes: Int) {
        self.transport = transport
        self.maxMessageBytes = maxMessageBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary, .continuation:
            if frame.opcode != .continuation {
                messageOpcode = frame.opcode
                compressed = frame.rsv1
                message.clear()
            }
            do {
                if compressed {
                    try transport.inflate(frame.data, final: frame.fin, into: &message, limit: maxMessageBytes)
                } else {
                    var data = frame.data
                    guard message.readableBytes + data.readableBytes <= maxMessageBytes else {
                        throw SockwayClientError.protocolError("message too big")
                    }
                    message.writeBuffer(&data)
                }
            } catch {
                transport.closed(nil)
                context.close(promise: nil)
                return
            }
            guard frame.fin else { return }
            let complete = message
            message = ByteBuffer()
            if messageOpcode == .text { transport.receivedText(complete) }
            messageOpcode = nil
        case .ping:
            transport.writeControl(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.data))
        case .connectionClose:
            var data = frame.data
            let code = data.readInteger(as: UInt16.self).map(Int.init) ?? 1005
            let reason = data.readString(length: data.readableBytes) ?? ""
            closeReason = SockJSCloseReason(code: code, reason: reason)
            var echo = context.channel.allocator.buffer(capacity: 2)
            echo.writeInteger(UInt16(code == 1005 ? 1000 : code))
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: echo))).assumeIsolated().whenComplete { _ in
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
        self.deflater = try Deflater(windowBits: clientWindow)
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
