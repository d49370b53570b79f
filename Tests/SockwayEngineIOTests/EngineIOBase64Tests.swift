import NIOCore
import Testing

@testable import SockwayEngineIO

/// RFC 4648 §4 base64 with padding, decoded strictly.
@Suite("Engine.IO base64")
struct EngineIOBase64Tests {
    @Test("RFC 4648 §10 test vectors encode and decode", arguments: [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy"),
    ])
    func rfcVectors(plain: String, encoded: String) throws {
        #expect(EngineIOBase64.encode(ByteBuffer(string: plain)) == encoded)
        #expect(try EngineIOBase64.decode(encoded) == ByteBuffer(string: plain))
        #expect(try EngineIOBase64.decode(ByteBuffer(string: encoded)) == ByteBuffer(string: plain))
    }

    @Test("Bytes that use `+` and `/` and every sextet round-trip")
    func everyByte() throws {
        let bytes = ByteBuffer(bytes: (0...255).map { UInt8($0) } + (0...255).reversed().map { UInt8($0) })
        let text = EngineIOBase64.encode(bytes)
        #expect(text.utf8.count == EngineIOBase64.encodedByteCount(forByteCount: 512))
        #expect(text.hasPrefix("AAECAwQF"))
        #expect(text.contains("+") && text.contains("/"))
        #expect(try EngineIOBase64.decode(text) == bytes)
    }

    @Test("Every length from 0 to 40 round-trips")
    func lengths() throws {
        for length in 0...40 {
            let bytes = ByteBuffer(bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })
            #expect(try EngineIOBase64.decode(EngineIOBase64.encode(bytes)) == bytes, "length \(length)")
        }
    }

    @Test("Decoding refuses what is not canonical padded base64", arguments: [
        "A", "AA", "AAA", "AAAAA", // length not a multiple of four
        "AA=A", "A===", "====", "=AAA", "AAAA====", "AA==AAAA", // padding misplaced
        "AA-A", "AA_A", "AA A", "AA\nA", "AAA\u{0}", "AAé=", // outside the alphabet
        "AB==", "AAB=", "Zh==", "Zm9=", // non-zero bits under the padding
    ])
    func refuses(text: String) {
        #expect(throws: EngineIODecodingError.invalidBase64) { try EngineIOBase64.decode(text) }
    }

    @Test("A failed decode writes nothing into the target buffer")
    func failedDecodeWritesNothing() {
        var buffer = ByteBuffer(string: "keep")
        let ok = "AAAA!AAA".utf8.withContiguousStorageIfAvailable { EngineIOBase64.decode(UnsafeRawBufferPointer($0), into: &buffer) }
        #expect(ok == false)
        #expect(String(buffer: buffer) == "keep")
    }

    @Test("Sizes: 4 characters per 3 bytes, rounded up")
    func sizes() {
        #expect(EngineIOBase64.encodedByteCount(forByteCount: 0) == 0)
        #expect(EngineIOBase64.encodedByteCount(forByteCount: 1) == 4)
        #expect(EngineIOBase64.encodedByteCount(forByteCount: 3) == 4)
        #expect(EngineIOBase64.encodedByteCount(forByteCount: 4) == 8)
        #expect(EngineIOBase64.maximumDecodedByteCount(forEncodedByteCount: 8) == 6)
    }

    @Test("Encoding reads only readable bytes")
    func readerIndex() {
        var bytes = ByteBuffer(bytes: [0xFF, 1, 2, 3, 4])
        bytes.moveReaderIndex(forwardBy: 1)
        #expect(EngineIOBase64.encode(bytes) == "AQIDBA==")
    }
}
