import NIOCore
import SockwaySockJS

/// Messages to send, built as UTF-8 bytes without a `String` each (the bytes face of
/// `SockwayClientSession.send(_:)` with a batch), for senders of millions of messages a
/// second. Each message is stored length-first in one buffer: one allocation per batch.
public struct SockwayOutgoingBatch: Sendable {
    private(set) var storage: ByteBuffer
    /// How many messages the batch holds.
    public private(set) var count = 0
    /// The messages' UTF-8 bytes in all.
    public private(set) var byteCount = 0

    /// An empty batch with room for `capacity` bytes of messages.
    public init(capacity: Int = 0) {
        storage = ByteBufferAllocator().buffer(capacity: capacity)
    }

    /// Appends a message.
    public mutating func append(_ message: String) {
        var message = message
        message.withUTF8 { utf8 in
            // Already UTF-8: no check.
            append(capacity: utf8.count, checked: false) { out in
                out.copyMemory(from: UnsafeRawBufferPointer(utf8))
                return utf8.count
            }
        }
    }

    /// Appends a message given as UTF-8 bytes; invalid sequences become U+FFFD, as in
    /// `String(decoding:as:)`.
    public mutating func append(utf8 message: UnsafeRawBufferPointer) {
        append(capacity: message.count) { out in
            out.copyMemory(from: message)
            return message.count
        }
    }

    /// Appends a message that `write` writes in place: at most `capacity` bytes, returning how many it
    /// wrote. No copy of the message is made; bytes that are not UTF-8 are repaired as in
    /// ``append(utf8:)``.
    public mutating func append(capacity: Int, writing write: (UnsafeMutableRawBufferPointer) -> Int) {
        append(capacity: capacity, checked: true, write)
    }

    /// Length and bytes in one buffer write; a message that is not ASCII is checked by way of
    /// `String(decoding:as:)` when `checked`.
    private mutating func append(capacity: Int, checked: Bool, _ write: (UnsafeMutableRawBufferPointer) -> Int) {
        var written = 0
        var ascii = true
        storage.writeWithUnsafeMutableBytes(minimumWritableBytes: capacity + 4) { out in
            written = min(max(0, write(UnsafeMutableRawBufferPointer(rebasing: out[4..<(4 + capacity)]))), capacity)
            out.storeBytes(of: UInt32(written).bigEndian, toByteOffset: 0, as: UInt32.self)
            if checked { ascii = Self.isASCII(UnsafeRawBufferPointer(rebasing: out[4..<(4 + written)])) }
            return 4 + written
        }
        guard ascii else {
            let start = storage.writerIndex - written
            let text = storage.getBytes(at: start, length: written) ?? []
            storage.moveWriterIndex(to: start - 4)
            return append(String(decoding: text, as: UTF8.self))
        }
        count += 1
        byteCount += written
    }

    /// Appends `,"message"` for each message to a JSON array being built (`[` and maybe messages), in
    /// one buffer write, if no message needs an escape; `false`, with nothing written, otherwise.
    func appendQuotedIfPlain(to array: inout ByteBuffer) -> Bool {
        SockJSMessageArray.writePlain(
            count: count, { visit in forEach(visit) }, open: "", close: "", afterOthers: array.readableBytes > 1, into: &array
        )
    }

    /// Calls `body` with each message's bytes, in order (valid only during the call).
    func forEach(_ body: (UnsafeRawBufferPointer) -> Void) {
        storage.withUnsafeReadableBytes { bytes in
            var offset = 0
            while offset + 4 <= bytes.count {
                let length = Int(UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
                body(UnsafeRawBufferPointer(rebasing: bytes[(offset + 4)..<(offset + 4 + length)]))
                offset += 4 + length
            }
        }
    }

    /// Eight bytes at a time: whether no byte has its high bit set.
    static func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        while index + 8 <= bytes.count {
            if bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) & SWAR.highs != 0 { return false }
            index += 8
        }
        while index < bytes.count {
            if bytes[index] >= 0x80 { return false }
            index += 1
        }
        return true
    }
}
