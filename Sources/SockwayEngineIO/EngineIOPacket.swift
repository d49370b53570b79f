import NIOCore

/// One Engine.IO v4 packet: a type and an optional payload.
///
/// A text packet travels as `<type digit><UTF-8 text>`. A binary payload has no type on the wire: it is
/// always a `message` (a binary WebSocket frame, or `b<base64>` in a polling payload), so a packet
/// with a ``Payload/binary(_:)`` payload is encoded as a message whatever its ``type`` says (as the
/// reference parser does).
public struct EngineIOPacket: Hashable, Sendable {
    /// The packet types of Engine.IO v4, with their wire digits.
    public enum PacketType: UInt8, Hashable, Sendable, CaseIterable {
        /// `0`: sent by the server on handshake, carrying the ``EngineIOHandshake`` JSON.
        case open = 0
        /// `1`: the transport (and session) can be closed.
        case close = 1
        /// `2`: heartbeat request (server to client), or `2probe` during an upgrade (client to server).
        case ping = 2
        /// `3`: heartbeat answer, or `3probe` during an upgrade.
        case pong = 3
        /// `4`: application data.
        case message = 4
        /// `5`: the client completes an upgrade to WebSocket.
        case upgrade = 5
        /// `6`: does nothing; ends a pending poll during an upgrade.
        case noop = 6

        /// The ASCII digit that stands for this type on the wire (`"0"`…`"6"`).
        @inlinable
        public var wireByte: UInt8 { UInt8(ascii: "0") &+ rawValue }

        /// The type whose digit is `byte`, or `nil` for any other byte.
        @inlinable
        public init?(wireByte byte: UInt8) {
            guard byte >= UInt8(ascii: "0") else { return nil }
            self.init(rawValue: byte &- UInt8(ascii: "0"))
        }
    }

    /// What a packet carries.
    public enum Payload: Hashable, Sendable {
        /// Nothing: the packet is its type digit alone (`2`, `6`, …).
        case none
        /// UTF-8 text after the type digit (`4hello`, `2probe`, the open packet's JSON).
        case text(String)
        /// Raw bytes; always a `message` on the wire.
        case binary(ByteBuffer)
    }

    /// How a packet travels over WebSocket: the frame opcode the caller must use or has received.
    public enum WebSocketFrameKind: Hashable, Sendable {
        /// A text frame holding `<type digit><text>`.
        case text
        /// A binary frame holding the raw bytes of a binary message.
        case binary
    }

    /// The packet type. Ignored on the wire when ``payload`` is binary (binary is always a message).
    public var type: PacketType
    /// The packet's payload.
    public var payload: Payload

    /// A packet of `type` carrying `payload`.
    @inlinable
    public init(type: PacketType, payload: Payload = .none) {
        self.type = type
        self.payload = payload
    }

    /// A packet of `type` carrying `text`; an empty `text` is the same as no payload on the wire.
    @inlinable
    public init(type: PacketType, text: String) {
        self.init(type: type, payload: text.isEmpty ? .none : .text(text))
    }

    /// A text message (`4<text>`).
    @inlinable
    public static func message(_ text: String) -> EngineIOPacket { EngineIOPacket(type: .message, text: text) }

    /// A binary message (a binary WebSocket frame, or `b<base64>` when polling).
    @inlinable
    public static func message(binary bytes: ByteBuffer) -> EngineIOPacket {
        EngineIOPacket(type: .message, payload: .binary(bytes))
    }

    /// `2`: the server's heartbeat ping.
    public static let ping = EngineIOPacket(type: .ping)
    /// `3`: the client's heartbeat answer.
    public static let pong = EngineIOPacket(type: .pong)
    /// `2probe`: the client's first packet on a WebSocket that upgrades a polling session.
    public static let pingProbe = EngineIOPacket(type: .ping, text: "probe")
    /// `3probe`: the server's answer to ``pingProbe``.
    public static let pongProbe = EngineIOPacket(type: .pong, text: "probe")
    /// `1`: close the session.
    public static let close = EngineIOPacket(type: .close)
    /// `5`: the client completes the upgrade.
    public static let upgrade = EngineIOPacket(type: .upgrade)
    /// `6`: ends a pending poll during an upgrade.
    public static let noop = EngineIOPacket(type: .noop)

    /// The text payload, or `nil` for no payload or a binary one.
    public var text: String? {
        if case .text(let text) = payload { return text }
        return nil
    }

    /// The binary payload, or `nil` for a text packet.
    public var binary: ByteBuffer? {
        if case .binary(let bytes) = payload { return bytes }
        return nil
    }

    /// Whether this packet travels as binary (only messages can).
    public var isBinary: Bool {
        if case .binary = payload { return true }
        return false
    }
}

// MARK: - WebSocket framing

extension EngineIOPacket {
    /// The opcode this packet needs: ``WebSocketFrameKind/binary`` for a binary payload, else text.
    public var webSocketFrameKind: WebSocketFrameKind { isBinary ? .binary : .text }

    /// The exact number of bytes ``writeWebSocketFrameData(into:)`` writes.
    public var webSocketFrameByteCount: Int {
        switch payload {
        case .none: return 1
        case .text(let text): return 1 + text.utf8.count
        case .binary(let bytes): return bytes.readableBytes
        }
    }

    /// Writes the application data of this packet's WebSocket frame: `<type digit><text>` for a text
    /// frame, or the raw bytes alone for a binary message (see ``webSocketFrameKind``).
    public func writeWebSocketFrameData(into buffer: inout ByteBuffer) {
        switch payload {
        case .none:
            buffer.writeInteger(type.wireByte)
        case .text(let text):
            buffer.reserveCapacity(minimumWritableBytes: 1 + text.utf8.count)
            buffer.writeInteger(type.wireByte)
            buffer.writeString(text)
        case .binary(var bytes):
            buffer.writeBuffer(&bytes)
        }
    }

    /// The frame kind and application data of this packet's WebSocket frame.
    public func webSocketFrame(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> (kind: WebSocketFrameKind, data: ByteBuffer) {
        if case .binary(let bytes) = payload { return (.binary, bytes) }
        var buffer = allocator.buffer(capacity: webSocketFrameByteCount)
        writeWebSocketFrameData(into: &buffer)
        return (.text, buffer)
    }

    /// Decodes the application data of one WebSocket frame; `kind` is the frame's opcode.
    ///
    /// - A binary frame is a binary message, whatever its bytes (an empty one too).
    /// - A text frame is `<type digit>[<text>]`; `2probe` is a ping carrying `probe`, `2` a ping with
    ///   no payload. As in the reference parser, a text frame `b<base64>` is also a binary message.
    ///
    /// The size of a frame is the WebSocket layer's to bound (the reference gives it `maxPayload`).
    ///
    /// - Throws: ``EngineIODecodingError/emptyPacket`` for an empty text frame,
    ///   ``EngineIODecodingError/unknownPacketType(_:)`` when the first byte is no type digit,
    ///   ``EngineIODecodingError/invalidUTF8`` for a text frame that is not UTF-8, and
    ///   ``EngineIODecodingError/invalidBase64`` for a bad `b` frame.
    public static func decodeWebSocketFrame(
        _ data: ByteBuffer,
        kind: WebSocketFrameKind
    ) throws(EngineIODecodingError) -> EngineIOPacket {
        switch kind {
        case .binary:
            return .message(binary: data)
        case .text:
            let result: Result<EngineIOPacket, EngineIODecodingError> = data.withUnsafeReadableBytes { bytes in
                guard EngineIOUTF8.isValid(bytes) else { return .failure(.invalidUTF8) }
                do throws(EngineIODecodingError) {
                    return .success(try decodeTextPacket(bytes, allocator: ByteBufferAllocator()))
                } catch {
                    return .failure(error)
                }
            }
            return try result.get()
        }
    }

    /// Decodes one text packet (`<digit>[<text>]` or `b<base64>`) from bytes already known to be UTF-8.
    static func decodeTextPacket(_ bytes: UnsafeRawBufferPointer, allocator: ByteBufferAllocator) throws(EngineIODecodingError) -> EngineIOPacket {
        guard let first = bytes.first else { throw .emptyPacket }
        let rest = UnsafeRawBufferPointer(rebasing: bytes[1...])
        if first == UInt8(ascii: "b") {
            var buffer = allocator.buffer(capacity: EngineIOBase64.maximumDecodedByteCount(forEncodedByteCount: rest.count))
            guard EngineIOBase64.decode(rest, into: &buffer) else { throw .invalidBase64 }
            return .message(binary: buffer)
        }
        guard let type = PacketType(wireByte: first) else { throw .unknownPacketType(first) }
        guard !rest.isEmpty else { return EngineIOPacket(type: type) }
        return EngineIOPacket(type: type, payload: .text(String(decoding: rest, as: UTF8.self)))
    }
}

extension EngineIOPacket: CustomStringConvertible {
    /// The packet as it would appear in a polling payload, for tests and logs
    /// (binary as `b<base64>`).
    public var description: String {
        var buffer = ByteBuffer()
        EngineIOPayload.encode(CollectionOfOne(self), into: &buffer)
        return String(buffer: buffer)
    }
}
