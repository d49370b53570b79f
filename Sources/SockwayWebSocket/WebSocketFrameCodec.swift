import NIOCore
import NIOWebSocket

/// Why a byte stream is not a sequence of WebSocket frames we accept.
public enum WebSocketFrameReadError: Error, Hashable, Sendable {
    /// A frame longer than the limit, or a 64-bit length with its top bit set (RFC 6455 §5.2).
    case frameTooBig
}

/// Cuts a byte stream into WebSocket frames, without I/O (RFC 6455 §5.2).
///
/// Holds bytes only while a frame is incomplete, so an idle connection keeps no buffer. Frames come
/// out as NIO's `WebSocketFrame`, their payload still masked, a slice of the bytes that were read (no
/// copy); ``WebSocketConnectionStateMachine`` checks the rules and unmasks.
public struct WebSocketFrameReader: Sendable {
    /// Largest frame payload accepted.
    public let maxFrameSize: Int
    private var buffer = ByteBuffer()

    public init(maxFrameSize: Int) {
        self.maxFrameSize = maxFrameSize
    }

    /// Bytes of an incomplete frame held.
    public var bufferedBytes: Int { buffer.readableBytes }

    /// The storage behind them (what the reader keeps alive).
    public var bufferCapacity: Int { buffer.capacity }

    /// Adds bytes read from the connection.
    public mutating func append(_ bytes: ByteBuffer) {
        if buffer.readableBytes == 0 {
            buffer = bytes
        } else {
            // Only the unfinished frame is kept: without this, a stream whose frames straddle reads
            // never empties the buffer, which then grows with everything ever read.
            if buffer.readerIndex > 0 { buffer.discardReadBytes() }
            var bytes = bytes
            buffer.writeBuffer(&bytes)
        }
    }

    /// The next complete frame, or `nil` until more bytes arrive.
    public mutating func next() throws(WebSocketFrameReadError) -> WebSocketFrame? {
        guard let header = try parseHeader() else { return nil }
        guard buffer.readableBytes >= header.headerLength + header.payloadLength else { return nil }
        buffer.moveReaderIndex(forwardBy: header.headerLength)
        let data = buffer.readSlice(length: header.payloadLength)!
        if buffer.readableBytes == 0 {
            // Let go of the read buffer: an idle connection holds none.
            buffer = ByteBuffer()
        }
        return WebSocketFrame(
            fin: header.first & 0x80 != 0,
            rsv1: header.first & 0x40 != 0,
            rsv2: header.first & 0x20 != 0,
            rsv3: header.first & 0x10 != 0,
            opcode: WebSocketOpcode(encodedWebSocketOpcode: header.first & 0x0F)!,
            maskKey: header.maskKey,
            data: data
        )
    }

    private struct Header {
        var first: UInt8
        var headerLength: Int
        var payloadLength: Int
        var maskKey: WebSocketMaskingKey?
    }

    private func parseHeader() throws(WebSocketFrameReadError) -> Header? {
        let available = buffer.readableBytes
        guard available >= 2 else { return nil }
        let start = buffer.readerIndex
        let first = buffer.getInteger(at: start, as: UInt8.self)!
        let second = buffer.getInteger(at: start + 1, as: UInt8.self)!
        var length = Int(second & 0x7F)
        var headerLength = 2
        switch length {
        case 126:
            guard available >= 4 else { return nil }
            length = Int(buffer.getInteger(at: start + 2, as: UInt16.self)!)
            headerLength = 4
        case 127:
            guard available >= 10 else { return nil }
            let wide = buffer.getInteger(at: start + 2, as: UInt64.self)!
            guard wide <= UInt64(maxFrameSize) else { throw .frameTooBig }
            length = Int(wide)
            headerLength = 10
        default:
            break
        }
        guard length <= maxFrameSize else { throw .frameTooBig }
        var maskKey: WebSocketMaskingKey?
        if second & 0x80 != 0 {
            guard available >= headerLength + 4 else { return nil }
            maskKey = Self.maskingKey(in: buffer, at: start + headerLength - buffer.readerIndex)
            headerLength += 4
        }
        return Header(first: first, headerLength: headerLength, payloadLength: length, maskKey: maskKey)
    }

    /// The four key bytes at `offset` (from the reader index). NIO's only public initialiser is generic
    /// over a collection and, unspecialised across modules, allocates per byte; the key is four plain
    /// bytes, so they are loaded as one.
    private static func maskingKey(in buffer: ByteBuffer, at offset: Int) -> WebSocketMaskingKey {
        if MemoryLayout<WebSocketMaskingKey>.size == 4 {
            return buffer.withUnsafeReadableBytes { $0.loadUnaligned(fromByteOffset: offset, as: WebSocketMaskingKey.self) }
        }
        return WebSocketMaskingKey(buffer.getBytes(at: buffer.readerIndex + offset, length: 4)!)!
    }
}

/// Server frames (unmasked, RFC 6455 §5.2), written in place when the payload has room before it.
public enum WebSocketFrameWriter {
    /// Room for the largest server frame header; payloads built with this much headroom get their
    /// header without a copy.
    public static let headroom = 10

    /// The frame carrying `payload`: its header is put in the payload's headroom if there is enough,
    /// otherwise header and payload are copied into a new buffer. The payload is consumed: pass it with
    /// `consume` (or as a temporary), so that its storage is not shared and the header goes in without
    /// a copy.
    public static func frame(
        opcode: WebSocketOpcode,
        fin: Bool = true,
        rsv1: Bool = false,
        payload: consuming ByteBuffer,
        allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        let length = payload.readableBytes
        let headerLength = length < 126 ? 2 : (length <= 0xFFFF ? 4 : 10)
        var first = UInt8(webSocketOpcode: opcode)
        if fin { first |= 0x80 }
        if rsv1 { first |= 0x40 }
        if payload.readerIndex >= headerLength {
            let start = payload.readerIndex - headerLength
            var frame = consume payload
            writeHeader(first: first, length: length, into: &frame, at: start)
            frame.moveReaderIndex(to: start)
            return frame
        }
        var frame = allocator.buffer(capacity: headerLength + length)
        frame.moveWriterIndex(forwardBy: headerLength)
        writeHeader(first: first, length: length, into: &frame, at: 0)
        var payload = payload
        frame.writeBuffer(&payload)
        return frame
    }

    /// A client frame (RFC 6455 §5.3): header, masking key, and the payload masked eight bytes at a
    /// time, in one new buffer.
    public static func maskedFrame(
        opcode: WebSocketOpcode,
        fin: Bool = true,
        rsv1: Bool = false,
        payload: ByteBuffer,
        maskKey: WebSocketMaskingKey,
        allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        let length = payload.readableBytes
        let headerLength = length < 126 ? 2 : (length <= 0xFFFF ? 4 : 10)
        var frame = allocator.buffer(capacity: headerLength + 4 + length)
        appendMaskedFrame(opcode: opcode, fin: fin, rsv1: rsv1, payload: payload, maskKey: maskKey, to: &frame)
        return frame
    }

    /// Appends a client frame to `output`: a batch of frames goes out in one buffer, one write.
    public static func appendMaskedFrame(
        opcode: WebSocketOpcode,
        fin: Bool = true,
        rsv1: Bool = false,
        payload: ByteBuffer,
        maskKey: WebSocketMaskingKey,
        to output: inout ByteBuffer
    ) {
        payload.withUnsafeReadableBytes { payload in
            appendMaskedFrame(opcode: opcode, fin: fin, rsv1: rsv1, payload: payload, maskKey: maskKey, to: &output)
        }
    }

    /// ``appendMaskedFrame(opcode:fin:rsv1:payload:maskKey:to:)`` for a payload in memory (a string's
    /// UTF-8 bytes), without first copying it into a buffer of its own.
    public static func appendMaskedFrame(
        opcode: WebSocketOpcode,
        fin: Bool = true,
        rsv1: Bool = false,
        payload: UnsafeRawBufferPointer,
        maskKey: WebSocketMaskingKey,
        to output: inout ByteBuffer
    ) {
        let length = payload.count
        let headerLength = length < 126 ? 2 : (length <= 0xFFFF ? 4 : 10)
        var first = UInt8(webSocketOpcode: opcode)
        if fin { first |= 0x80 }
        if rsv1 { first |= 0x40 }
        output.reserveCapacity(minimumWritableBytes: headerLength + 4 + length)
        let start = output.writerIndex
        output.moveWriterIndex(forwardBy: headerLength)
        writeHeader(first: first, length: length, into: &output, at: start)
        output.setInteger(output.getInteger(at: start + 1, as: UInt8.self)! | 0x80, at: start + 1)
        output.writeBytes(maskKey)
        appendMasked(payload, key: maskKey, to: &output)
    }

    /// Appends `source` XORed with the repeating four-byte `key` (masking and unmasking are the same
    /// operation), eight bytes at a time.
    static func appendMasked(_ source: ByteBuffer, key maskKey: WebSocketMaskingKey, to output: inout ByteBuffer) {
        source.withUnsafeReadableBytes { appendMasked($0, key: maskKey, to: &output) }
    }

    static func appendMasked(_ source: UnsafeRawBufferPointer, key maskKey: WebSocketMaskingKey, to output: inout ByteBuffer) {
        let count = source.count
        guard count > 0 else { return }
        // Little-endian loads put key byte 0 on the first byte; the mask repeats every 4, so every
        // 8-byte word starting at a multiple of 4 takes the same wide key.
        let key = UInt32(maskKey[0]) | UInt32(maskKey[1]) << 8 | UInt32(maskKey[2]) << 16 | UInt32(maskKey[3]) << 24
        let wideKey = (UInt64(key) | UInt64(key) << 32).littleEndian
        _ = output.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { target in
            var index = 0
            while index + 8 <= count {
                let word = source.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                target.storeBytes(of: word ^ wideKey, toByteOffset: index, as: UInt64.self)
                index += 8
            }
            while index < count {
                target[index] = source[index] ^ maskKey[index & 3]
                index += 1
            }
            return count
        }
    }

    private static func writeHeader(first: UInt8, length: Int, into buffer: inout ByteBuffer, at index: Int) {
        buffer.setInteger(first, at: index)
        if length < 126 {
            buffer.setInteger(UInt8(length), at: index + 1)
        } else if length <= 0xFFFF {
            buffer.setInteger(UInt8(126), at: index + 1)
            buffer.setInteger(UInt16(length), at: index + 2)
        } else {
            buffer.setInteger(UInt8(127), at: index + 1)
            buffer.setInteger(UInt64(length), at: index + 2)
        }
    }
}

extension WebSocketFrame {
    /// The payload unmasked, eight bytes at a time (NIO's `unmaskedData` goes byte by byte).
    public var fastUnmaskedData: ByteBuffer {
        guard let maskKey else { return data }
        guard data.readableBytes > 0 else { return ByteBuffer() }
        var output = ByteBufferAllocator().buffer(capacity: data.readableBytes)
        WebSocketFrameWriter.appendMasked(data, key: maskKey, to: &output)
        return output
    }
}
