#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import NIOCore
import SockwayEngineIO
import SockwaySockJS

/// The client's side of an Engine.IO v4 session, without sockets: what the server's packets mean
/// (the `open` handshake, pings to answer, messages, `close`), and the request paths. The polling and
/// WebSocket drivers feed it what they read and carry out what it returns. Packets are read and
/// written with SockwayEngineIO's codec; only the common cases (ASCII text messages in a WebSocket
/// frame or a poll, and pings) skip it, handing each message over as a slice of what was read
/// without making a `String` of it.
struct EngineIOClientMachine {
    /// What the driver must do after a read.
    enum Action: Equatable {
        /// The `open` packet arrived: the session is open, with this handshake.
        case open(EngineIOHandshake)
        /// Text messages, in order (one response's or frame's worth).
        case deliver(SockJSMessageBatch)
        /// The server pinged: answer with a `pong` (`3`).
        case sendPong
        /// The server closed the session (a `close` packet); nothing after it counts.
        case close(SockJSCloseReason)
        /// The server broke the protocol; the session cannot go on.
        case fail(String)

        static func == (lhs: Action, rhs: Action) -> Bool {
            switch (lhs, rhs) {
            case (.open(let a), .open(let b)): a == b
            case (.deliver(let a), .deliver(let b)): a.strings == b.strings
            case (.sendPong, .sendPong): true
            case (.close(let a), .close(let b)): a == b
            case (.fail(let a), .fail(let b)): a == b
            default: false
            }
        }
    }

    /// How a session ends when the server sends `close` (it carries no code or reason).
    static let closedByServer = SockJSCloseReason(code: 1000, reason: "Closed by server")

    /// The handshake, once the `open` packet came.
    private(set) var handshake: EngineIOHandshake?
    private var closed = false

    var isOpen: Bool { handshake != nil && !closed }

    // MARK: Request paths (relative to the endpoint's prefix, e.g. `/engine.io`)

    /// `/?EIO=4&transport=polling`, with the session's `sid` once there is one.
    static func pollingPath(sid: String?) -> String {
        var path = "/?EIO=4&transport=\(EngineIOTransport.polling.rawValue)"
        if let sid { path += "&sid=" + percentEncoded(sid) }
        return path
    }

    /// `/?EIO=4&transport=websocket`: a WebSocket-only session (no polling first, no upgrade).
    static let webSocketPath = "/?EIO=4&transport=\(EngineIOTransport.websocket.rawValue)"

    /// Query-safe: unreserved characters as they are, everything else `%XX`.
    static func percentEncoded(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(byte)
            default:
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: Reading

    /// A polling response body (`GET`): its packets, decoded by ``EngineIOPayload``.
    mutating func receivedPollingBody(_ body: ByteBuffer, maxPayload: Int) -> [Action] {
        guard !closed else { return [] }
        if handshake != nil, body.readableBytes <= maxPayload, let actions = Self.plainPollingBody(body) { return actions }
        var actions: [Action] = []
        var messages: [String] = []
        do throws(EngineIODecodingError) {
            try EngineIOPayload.decode(body, maxPayload: maxPayload) { packet in
                guard !closed else { return }
                if packet.type == .message, !packet.isBinary {
                    guard handshake != nil else {
                        return actions.append(fail("message before the open packet"))
                    }
                    messages.append(packet.text ?? "")
                    return
                }
                if !messages.isEmpty {
                    actions.append(.deliver(SockJSMessageBatch(messages)))
                    messages = []
                }
                if let action = received(packet) { actions.append(action) }
            }
        } catch {
            if !messages.isEmpty { actions.append(.deliver(SockJSMessageBatch(messages))) }
            return actions + [fail("bad polling payload: \(error)")]
        }
        if !messages.isEmpty { actions.append(.deliver(SockJSMessageBatch(messages))) }
        // After `fail` nothing else in the body counts.
        if let failure = actions.firstIndex(where: { if case .fail = $0 { true } else { false } }) {
            actions.removeSubrange((failure + 1)...)
        }
        return actions
    }

    /// The common case of an open session's poll, ASCII text messages and pings (`4…\x1e4…\x1e2`):
    /// each message handed over as a slice of the body, no `String` made (a busy poll brings thousands).
    /// `nil` for anything else (another packet type, an empty packet, a byte over 0x7F), which the
    /// codec then reads from the start.
    private static func plainPollingBody(_ body: ByteBuffer) -> [Action]? {
        body.withUnsafeReadableBytes { bytes -> [Action]? in
            guard bytes.count > 0, SockwayOutgoingBatch.isASCII(bytes) else { return nil }
            var actions: [Action] = []
            var start = 0
            while start <= bytes.count {
                let end = separatorIndex(in: bytes, from: start)
                guard end > start else { return nil }
                switch bytes[start] {
                case EngineIOPacket.PacketType.message.wireByte:
                    actions.append(.deliver(SockJSMessageBatch(message: body.getSlice(at: body.readerIndex + start + 1, length: end - start - 1)!)))
                case EngineIOPacket.PacketType.ping.wireByte where end - start == 1:
                    actions.append(.sendPong)
                case EngineIOPacket.PacketType.noop.wireByte where end - start == 1:
                    break
                default:
                    return nil
                }
                start = end + 1
            }
            return actions
        }
    }

    /// One WebSocket text frame (`binary: false`) or binary frame.
    mutating func receivedWebSocketFrame(_ data: ByteBuffer, binary: Bool) -> Action? {
        guard !closed else { return nil }
        // The common case, a text message in ASCII (`4…`): its bytes are a slice of the frame, no
        // `String` made. ASCII needs no UTF-8 check; anything else goes through the codec, which checks.
        if !binary, handshake != nil, data.readableBytes > 0,
            data.getInteger(at: data.readerIndex, as: UInt8.self) == EngineIOPacket.PacketType.message.wireByte,
            data.withUnsafeReadableBytes({ SockwayOutgoingBatch.isASCII($0) })
        {
            return .deliver(SockJSMessageBatch(message: data.getSlice(at: data.readerIndex + 1, length: data.readableBytes - 1)!))
        }
        do throws(EngineIODecodingError) {
            let packet = try EngineIOPacket.decodeWebSocketFrame(data, kind: binary ? .binary : .text)
            if packet.type == .message, !packet.isBinary {
                guard handshake != nil else { return fail("message before the open packet") }
                return .deliver(SockJSMessageBatch([packet.text ?? ""]))
            }
            return received(packet)
        } catch {
            return fail("bad packet: \(error)")
        }
    }

    /// Any packet but a text message.
    private mutating func received(_ packet: EngineIOPacket) -> Action? {
        switch packet.type {
        case .open:
            guard handshake == nil else { return fail("a second open packet") }
            do {
                let handshake = try Self.parseHandshake(packet.text ?? "")
                self.handshake = handshake
                return .open(handshake)
            } catch {
                return fail("bad handshake: \(error)")
            }
        case .close:
            closed = true
            return .close(Self.closedByServer)
        case .ping:
            guard handshake != nil else { return fail("ping before the open packet") }
            return .sendPong
        case .message:
            // Binary: the session's faces carry text (as a raw WebSocket's binary frames, dropped).
            return nil
        case .pong, .upgrade, .noop:
            return nil
        }
    }

    private mutating func fail(_ why: String) -> Action {
        closed = true
        return .fail(why)
    }

    /// The JSON of the `open` packet: `sid` required; the rest default as the reference server's.
    static func parseHandshake(_ json: String) throws(SockwayClientError) -> EngineIOHandshake {
        struct Body: Decodable {
            var sid: String
            var upgrades: [String]?
            var pingInterval: Int?
            var pingTimeout: Int?
            var maxPayload: Int?
        }
        guard let body = try? JSONDecoder().decode(Body.self, from: Data(json.utf8)), !body.sid.isEmpty else {
            throw .protocolError("the open packet is not a handshake")
        }
        let defaults = EngineIOHandshake(sid: body.sid)
        return EngineIOHandshake(
            sid: body.sid,
            upgrades: body.upgrades.map { $0.compactMap(EngineIOTransport.init(rawValue:)) } ?? [],
            pingInterval: body.pingInterval.map { .milliseconds($0) } ?? defaults.pingInterval,
            pingTimeout: body.pingTimeout.map { .milliseconds($0) } ?? defaults.pingTimeout,
            maxPayload: body.maxPayload.flatMap { $0 > 0 ? $0 : nil } ?? defaults.maxPayload
        )
    }
}

/// The bodies of a polling session's `POST`s: packets as they are sent, joined by `\x1e`, each body
/// at most `limit` bytes (unless one packet alone is bigger), waiting their turn (the driver keeps at
/// most one `POST` in flight, as the protocol asks). Messages are written from their bytes
/// (``SockwayOutgoingBatch``), `4` then the text, as ``EngineIOPacket/writePollingPacket(into:)`` does.
struct EngineIOSendQueue {
    /// Bytes a body may have: the server's `maxPayload`, or less.
    var limit: Int
    /// Bodies that are full, oldest first.
    private var ready: [ByteBuffer] = []
    /// The body being filled (empty while nothing waits).
    private var filling = ByteBuffer()
    private var readyBytes = 0

    /// Bytes waiting in all.
    var byteCount: Int { readyBytes + filling.readableBytes }

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    var isEmpty: Bool { ready.isEmpty && filling.readableBytes == 0 }

    /// Queues text messages; `false`, with none of them queued, when one contains `\x1e`, which a
    /// polling payload cannot carry (the receiver would split the message there).
    mutating func append(_ messages: SockwayOutgoingBatch) -> Bool {
        var carriable = true
        messages.forEach { message in
            if carriable, separatorIndex(in: message, from: 0) < message.count { carriable = false }
        }
        guard carriable else { return false }
        var body = ByteBuffer()
        swap(&body, &filling)
        if body.capacity == 0 { body.reserveCapacity(min(limit, messages.byteCount + 2 * messages.count)) }
        messages.forEach { message in
            startPacket(of: 1 + message.count, in: &body)
            body.writeInteger(EngineIOPacket.PacketType.message.wireByte)
            body.writeBytes(message)
        }
        filling = body
        return true
    }

    /// Queues a packet with no payload (`3` pong, `1` close).
    mutating func append(_ type: EngineIOPacket.PacketType) {
        var body = ByteBuffer()
        swap(&body, &filling)
        startPacket(of: 1, in: &body)
        EngineIOPacket(type: type).writePollingPacket(into: &body)
        filling = body
    }

    /// A separator, or a new body when this packet would not fit the one being filled.
    private mutating func startPacket(of size: Int, in body: inout ByteBuffer) {
        guard body.readableBytes > 0 else { return }
        if body.readableBytes + 1 + size > limit {
            var full = ByteBuffer()
            swap(&full, &body)
            readyBytes += full.readableBytes
            ready.append(full)
        } else {
            body.writeInteger(EngineIOPayload.separator)
        }
    }

    /// The next `POST` body, if anything waits.
    mutating func next() -> ByteBuffer? {
        var body: ByteBuffer
        if !ready.isEmpty {
            body = ready.removeFirst()
            readyBytes -= body.readableBytes
        } else if filling.readableBytes > 0 {
            body = ByteBuffer()
            swap(&body, &filling)
        } else {
            return nil
        }
        return body
    }
}

/// Where the next `\x1e` is in `bytes` from `start`, or `bytes.count` if there is none (memchr: the
/// polling bodies of a busy session are scanned at millions of messages a second).
func separatorIndex(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
    guard start < bytes.count, let base = bytes.baseAddress,
        let hit = memchr(base + start, Int32(EngineIOPayload.separator), bytes.count - start)
    else { return bytes.count }
    return base.distance(to: UnsafeRawPointer(hit))
}
