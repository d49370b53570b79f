import NIOCore

/// How messages are cut out of a TCP upstream's byte stream, and written to it.
public enum SockwayTCPFraming: String, Sendable, Hashable, CaseIterable {
    /// One message per line: the bytes up to `\n` (a `\r` before it is dropped); each message sent is
    /// followed by `\n`. A message holding `\n` cannot be carried: the session is closed with 1007.
    case newline
    /// Each message preceded by its length in bytes, four bytes big-endian.
    case lengthPrefixed = "length-prefixed"
}

/// Why bytes cannot be framed.
enum TCPFramingError: Error, Hashable, Sendable {
    /// A message (or an unfinished line) longer than the bound.
    case messageTooBig
    /// A message for newline framing holds a newline.
    case newlineInMessage
}

/// Cuts messages out of a TCP byte stream, without I/O. Holds bytes only while a message is incomplete.
struct TCPMessageReader {
    let framing: SockwayTCPFraming
    let maxMessageBytes: Int
    private var buffer = ByteBuffer()
    /// Newline framing: bytes of `buffer` already searched for a newline.
    private var scanned = 0

    init(framing: SockwayTCPFraming, maxMessageBytes: Int) {
        self.framing = framing
        self.maxMessageBytes = maxMessageBytes
    }

    var bufferedBytes: Int { buffer.readableBytes }

    mutating func append(_ bytes: ByteBuffer) {
        if buffer.readableBytes == 0 {
            buffer = bytes
            scanned = 0
        } else {
            // Only the unfinished message is kept (see WebSocketFrameReader.append).
            if buffer.readerIndex > 0 { buffer.discardReadBytes() }
            var bytes = bytes
            buffer.writeBuffer(&bytes)
        }
    }

    /// The next whole message (a slice of the bytes read), or `nil` until more bytes arrive.
    mutating func next() throws(TCPFramingError) -> ByteBuffer? {
        switch framing {
        case .newline:
            let newline = buffer.withUnsafeReadableBytes { bytes in
                bytes[scanned...].firstIndex(of: UInt8(ascii: "\n"))
            }
            guard let newline else {
                scanned = buffer.readableBytes
                // An unfinished line already past the bound (its `\n` and a `\r` are not part of it).
                if scanned > maxMessageBytes + 1 { throw .messageTooBig }
                return nil
            }
            var length = newline
            if length > 0, buffer.getInteger(at: buffer.readerIndex + length - 1, as: UInt8.self) == UInt8(ascii: "\r") {
                length -= 1
            }
            guard length <= maxMessageBytes else { throw .messageTooBig }
            let message = buffer.getSlice(at: buffer.readerIndex, length: length)!
            buffer.moveReaderIndex(forwardBy: newline + 1)
            scanned = 0
            releaseIfEmpty()
            return message
        case .lengthPrefixed:
            guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
            guard Int(length) <= maxMessageBytes else { throw .messageTooBig }
            guard buffer.readableBytes >= 4 + Int(length) else { return nil }
            buffer.moveReaderIndex(forwardBy: 4)
            let message = buffer.readSlice(length: Int(length))!
            releaseIfEmpty()
            return message
        }
    }

    /// Lets go of the read buffer: an idle connection holds none.
    private mutating func releaseIfEmpty() {
        if buffer.readableBytes == 0 {
            buffer = ByteBuffer()
            scanned = 0
        }
    }

    /// Appends `message` framed to `output`.
    static func append(_ message: ByteBuffer, framing: SockwayTCPFraming, to output: inout ByteBuffer) throws(TCPFramingError) {
        switch framing {
        case .newline:
            if message.readableBytesView.contains(UInt8(ascii: "\n")) { throw .newlineInMessage }
            var message = message
            output.writeBuffer(&message)
            output.writeInteger(UInt8(ascii: "\n"))
        case .lengthPrefixed:
            guard message.readableBytes <= Int(UInt32.max) else { throw .messageTooBig }
            var message = message
            output.writeInteger(UInt32(message.readableBytes))
            output.writeBuffer(&message)
        }
    }

    /// ``append(_:framing:to:)`` for a text message.
    static func append(_ message: String, framing: SockwayTCPFraming, to output: inout ByteBuffer) throws(TCPFramingError) {
        switch framing {
        case .newline:
            if message.utf8.contains(UInt8(ascii: "\n")) { throw .newlineInMessage }
            output.writeString(message)
            output.writeInteger(UInt8(ascii: "\n"))
        case .lengthPrefixed:
            output.writeInteger(UInt32(message.utf8.count))
            output.writeString(message)
        }
    }
}
