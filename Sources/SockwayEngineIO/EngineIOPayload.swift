#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// The HTTP long-polling payload of Engine.IO v4: packets joined by the record separator `\x1e`,
/// text packets as `<type digit>[<text>]`, binary messages as `b<base64>`.
///
/// `4hello\x1e2\x1e4world` is the message `hello`, a ping and the message `world`;
/// `4hello\x1ebAQIDBA==` is the message `hello` and the binary message `01 02 03 04`.
public enum EngineIOPayload {
    /// The record separator between packets (U+001E).
    public static let separator: UInt8 = 0x1E

    /// The reference server's default `maxPayload` (`maxHttpBufferSize`): 1,000,000 bytes.
    public static let defaultMaxPayload = 1_000_000

    // MARK: Decoding

    /// Decodes a polling `POST` body into its packets.
    ///
    /// Checks, in this order: the body's size (``EngineIODecodingError/payloadTooLarge(limit:)`` when
    /// it has more than `maxPayload` bytes, as the reference's 413), its UTF-8
    /// (``EngineIODecodingError/invalidUTF8``), then each packet in turn
    /// (``EngineIODecodingError/emptyPacket``, ``EngineIODecodingError/unknownPacketType(_:)``,
    /// ``EngineIODecodingError/invalidBase64``). Any error refuses the whole body.
    ///
    /// Two deliberate differences from the reference: it decodes bad UTF-8 as U+FFFD where this
    /// refuses it, and it delivers the packets before a bad one (then closes the session) where this
    /// delivers none; use ``decode(_:maxPayload:allocator:forEach:)`` for the latter. A body sent with
    /// `Content-Type: application/octet-stream` is refused by the reference (400) before decoding.
    ///
    /// - Parameters:
    ///   - body: the body's bytes (the reader index is not moved).
    ///   - maxPayload: the most bytes a body may have; the value sent in the handshake.
    ///   - allocator: makes the buffers of the binary (`b<base64>`) packets.
    public static func decode(
        _ body: ByteBuffer,
        maxPayload: Int = defaultMaxPayload,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) throws(EngineIODecodingError) -> [EngineIOPacket] {
        var packets: [EngineIOPacket] = []
        try decode(body, maxPayload: maxPayload, allocator: allocator) { packets.append($0) }
        return packets
    }

    /// Decodes a polling `POST` body packet by packet, as the reference does: `deliver` is called for
    /// each packet up to the first bad one, whose error is then thrown. The body's size and UTF-8 are
    /// checked first, so either error means no packet was delivered.
    public static func decode(
        _ body: ByteBuffer,
        maxPayload: Int = defaultMaxPayload,
        allocator: ByteBufferAllocator = ByteBufferAllocator(),
        forEach deliver: (EngineIOPacket) -> Void
    ) throws(EngineIODecodingError) {
        let result: Result<Void, EngineIODecodingError> = body.withUnsafeReadableBytes { bytes in
            do throws(EngineIODecodingError) {
                try checkBody(bytes, maxPayload: maxPayload)
                try forEachPacket(in: bytes, allocator: allocator, deliver)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    static func checkBody(_ bytes: UnsafeRawBufferPointer, maxPayload: Int) throws(EngineIODecodingError) {
        guard bytes.count <= maxPayload else { throw .payloadTooLarge(limit: maxPayload) }
        guard EngineIOUTF8.isValid(bytes) else { throw .invalidUTF8 }
    }

    static func forEachPacket(
        in bytes: UnsafeRawBufferPointer,
        allocator: ByteBufferAllocator,
        _ deliver: (EngineIOPacket) -> Void
    ) throws(EngineIODecodingError) {
        // An empty body is one empty packet, as `"".split(SEPARATOR)` is `[""]` in the reference.
        var start = 0
        while true {
            let end = firstSeparator(in: bytes, from: start) ?? bytes.count
            let packet = try EngineIOPacket.decodeTextPacket(UnsafeRawBufferPointer(rebasing: bytes[start..<end]), allocator: allocator)
            deliver(packet)
            guard end < bytes.count else { return }
            start = end + 1
        }
    }

    static func firstSeparator(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard start < bytes.count, let base = bytes.baseAddress,
            let hit = memchr(base + start, Int32(separator), bytes.count - start)
        else { return nil }
        return base.distance(to: UnsafeRawPointer(hit))
    }

    // MARK: Encoding

    /// The exact number of bytes ``encode(_:into:)`` writes for `packets`.
    public static func encodedByteCount<Packets: Sequence<EngineIOPacket>>(of packets: Packets) -> Int {
        var total = 0
        var count = 0
        for packet in packets {
            total += packet.pollingByteCount
            count += 1
        }
        return total + max(count - 1, 0)
    }

    /// Writes `packets` as one polling payload into `buffer`: text packets as they are, binary
    /// messages as `b` + base64, joined by `\x1e`. Capacity is reserved once, then bytes are written
    /// straight into the buffer. Nothing is written for no packets.
    ///
    /// Text that itself contains `\x1e` would be split in two by the receiver; the protocol assumes
    /// it does not occur (JSON text, as Socket.IO sends, escapes it). See ``canCarry(_:)``.
    public static func encode<Packets: Collection<EngineIOPacket>>(_ packets: Packets, into buffer: inout ByteBuffer) {
        buffer.reserveCapacity(minimumWritableBytes: encodedByteCount(of: packets))
        var first = true
        for packet in packets {
            if !first { buffer.writeInteger(separator) }
            first = false
            packet.writePollingPacket(into: &buffer)
        }
    }

    /// Whether `text` can travel in a polling payload as one packet: it must not contain `\x1e`.
    public static func canCarry(_ text: String) -> Bool {
        !text.utf8.contains(separator)
    }
}

extension EngineIOPacket {
    /// The exact number of bytes this packet takes in a polling payload (without separator).
    public var pollingByteCount: Int {
        switch payload {
        case .none: return 1
        case .text(let text): return 1 + text.utf8.count
        case .binary(let bytes): return 1 + EngineIOBase64.encodedByteCount(forByteCount: bytes.readableBytes)
        }
    }

    /// Writes this packet as it appears in a polling payload (`<type digit>[<text>]` or `b<base64>`).
    public func writePollingPacket(into buffer: inout ByteBuffer) {
        switch payload {
        case .none:
            buffer.writeInteger(type.wireByte)
        case .text(let text):
            buffer.writeInteger(type.wireByte)
            buffer.writeString(text)
        case .binary(let bytes):
            buffer.writeInteger(UInt8(ascii: "b"))
            EngineIOBase64.encode(bytes, into: &buffer)
        }
    }
}
