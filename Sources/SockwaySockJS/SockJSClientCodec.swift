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
                var parser = SockJSPayload.Parser(bytes: rest, repair: .replaceWithU_FFFD)
                let messages = try parser.parseMessageArray()
                guard parser.atEnd else { throw .brokenJSON }
                return .messages(messages)
            } catch {
                throw .malformed
            }
        case UInt8(ascii: "c"):
            do throws(SockJSPayloadError) {
                var parser = SockJSPayload.Parser(bytes: rest, repair: .replaceWithU_FFFD)
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

/// A frame as a client receives it: like ``SockJSFrame``, but an `a` frame keeps its messages as the
/// bytes they arrived in until someone asks (``SockJSMessageBatch``).
public enum SockJSReceivedFrame: Sendable {
    /// `o`: the session is open.
    case open
    /// `h`: a heartbeat.
    case heartbeat
    /// `a[...]`: messages, checked and held as bytes.
    case messages(SockJSMessageBatch)
    /// `c[code,"reason"]`: the session is closed.
    case close(SockJSCloseReason)

    /// Parses one frame as a server sends it; an `a` frame's JSON is checked in full.
    public static func parse(_ buffer: ByteBuffer) throws(SockJSFrameError) -> SockJSReceivedFrame {
        guard buffer.readableBytesView.first == UInt8(ascii: "a") else {
            switch try SockJSFrame.parse(buffer) {
            case .open: return .open
            case .heartbeat: return .heartbeat
            case .close(let reason): return .close(reason)
            case .messages(let messages): return .messages(SockJSMessageBatch(messages))
            }
        }
        return .messages(try SockJSMessageBatch(array: buffer.getSlice(at: buffer.readerIndex + 1, length: buffer.readableBytes - 1)!))
    }

    /// The frame with its messages decoded.
    public var decoded: SockJSFrame {
        switch self {
        case .open: .open
        case .heartbeat: .heartbeat
        case .messages(let batch): .messages(batch.strings)
        case .close(let reason): .close(reason)
        }
    }
}

/// The messages of one `a` frame (or one raw WebSocket message), held as the bytes they arrived in:
/// for consumers that handle millions of messages a second without making a `String` of each.
public struct SockJSMessageBatch: Sendable {
    private enum Storage: Sendable {
        /// A checked JSON array of messages and where each one is in it.
        case array(ByteBuffer, [SockJSPayload.Parser.MessageSpan])
        /// One message's text.
        case single(ByteBuffer)
        case strings([String])
    }

    private let storage: Storage
    /// How many messages the batch holds.
    public let count: Int

    /// A JSON array of messages (`[...]`), checked in full here, and each message found, so that
    /// reading it cannot fail and does not scan it again.
    public init(array: ByteBuffer) throws(SockJSFrameError) {
        let spans: [SockJSPayload.Parser.MessageSpan]? = array.withUnsafeReadableBytes { bytes in
            var parser = SockJSPayload.Parser(bytes: bytes, repair: .replaceWithU_FFFD)
            guard let spans = try? parser.parseMessageSpans(), parser.atEnd else { return nil }
            return spans
        }
        guard let spans else { throw .malformed }
        storage = .array(array, spans)
        count = spans.count
    }

    /// One message, as its UTF-8 text (a raw WebSocket text message).
    public init(message: ByteBuffer) {
        storage = .single(message)
        count = 1
    }

    /// Messages that are already strings.
    public init(_ messages: [String]) {
        storage = .strings(messages)
        count = messages.count
    }

    /// Calls `body` with each message's UTF-8 bytes, in order; the bytes are valid only during the
    /// call. Escapes are decoded; the bytes are as the server sent them otherwise (a `String` made of
    /// them repairs invalid UTF-8, as ``strings`` does).
    public func forEach(_ body: (UnsafeRawBufferPointer) -> Void) {
        switch storage {
        case .array(let array, let spans):
            array.withUnsafeReadableBytes { bytes in
                for span in spans { _ = SockJSPayload.Parser.withMessage(span, in: bytes, repair: .replaceWithU_FFFD, body) }
            }
        case .single(let message):
            message.withUnsafeReadableBytes(body)
        case .strings(let messages):
            for var message in messages { message.withUTF8 { body(UnsafeRawBufferPointer($0)) } }
        }
    }

    /// The messages as strings.
    public var strings: [String] {
        switch storage {
        case .array(let array, _): (try? SockJSPayload.parseArray(array, repair: .replaceWithU_FFFD)) ?? []
        case .single(let message): [String(buffer: message)]
        case .strings(let messages): messages
        }
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

    /// `["a","b"]` from an array: when no message needs an escape (the usual case) the whole array is
    /// one write into the buffer, sized once, instead of two buffer calls per message.
    public static func writeArray(_ messages: [String], into buffer: inout ByteBuffer) {
        guard writePlain(count: messages.count, { visit in Self.forEachUTF8(messages, visit) }, into: &buffer) else {
            return writeArray(messages[...], into: &buffer)
        }
    }

    /// Each message's UTF-8 as it is stored (a `String` without contiguous UTF-8 is skipped, which
    /// ``writePlain(count:_:open:quote:close:afterOthers:htmlSafe:into:)`` counts as "not plain").
    @inlinable
    package static func forEachUTF8(_ messages: [String], _ visit: (UnsafeRawBufferPointer) -> Void) {
        for message in messages {
            _ = message.utf8.withContiguousStorageIfAvailable { visit(UnsafeRawBufferPointer($0)) }
        }
    }

    /// Writes `open`, each message between `quote`s, comma-separated (after a comma too when
    /// `afterOthers`), then `close`, in one buffer write sized once, if every message goes in as it is
    /// (no JSON escape; nor `<`, `>`, `&` when `htmlSafe`). `false`, with nothing written, otherwise.
    /// `forEach` hands over the `count` messages' UTF-8 and is called twice (check, then write).
    @inlinable
    package static func writePlain(
        count: Int,
        _ forEach: ((UnsafeRawBufferPointer) -> Void) -> Void,
        open: StaticString = "[",
        quote: StaticString = "\"",
        close: StaticString = "]",
        afterOthers: Bool = false,
        htmlSafe: Bool = false,
        into buffer: inout ByteBuffer
    ) -> Bool {
        var total = open.utf8CodeUnitCount + close.utf8CodeUnitCount + count * (2 * quote.utf8CodeUnitCount + 1)
        var seen = 0
        var plain = true
        forEach { message in
            seen += 1
            total += message.count
            if plain { plain = SockJSJSON.isPlain(message, htmlSafe: htmlSafe) }
        }
        guard plain, seen == count else { return false }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: total) { out in
            var written = 0
            func put(_ bytes: UnsafeRawBufferPointer) {
                if let source = bytes.baseAddress, bytes.count > 0 {
                    (out.baseAddress! + written).copyMemory(from: source, byteCount: bytes.count)
                    written += bytes.count
                }
            }
            let quoteBytes = UnsafeRawBufferPointer(start: quote.utf8Start, count: quote.utf8CodeUnitCount)
            put(UnsafeRawBufferPointer(start: open.utf8Start, count: open.utf8CodeUnitCount))
            var separate = afterOthers
            forEach { message in
                if separate {
                    out[written] = UInt8(ascii: ",")
                    written += 1
                }
                separate = true
                put(quoteBytes)
                put(message)
                put(quoteBytes)
            }
            put(UnsafeRawBufferPointer(start: close.utf8Start, count: close.utf8CodeUnitCount))
            return written
        }
        return true
    }

    /// `d=<the array, form-encoded>`: the body of `jsonp_send` (`application/x-www-form-urlencoded`).
    @inlinable
    public static func writeForm(_ messages: some Sequence<String>, into buffer: inout ByteBuffer) {
        var array = ByteBuffer()
        writeArray(messages, into: &array)
        writeForm(array: array, into: &buffer)
    }

    /// `d=<array, form-encoded>`, for an array already written (see ``writeArray(_:into:)-(Sequence<String>,_)``).
    @inlinable
    public static func writeForm(array: ByteBuffer, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("d=")
        array.withUnsafeReadableBytes { source in
            // At most three bytes out per byte in (plus one of slack for the four-byte stores); one
            // write for the whole body. Each byte's encoding comes whole from a table, without a branch.
            _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: source.count * 3 + 1) { out in
                formEncodings.withUnsafeBufferPointer { table in
                    var written = 0
                    for byte in source {
                        let entry = table[Int(byte)]
                        out.storeBytes(of: entry.littleEndian, toByteOffset: written, as: UInt32.self)
                        written += Int(entry >> 24)
                    }
                    return written
                }
            }
        }
    }

    /// Per byte: its form encoding (itself, or `%XX`) in the low three bytes, little-endian, and its
    /// length in the top byte. RFC 3986 unreserved bytes go as they are.
    @usableFromInline
    static let formEncodings: [UInt32] = (0..<256).map { byte -> UInt32 in
        switch UInt8(byte) {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"),
            UInt8(ascii: "."), UInt8(ascii: "~"):
            return 1 << 24 | UInt32(byte)
        default:
            let hex = Array("0123456789ABCDEF".utf8)
            let high = UInt32(hex[byte >> 4])
            let low = UInt32(hex[byte & 0x0F])
            return 3 << 24 | low << 16 | high << 8 | UInt32(UInt8(ascii: "%"))
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
    /// Bytes at the front of `buffer` already searched for a newline.
    private var scanned = 0

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
            // Only the unfinished frame is kept: a stream whose frames straddle reads would otherwise
            // never empty the buffer, which would grow with everything ever read.
            if buffer.readerIndex > 0 { buffer.discardReadBytes() }
            var bytes = bytes
            buffer.writeBuffer(&bytes)
        }
    }

    /// The next complete frame, or `nil` until more bytes arrive.
    public mutating func next() throws(SockJSFrameError) -> SockJSReceivedFrame? {
        while let line = try nextLine() {
            switch format {
            case .lines:
                // The xhr_streaming prelude: 2048 `h`s on one line.
                if line.readableBytes > 1, line.readableBytesView.allSatisfy({ $0 == UInt8(ascii: "h") }) { continue }
                return try SockJSReceivedFrame.parse(line)
            case .eventSource:
                var line = line
                if line.readableBytesView.last == UInt8(ascii: "\r") { line.moveWriterIndex(to: line.writerIndex - 1) }
                guard line.readableBytes > 0 else { continue }
                guard line.readableBytesView.starts(with: "data: ".utf8) else { continue }
                line.moveReaderIndex(forwardBy: 6)
                return try SockJSReceivedFrame.parse(Self.percentDecoded(line))
            case .jsonp:
                return try Self.parseJSONP(line)
            }
        }
        return nil
    }

    private mutating func nextLine() throws(SockJSFrameError) -> ByteBuffer? {
        // memchr from where the last search stopped: a long frame arriving in many reads is scanned once.
        let from = scanned
        let found = buffer.withUnsafeReadableBytes { SockJSQuery.firstIndex(of: UInt8(ascii: "\n"), in: $0, from: from) }
        guard let length = found else {
            guard buffer.readableBytes <= maxLineBytes else { throw .tooLong }
            scanned = buffer.readableBytes
            return nil
        }
        guard length <= maxLineBytes else { throw .tooLong }
        scanned = 0
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

    /// `callback("frame");` → the frame, its string literal decoded straight into a buffer.
    static func parseJSONP(_ line: ByteBuffer) throws(SockJSFrameError) -> SockJSReceivedFrame {
        let frame: ByteBuffer? = line.withUnsafeReadableBytes { bytes in
            guard let open = bytes.firstIndex(of: UInt8(ascii: "(")) else { return nil }
            var parser = SockJSPayload.Parser(bytes: bytes, repair: .replaceWithU_FFFD)
            parser.index = open + 1
            guard let (start, end, firstEscape) = try? parser.scanString() else { return nil }
            guard (try? parser.expect(UInt8(ascii: ")"))) != nil, (try? parser.expect(UInt8(ascii: ";"))) != nil else { return nil }
            parser.skipWhitespace()
            guard parser.atEnd else { return nil }
            var frame = ByteBuffer()
            var failed = false
            frame.writeWithUnsafeMutableBytes(minimumWritableBytes: end - start) { out in
                let out = out.bindMemory(to: UInt8.self)
                guard let firstEscape else {
                    UnsafeMutableRawBufferPointer(out).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
                    return end - start
                }
                guard let written = SockJSPayload.Parser.decode(bytes, from: start, firstEscape: firstEscape, to: end, into: out, repair: .replaceWithU_FFFD) else {
                    failed = true
                    return 0
                }
                return written
            }
            return failed ? nil : frame
        }
        guard let frame else { throw .malformed }
        return try SockJSReceivedFrame.parse(frame)
    }
}
