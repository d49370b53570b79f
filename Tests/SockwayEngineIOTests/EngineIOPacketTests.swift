import NIOCore
import Testing

@testable import SockwayEngineIO

/// Engine.IO v4 "Packet encoding / WebSocket": one packet per frame, `<type>[<data>]` as text,
/// binary messages as raw bytes.
@Suite("Engine.IO packets over WebSocket")
struct EngineIOPacketTests {
    func frame(_ packet: EngineIOPacket) -> (kind: EngineIOPacket.WebSocketFrameKind, text: String, bytes: [UInt8]) {
        var buffer = ByteBuffer()
        packet.writeWebSocketFrameData(into: &buffer)
        return (packet.webSocketFrameKind, String(buffer: buffer), Array(buffer.readableBytesView))
    }

    func decodeText(_ text: String) throws(EngineIODecodingError) -> EngineIOPacket {
        try EngineIOPacket.decodeWebSocketFrame(ByteBuffer(string: text), kind: .text)
    }

    @Test("Every type digit is the type's number, 0 to 6")
    func typeDigits() {
        let expected: [(EngineIOPacket.PacketType, String)] = [
            (.open, "0"), (.close, "1"), (.ping, "2"), (.pong, "3"), (.message, "4"), (.upgrade, "5"), (.noop, "6"),
        ]
        for (type, digit) in expected {
            #expect(frame(EngineIOPacket(type: type)).text == digit)
            #expect(EngineIOPacket.PacketType(wireByte: Array(digit.utf8)[0]) == type)
        }
        #expect(EngineIOPacket.PacketType.allCases.count == 7)
    }

    @Test("A byte that is no type digit has no packet type")
    func nonDigitsHaveNoType() {
        for byte in [UInt8(ascii: "7"), UInt8(ascii: "9"), UInt8(ascii: "/"), UInt8(ascii: "a"), 0, 0xFF] {
            #expect(EngineIOPacket.PacketType(wireByte: byte) == nil)
        }
    }

    @Test("A text message is a text frame `4<text>`")
    func textMessageEncodes() {
        let encoded = frame(.message("hello"))
        #expect(encoded.kind == .text)
        #expect(encoded.text == "4hello")
        #expect(EngineIOPacket.message("hello").webSocketFrameByteCount == 6)
    }

    @Test("The probe packets are `2probe` and `3probe`")
    func probes() {
        #expect(frame(.pingProbe).text == "2probe")
        #expect(frame(.pongProbe).text == "3probe")
        #expect(frame(.ping).text == "2")
        #expect(frame(.noop).text == "6")
        #expect(frame(.upgrade).text == "5")
        #expect(frame(.close).text == "1")
    }

    @Test("Multibyte UTF-8 text is written as its UTF-8 bytes")
    func multibyteText() throws {
        let packet = EngineIOPacket.message("€ 😀")
        let encoded = frame(packet)
        #expect(encoded.bytes == [0x34, 0xE2, 0x82, 0xAC, 0x20, 0xF0, 0x9F, 0x98, 0x80])
        #expect(packet.webSocketFrameByteCount == encoded.bytes.count)
        #expect(try decodeText(encoded.text) == packet)
    }

    @Test("A binary message is a binary frame holding only the raw bytes")
    func binaryMessageEncodes() {
        let packet = EngineIOPacket.message(binary: ByteBuffer(bytes: [1, 2, 3, 4]))
        let encoded = frame(packet)
        #expect(encoded.kind == .binary)
        #expect(encoded.bytes == [1, 2, 3, 4])
        #expect(packet.webSocketFrameByteCount == 4)
        let whole = packet.webSocketFrame()
        #expect(whole.kind == .binary)
        #expect(whole.data == ByteBuffer(bytes: [1, 2, 3, 4]))
    }

    @Test("A binary payload is a message whatever the packet's type says")
    func binaryIgnoresType() {
        let packet = EngineIOPacket(type: .ping, payload: .binary(ByteBuffer(bytes: [9])))
        let encoded = frame(packet)
        #expect(encoded.kind == .binary)
        #expect(encoded.bytes == [9])
    }

    @Test("Empty text is no payload")
    func emptyTextIsNoPayload() {
        #expect(EngineIOPacket.message("") == EngineIOPacket(type: .message))
        #expect(frame(.message("")).text == "4")
    }

    @Test("webSocketFrame gives a text frame with the same bytes as writeWebSocketFrameData")
    func wholeTextFrame() {
        let whole = EngineIOPacket.message("hi").webSocketFrame()
        #expect(whole.kind == .text)
        #expect(String(buffer: whole.data) == "4hi")
    }

    @Test("Writing a frame does not disturb what the buffer already holds nor the packet's bytes")
    func writeAppends() {
        let bytes = ByteBuffer(bytes: [7, 8])
        let packet = EngineIOPacket.message(binary: bytes)
        var buffer = ByteBuffer(string: "x")
        packet.writeWebSocketFrameData(into: &buffer)
        packet.writeWebSocketFrameData(into: &buffer)
        #expect(Array(buffer.readableBytesView) == [UInt8(ascii: "x"), 7, 8, 7, 8])
        #expect(packet.binary == bytes)
    }

    // MARK: Decoding

    @Test("A text frame decodes to its type and text", arguments: [
        ("4hello", EngineIOPacket.message("hello")),
        ("2probe", EngineIOPacket.pingProbe),
        ("3probe", EngineIOPacket.pongProbe),
        ("2", EngineIOPacket.ping),
        ("3", EngineIOPacket.pong),
        ("5", EngineIOPacket.upgrade),
        ("6", EngineIOPacket.noop),
        ("1", EngineIOPacket.close),
        ("4", EngineIOPacket(type: .message)),
        ("0{\"sid\":\"x\"}", EngineIOPacket(type: .open, text: "{\"sid\":\"x\"}")),
        ("44", EngineIOPacket.message("4")),
        ("4\u{1E}", EngineIOPacket.message("\u{1E}")),
    ])
    func textFrameDecodes(text: String, packet: EngineIOPacket) throws {
        #expect(try decodeText(text) == packet)
    }

    @Test("A binary frame is a binary message, even an empty one or one starting with a digit")
    func binaryFrameDecodes() throws {
        for bytes in [[1, 2, 3, 4], [], [UInt8(ascii: "4"), UInt8(ascii: "x")], [0xFF, 0xFE]] as [[UInt8]] {
            let packet = try EngineIOPacket.decodeWebSocketFrame(ByteBuffer(bytes: bytes), kind: .binary)
            #expect(packet == .message(binary: ByteBuffer(bytes: bytes)))
            #expect(packet.type == .message)
        }
    }

    @Test("As in the reference parser, a text frame `b<base64>` is a binary message")
    func base64TextFrame() throws {
        #expect(try decodeText("bAQIDBA==") == .message(binary: ByteBuffer(bytes: [1, 2, 3, 4])))
        #expect(throws: EngineIODecodingError.invalidBase64) { try decodeText("bAQID!A==") }
    }

    @Test("Every packet round-trips through a WebSocket frame", arguments: [
        EngineIOPacket.message("hello"), .message("€"), .ping, .pong, .pingProbe, .pongProbe, .noop, .upgrade, .close,
        .message(binary: ByteBuffer(bytes: [0, 1, 0xFF])), .message(binary: ByteBuffer()),
        EngineIOPacket(type: .open, text: "{}"),
    ])
    func roundTrip(packet: EngineIOPacket) throws {
        let (kind, data) = packet.webSocketFrame()
        #expect(try EngineIOPacket.decodeWebSocketFrame(data, kind: kind) == packet)
    }

    @Test("An empty text frame is refused")
    func emptyTextFrame() {
        #expect(throws: EngineIODecodingError.emptyPacket) { try decodeText("") }
    }

    @Test("A text frame that starts with no type digit is refused", arguments: ["abc", "7", "9x", " 4hello", "{}", "-1"])
    func unknownType(text: String) {
        #expect(throws: EngineIODecodingError.unknownPacketType(Array(text.utf8)[0])) { try decodeText(text) }
    }

    @Test("A text frame that is not UTF-8 is refused")
    func invalidUTF8Frame() {
        #expect(throws: EngineIODecodingError.invalidUTF8) {
            try EngineIOPacket.decodeWebSocketFrame(ByteBuffer(bytes: [UInt8(ascii: "4"), 0xC3, 0x28]), kind: .text)
        }
    }

    @Test("Decoding reads only the readable bytes of a buffer")
    func decodingRespectsReaderIndex() throws {
        var buffer = ByteBuffer(string: "xx4hi")
        buffer.moveReaderIndex(forwardBy: 2)
        #expect(try EngineIOPacket.decodeWebSocketFrame(buffer, kind: .text) == .message("hi"))
    }

    @Test("Accessors tell text from binary")
    func accessors() {
        #expect(EngineIOPacket.message("a").text == "a")
        #expect(EngineIOPacket.message("a").binary == nil)
        #expect(!EngineIOPacket.message("a").isBinary)
        #expect(EngineIOPacket.ping.text == nil)
        #expect(EngineIOPacket.message(binary: ByteBuffer(bytes: [1])).binary == ByteBuffer(bytes: [1]))
        #expect(EngineIOPacket.message(binary: ByteBuffer(bytes: [1])).text == nil)
        #expect(EngineIOPacket.message(binary: ByteBuffer(bytes: [1])).isBinary)
    }

    @Test("description shows the packet as in a polling payload")
    func description() {
        #expect(EngineIOPacket.message("hi").description == "4hi")
        #expect(EngineIOPacket.message(binary: ByteBuffer(bytes: [1, 2, 3, 4])).description == "bAQIDBA==")
    }
}
