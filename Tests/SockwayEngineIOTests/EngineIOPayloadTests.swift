import NIOCore
import Testing

@testable import SockwayEngineIO

/// Engine.IO v4 "Packet encoding / HTTP long-polling": packets joined by `\x1e`, binary as `b<base64>`.
@Suite("Engine.IO polling payloads")
struct EngineIOPayloadTests {
    func decode(_ text: String, maxPayload: Int = EngineIOPayload.defaultMaxPayload) throws(EngineIODecodingError) -> [EngineIOPacket] {
        try EngineIOPayload.decode(ByteBuffer(string: text), maxPayload: maxPayload)
    }

    func encode(_ packets: [EngineIOPacket]) -> String {
        var buffer = ByteBuffer()
        EngineIOPayload.encode(packets, into: &buffer)
        #expect(buffer.readableBytes == EngineIOPayload.encodedByteCount(of: packets))
        return String(buffer: buffer)
    }

    // MARK: The spec's examples

    @Test("Spec example `4hello\\x1e2\\x1e4world` is a message, a ping and a message")
    func specExampleText() throws {
        #expect(try decode("4hello\u{1E}2\u{1E}4world") == [.message("hello"), .ping, .message("world")])
        #expect(encode([.message("hello"), .ping, .message("world")]) == "4hello\u{1E}2\u{1E}4world")
    }

    @Test("Spec example `4hello\\x1ebAQIDBA==` is a message and the binary message 01 02 03 04")
    func specExampleBinary() throws {
        let packets: [EngineIOPacket] = [.message("hello"), .message(binary: ByteBuffer(bytes: [1, 2, 3, 4]))]
        #expect(try decode("4hello\u{1E}bAQIDBA==") == packets)
        #expect(encode(packets) == "4hello\u{1E}bAQIDBA==")
    }

    @Test("Test-suite payload `4test1\\x1e4test2\\x1e4test3` round-trips")
    func testSuitePayload() throws {
        let packets = try decode("4test1\u{1E}4test2\u{1E}4test3")
        #expect(packets == [.message("test1"), .message("test2"), .message("test3")])
        #expect(encode(packets) == "4test1\u{1E}4test2\u{1E}4test3")
    }

    // MARK: Decoding

    @Test("A single packet without separator decodes", arguments: [
        ("4hello", EngineIOPacket.message("hello")), ("3", .pong), ("1", .close), ("2probe", .pingProbe), ("b", .message(binary: ByteBuffer())),
    ])
    func singlePacket(text: String, packet: EngineIOPacket) throws {
        #expect(try decode(text) == [packet])
    }

    @Test("`€` is three bytes of UTF-8 and survives a round trip")
    func multibyte() throws {
        let body = ByteBuffer(bytes: [0x34, 0xE2, 0x82, 0xAC, 0x1E, 0x34, 0xF0, 0x9F, 0x98, 0x80])
        let packets = try EngineIOPayload.decode(body)
        #expect(packets == [.message("€"), .message("😀")])
        var encoded = ByteBuffer()
        EngineIOPayload.encode(packets, into: &encoded)
        #expect(encoded == body)
    }

    @Test("A body of exactly maxPayload bytes is accepted; one byte more is refused")
    func maxPayloadBoundary() throws {
        #expect(try decode("4hello", maxPayload: 6) == [.message("hello")])
        #expect(throws: EngineIODecodingError.payloadTooLarge(limit: 5)) { try decode("4hello", maxPayload: 5) }
    }

    @Test("maxPayload counts bytes, not characters")
    func maxPayloadCountsBytes() throws {
        #expect(try decode("4€", maxPayload: 4) == [.message("€")])
        #expect(throws: EngineIODecodingError.payloadTooLarge(limit: 3)) { try decode("4€", maxPayload: 3) }
    }

    @Test("The size is checked before anything else")
    func sizeFirst() {
        #expect(throws: EngineIODecodingError.payloadTooLarge(limit: 1)) { try decode("abc", maxPayload: 1) }
        #expect(throws: EngineIODecodingError.payloadTooLarge(limit: 0)) { try decode("4", maxPayload: 0) }
    }

    @Test("Too large maps to HTTP 413, every other decoding error to 400")
    func errorStatus() {
        #expect(EngineIODecodingError.payloadTooLarge(limit: 1).httpStatus == 413)
        for error in [EngineIODecodingError.invalidUTF8, .emptyPacket, .unknownPacketType(0x61), .invalidBase64] {
            #expect(error.httpStatus == 400)
        }
    }

    @Test("A body that is not UTF-8 is refused", arguments: [
        [0x34, 0xFF], [0x34, 0xC3], [0x34, 0xC0, 0x80], [0x34, 0xED, 0xA0, 0x80], [0x34, 0xF4, 0x90, 0x80, 0x80], [0x34, 0xE2, 0x82],
    ] as [[UInt8]])
    func invalidUTF8(bytes: [UInt8]) {
        #expect(throws: EngineIODecodingError.invalidUTF8) { try EngineIOPayload.decode(ByteBuffer(bytes: bytes)) }
    }

    @Test("The test suite's bad payload `abc` is an unknown packet type")
    func unknownType() {
        #expect(throws: EngineIODecodingError.unknownPacketType(UInt8(ascii: "a"))) { try decode("abc") }
        #expect(throws: EngineIODecodingError.unknownPacketType(UInt8(ascii: "7"))) { try decode("4ok\u{1E}7") }
    }

    @Test("Empty packets are refused: empty body, leading, trailing or doubled separator", arguments: [
        "", "\u{1E}", "\u{1E}4a", "4a\u{1E}", "4a\u{1E}\u{1E}4b",
    ])
    func emptyPackets(text: String) {
        #expect(throws: EngineIODecodingError.emptyPacket) { try decode(text) }
    }

    @Test("Bad base64 after `b` is refused", arguments: ["bAQIDBA=", "bAQI*BA==", "bAQIDBA===", "b====", "bA", "bAQ=D", "bAR==", "b AQIDBA=="])
    func badBase64(text: String) {
        #expect(throws: EngineIODecodingError.invalidBase64) { try decode(text) }
    }

    @Test("The callback form delivers the packets before a bad one, as the reference does")
    func callbackDeliversUntilError() {
        var seen: [EngineIOPacket] = []
        #expect(throws: EngineIODecodingError.unknownPacketType(UInt8(ascii: "x"))) {
            try EngineIOPayload.decode(ByteBuffer(string: "4a\u{1E}2\u{1E}x\u{1E}4b")) { seen.append($0) }
        }
        #expect(seen == [.message("a"), .ping])
    }

    @Test("The callback form delivers nothing when the whole body is too large or not UTF-8")
    func callbackBodyChecksFirst() {
        var seen: [EngineIOPacket] = []
        #expect(throws: EngineIODecodingError.invalidUTF8) {
            try EngineIOPayload.decode(ByteBuffer(bytes: [0x34, 0x61, 0x1E, 0x34, 0xFF])) { seen.append($0) }
        }
        #expect(throws: EngineIODecodingError.payloadTooLarge(limit: 3)) {
            try EngineIOPayload.decode(ByteBuffer(string: "4a\u{1E}4b"), maxPayload: 3) { seen.append($0) }
        }
        #expect(seen.isEmpty)
    }

    @Test("Decoding reads only the readable bytes and leaves the reader index alone")
    func readerIndex() throws {
        var body = ByteBuffer(string: "zz4a\u{1E}4b")
        body.moveReaderIndex(forwardBy: 2)
        #expect(try EngineIOPayload.decode(body) == [.message("a"), .message("b")])
        #expect(body.readableBytes == 5)
    }

    @Test("A long body with many packets and runs longer than eight bytes decodes")
    func longBody() throws {
        let packets = (0..<500).map { EngineIOPacket.message(String(repeating: "é", count: $0 % 17) + "\($0)") }
        var body = ByteBuffer()
        EngineIOPayload.encode(packets, into: &body)
        #expect(try EngineIOPayload.decode(body) == packets)
    }

    // MARK: Encoding

    @Test("No packets is an empty body; one packet has no separator")
    func encodeEdges() {
        #expect(encode([]) == "")
        #expect(encode([.noop]) == "6")
        #expect(encode([.close]) == "1")
    }

    @Test("Encoding appends to what the buffer holds")
    func encodeAppends() {
        var buffer = ByteBuffer(string: "X")
        EngineIOPayload.encode([EngineIOPacket.ping, .message("a")], into: &buffer)
        #expect(String(buffer: buffer) == "X2\u{1E}4a")
    }

    @Test("Binary messages are base64 with `b`; a binary payload on another type is still a message")
    func encodeBinary() {
        #expect(encode([.message(binary: ByteBuffer(bytes: [0xFF, 0xEE]))]) == "b/+4=")
        #expect(encode([.message(binary: ByteBuffer())]) == "b")
        #expect(encode([EngineIOPacket(type: .ping, payload: .binary(ByteBuffer(bytes: [1])))]) == "bAQ==")
    }

    @Test("Binary round-trips through a payload, all 256 byte values included")
    func binaryRoundTrip() throws {
        let all = ByteBuffer(bytes: (0...255).map { UInt8($0) })
        let packets: [EngineIOPacket] = [
            .message(binary: all), .message("between"), .message(binary: ByteBuffer(bytes: [1])),
            .message(binary: ByteBuffer(bytes: [1, 2])), .message(binary: ByteBuffer(bytes: [1, 2, 3])),
        ]
        var body = ByteBuffer()
        EngineIOPayload.encode(packets, into: &body)
        #expect(try EngineIOPayload.decode(body) == packets)
    }

    @Test("Encoding leaves the packets' buffers untouched")
    func encodeDoesNotConsume() {
        let bytes = ByteBuffer(bytes: [1, 2, 3])
        let packets = [EngineIOPacket.message(binary: bytes)]
        #expect(encode(packets) == "bAQID")
        #expect(encode(packets) == "bAQID")
        #expect(packets[0].binary == bytes)
    }

    @Test("pollingByteCount is exact for each kind of packet")
    func pollingByteCount() {
        #expect(EngineIOPacket.ping.pollingByteCount == 1)
        #expect(EngineIOPacket.message("€").pollingByteCount == 4)
        #expect(EngineIOPacket.message(binary: ByteBuffer(bytes: [1, 2, 3, 4])).pollingByteCount == 9)
        #expect(EngineIOPayload.encodedByteCount(of: [EngineIOPacket]()) == 0)
        #expect(EngineIOPayload.encodedByteCount(of: [EngineIOPacket.ping, .ping]) == 3)
    }

    @Test("Text with a record separator cannot travel as one packet")
    func canCarry() {
        #expect(EngineIOPayload.canCarry("hello €"))
        #expect(!EngineIOPayload.canCarry("a\u{1E}b"))
    }

    // MARK: UTF-8 validation

    @Test("The UTF-8 validator accepts the boundaries of every sequence length")
    func utf8Boundaries() {
        let valid: [[UInt8]] = [
            [0x7F], [0xC2, 0x80], [0xDF, 0xBF], [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF], [0xEE, 0x80, 0x80],
            [0xEF, 0xBF, 0xBF], [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF], Array("abcdefghijklmnopq€".utf8),
        ]
        for bytes in valid {
            #expect(bytes.withUnsafeBytes { EngineIOUTF8.isValid($0) }, "\(bytes)")
        }
        let invalid: [[UInt8]] = [
            [0x80], [0xC1, 0xBF], [0xE0, 0x9F, 0xBF], [0xED, 0xA0, 0x80], [0xF0, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80],
            [0xF5, 0x80, 0x80, 0x80], [0xC2, 0x41], [0xE2, 0x82, 0x41], Array("abcdefghijklmnop".utf8) + [0xE2],
        ]
        for bytes in invalid {
            #expect(!bytes.withUnsafeBytes { EngineIOUTF8.isValid($0) }, "\(bytes)")
        }
    }
}
