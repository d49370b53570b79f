import NIOCore

/// JSON string quoting with the SockJS escape set, written straight into a `ByteBuffer`.
///
/// Beyond standard JSON, SockJS servers escape code points that browsers or proxies mangle in transit:
/// U+200C–U+200F, U+2028–U+202F, U+2060–U+206F and U+FFF0–U+FFFF (as lowercase `\uxxxx`).
/// The `htmlSafe` flavour also escapes `<`, `>` and `&`, so that a quoted value can sit inside an HTML
/// `<script>` element (htmlfile) or a JSONP body without ending the element or opening a comment.
public enum SockJSJSON {
    /// How a byte is treated by the quoting fast path.
    @usableFromInline
    enum ByteClass: UInt8, Sendable {
        case plain = 0
        case escape = 1
        case htmlOnly = 2
        case leadE2 = 3
        case leadEF = 4
    }

    @usableFromInline
    static let byteClasses: [ByteClass] = {
        var table = [ByteClass](repeating: .plain, count: 256)
        for byte in 0..<0x20 { table[byte] = .escape }
        table[Int(UInt8(ascii: "\""))] = .escape
        table[Int(UInt8(ascii: "\\"))] = .escape
        table[Int(UInt8(ascii: "<"))] = .htmlOnly
        table[Int(UInt8(ascii: ">"))] = .htmlOnly
        table[Int(UInt8(ascii: "&"))] = .htmlOnly
        table[0xE2] = .leadE2
        table[0xEF] = .leadEF
        return table
    }()

    /// Appends `string` as a quoted JSON string literal.
    @inlinable
    public static func writeQuoted(_ string: String, into buffer: inout ByteBuffer, htmlSafe: Bool = false) {
        // Native strings are contiguous UTF-8: no copy, no uniqueness check.
        let done: Void? = string.utf8.withContiguousStorageIfAvailable { bytes in
            writeQuoted(utf8: UnsafeRawBufferPointer(bytes), into: &buffer, htmlSafe: htmlSafe)
        }
        if done == nil {
            var string = string
            string.withUTF8 { bytes in
                writeQuoted(utf8: UnsafeRawBufferPointer(bytes), into: &buffer, htmlSafe: htmlSafe)
            }
        }
    }

    /// Appends the UTF-8 text in `utf8` as a quoted JSON string literal.
    public static func writeQuoted(utf8: UnsafeRawBufferPointer, into buffer: inout ByteBuffer, htmlSafe: Bool = false) {
        // Most messages need no escape at all: one bounds-checked write of quote, bytes, quote.
        if isPlain(utf8, htmlSafe: htmlSafe) {
            let count = utf8.count
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count + 2) { out in
                out[0] = UInt8(ascii: "\"")
                if count > 0 {
                    out.baseAddress!.advanced(by: 1).copyMemory(from: utf8.baseAddress!, byteCount: count)
                }
                out[count + 1] = UInt8(ascii: "\"")
                return count + 2
            }
            return
        }
        // Escapes: written straight into the buffer's free memory; when it runs short (escapes grow the
        // text, up to six bytes per byte for `\u00XX`), ask for more and go on.
        buffer.writeInteger(UInt8(ascii: "\""))
        let count = utf8.count
        var index = 0
        var slowUntil = 0
        byteClasses.withUnsafeBufferPointer { classes in
            while index < count {
                buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: min(count - index, 1 << 16) + 16) { out in
                    var written = 0
                    // Each step writes at most eight bytes (a plain word) or six (an escape).
                    while index < count, written + 8 <= out.count {
                        // Eight plain bytes at a time; after a word that needs a look, byte by byte past it.
                        if index >= slowUntil && index + 8 <= count {
                            let word = utf8.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                            if isPlainWord(word, htmlSafe: htmlSafe) {
                                out.storeBytes(of: word, toByteOffset: written, as: UInt64.self)
                                written += 8
                                index += 8
                                continue
                            }
                            slowUntil = index + 8
                        }
                        let byte = utf8[index]
                        switch classes[Int(byte)] {
                        case .plain:
                            break
                        case .htmlOnly where !htmlSafe:
                            break
                        case .leadE2:
                            // U+200C–200F: E2 80 8C–8F; U+2028–202F: E2 80 A8–AF; U+2060–206F: E2 81 A0–AF.
                            if index + 2 < count {
                                let b1 = utf8[index + 1]
                                let b2 = utf8[index + 2]
                                let escaped =
                                    (b1 == 0x80 && ((b2 >= 0x8C && b2 <= 0x8F) || (b2 >= 0xA8 && b2 <= 0xAF)))
                                    || (b1 == 0x81 && b2 >= 0xA0 && b2 <= 0xAF)
                                if escaped {
                                    written += writeUnicodeEscape(0x2000 | (UInt16(b1 & 0x3F) << 6) | UInt16(b2 & 0x3F), into: out, at: written)
                                    index += 3
                                    continue
                                }
                            }
                        case .leadEF:
                            // U+FFF0–FFFF: EF BF B0–BF.
                            if index + 2 < count, utf8[index + 1] == 0xBF, utf8[index + 2] >= 0xB0 {
                                written += writeUnicodeEscape(0xFFC0 | UInt16(utf8[index + 2] & 0x3F), into: out, at: written)
                                index += 3
                                continue
                            }
                        case .escape, .htmlOnly:
                            let short: UInt8
                            switch byte {
                            case UInt8(ascii: "\""): short = UInt8(ascii: "\"")
                            case UInt8(ascii: "\\"): short = UInt8(ascii: "\\")
                            case 0x08: short = UInt8(ascii: "b")
                            case 0x09: short = UInt8(ascii: "t")
                            case 0x0A: short = UInt8(ascii: "n")
                            case 0x0C: short = UInt8(ascii: "f")
                            case 0x0D: short = UInt8(ascii: "r")
                            default: short = 0
                            }
                            if short != 0 {
                                out[written] = UInt8(ascii: "\\")
                                out[written + 1] = short
                                written += 2
                            } else {
                                written += writeUnicodeEscape(UInt16(byte), into: out, at: written)
                            }
                            index += 1
                            continue
                        }
                        out[written] = byte
                        written += 1
                        index += 1
                    }
                    return written
                }
            }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    /// Whether no byte of `utf8` needs escaping (conservatively: any byte ≥ 0x80 says no).
    @inlinable
    static func isPlain(_ utf8: UnsafeRawBufferPointer, htmlSafe: Bool) -> Bool {
        let count = utf8.count
        var index = 0
        while index + 8 <= count {
            guard isPlainWord(utf8.loadUnaligned(fromByteOffset: index, as: UInt64.self), htmlSafe: htmlSafe) else { return false }
            index += 8
        }
        while index < count {
            let byte = utf8[index]
            if byte >= 0x80 || byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { return false }
            if htmlSafe && (byte == UInt8(ascii: "<") || byte == UInt8(ascii: ">") || byte == UInt8(ascii: "&")) { return false }
            index += 1
        }
        return true
    }

    /// Whether none of the eight bytes needs escaping or a closer look (SWAR: no byte ≥ 0x80,
    /// < 0x20, `"` or `\\`, nor `<`, `>`, `&` when `htmlSafe`).
    @inlinable
    static func isPlainWord(_ word: UInt64, htmlSafe: Bool) -> Bool {
        if word & SWAR.highs != 0 || SWAR.hasByte(below: 0x20, in: word) { return false }
        if SWAR.hasByte(UInt8(ascii: "\""), in: word) || SWAR.hasByte(UInt8(ascii: "\\"), in: word) { return false }
        if htmlSafe && (SWAR.hasByte(UInt8(ascii: "<"), in: word) || SWAR.hasByte(UInt8(ascii: ">"), in: word) || SWAR.hasByte(UInt8(ascii: "&"), in: word)) {
            return false
        }
        return true
    }

    /// Writes `\uXXXX` (lowercase hex) at `offset`; returns 6.
    @inline(__always)
    private static func writeUnicodeEscape(_ unit: UInt16, into out: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        let hex: StaticString = "0123456789abcdef"
        let digits = hex.utf8Start
        out[offset] = UInt8(ascii: "\\")
        out[offset + 1] = UInt8(ascii: "u")
        out[offset + 2] = digits[Int(unit >> 12)]
        out[offset + 3] = digits[Int((unit >> 8) & 0xF)]
        out[offset + 4] = digits[Int((unit >> 4) & 0xF)]
        out[offset + 5] = digits[Int(unit & 0xF)]
        return 6
    }

    /// Returns `string` quoted, as a `String` (convenience for tests and cold paths).
    public static func quoted(_ string: String, htmlSafe: Bool = false) -> String {
        var buffer = ByteBuffer()
        writeQuoted(string, into: &buffer, htmlSafe: htmlSafe)
        return String(buffer: buffer)
    }
}

/// Eight bytes at a time (SWAR): whether a word holds a given byte, or a byte below a bound. Exact for
/// "any byte", which is all the scanners ask.
@usableFromInline
package enum SWAR {
    @usableFromInline package static let ones: UInt64 = 0x0101_0101_0101_0101
    @usableFromInline package static let highs: UInt64 = 0x8080_8080_8080_8080

    @inlinable
    package static func hasByte(_ byte: UInt8, in word: UInt64) -> Bool {
        hasByte(below: 1, in: word ^ (ones &* UInt64(byte)))
    }

    /// Any byte below `bound` (at most 0x80).
    @inlinable
    package static func hasByte(below bound: UInt8, in word: UInt64) -> Bool {
        (word &- ones &* UInt64(bound)) & ~word & highs != 0
    }
}
