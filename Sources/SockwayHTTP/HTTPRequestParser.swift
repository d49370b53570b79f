import NIOCore
import NIOHTTP1

/// A strict, incremental HTTP/1.1 request parser (RFC 9112), sans I/O: bytes in, request parts out.
///
/// Strict where a lenient reading lets two parsers disagree about where a request ends (request
/// smuggling, RFC 9112 §11.2): every line ends in CRLF; no obsolete line folding; no whitespace between
/// a field name and its colon; no control characters in field values; `Transfer-Encoding` must be
/// exactly `chunked` and never comes with `Content-Length`, nor in an HTTP/1.0 request; one
/// `Content-Length`, digits only; chunk sizes are hex digits that fit an `Int`; chunk data ends in CRLF;
/// one `Host` (required in HTTP/1.1). Every line and the head as a whole are bounded (``Limits``). After
/// an error the parser takes nothing more: the connection is answered with the error's status and
/// closed, and no request after it is read.
///
/// Body bytes come out as slices of the caller's buffer (no copy). The parser never reads ahead of the
/// current request: what follows it stays in the buffer until ``next(_:)`` is called again, so a caller
/// can pause between pipelined requests.
public struct HTTPRequestParser: Sendable {
    /// The bounds of a request head. Defaults as common servers: 8 KiB request line, 16 KiB head,
    /// 100 fields.
    public struct Limits: Sendable, Hashable {
        /// Longest request line (method, target and version), in bytes; more is `414 URI Too Long`.
        public var maxRequestLineBytes: Int
        /// Longest head (request line, fields, line ends), in bytes; more is `431`. Also the bound of
        /// a chunked body's trailer section.
        public var maxHeadBytes: Int
        /// Most header fields; more is `431`. Also the bound of a trailer section's fields.
        public var maxHeaderFields: Int
        /// Longest chunk-size line (size and extensions); more is `400`.
        public var maxChunkLineBytes: Int

        public init(maxRequestLineBytes: Int = 8192, maxHeadBytes: Int = 16384, maxHeaderFields: Int = 100, maxChunkLineBytes: Int = 1024) {
            self.maxRequestLineBytes = maxRequestLineBytes
            self.maxHeadBytes = maxHeadBytes
            self.maxHeaderFields = maxHeaderFields
            self.maxChunkLineBytes = maxChunkLineBytes
        }
    }

    /// One part of a request, in order: a head, zero or more body slices, an end.
    public enum Part: Sendable, Equatable {
        case head(HTTPRequestHead)
        case body(ByteBuffer)
        case end
    }

    /// How the body of the request just parsed is delimited.
    public enum BodyFraming: Sendable, Equatable {
        case none
        case contentLength(Int)
        case chunked
    }

    private enum State: Sendable {
        case requestLine
        case fields
        case fixedBody(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailer
        case end
        case failed(HTTPRequestError)
    }

    public let limits: Limits
    private var state = State.requestLine
    /// Bytes of the current head (or trailer section) consumed so far.
    private var headBytes = 0
    /// Bytes of the current, incomplete line already searched for its LF.
    private var scanned = 0
    private var method = HTTPMethod.GET
    private var target = ""
    private var version = HTTPVersion.http1_1
    private var fields: [(String, String)] = []
    private var trailerFields = 0

    /// The framing of the last request head returned.
    public private(set) var bodyFraming = BodyFraming.none

    public init(limits: Limits = .init()) {
        self.limits = limits
    }

    /// `true` between requests with no byte of the next one consumed: a head deadline has nothing to
    /// time. A caller with unread bytes in its buffer has a head in progress.
    public var isAwaitingRequest: Bool {
        if case .requestLine = state { return headBytes == 0 && scanned == 0 }
        return false
    }

    /// `true` while a request head (or a trailer section) is incomplete.
    public var isInHead: Bool {
        switch state {
        case .requestLine, .fields, .trailer: true
        default: false
        }
    }

    /// Bytes of the current chunk not read yet: a caller can refuse a body whose announced chunk
    /// already exceeds its bound, before the chunk arrives.
    public var remainingChunkBytes: Int {
        if case .chunkData(let remaining) = state { return remaining }
        return 0
    }

    /// The error that stopped the parser, if any.
    public var error: HTTPRequestError? {
        if case .failed(let error) = state { return error }
        return nil
    }

    /// The next part of the request in `buffer`, consuming its bytes, or `nil` if more bytes are
    /// needed. Throws once the input is not HTTP/1.1 as this parser takes it, and on every call after.
    public mutating func next(_ buffer: inout ByteBuffer) throws(HTTPRequestError) -> Part? {
        while true {
            switch state {
            case .failed(let error):
                throw error
            case .end:
                state = .requestLine
                headBytes = 0
                return .end
            case .requestLine:
                guard let line = try nextLine(&buffer, limit: limits.maxRequestLineBytes, tooLong: .requestLineTooLong) else { return nil }
                if line.readableBytes == 0 {
                    // RFC 9112 §2.2: empty lines before a request line are ignored (a client's CRLF after
                    // a POST body). They count towards the head.
                    continue
                }
                do {
                    try parseRequestLine(line)
                } catch {
                    return try fail(error)
                }
                state = .fields
            case .fields:
                guard let line = try nextLine(&buffer, limit: nil, tooLong: .headTooLarge) else { return nil }
                if line.readableBytes == 0 {
                    let head: HTTPRequestHead
                    do {
                        head = try finishHead()
                    } catch {
                        return try fail(error)
                    }
                    return .head(head)
                }
                guard fields.count < limits.maxHeaderFields else { return try fail(.tooManyFields) }
                do {
                    fields.append(try Self.parseField(line))
                } catch {
                    return try fail(error)
                }
            case .fixedBody(let remaining):
                guard buffer.readableBytes > 0 else { return nil }
                let count = min(remaining, buffer.readableBytes)
                let slice = buffer.readSlice(length: count)!
                state = remaining == count ? .end : .fixedBody(remaining: remaining - count)
                return .body(slice)
            case .chunkSize:
                guard let line = try nextLine(&buffer, limit: limits.maxChunkLineBytes, tooLong: .badChunkSize, countsTowardsHead: false) else { return nil }
                let size: Int
                do {
                    size = try Self.parseChunkSize(line)
                } catch {
                    return try fail(error)
                }
                if size == 0 {
                    headBytes = 0
                    trailerFields = 0
                    state = .trailer
                } else {
                    state = .chunkData(remaining: size)
                }
            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { return nil }
                let count = min(remaining, buffer.readableBytes)
                let slice = buffer.readSlice(length: count)!
                state = remaining == count ? .chunkDataEnd : .chunkData(remaining: remaining - count)
                return .body(slice)
            case .chunkDataEnd:
                guard buffer.readableBytes >= 2 else {
                    if buffer.readableBytes == 1 && buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) != UInt8(ascii: "\r") {
                        return try fail(.badChunkTerminator)
                    }
                    return nil
                }
                guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { return try fail(.badChunkTerminator) }
                state = .chunkSize
            case .trailer:
                guard let line = try nextLine(&buffer, limit: nil, tooLong: .trailerTooLarge) else { return nil }
                if line.readableBytes == 0 {
                    state = .requestLine
                    headBytes = 0
                    return .end
                }
                guard trailerFields < limits.maxHeaderFields else { return try fail(.trailerTooLarge) }
                trailerFields += 1
                // Trailer fields are checked as header fields, then dropped: nothing here reads them.
                do {
                    _ = try Self.parseField(line)
                } catch {
                    return try fail(error)
                }
            }
        }
    }

    private mutating func fail(_ error: HTTPRequestError) throws(HTTPRequestError) -> Part? {
        state = .failed(error)
        fields = []
        throw error
    }

    // MARK: Lines

    /// The next line without its CRLF, consumed from `buffer`; `nil` if it is not complete yet.
    /// `limit` bounds the line itself; the head bound applies to every line that `countsTowardsHead`.
    private mutating func nextLine(
        _ buffer: inout ByteBuffer,
        limit: Int?,
        tooLong: HTTPRequestError,
        countsTowardsHead: Bool = true
    ) throws(HTTPRequestError) -> ByteBuffer? {
        let readable = buffer.readableBytes
        let start = scanned
        let lineFeed: Int? = buffer.withUnsafeReadableBytes { bytes in
            var index = start
            while index < bytes.count {
                if bytes[index] == 0x0A { return index }
                index += 1
            }
            return nil
        }
        guard let lineFeed else {
            scanned = readable
            if let limit, readable > limit + 1 { return try failLine(tooLong) }
            if countsTowardsHead, headBytes + readable > limits.maxHeadBytes { return try failLine(headLimitError) }
            return nil
        }
        scanned = 0
        let lineLength = lineFeed + 1
        if let limit, lineLength > limit + 2 { return try failLine(tooLong) }
        if countsTowardsHead {
            headBytes += lineLength
            if headBytes > limits.maxHeadBytes { return try failLine(headLimitError) }
        }
        guard lineFeed > 0, buffer.getInteger(at: buffer.readerIndex + lineFeed - 1, as: UInt8.self) == 0x0D else {
            return try failLine(.bareLineFeed)
        }
        let line = buffer.readSlice(length: lineFeed - 1)!
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }

    private var headLimitError: HTTPRequestError {
        switch state {
        case .requestLine: .requestLineTooLong
        case .trailer: .trailerTooLarge
        default: .headTooLarge
        }
    }

    private mutating func failLine(_ error: HTTPRequestError) throws(HTTPRequestError) -> ByteBuffer? {
        state = .failed(error)
        fields = []
        throw error
    }

    // MARK: Request line and fields

    private mutating func parseRequestLine(_ line: ByteBuffer) throws(HTTPRequestError) {
        let parsed: (HTTPMethod, String, HTTPVersion)? = line.withUnsafeReadableBytes { bytes in
            // method SP request-target SP HTTP-version, single spaces (RFC 9112 §3).
            var index = 0
            while index < bytes.count, HTTPSyntax.isTokenByte(bytes[index]) { index += 1 }
            let methodEnd = index
            guard methodEnd > 0, index < bytes.count, bytes[index] == 0x20 else { return nil }
            index += 1
            let targetStart = index
            while index < bytes.count, bytes[index] > 0x20, bytes[index] < 0x7F { index += 1 }
            let targetEnd = index
            guard targetEnd > targetStart, index < bytes.count, bytes[index] == 0x20 else { return nil }
            index += 1
            // "HTTP/" DIGIT "." DIGIT
            guard bytes.count - index == 8,
                bytes[index] == 0x48, bytes[index + 1] == 0x54, bytes[index + 2] == 0x54, bytes[index + 3] == 0x50,
                bytes[index + 4] == 0x2F, HTTPSyntax.isDigit(bytes[index + 5]), bytes[index + 6] == 0x2E,
                HTTPSyntax.isDigit(bytes[index + 7])
            else { return nil }
            let major = Int(bytes[index + 5] - 0x30)
            let minor = Int(bytes[index + 7] - 0x30)
            let method = HTTPMethod(rawValue: String(decoding: UnsafeRawBufferPointer(rebasing: bytes[0..<methodEnd]), as: UTF8.self))
            let target = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[targetStart..<targetEnd]), as: UTF8.self)
            return (method, target, HTTPVersion(major: major, minor: minor))
        }
        guard let (method, target, version) = parsed else { throw .badRequestLine }
        guard version.major == 1 else { throw .unsupportedVersion }
        self.method = method
        self.target = target
        // A later HTTP/1.x minor version is answered as 1.1 (RFC 9110 §6.2).
        self.version = version.minor > 1 ? .http1_1 : version
        fields.removeAll(keepingCapacity: true)
    }

    /// A field line: `name ":" OWS value OWS`, the name a token right before the colon.
    static func parseField(_ line: ByteBuffer) throws(HTTPRequestError) -> (String, String) {
        let parsed: (String, String)?? = line.withUnsafeReadableBytes { bytes in
            // obs-fold: a line that starts with whitespace continues the previous one (RFC 9112 §5.2).
            if let first = bytes.first, first == 0x20 || first == 0x09 { return .some(nil) }
            var index = 0
            while index < bytes.count, HTTPSyntax.isTokenByte(bytes[index]) { index += 1 }
            guard index > 0, index < bytes.count, bytes[index] == 0x3A else { return nil }
            let nameEnd = index
            index += 1
            var valueStart = index
            while valueStart < bytes.count, bytes[valueStart] == 0x20 || bytes[valueStart] == 0x09 { valueStart += 1 }
            var valueEnd = bytes.count
            while valueEnd > valueStart, bytes[valueEnd - 1] == 0x20 || bytes[valueEnd - 1] == 0x09 { valueEnd -= 1 }
            var scan = valueStart
            while scan < valueEnd {
                guard HTTPSyntax.isFieldValueByte(bytes[scan]) else { return nil }
                scan += 1
            }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[0..<nameEnd]), as: UTF8.self)
            let value = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[valueStart..<valueEnd]), as: UTF8.self)
            return .some((name, value))
        }
        switch parsed {
        case .none: throw .badHeaderField
        case .some(.none): throw .obsoleteLineFolding
        case .some(.some(let field)): return field
        }
    }

    // MARK: Framing

    private mutating func finishHead() throws(HTTPRequestError) -> HTTPRequestHead {
        var hosts = 0
        var contentLength: Int?
        var contentLengthFields = 0
        var transferCodings: [Substring] = []
        var hasTransferEncoding = false
        for (name, value) in fields {
            switch name.utf8.count {
            case 4 where HTTPSyntax.equalsIgnoringCase(name, "host"):
                hosts += 1
                // RFC 9112 §3.2: a Host that is not `uri-host [":" port]` is a 400 too.
                guard value.utf8.allSatisfy(HTTPSyntax.isHostByte) else { throw .badHost }
            case 14 where HTTPSyntax.equalsIgnoringCase(name, "content-length"):
                contentLengthFields += 1
                guard let length = HTTPSyntax.parseContentLength(value) else { throw .badContentLength }
                contentLength = length
            case 17 where HTTPSyntax.equalsIgnoringCase(name, "transfer-encoding"):
                hasTransferEncoding = true
                for coding in value.split(separator: ",", omittingEmptySubsequences: false) {
                    transferCodings.append(HTTPSyntax.trimmingWhitespace(coding))
                }
            default:
                break
            }
        }
        // RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in 1.0.
        if hosts > 1 || (hosts == 0 && version.minor >= 1) { throw hosts > 1 ? .duplicateHost : .missingHost }
        // Several Content-Length fields (even equal ones) are refused: a proxy may have merged or
        // picked differently.
        if contentLengthFields > 1 { throw .badContentLength }
        if hasTransferEncoding {
            if contentLength != nil { throw .contentLengthWithTransferEncoding }
            if version.minor == 0 { throw .transferEncodingInHTTP10 }
            let chunked = transferCodings.map { HTTPSyntax.equalsIgnoringCase($0, "chunked") }
            // chunked must be the one coding, and last (RFC 9112 §6.3): anything else cannot be framed.
            if chunked.contains(true) || transferCodings.isEmpty || transferCodings.contains(where: \.isEmpty) {
                guard chunked == [true] else { throw .badTransferEncoding }
            } else {
                throw .unsupportedTransferCoding
            }
            bodyFraming = .chunked
            state = .chunkSize
        } else if let contentLength, contentLength > 0 {
            bodyFraming = .contentLength(contentLength)
            state = .fixedBody(remaining: contentLength)
        } else {
            bodyFraming = .none
            state = .end
        }
        let headers = HTTPHeaders(fields)
        fields = []
        return HTTPRequestHead(version: version, method: method, uri: target, headers: headers)
    }

    /// `chunk-size [ chunk-ext ]`: hex digits that fit an `Int`, then nothing or extensions.
    static func parseChunkSize(_ line: ByteBuffer) throws(HTTPRequestError) -> Int {
        let result: Result<Int, HTTPRequestError> = line.withUnsafeReadableBytes { bytes in
            var size = 0
            var index = 0
            while index < bytes.count, let digit = HTTPSyntax.hexValue(bytes[index]) {
                guard size <= (Int.max - digit) >> 4 else { return .failure(.chunkSizeOverflow) }
                size = size << 4 | digit
                index += 1
            }
            guard index > 0 else { return .failure(.badChunkSize) }
            guard index < bytes.count else { return .success(size) }
            // chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ): checked as visible bytes after a
            // semicolon; nothing here reads them.
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 { index += 1 }
            guard index < bytes.count, bytes[index] == 0x3B else { return .failure(.badChunkSize) }
            while index < bytes.count {
                guard HTTPSyntax.isFieldValueByte(bytes[index]) else { return .failure(.badChunkSize) }
                index += 1
            }
            return .success(size)
        }
        return try result.get()
    }
}

/// Why a request could not be read, and its status. The connection is closed after the answer.
public struct HTTPRequestError: Error, Hashable, Sendable, CustomStringConvertible {
    enum Kind: String, Sendable {
        case requestLineTooLong = "request line too long"
        case headTooLarge = "request head too large"
        case tooManyFields = "too many header fields"
        case badRequestLine = "malformed request line"
        case unsupportedVersion = "unsupported HTTP version"
        case badHeaderField = "malformed header field"
        case obsoleteLineFolding = "obsolete line folding"
        case bareLineFeed = "line ends in a bare LF"
        case missingHost = "no Host header"
        case duplicateHost = "several Host headers"
        case badHost = "invalid Host header"
        case badContentLength = "invalid or repeated Content-Length"
        case contentLengthWithTransferEncoding = "both Content-Length and Transfer-Encoding"
        case transferEncodingInHTTP10 = "Transfer-Encoding in an HTTP/1.0 request"
        case badTransferEncoding = "Transfer-Encoding other than chunked alone"
        case unsupportedTransferCoding = "unsupported transfer coding"
        case badChunkSize = "malformed chunk size"
        case chunkSizeOverflow = "chunk size overflow"
        case badChunkTerminator = "chunk data not followed by CRLF"
        case trailerTooLarge = "trailer section too large"
    }

    let kind: Kind

    public static let requestLineTooLong = Self(kind: .requestLineTooLong)
    public static let headTooLarge = Self(kind: .headTooLarge)
    public static let tooManyFields = Self(kind: .tooManyFields)
    public static let badRequestLine = Self(kind: .badRequestLine)
    public static let unsupportedVersion = Self(kind: .unsupportedVersion)
    public static let badHeaderField = Self(kind: .badHeaderField)
    public static let obsoleteLineFolding = Self(kind: .obsoleteLineFolding)
    public static let bareLineFeed = Self(kind: .bareLineFeed)
    public static let missingHost = Self(kind: .missingHost)
    public static let duplicateHost = Self(kind: .duplicateHost)
    public static let badHost = Self(kind: .badHost)
    public static let badContentLength = Self(kind: .badContentLength)
    public static let contentLengthWithTransferEncoding = Self(kind: .contentLengthWithTransferEncoding)
    public static let transferEncodingInHTTP10 = Self(kind: .transferEncodingInHTTP10)
    public static let badTransferEncoding = Self(kind: .badTransferEncoding)
    public static let unsupportedTransferCoding = Self(kind: .unsupportedTransferCoding)
    public static let badChunkSize = Self(kind: .badChunkSize)
    public static let chunkSizeOverflow = Self(kind: .chunkSizeOverflow)
    public static let badChunkTerminator = Self(kind: .badChunkTerminator)
    public static let trailerTooLarge = Self(kind: .trailerTooLarge)

    /// The status the request is answered with.
    public var status: HTTPResponseStatus {
        switch kind {
        case .requestLineTooLong: .uriTooLong
        case .headTooLarge, .tooManyFields, .trailerTooLarge: .requestHeaderFieldsTooLarge
        case .unsupportedVersion: .httpVersionNotSupported
        case .unsupportedTransferCoding: .notImplemented
        default: .badRequest
        }
    }

    public var description: String { kind.rawValue }
}

/// Byte classes of RFC 9110 §5.6.
enum HTTPSyntax {
    /// tchar: `!#$%&'*+-.^_`|~`, digits, letters.
    static let tokenBytes: [Bool] = (0..<256).map { byte in
        switch UInt8(byte) {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(UInt8(byte))
        }
    }

    @inline(__always)
    static func isTokenByte(_ byte: UInt8) -> Bool { tokenBytes[Int(byte)] }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool { byte &- 0x30 < 10 }

    /// field-vchar, SP or HTAB: no control character (NUL, CR, LF, DEL...).
    @inline(__always)
    static func isFieldValueByte(_ byte: UInt8) -> Bool { byte >= 0x20 ? byte != 0x7F : byte == 0x09 }

    /// uri-host [":" port] (RFC 3986 §3.2.2): unreserved, pct-encoded, sub-delims, `:` and the
    /// brackets of an IP literal.
    static let hostBytes: [Bool] = (0..<256).map { byte in
        switch UInt8(byte) {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
            return true
        default:
            return "-._~%!$&'()*+,;=:[]".utf8.contains(UInt8(byte))
        }
    }

    @inline(__always)
    static func isHostByte(_ byte: UInt8) -> Bool { hostBytes[Int(byte)] }

    static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    /// `1*DIGIT`, no sign, no list; `nil` past 15 digits (1 PB, far beyond any bound here).
    static func parseContentLength(_ value: String) -> Int? {
        let digits = value.utf8
        guard !digits.isEmpty, digits.count <= 15 else { return nil }
        var length = 0
        for byte in digits {
            guard isDigit(byte) else { return nil }
            length = length * 10 + Int(byte - 0x30)
        }
        return length
    }

    static func equalsIgnoringCase<S: StringProtocol>(_ value: S, _ lowercase: StaticString) -> Bool {
        let expected = UnsafeRawBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        guard value.utf8.count == expected.count else { return false }
        for (byte, want) in zip(value.utf8, expected) where byte | 0x20 != want {
            return false
        }
        return true
    }

    static func trimmingWhitespace(_ value: Substring) -> Substring {
        var value = value
        while let first = value.first, first == " " || first == "\t" { value.removeFirst() }
        while let last = value.last, last == " " || last == "\t" { value.removeLast() }
        return value
    }
}
