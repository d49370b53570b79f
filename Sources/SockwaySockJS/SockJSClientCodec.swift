import NIOCore

/// Why bytes from a server are not SockJS frames.
public enum SockJSFrameError: Error, Hashable, Sendable {
    /// Not `o`, `h`, `a[...]` or `c[code,"reason"]`, or not the wrapping the transport uses.
    case malformed
    /// A frame or line longer than the decoder's limit.
    case tooLong
}

extension SockJSFrame {
    /// Parses one frame as a server sends it: `o`, `h`, `a[...]` or `c[code,"reason"]`.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(SockJSFrameError) -> SockJSFrame {
        guard let kind = bytes.first else { throw .malformed }
        let rest = UnsafeRawBufferPointer(rebasing: bytes.dropFirst())
        switch kind {
        case UInt8(ascii: "o") where rest.isEmpty:
            return .open
        case UInt8(ascii: "h") where rest.isEmpty:
            return .heartbeat
        case UInt8(ascii: "a"):
            do throws(SockJSPayloadError) {
                var parser = SockJSPayload.Parser(bytes: rest)
                let messages = try parser.parseMessageArray()
                guard parser.atEnd else { throw .brokenJSON }
                return .messages(messages)
            } catch {
                throw .malformed
            }
        case UInt8(ascii: "c"):
            do throws(SockJSPayloadError) {
                var parser = SockJSPayload.Parser(bytes: rest)
                try parser.expect(UInt8(ascii: "["))
                let code = try parser.parseInteger()
                parser.skipWhitespace()
                try parser.expect(UInt8(ascii: ","))
                parser.skipWhitespace()
                let reason = try parser.parseString()
                try parser.expect(UInt8(ascii: "]"))
                guard parser.atEnd else { throw .brokenJSON }
                return .close(SockJSCloseReason(code: code, reason: reason))
            } catch {
                throw .malformed
            }
        default:
            throw .malformed
        }
    }

    /// Parses one frame held in a `ByteBuffer`.
    public static func parse(_ buffer: ByteBuffer) throws(SockJSFrameError) -> SockJSFrame {
        let result: Result<SockJSFrame, SockJSFrameError> = buffer.withUnsafeReadableBytes { bytes in
            do throws(SockJSFrameError) { return .success(try parse(bytes)) } catch { return .failure(error) }
        }
        return try result.get()
    }
}

/// A JSON array of messages: the body of what clients send (in the wrapping each transport uses) and
/// the inside of an `a` frame.
public enum SockJSMessageArray {
    /// `["a","b"]`: the body of `xhr_send` and the text of a `websocket` message.
    @inlinable
    public static func writeArray(_ messages: some Sequence<String>, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "["))
        var first = true
        for message in messages {
            if !first { buffer.writeInteger(UInt8(ascii: ",")) }
            first = false
            SockJSJSON.writeQuoted(message, into: &buffer)
        }
        buffer.writeInteger(UInt8(ascii: "]"))
    }

    /// `d=<the array, form-encoded>`: the body of `jsonp_send` (`application/x-www-form-urlencoded`).
    @inlinable
    public static func writeForm(_ messages: some Sequence<String>, into buffer: inout ByteBuffer) {
        var array = ByteBuffer()
        writeArray(messages, into: &array)
        buffer.writeStaticString("d=")
        array.withUnsafeReadableBytes { source in
            // At most three bytes out per byte in; one write for the whole body.
            _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: source.count * 3) { out in
                let hex: StaticString = "0123456789ABCDEF"
                let digits = hex.utf8Start
                let safe = formSafe
                var written = 0
                for byte in source {
                    if safe[Int(byte)] {
                        out[written] = byte
                        written += 1
                    } else {
                        out[written] = UInt8(ascii: "%")
                        out[written + 1] = digits[Int(byte >> 4)]
                        out[written + 2] = digits[Int(byte & 0x0F)]
                        written += 3
                    }
                }
                return written
            }
        }
    }

    /// Bytes a form value carries as they are (RFC 3986 unreserved); every other byte is `%XX`.
    @usableFromInline
    static let formSafe: [Bool] = (0..<256).map { byte in
        switch UInt8(byte) {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"),
            UInt8(ascii: "."), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }
}

/// Cuts a response body into SockJS frames, for the HTTP transports, without I/O.
///
/// Bytes arrive in whatever pieces TCP gives; frames come out whole. A line longer than `maxLineBytes`
/// is an error, so a hostile server cannot make the client buffer without bound.
public struct SockJSBodyDecoder: Sendable {
    public enum Format: Hashable, Sendable {
        /// `frame\n` per frame (`xhr`, `xhr_streaming`; the streaming prelude of `h`s is skipped).
        case lines
        /// `data: frame\r\n\r\n` per frame (`eventsource`), the frame with `%`, CR, LF and NUL
        /// percent-encoded (sockjs-client `decodeURI`s it).
        case eventSource
        /// `callback("frame");\r\n`, one frame per response (`jsonp`): the frame is a JavaScript
        /// string literal in JSON syntax.
        case jsonp
    }

    public let format: Format
    public let maxLineBytes: Int
    private var buffer = ByteBuffer()

    public init(format: Format, maxLineBytes: Int = 16 << 20) {
        self.format = format
        self.maxLineBytes = maxLineBytes
    }

    /// Bytes of an incomplete frame held.
    public var bufferedBytes: Int { buffer.readableBytes }

    public mutating func append(_ bytes: ByteBuffer) {
        if buffer.readableBytes == 0 {
            buffer = bytes
        } else {
            var bytes = bytes
            buffer.writeBuffer(&bytes)
        }
    }

    /// The next complete frame, or `nil` until more bytes arrive.
    public mutating func next() throws(SockJSFrameError) -> SockJSFrame? {
        while let line = try nextLine() {
            switch format {
            case .lines:
                // The xhr_streaming prelude: 2048 `h`s on one line.
                if line.readableBytes > 1, line.readableBytesView.allSatisfy({ $0 == UInt8(ascii: "h") }) { continue }
                return try SockJSFrame.parse(line)
            case .eventSource:
                var line = line
                if line.readableBytesView.last == UInt8(ascii: "\r") { line.moveWriterIndex(to: line.writerIndex - 1) }
                guard line.readableBytes > 0 else { continue }
                guard line.readableBytesView.starts(with: "data: ".utf8) else { continue }
                line.moveReaderIndex(forwardBy: 6)
                return try SockJSFrame.parse(Self.percentDecoded(line))
            case .jsonp:
                return try Self.parseJSONP(line)
            }
        }
        return nil
    }

    private mutating func nextLine() throws(SockJSFrameError) -> ByteBuffer? {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            guard buffer.readableBytes <= maxLineBytes else { throw .tooLong }
            return nil
        }
        let length = newline - buffer.readerIndex
        guard length <= maxLineBytes else { throw .tooLong }
        let line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        if buffer.readableBytes == 0 { buffer = ByteBuffer() }
        return line
    }

    /// `%XX` sequences decoded; the buffer itself when it has none (or a malformed one).
    static func percentDecoded(_ line: ByteBuffer) -> ByteBuffer {
        guard line.readableBytesView.contains(UInt8(ascii: "%")),
            let decoded = line.withUnsafeReadableBytes({ SockJSQuery.percentDecodeBytes($0, plusAsSpace: false) })
        else { return line }
        return ByteBuffer(bytes: decoded)
    }

    /// `callback("frame");` → the frame.
    static func parseJSONP(_ line: ByteBuffer) throws(SockJSFrameError) -> SockJSFrame {
        let text: String? = line.withUnsafeReadableBytes { bytes in
            guard let open = bytes.firstIndex(of: UInt8(ascii: "(")) else { return nil }
            var parser = SockJSPayload.Parser(bytes: bytes)
            parser.index = open + 1
            guard let frame = try? parser.parseString() else { return nil }
            guard (try? parser.expect(UInt8(ascii: ")"))) != nil, (try? parser.expect(UInt8(ascii: ";"))) != nil else { return nil }
            parser.skipWhitespace()
            return parser.atEnd ? frame : nil
        }
        guard let text else { throw .malformed }
        var bytes = ByteBuffer(string: text)
        return try SockJSFrame.parse(bytes.readSlice(length: bytes.readableBytes)!)
    }
}
