import NIOCore

/// Strict base64 (RFC 4648 §4: standard alphabet, `=` padding), as Engine.IO v4 uses for binary
/// messages in polling payloads.
///
/// Decoding is stricter than the reference (Node's `Buffer.from(_, "base64")`, which skips bad
/// characters): the length must be a multiple of four, `=` may only end the text (at most two), no
/// character outside the alphabet is allowed (whitespace and the URL-safe `-` `_` neither), and
/// the bits that padding leaves over must be zero, so every byte string has exactly one encoding.
public enum EngineIOBase64 {
    /// The length of the base64 text for `byteCount` bytes: `4 × ⌈byteCount / 3⌉`.
    @inlinable
    public static func encodedByteCount(forByteCount byteCount: Int) -> Int {
        (byteCount + 2) / 3 * 4
    }

    /// An upper bound on the bytes that `encodedByteCount` characters of base64 decode to.
    @inlinable
    public static func maximumDecodedByteCount(forEncodedByteCount encodedByteCount: Int) -> Int {
        (encodedByteCount + 3) / 4 * 3
    }

    /// Writes the base64 text of `bytes`' readable bytes into `buffer`, without moving `bytes`' reader.
    public static func encode(_ bytes: ByteBuffer, into buffer: inout ByteBuffer) {
        bytes.withUnsafeReadableBytes { encode($0, into: &buffer) }
    }

    /// Writes the base64 text of `bytes` into `buffer`.
    public static func encode(_ bytes: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) {
        let outputCount = encodedByteCount(forByteCount: bytes.count)
        guard outputCount > 0 else { return }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: outputCount) { output in
            alphabet.withUnsafeBufferPointer { table in
                let count = bytes.count
                var input = 0
                var written = 0
                while input + 3 <= count {
                    let chunk = UInt32(bytes[input]) << 16 | UInt32(bytes[input + 1]) << 8 | UInt32(bytes[input + 2])
                    output[written] = table[Int(chunk >> 18)]
                    output[written + 1] = table[Int(chunk >> 12 & 0x3F)]
                    output[written + 2] = table[Int(chunk >> 6 & 0x3F)]
                    output[written + 3] = table[Int(chunk & 0x3F)]
                    input += 3
                    written += 4
                }
                let left = count - input
                if left > 0 {
                    let chunk = UInt32(bytes[input]) << 16 | (left == 2 ? UInt32(bytes[input + 1]) << 8 : 0)
                    output[written] = table[Int(chunk >> 18)]
                    output[written + 1] = table[Int(chunk >> 12 & 0x3F)]
                    output[written + 2] = left == 2 ? table[Int(chunk >> 6 & 0x3F)] : UInt8(ascii: "=")
                    output[written + 3] = UInt8(ascii: "=")
                    written += 4
                }
                return written
            }
        }
    }

    /// The base64 text of `bytes`.
    public static func encode(_ bytes: ByteBuffer) -> String {
        var buffer = ByteBufferAllocator().buffer(capacity: encodedByteCount(forByteCount: bytes.readableBytes))
        encode(bytes, into: &buffer)
        return String(buffer: buffer)
    }

    /// Decodes the base64 text in `text`'s readable bytes.
    /// - Throws: ``EngineIODecodingError/invalidBase64`` for anything but canonical padded base64.
    public static func decode(_ text: ByteBuffer) throws(EngineIODecodingError) -> ByteBuffer {
        try text.withUnsafeReadableBytes { encoded in decodeToBuffer(encoded) }.get()
    }

    /// Decodes the base64 text `text`.
    /// - Throws: ``EngineIODecodingError/invalidBase64`` for anything but canonical padded base64.
    public static func decode(_ text: String) throws(EngineIODecodingError) -> ByteBuffer {
        var text = text
        return try text.withUTF8 { utf8 in decodeToBuffer(UnsafeRawBufferPointer(utf8)) }.get()
    }

    static func decodeToBuffer(_ encoded: UnsafeRawBufferPointer) -> Result<ByteBuffer, EngineIODecodingError> {
        var buffer = ByteBufferAllocator().buffer(capacity: maximumDecodedByteCount(forEncodedByteCount: encoded.count))
        guard decode(encoded, into: &buffer) else { return .failure(.invalidBase64) }
        return .success(buffer)
    }

    /// Appends the bytes that the base64 text `encoded` stands for to `buffer`; `false`, with
    /// nothing written, if the text is not canonical padded base64.
    static func decode(_ encoded: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) -> Bool {
        let count = encoded.count
        guard count % 4 == 0 else { return false }
        guard count > 0 else { return true }
        let padding = encoded[count - 1] != UInt8(ascii: "=") ? 0 : (encoded[count - 2] == UInt8(ascii: "=") ? 2 : 1)
        let outputCount = count / 4 * 3 - padding
        var valid = true
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: outputCount) { output in
            valid = reverseAlphabet.withUnsafeBufferPointer { table -> Bool in
                let fullQuads = padding == 0 ? count / 4 : count / 4 - 1
                var input = 0
                var written = 0
                for _ in 0..<fullQuads {
                    let a = table[Int(encoded[input])]
                    let b = table[Int(encoded[input + 1])]
                    let c = table[Int(encoded[input + 2])]
                    let d = table[Int(encoded[input + 3])]
                    // Valid values are below 64, the invalid mark is 0xFF: one test covers all four.
                    guard (a | b | c | d) & 0xC0 == 0 else { return false }
                    output[written] = a << 2 | b >> 4
                    output[written + 1] = b << 4 | c >> 2
                    output[written + 2] = c << 6 | d
                    input += 4
                    written += 3
                }
                guard padding > 0 else { return true }
                let a = table[Int(encoded[input])]
                let b = table[Int(encoded[input + 1])]
                guard (a | b) & 0xC0 == 0 else { return false }
                output[written] = a << 2 | b >> 4
                if padding == 2 {
                    return b & 0x0F == 0
                }
                let c = table[Int(encoded[input + 2])]
                guard c & 0xC0 == 0, c & 0x03 == 0 else { return false }
                output[written + 1] = b << 4 | c >> 2
                return true
            }
            return valid ? outputCount : 0
        }
        return valid
    }

    static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// The 6-bit value of each byte, 0xFF for bytes outside the alphabet (`=` included).
    static let reverseAlphabet: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, byte) in alphabet.enumerated() {
            table[Int(byte)] = UInt8(value)
        }
        return table
    }()
}
