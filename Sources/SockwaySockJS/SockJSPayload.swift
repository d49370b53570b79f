import NIOCore

/// Why an inbound SockJS payload was refused.
public enum SockJSPayloadError: Error, Equatable, Sendable {
    /// The payload was empty, or valid JSON that is not an array of messages ("Payload expected.").
    case payloadExpected
    /// The payload is not valid JSON, not valid UTF-8, or holds a string that no Unicode text can
    /// carry (a lone UTF-16 surrogate escape) ("Broken JSON encoding.").
    case brokenJSON
    /// One message is larger than the limit the caller gave (decoded UTF-8 bytes).
    case messageTooLarge
}

/// Parses what clients send: a JSON array of messages (`xhr_send`, `jsonp_send`, `websocket`), or for the
/// `websocket` transport also a single JSON value.
///
/// String elements are decoded; other JSON values (numbers, objects, …) are delivered as their JSON text,
/// so that no message is silently lost. What a client sends is refused rather than altered: invalid
/// UTF-8 (overlong forms and encoded surrogates included) and lone UTF-16 surrogates in `\u` escapes
/// make the whole payload ``SockJSPayloadError/brokenJSON``, since a Swift `String` holds Unicode
/// scalars only (JSON allows such escapes, RFC 8259 §8.2; I-JSON, RFC 7493 §2.1, forbids them). The
/// client side, reading a server, repairs instead (U+FFFD): see ``Repair``.
public enum SockJSPayload {
    /// What to do with text that cannot be a Swift `String`.
    public enum Repair: Sendable {
        /// Refuse the payload (what a server does with a client's messages: nothing is altered).
        case refuse
        /// Replace what cannot be a scalar with U+FFFD (what a client does with a server's frames).
        case replaceWithU_FFFD
    }

    /// Nesting limit for non-string values, so hostile input cannot exhaust the stack.
    public static let maximumDepth = 64

    /// Parses a JSON array of messages.
    /// - Parameters:
    ///   - bytes: the JSON text.
    ///   - repair: ``Repair/refuse`` (the default) checks that `bytes` are valid UTF-8 first.
    public static func parseArray(_ bytes: UnsafeRawBufferPointer, repair: Repair = .refuse) throws(SockJSPayloadError) -> [String] {
        if repair == .refuse, !isValidUTF8(bytes) { throw .brokenJSON }
        var parser = Parser(bytes: bytes, repair: repair)
        parser.skipWhitespace()
        guard !parser.atEnd else { throw .payloadExpected }
        guard parser.peek == UInt8(ascii: "[") else {
            // Valid JSON but not an array is "Payload expected."; anything else is broken.
            try parser.skipValue(depth: 0)
            parser.skipWhitespace()
            guard parser.atEnd else { throw .brokenJSON }
            throw .payloadExpected
        }
        let messages = try parser.parseMessageArray()
        parser.skipWhitespace()
        guard parser.atEnd else { throw .brokenJSON }
        return messages
    }

    /// Parses a `ByteBuffer` holding a JSON array of messages.
    public static func parseArray(_ buffer: ByteBuffer, repair: Repair = .refuse) throws(SockJSPayloadError) -> [String] {
        let result: Result<[String], SockJSPayloadError> = buffer.withUnsafeReadableBytes { bytes in
            do throws(SockJSPayloadError) { return .success(try parseArray(bytes, repair: repair)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Whether `bytes` are well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or values above
    /// U+10FFFF). The standard library's validator, which skips ASCII a word at a time.
    public static func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        do {
            _ = try UTF8Span(validating: bytes.assumingMemoryBound(to: UInt8.self).span)
            return true
        } catch {
            return false
        }
    }

    /// Parses a SockJS `websocket` text message: an array of messages, or one JSON value. An empty
    /// text message carries no messages. `bytes` must be valid UTF-8 (a WebSocket text message is:
    /// the WebSocket layer checks it); lone surrogate escapes are refused.
    public static func parseWebSocketMessage(_ bytes: UnsafeRawBufferPointer) throws(SockJSPayloadError) -> [String] {
        var parser = Parser(bytes: bytes)
        parser.skipWhitespace()
        if parser.atEnd { return [] }
        let messages: [String]
        if parser.peek == UInt8(ascii: "[") {
            messages = try parser.parseMessageArray()
        } else {
            messages = [try parser.parseMessage(depth: 0)]
        }
        parser.skipWhitespace()
        guard parser.atEnd else { throw .brokenJSON }
        return messages
    }

    struct Parser {
        let bytes: UnsafeRawBufferPointer
        let repair: Repair
        var index = 0

        init(bytes: UnsafeRawBufferPointer, repair: Repair = .refuse) {
            self.bytes = bytes
            self.repair = repair
        }

        var atEnd: Bool { index >= bytes.count }
        var peek: UInt8 { bytes[index] }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func expect(_ byte: UInt8) throws(SockJSPayloadError) {
            guard index < bytes.count, bytes[index] == byte else { throw .brokenJSON }
            index += 1
        }

        /// A non-negative integer of at most nine digits (a close code).
        mutating func parseInteger() throws(SockJSPayloadError) -> Int {
            var value = 0
            var digits = 0
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9"), digits < 9 {
                value = value * 10 + Int(bytes[index] - UInt8(ascii: "0"))
                index += 1
                digits += 1
            }
            guard digits > 0 else { throw .brokenJSON }
            return value
        }

        mutating func parseMessageArray() throws(SockJSPayloadError) -> [String] {
            var messages: [String] = []
            messages.reserveCapacity(4)
            try forEachElement { parser throws(SockJSPayloadError) in messages.append(try parser.parseMessage(depth: 1)) }
            return messages
        }

        /// Walks a JSON array: `element` reads each element (whitespace around it is skipped here).
        @inline(__always)
        mutating func forEachElement(_ element: (inout Parser) throws(SockJSPayloadError) -> Void) throws(SockJSPayloadError) {
            try expect(UInt8(ascii: "["))
            skipWhitespace()
            if !atEnd, peek == UInt8(ascii: "]") {
                index += 1
                return
            }
            while true {
                skipWhitespace()
                try element(&self)
                skipWhitespace()
                guard !atEnd else { throw .brokenJSON }
                if peek == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                try expect(UInt8(ascii: "]"))
                return
            }
        }

        mutating func parseMessage(depth: Int) throws(SockJSPayloadError) -> String {
            guard !atEnd else { throw .brokenJSON }
            if peek == UInt8(ascii: "\"") {
                return try parseString()
            }
            let start = index
            try skipValue(depth: depth)
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        }

        mutating func parseString() throws(SockJSPayloadError) -> String {
            let (start, end, firstEscape) = try scanString()
            guard let escapesStart = firstEscape else {
                return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
            }
            // Unescaping never lengthens a string: decode straight into the String's storage, copying
            // the runs between escapes whole.
            var failed = false
            let input = bytes
            let repair = self.repair
            let text = String(unsafeUninitializedCapacity: end - start) { out in
                guard let written = Self.decode(input, from: start, firstEscape: escapesStart, to: end, into: out, repair: repair) else {
                    failed = true
                    return 0
                }
                return written
            }
            guard !failed else { throw .brokenJSON }
            return text
        }

        /// Finds the string that starts at `index` (its opening quote) and moves past it: the range of
        /// its content and where its first escape is, if it has one. Escapes are checked when decoded.
        mutating func scanString() throws(SockJSPayloadError) -> (start: Int, end: Int, firstEscape: Int?) {
            try expect(UInt8(ascii: "\""))
            let start = index
            var firstEscape: Int?
            while true {
                // Eight bytes at a time while none is `"`, `\\` or a control byte.
                while index + 8 <= bytes.count, !Self.mayEndString(bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                    index += 8
                }
                guard index < bytes.count else { throw .brokenJSON }
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    index += 1
                    return (start, index - 1, firstEscape)
                }
                if byte == UInt8(ascii: "\\") {
                    if firstEscape == nil { firstEscape = index }
                    index += 2
                } else if byte < 0x20 {
                    throw .brokenJSON
                } else {
                    index += 1
                }
            }
        }

        /// Where one message of an array is: a string's content (with where its first escape is, if
        /// it has one), or another JSON value's text.
        struct MessageSpan {
            var start: Int
            var end: Int
            var firstEscape: Int?
        }

        /// Finds one message without making a `String` (escapes are checked when decoded).
        mutating func scanMessage(depth: Int) throws(SockJSPayloadError) -> MessageSpan {
            guard !atEnd else { throw .brokenJSON }
            guard peek == UInt8(ascii: "\"") else {
                let start = index
                try skipValue(depth: depth)
                return MessageSpan(start: start, end: index, firstEscape: nil)
            }
            let (start, end, firstEscape) = try scanString()
            return MessageSpan(start: start, end: end, firstEscape: firstEscape)
        }

        /// The spans of every message of a JSON array, escapes checked: reading them cannot fail.
        mutating func parseMessageSpans() throws(SockJSPayloadError) -> [MessageSpan] {
            var spans: [MessageSpan] = []
            try forEachElement { parser throws(SockJSPayloadError) in
                let span = try parser.scanMessage(depth: 1)
                if span.firstEscape != nil, !Self.withMessage(span, in: parser.bytes, repair: parser.repair, { _ in }) { throw .brokenJSON }
                spans.append(span)
            }
            return spans
        }

        /// Calls `body` with the message's UTF-8 bytes: a slice of `input`, or, for a string with
        /// escapes, the string decoded into temporary memory. `false` for a bad escape.
        static func withMessage(
            _ span: MessageSpan,
            in input: UnsafeRawBufferPointer,
            repair: Repair,
            _ body: (UnsafeRawBufferPointer) -> Void
        ) -> Bool {
            guard let firstEscape = span.firstEscape else {
                body(UnsafeRawBufferPointer(rebasing: input[span.start..<span.end]))
                return true
            }
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: span.end - span.start) { out -> Bool in
                guard let written = decode(input, from: span.start, firstEscape: firstEscape, to: span.end, into: out, repair: repair) else {
                    return false
                }
                body(UnsafeRawBufferPointer(start: out.baseAddress, count: written))
                return true
            }
        }

        /// Decodes the string content `input[from..<to]`, whose first escape is at `firstEscape`, into
        /// `out`; the number of bytes written, or `nil` for a bad escape.
        static func decode(
            _ input: UnsafeRawBufferPointer,
            from start: Int,
            firstEscape: Int,
            to end: Int,
            into out: UnsafeMutableBufferPointer<UInt8>,
            repair: Repair
        ) -> Int? {
            let head = firstEscape - start
            if head > 0 {
                UnsafeMutableRawBufferPointer(out).copyMemory(from: UnsafeRawBufferPointer(rebasing: input[start..<firstEscape]))
            }
            return unescape(input, from: firstEscape, to: end, into: out, at: head, repair: repair)
        }

        /// Decodes the escaped JSON string bytes `input[from..<to]` into `out` from `offset`; the number of
        /// bytes then in `out`, or `nil` for a bad escape. Lone UTF-16 surrogates are a bad escape, or
        /// become U+FFFD with ``Repair/replaceWithU_FFFD``.
        static func unescape(
            _ input: UnsafeRawBufferPointer,
            from: Int,
            to end: Int,
            into out: UnsafeMutableBufferPointer<UInt8>,
            at offset: Int,
            repair: Repair
        ) -> Int? {
            var index = from
            var written = offset
            while index < end {
                let byte = input[index]
                guard byte == UInt8(ascii: "\\") else {
                    // A run up to the next escape, copied whole.
                    var runEnd = index + 1
                    while runEnd < end, input[runEnd] != UInt8(ascii: "\\") { runEnd += 1 }
                    UnsafeMutableRawPointer(out.baseAddress! + written).copyMemory(from: input.baseAddress! + index, byteCount: runEnd - index)
                    written += runEnd - index
                    index = runEnd
                    continue
                }
                guard index + 1 < end else { return nil }
                let escape = input[index + 1]
                index += 2
                let simple: UInt8
                switch escape {
                case UInt8(ascii: "\""): simple = UInt8(ascii: "\"")
                case UInt8(ascii: "\\"): simple = UInt8(ascii: "\\")
                case UInt8(ascii: "/"): simple = UInt8(ascii: "/")
                case UInt8(ascii: "b"): simple = 0x08
                case UInt8(ascii: "f"): simple = 0x0C
                case UInt8(ascii: "n"): simple = 0x0A
                case UInt8(ascii: "r"): simple = 0x0D
                case UInt8(ascii: "t"): simple = 0x09
                case UInt8(ascii: "u"):
                    guard let unit = hex4(input, at: index, end: end) else { return nil }
                    index += 4
                    var scalar = UInt32(unit)
                    if unit >= 0xD800 && unit < 0xDC00 {
                        // A high surrogate must be followed by an escaped low surrogate.
                        if index + 6 <= end, input[index] == UInt8(ascii: "\\"), input[index + 1] == UInt8(ascii: "u"),
                            let low = hex4(input, at: index + 2, end: end), low >= 0xDC00 && low < 0xE000
                        {
                            scalar = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                            index += 6
                        } else {
                            guard repair == .replaceWithU_FFFD else { return nil }
                            scalar = 0xFFFD
                        }
                    } else if unit >= 0xDC00 && unit < 0xE000 {
                        guard repair == .replaceWithU_FFFD else { return nil }
                        scalar = 0xFFFD
                    }
                    // Six input bytes (twelve for a pair) never give more than three (four) out.
                    UTF8.encode(Unicode.Scalar(scalar)!) { unit in
                        out[written] = unit
                        written += 1
                    }
                    continue
                default:
                    return nil
                }
                out[written] = simple
                written += 1
            }
            return written
        }

        /// Four hex digits at `index`, if they are there before `end`.
        static func hex4(_ input: UnsafeRawBufferPointer, at index: Int, end: Int) -> UInt16? {
            guard index + 4 <= end else { return nil }
            var value: UInt16 = 0
            for offset in 0..<4 {
                guard let digit = SockJSQuery.hexValue(input[index + offset]) else { return nil }
                value = value << 4 | UInt16(digit)
            }
            return value
        }

        /// Whether any of the eight bytes is `"`, `\\` or below 0x20 (SWAR; bytes ≥ 0x80 are plain here).
        @inline(__always)
        static func mayEndString(_ word: UInt64) -> Bool {
            SWAR.hasByte(UInt8(ascii: "\""), in: word) || SWAR.hasByte(UInt8(ascii: "\\"), in: word) || SWAR.hasByte(below: 0x20, in: word)
        }

        /// Validates and skips one JSON value of any kind.
        mutating func skipValue(depth: Int) throws(SockJSPayloadError) {
            guard depth <= SockJSPayload.maximumDepth else { throw .brokenJSON }
            skipWhitespace()
            guard !atEnd else { throw .brokenJSON }
            switch peek {
            case UInt8(ascii: "\""):
                _ = try parseString()
            case UInt8(ascii: "["):
                index += 1
                skipWhitespace()
                if !atEnd, peek == UInt8(ascii: "]") {
                    index += 1
                    return
                }
                while true {
                    try skipValue(depth: depth + 1)
                    skipWhitespace()
                    guard !atEnd else { throw .brokenJSON }
                    if peek == UInt8(ascii: ",") {
                        index += 1
                        continue
                    }
                    try expect(UInt8(ascii: "]"))
                    return
                }
            case UInt8(ascii: "{"):
                index += 1
                skipWhitespace()
                if !atEnd, peek == UInt8(ascii: "}") {
                    index += 1
                    return
                }
                while true {
                    skipWhitespace()
                    _ = try parseString()
                    skipWhitespace()
                    try expect(UInt8(ascii: ":"))
                    try skipValue(depth: depth + 1)
                    skipWhitespace()
                    guard !atEnd else { throw .brokenJSON }
                    if peek == UInt8(ascii: ",") {
                        index += 1
                        continue
                    }
                    try expect(UInt8(ascii: "}"))
                    return
                }
            case UInt8(ascii: "t"): try skipLiteral("true")
            case UInt8(ascii: "f"): try skipLiteral("false")
            case UInt8(ascii: "n"): try skipLiteral("null")
            default: try skipNumber()
            }
        }

        mutating func skipLiteral(_ literal: StaticString) throws(SockJSPayloadError) {
            let count = literal.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw .brokenJSON }
            for offset in 0..<count where bytes[index + offset] != literal.utf8Start[offset] {
                throw .brokenJSON
            }
            index += count
        }

        mutating func skipNumber() throws(SockJSPayloadError) {
            func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
            if !atEnd, peek == UInt8(ascii: "-") { index += 1 }
            guard !atEnd, isDigit(peek) else { throw .brokenJSON }
            if peek == UInt8(ascii: "0") {
                index += 1
            } else {
                while !atEnd, isDigit(peek) { index += 1 }
            }
            if !atEnd, peek == UInt8(ascii: ".") {
                index += 1
                guard !atEnd, isDigit(peek) else { throw .brokenJSON }
                while !atEnd, isDigit(peek) { index += 1 }
            }
            if !atEnd, peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                index += 1
                if !atEnd, peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
                guard !atEnd, isDigit(peek) else { throw .brokenJSON }
                while !atEnd, isDigit(peek) { index += 1 }
            }
        }
    }
}
