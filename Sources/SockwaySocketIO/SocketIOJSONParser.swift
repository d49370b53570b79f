import NIOCore

extension SocketIOValue {
    /// The default bound on nested arrays and objects: deep enough for any real payload, shallow enough
    /// that parsing (which recurses) cannot exhaust the stack.
    public static let defaultMaxNestingDepth = 64

    /// Parses one JSON value (RFC 8259, as `JSON.parse` accepts it) from UTF-8 bytes.
    ///
    /// Whitespace may surround the value; anything else after it is an error. Strings must be valid
    /// UTF-8 and may not hold raw control characters. An escaped lone surrogate (`\ud800` without its
    /// partner) becomes U+FFFD: a Swift `String` cannot hold it, and that is also what the JavaScript
    /// string turns into once it is written out as UTF-8. Numbers beyond `Double`'s range become
    /// ±infinity, as in JavaScript.
    ///
    /// - Parameters:
    ///   - bytes: the JSON text.
    ///   - maxNestingDepth: how many arrays/objects may enclose one another; deeper input
    ///     throws ``SocketIOError/jsonNestingTooDeep``.
    /// - Throws: ``SocketIOError/invalidJSON``, ``SocketIOError/invalidUTF8`` or
    ///   ``SocketIOError/jsonNestingTooDeep``.
    public init(parsingJSON bytes: UnsafeRawBufferPointer, maxNestingDepth: Int = defaultMaxNestingDepth) throws(SocketIOError) {
        var parser = SocketIOJSONParser(bytes: bytes, maxDepth: maxNestingDepth)
        self = try parser.parseDocument()
    }

    /// Parses one JSON value from the readable bytes of `buffer` (not consuming them).
    public init(parsingJSON buffer: ByteBuffer, maxNestingDepth: Int = defaultMaxNestingDepth) throws(SocketIOError) {
        let result = buffer.withUnsafeReadableBytes { bytes in
            Result { () throws(SocketIOError) in try SocketIOValue(parsingJSON: bytes, maxNestingDepth: maxNestingDepth) }
        }
        self = try result.get()
    }

    /// Parses one JSON value from `text`.
    public init(parsingJSON text: String, maxNestingDepth: Int = defaultMaxNestingDepth) throws(SocketIOError) {
        var text = text
        let result = text.withUTF8 { bytes in
            Result { () throws(SocketIOError) in
                try SocketIOValue(parsingJSON: UnsafeRawBufferPointer(bytes), maxNestingDepth: maxNestingDepth)
            }
        }
        self = try result.get()
    }
}

/// A recursive-descent JSON parser over a borrowed byte range.
struct SocketIOJSONParser {
    let bytes: UnsafeRawBufferPointer
    let maxDepth: Int
    var index = 0
    /// Reused for strings with escapes.
    var scratch: [UInt8] = []

    init(bytes: UnsafeRawBufferPointer, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    mutating func parseDocument() throws(SocketIOError) -> SocketIOValue {
        skipWhitespace()
        let value = try parseValue(depth: 0)
        skipWhitespace()
        guard index == bytes.count else { throw .invalidJSON }
        return value
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): index += 1
            default: return
            }
        }
    }

    /// `depth` counts the containers around the value being parsed.
    private mutating func parseValue(depth: Int) throws(SocketIOError) -> SocketIOValue {
        guard index < bytes.count else { throw .invalidJSON }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            guard depth < maxDepth else { throw .jsonNestingTooDeep }
            return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["):
            guard depth < maxDepth else { throw .jsonNestingTooDeep }
            return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try parseNumber())
        default:
            throw .invalidJSON
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(SocketIOError) {
        let count = literal.utf8CodeUnitCount
        guard bytes.count - index >= count else { throw .invalidJSON }
        let expected = literal.utf8Start
        for offset in 0..<count where bytes[index + offset] != expected[offset] {
            throw .invalidJSON
        }
        index += count
    }

    private mutating func parseArray(depth: Int) throws(SocketIOError) -> SocketIOValue {
        index += 1  // [
        var elements: [SocketIOValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            guard index < bytes.count else { throw .invalidJSON }
            let byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: "]") { return .array(elements) }
            guard byte == UInt8(ascii: ",") else { throw .invalidJSON }
        }
    }

    private mutating func parseObject(depth: Int) throws(SocketIOError) -> SocketIOValue {
        index += 1  // {
        var members: [SocketIOValue.Member] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw .invalidJSON }
            let key = try parseString()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw .invalidJSON }
            index += 1
            skipWhitespace()
            let value = try parseValue(depth: depth)
            members.append(SocketIOValue.Member(key, value))
            skipWhitespace()
            guard index < bytes.count else { throw .invalidJSON }
            let byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: "}") { return .object(members) }
            guard byte == UInt8(ascii: ",") else { throw .invalidJSON }
        }
    }

    /// Parses a string token; `index` is at its opening quote.
    private mutating func parseString() throws(SocketIOError) -> String {
        let start = index + 1
        var cursor = start
        var hasEscape = false
        var hasNonASCII = false
        // First pass: find the closing quote, and learn whether the slow paths are needed.
        while true {
            guard cursor < bytes.count else { throw .invalidJSON }
            let byte = bytes[cursor]
            if byte == UInt8(ascii: "\"") { break }
            if byte == UInt8(ascii: "\\") {
                hasEscape = true
                cursor += 2  // the escaped byte can be a quote; a bad one is caught in the second pass
                continue
            }
            if byte < 0x20 { throw .invalidJSON }
            if byte >= 0x80 { hasNonASCII = true }
            cursor += 1
        }
        let end = cursor
        index = end + 1
        let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
        // Escapes are ASCII, so the raw bytes are valid UTF-8 exactly when every run between them is.
        if hasNonASCII, !SocketIOUTF8.isValid(raw) { throw .invalidUTF8 }
        if !hasEscape {
            return String(decoding: raw, as: UTF8.self)
        }
        scratch.removeAll(keepingCapacity: true)
        scratch.reserveCapacity(raw.count)
        var position = 0
        while position < raw.count {
            let byte = raw[position]
            guard byte == UInt8(ascii: "\\") else {
                scratch.append(byte)
                position += 1
                continue
            }
            guard position + 1 < raw.count else { throw .invalidJSON }
            let escaped = raw[position + 1]
            position += 2
            switch escaped {
            case UInt8(ascii: "\""): scratch.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): scratch.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "/"): scratch.append(UInt8(ascii: "/"))
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0C)
            case UInt8(ascii: "n"): scratch.append(0x0A)
            case UInt8(ascii: "r"): scratch.append(0x0D)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "u"):
                let unit = try Self.hex4(raw, at: position)
                position += 4
                var scalar: UInt32 = 0xFFFD
                if unit >= 0xD800 && unit <= 0xDBFF {
                    // A high surrogate counts only with a low one right after it; alone it becomes U+FFFD
                    // and whatever follows is read on its own.
                    if position + 6 <= raw.count, raw[position] == UInt8(ascii: "\\"), raw[position + 1] == UInt8(ascii: "u") {
                        let low = try Self.hex4(raw, at: position + 2)
                        if low >= 0xDC00 && low <= 0xDFFF {
                            scalar = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                            position += 6
                        }
                    }
                } else if unit < 0xDC00 || unit > 0xDFFF {
                    scalar = UInt32(unit)
                }
                Self.appendUTF8(scalar, to: &scratch)
            default:
                throw .invalidJSON
            }
        }
        return String(decoding: scratch, as: UTF8.self)
    }

    private static func hex4(_ raw: UnsafeRawBufferPointer, at position: Int) throws(SocketIOError) -> UInt16 {
        guard position + 4 <= raw.count else { throw .invalidJSON }
        var value: UInt16 = 0
        for offset in 0..<4 {
            let byte = raw[position + offset]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw .invalidJSON
            }
            value = value << 4 | UInt16(digit)
        }
        return value
    }

    private static func appendUTF8(_ scalar: UInt32, to out: inout [UInt8]) {
        switch scalar {
        case 0..<0x80:
            out.append(UInt8(scalar))
        case 0x80..<0x800:
            out.append(UInt8(0xC0 | (scalar >> 6)))
            out.append(UInt8(0x80 | (scalar & 0x3F)))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | (scalar >> 12)))
            out.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (scalar & 0x3F)))
        default:
            out.append(UInt8(0xF0 | (scalar >> 18)))
            out.append(UInt8(0x80 | ((scalar >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (scalar & 0x3F)))
        }
    }

    /// Parses a number token with RFC 8259's grammar (stricter than `Double(_:)`, which also takes
    /// `inf`, hex and a leading `+`).
    private mutating func parseNumber() throws(SocketIOError) -> Double {
        let start = index
        var negative = false
        if bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        guard index < bytes.count, Self.isDigit(bytes[index]) else { throw .invalidJSON }
        var integer: UInt64 = 0
        var integerDigits = 0
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            integerDigits = 1
        } else {
            while index < bytes.count, Self.isDigit(bytes[index]) {
                if integerDigits < 19 { integer = integer &* 10 &+ UInt64(bytes[index] - UInt8(ascii: "0")) }
                integerDigits += 1
                index += 1
            }
        }
        var isIntegerToken = true
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            isIntegerToken = false
            index += 1
            guard index < bytes.count, Self.isDigit(bytes[index]) else { throw .invalidJSON }
            while index < bytes.count, Self.isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            isIntegerToken = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, Self.isDigit(bytes[index]) else { throw .invalidJSON }
            while index < bytes.count, Self.isDigit(bytes[index]) { index += 1 }
        }
        // Up to 15 digits an integer converts exactly; longer tokens go through the correctly rounded
        // library conversion.
        if isIntegerToken && integerDigits <= 15 {
            let magnitude = Double(integer)
            return negative ? -magnitude : magnitude
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(text) else { throw .invalidJSON }
        return value
    }

    @inline(__always)
    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }
}

/// UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
enum SocketIOUTF8 {
    static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        let count = bytes.count
        while index < count {
            let lead = bytes[index]
            if lead < 0x80 {
                index += 1
                continue
            }
            let length: Int
            var secondLow: UInt8 = 0x80
            var secondHigh: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF:
                length = 2
            case 0xE0...0xEF:
                length = 3
                if lead == 0xE0 { secondLow = 0xA0 }
                if lead == 0xED { secondHigh = 0x9F }
            case 0xF0...0xF4:
                length = 4
                if lead == 0xF0 { secondLow = 0x90 }
                if lead == 0xF4 { secondHigh = 0x8F }
            default:
                return false
            }
            guard count - index >= length else { return false }
            let second = bytes[index + 1]
            guard second >= secondLow && second <= secondHigh else { return false }
            for offset in 2..<max(length, 2) where bytes[index + offset] & 0xC0 != 0x80 {
                return false
            }
            index += length
        }
        return true
    }
}
