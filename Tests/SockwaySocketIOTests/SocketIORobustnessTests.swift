import NIOCore
import SockwaySocketIO
import Testing

/// A small deterministic generator (xorshift64*), so failures reproduce.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
}

@Suite("Robustness: arbitrary input never traps")
struct SocketIORobustnessTests {
    /// Bytes that matter to the grammar, plus a few that must be refused.
    private static let alphabet: [UInt8] = Array(#"0123456789-/,[]{}":.eE+tfnul\ab _"#.utf8) + [0x00, 0x1F, 0x7F, 0xC3, 0xA9, 0xFF, 0xED]

    private static func randomMessage(_ generator: inout SeededGenerator) -> ByteBuffer {
        let length = Int.random(in: 0...24, using: &generator)
        var bytes: [UInt8] = []
        for _ in 0..<length { bytes.append(alphabet.randomElement(using: &generator)!) }
        if Bool.random(using: &generator), !bytes.isEmpty {
            bytes[0] = UInt8(ascii: "0") + UInt8.random(in: 0...6, using: &generator)
        }
        return ByteBuffer(bytes: bytes)
    }

    @Test func randomTextMessagesDecodeOrThrowTypedErrors() throws {
        // 20,000 random messages: each decodes or throws SocketIOError; what decodes re-encodes to
        // text that decodes to the same packet.
        var generator = SeededGenerator(state: 0x5EED_50C1_0000_0001)
        var decoded = 0
        for _ in 0..<20_000 {
            let message = Self.randomMessage(&generator)
            let result: SocketIODecodedText
            do {
                result = try SocketIOPacketDecoder.decodeText(message)
            } catch {
                continue  // typed: SocketIOError is the only thing decodeText can throw
            }
            decoded += 1
            if case .packet(let packet) = result {
                let again = try SocketIOPacketDecoder.decodeText(packet.encoded().text)
                #expect(again == .packet(packet), "\(String(buffer: message))")
            }
        }
        #expect(decoded > 0)
    }

    @Test func randomJSONNeverTraps() {
        // Random documents parse or throw; what parses prints as JSON that parses to the same value.
        var generator = SeededGenerator(state: 0xC0FF_EE00_1234_5678)
        for _ in 0..<20_000 {
            let document = Self.randomMessage(&generator)
            guard let value = try? SocketIOValue(parsingJSON: document) else { continue }
            #expect((try? SocketIOValue(parsingJSON: value.jsonString)) == value || value.containsNonFinite)
        }
    }

    @Test func everyPrefixOfAValidMessageIsHandled() throws {
        // Truncating a message anywhere gives a packet, a header or a typed error, never a trap.
        let text = #"52-/admin,789["baz",{"_placeholder":true,"num":0},{"x":[1.5e3,"é\n\ud83d\ude00",null]},{"_placeholder":true,"num":1}]"#
        let bytes = Array(text.utf8)
        for length in 0...bytes.count {
            _ = try? SocketIOPacketDecoder.decodeText(ByteBuffer(bytes: bytes[0..<length]))
        }
        #expect(try decodeHeader(text)?.attachmentCount == 2)
    }

    @Test func interleavedMessagesKeepTheDecoderConsistent() {
        // A random mix of text and binary messages: after every call the decoder either waits for
        // attachments or is idle, and an error always leaves it idle.
        var generator = SeededGenerator(state: 42)
        var decoder = SocketIOPacketDecoder()
        let texts = [
            #"2["a"]"#, #"51-["b",{"_placeholder":true,"num":0}]"#, #"62-3[{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]"#, "2{}",
        ]
        for _ in 0..<5_000 {
            do {
                if Bool.random(using: &generator) {
                    _ = try decoder.textMessageReceived(texts.randomElement(using: &generator)!)
                } else {
                    _ = try decoder.binaryMessageReceived(ByteBuffer(bytes: [1, 2]))
                }
            } catch {
                #expect(!decoder.isAwaitingAttachments)
            }
        }
    }
}

extension SocketIOValue {
    /// Whether a NaN or infinity hides inside (they print as null, so they cannot round-trip).
    fileprivate var containsNonFinite: Bool {
        switch self {
        case .number(let number): !number.isFinite
        case .array(let elements): elements.contains { $0.containsNonFinite }
        case .object(let members): members.contains { $0.value.containsNonFinite }
        default: false
        }
    }
}
