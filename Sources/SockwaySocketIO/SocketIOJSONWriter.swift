import NIOCore

extension SocketIOValue {
    /// Appends the value as JSON, byte for byte as JavaScript's `JSON.stringify` writes it.
    ///
    /// Strings escape `"`, `\` and control characters (`\b \f \n \r \t`, else lowercase `\u00xx`);
    /// everything else, non-ASCII included, is written raw as UTF-8. Numbers follow JavaScript's
    /// `Number.prototype.toString`: shortest round-trip digits, no decimal point for integers, exponent
    /// form only below 1e-6 or from 1e21 on; `-0` prints `0`, NaN and ±infinity print `null`.
    /// ``binary(_:)`` prints as Node's `Buffer.toJSON()` does, `{"type":"Buffer","data":[1,2]}`; the
    /// packet encoder turns binaries into attachment placeholders instead.
    public func writeJSON(into buffer: inout ByteBuffer) {
        var writer = SocketIOJSONWriter(attachments: nil)
        writer.write(self, into: &buffer)
    }

    /// The value as `JSON.stringify` would write it.
    public var jsonString: String {
        var buffer = ByteBuffer()
        writeJSON(into: &buffer)
        return String(buffer: buffer)
    }
}

/// Writes JSON; when `attachments` is non-nil, binaries become `{"_placeholder":true,"num":i}`
/// (depth-first order, as the reference's `deconstructPacket`) and are collected.
struct SocketIOJSONWriter {
    var attachments: [ByteBuffer]?

    mutating func write(_ value: SocketIOValue, into buffer: inout ByteBuffer) {
        switch value {
        case .null:
            buffer.writeStaticString("null")
        case .bool(let flag):
            buffer.writeStaticString(flag ? "true" : "false")
        case .number(let number):
            Self.writeNumber(number, into: &buffer)
        case .string(let string):
            Self.writeString(string, into: &buffer)
        case .array(let elements):
            buffer.writeInteger(UInt8(ascii: "["))
            for (position, element) in elements.enumerated() {
                if position > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
                write(element, into: &buffer)
            }
            buffer.writeInteger(UInt8(ascii: "]"))
        case .object(let members):
            buffer.writeInteger(UInt8(ascii: "{"))
            for (position, member) in members.enumerated() {
                if position > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
                Self.writeString(member.key, into: &buffer)
                buffer.writeInteger(UInt8(ascii: ":"))
                write(member.value, into: &buffer)
            }
            buffer.writeInteger(UInt8(ascii: "}"))
        case .binary(let bytes):
            if attachments != nil {
                buffer.writeStaticString(#"{"_placeholder":true,"num":"#)
                Self.writeInteger(Int64(attachments!.count), into: &buffer)
                buffer.writeInteger(UInt8(ascii: "}"))
                attachments!.append(bytes)
            } else {
                buffer.writeStaticString(#"{"type":"Buffer","data":["#)
                bytes.withUnsafeReadableBytes { raw in
                    for (position, byte) in raw.enumerated() {
                        if position > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
                        Self.writeInteger(Int64(byte), into: &buffer)
                    }
                }
                buffer.writeStaticString("]}")
            }
        }
    }

    // MARK: Strings

    /// Bytes that `JSON.stringify` escapes: control characters, `"` and `\`.
    @inline(__always)
    private static func needsEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\")
    }

    static func writeString(_ string: String, into buffer: inout ByteBuffer) {
        let done: Void? = string.utf8.withContiguousStorageIfAvailable { utf8 in
            writeString(utf8: UnsafeRawBufferPointer(utf8), into: &buffer)
        }
        if done == nil {
            var string = string
            string.withUTF8 { writeString(utf8: UnsafeRawBufferPointer($0), into: &buffer) }
        }
    }

    static func writeString(utf8: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "\""))
        // Plain runs are copied in one write each; only the escaped bytes go one by one.
        var runStart = 0
        for position in 0..<utf8.count {
            let byte = utf8[position]
            guard needsEscape(byte) else { continue }
            if position > runStart {
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: utf8[runStart..<position]))
            }
            runStart = position + 1
            switch byte {
            case UInt8(ascii: "\""): buffer.writeStaticString(#"\""#)
            case UInt8(ascii: "\\"): buffer.writeStaticString(#"\\"#)
            case 0x08: buffer.writeStaticString(#"\b"#)
            case 0x09: buffer.writeStaticString(#"\t"#)
            case 0x0A: buffer.writeStaticString(#"\n"#)
            case 0x0C: buffer.writeStaticString(#"\f"#)
            case 0x0D: buffer.writeStaticString(#"\r"#)
            default:
                let hex: StaticString = "0123456789abcdef"
                buffer.writeStaticString(#"\u00"#)
                buffer.writeInteger(hex.utf8Start[Int(byte >> 4)])
                buffer.writeInteger(hex.utf8Start[Int(byte & 0xF)])
            }
        }
        if utf8.count > runStart {
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: utf8[runStart..<utf8.count]))
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    // MARK: Numbers

    /// 2^53: every integer up to here is exact in a `Double` and prints digit for digit.
    private static let exactIntegerLimit: Double = 9_007_199_254_740_992

    static func writeNumber(_ number: Double, into buffer: inout ByteBuffer) {
        guard number.isFinite else {
            buffer.writeStaticString("null")
            return
        }
        if number.magnitude <= exactIntegerLimit, number == number.rounded(.towardZero) {
            // Also turns -0 into 0, as JavaScript prints it.
            writeInteger(Int64(number), into: &buffer)
            return
        }
        writeShortest(number, into: &buffer)
    }

    static func writeInteger(_ value: Int64, into buffer: inout ByteBuffer) {
        // At most 20 bytes: a sign and 19 digits.
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 20) { out in
            var magnitude = value.magnitude
            var length = 0
            var probe = magnitude
            repeat {
                length += 1
                probe /= 10
            } while probe > 0
            var written = 0
            if value < 0 {
                out[0] = UInt8(ascii: "-")
                written = 1
            }
            var position = written + length - 1
            repeat {
                out[position] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                position -= 1
            } while magnitude > 0
            return written + length
        }
    }

    /// JavaScript's Number::toString for a finite, non-integral or very large number. Swift's
    /// `description` already yields the shortest digits that round-trip (as JavaScript requires);
    /// only the layout differs, so the digits and the decimal exponent are taken from it and laid out
    /// again by ECMA-262's rules.
    private static func writeShortest(_ number: Double, into buffer: inout ByteBuffer) {
        let text = number.description
        // A fraction without an exponent is laid out by Swift as by JavaScript: the common case, and
        // usually a small string that needs no allocation. Integers (only those above 2^53 reach this
        // function) are kept off this path so that Swift's ".0" suffix can never be copied.
        if number != number.rounded(.towardZero), !text.utf8.contains(UInt8(ascii: "e")) {
            buffer.writeString(text)
            return
        }
        var digits: [UInt8] = []
        digits.reserveCapacity(20)
        var pointPosition = 0  // the value is 0.d1d2d3… × 10^pointPosition
        var exponent = 0
        var exponentNegative = false
        var inExponent = false
        var sawPoint = false
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if inExponent {
                    exponent = exponent * 10 + Int(byte - UInt8(ascii: "0"))
                } else {
                    digits.append(byte)
                    if !sawPoint { pointPosition += 1 }
                }
            case UInt8(ascii: "."):
                sawPoint = true
            case UInt8(ascii: "e"), UInt8(ascii: "E"):
                inExponent = true
            case UInt8(ascii: "-"):
                if inExponent { exponentNegative = true }  // else the number's sign, written below
            default:
                break  // "+"
            }
        }
        pointPosition += exponentNegative ? -exponent : exponent
        // Normalise to d1 ≠ 0 and no trailing zeros.
        var leading = 0
        while leading < digits.count - 1, digits[leading] == UInt8(ascii: "0") { leading += 1 }
        if leading > 0 {
            digits.removeFirst(leading)
            pointPosition -= leading
        }
        while digits.count > 1, digits.last == UInt8(ascii: "0") { digits.removeLast() }

        let k = digits.count
        let n = pointPosition
        if number < 0 { buffer.writeInteger(UInt8(ascii: "-")) }
        if k <= n && n <= 21 {
            buffer.writeBytes(digits)
            for _ in 0..<(n - k) { buffer.writeInteger(UInt8(ascii: "0")) }
        } else if 0 < n && n <= 21 {
            buffer.writeBytes(digits[0..<n])
            buffer.writeInteger(UInt8(ascii: "."))
            buffer.writeBytes(digits[n...])
        } else if -6 < n && n <= 0 {
            buffer.writeStaticString("0.")
            for _ in 0..<(-n) { buffer.writeInteger(UInt8(ascii: "0")) }
            buffer.writeBytes(digits)
        } else {
            let e = n - 1
            buffer.writeInteger(digits[0])
            if k > 1 {
                buffer.writeInteger(UInt8(ascii: "."))
                buffer.writeBytes(digits[1...])
            }
            buffer.writeInteger(UInt8(ascii: "e"))
            buffer.writeInteger(e < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
            writeInteger(Int64(e.magnitude), into: &buffer)
        }
    }
}
