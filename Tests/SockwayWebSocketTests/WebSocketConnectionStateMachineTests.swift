import NIOCore
import NIOWebSocket
import SockwayWebSocket
import Testing

private let maskKey: WebSocketMaskingKey = [0x37, 0xFA, 0x21, 0x3D]

/// A frame as a client sends it: masked (RFC 6455 §5.3), unless `masked` is false.
private func clientFrame(
    _ opcode: WebSocketOpcode,
    _ bytes: [UInt8] = [],
    fin: Bool = true,
    rsv1: Bool = false,
    rsv2: Bool = false,
    rsv3: Bool = false,
    masked: Bool = true
) -> WebSocketFrame {
    var data = ByteBuffer(bytes: bytes)
    guard masked else {
        return WebSocketFrame(fin: fin, rsv1: rsv1, rsv2: rsv2, rsv3: rsv3, opcode: opcode, data: data)
    }
    data.webSocketMask(maskKey)
    return WebSocketFrame(fin: fin, rsv1: rsv1, rsv2: rsv2, rsv3: rsv3, opcode: opcode, maskKey: maskKey, data: data)
}

private func clientFrame(_ opcode: WebSocketOpcode, _ text: String, fin: Bool = true) -> WebSocketFrame {
    clientFrame(opcode, Array(text.utf8), fin: fin)
}

/// A client close frame with `code` and optional raw reason bytes.
private func closeFrame(_ code: UInt16, _ reason: [UInt8] = []) -> WebSocketFrame {
    clientFrame(.connectionClose, [UInt8(code >> 8), UInt8(code & 0xFF)] + reason)
}

private func failCode(_ action: WebSocketConnectionStateMachine.Action) -> UInt16? {
    if case .fail(let code, _) = action { return code }
    return nil
}

/// The code and reason bytes of a close frame written by the server.
private func closePayload(_ frame: WebSocketFrame) -> (code: UInt16?, reason: [UInt8]) {
    var data = frame.unmaskedData
    let code = data.readInteger(as: UInt16.self)
    return (code, data.readBytes(length: data.readableBytes) ?? [])
}

private func text(_ string: String) -> WebSocketConnectionStateMachine.Action {
    .text(ByteBuffer(string: string))
}

@Suite("WebSocket framing: base rules (RFC 6455 §5.1–5.2)")
struct WebSocketBaseFramingTests {
    @Test func maskedTextFrameIsAMessage() {
        // A masked, final text frame is one complete message, unmasked.
        var machine = WebSocketConnectionStateMachine()
        #expect(machine.frameReceived(clientFrame(.text, "hello")) == text("hello"))
        #expect(machine.state == .open)
    }

    @Test func maskedBinaryFrameIsAMessage() {
        // Binary messages are delivered as bytes, with no UTF-8 check.
        var machine = WebSocketConnectionStateMachine()
        #expect(machine.frameReceived(clientFrame(.binary, [0xFF, 0x00, 0xC0])) == .binary(ByteBuffer(bytes: [0xFF, 0x00, 0xC0])))
    }

    @Test func emptyTextFrameIsAnEmptyMessage() {
        // A zero-length text frame is a valid, empty message.
        var machine = WebSocketConnectionStateMachine()
        #expect(machine.frameReceived(clientFrame(.text, "")) == text(""))
    }

    @Test(arguments: [WebSocketOpcode.text, .binary, .ping, .connectionClose])
    func unmaskedClientFrameFailsWith1002(opcode: WebSocketOpcode) {
        // §5.1: a server must close the connection on a frame that is not masked.
        var machine = WebSocketConnectionStateMachine()
        #expect(failCode(machine.frameReceived(clientFrame(opcode, Array("x".utf8), masked: false))) == 1002)
        #expect(machine.state == .closed)
    }

    @Test(arguments: [(true, false, false), (false, true, false), (false, false, true), (true, true, true)])
    func reservedBitsWithoutAnExtensionFailWith1002(rsv1: Bool, rsv2: Bool, rsv3: Bool) {
        // §5.2: RSV1–3 must be 0 unless an extension defines them.
        var machine = WebSocketConnectionStateMachine()
        let frame = clientFrame(.text, Array("x".utf8), rsv1: rsv1, rsv2: rsv2, rsv3: rsv3)
        #expect(failCode(machine.frameReceived(frame)) == 1002)
    }

    @Test func rsv1IsAllowedOnceAnExtensionClaimsIt() throws {
        // With permessage-deflate negotiated RSV1 marks a compressed message; RSV2 still is not legal.
        var machine = WebSocketConnectionStateMachine(compression: try deflateCodec())
        let compressed = try deflated(Array("hello hello hello".utf8))
        #expect(machine.frameReceived(clientFrame(.text, compressed, rsv1: true)) == .text(ByteBuffer(string: "hello hello hello")))
        #expect(failCode(machine.frameReceived(clientFrame(.binary, [1, 2], rsv2: true))) == 1002)
    }

    @Test(arguments: [UInt8(0x3), 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF])
    func reservedOpcodesFailWith1002(encoded: UInt8) throws {
        // §5.2: opcodes 0x3–0x7 and 0xB–0xF are reserved; receiving one fails the connection.
        let opcode = try #require(WebSocketOpcode(encodedWebSocketOpcode: encoded))
        var machine = WebSocketConnectionStateMachine()
        #expect(failCode(machine.frameReceived(clientFrame(opcode, [0x61]))) == 1002)
    }

    @Test func framesAfterAFailureAreIgnored() {
        // Once the connection has failed nothing else is processed.
        var machine = WebSocketConnectionStateMachine()
        _ = machine.frameReceived(clientFrame(.text, Array("x".utf8), masked: false))
        #expect(machine.frameReceived(clientFrame(.text, "late")) == WebSocketConnectionStateMachine.Action.none)
        #expect(machine.frameReceived(clientFrame(.ping, "p")) == WebSocketConnectionStateMachine.Action.none)
    }

    @Test func decoderReportingAnOversizedFrameFailsWith1009() {
        // A frame the decoder refused as too big is "message too big".
        var machine = WebSocketConnectionStateMachine()
        #expect(failCode(machine.decodingFailed(tooBig: true)) == 1009)
        #expect(machine.state == .closed)
    }

    @Test func decoderReportingMalformedBytesFailsWith1002() {
        // Any other decoding error is a protocol error.
        var machine = WebSocketConnectionStateMachine()
        #expect(failCode(machine.decodingFailed(tooBig: false)) == 1002)
    }
}

@Suite("WebSocket framing: fragmentation (RFC 6455 §5.4)")
struct WebSocketFragmentationTests {
    @Test func textReassembledFromThreeFragmentsWithAPingInBetween() {
        // Fragments join into one message; a control frame may be injected between them and is answered at once.
        var machine = WebSocketConnectionStateMachine()
        #expect(machine.frameReceived(clientFrame(.text, "Hel", fin: false)) == WebSocketConnectionStateMachine.Action.none)
        #expect(machine.frameReceived(clientFrame(.ping, "ping!")) == .sendPong(ByteBuffer(string: "ping!")))
        #expect(machine.frameReceived(clientFrame(.continuation, "lo, ", fin: false)) == WebSocketConnectionStateMachine.Action.none)
        #expect(machine.frameReceived(clientFrame(.continuation, "world")) == text("Hello, world"))
        // The next message starts afresh.
        #expect(machine.frameReceived(clientFrame(.text, "next")) == text("next"))
    }

    @Test func binaryReassembledFromFragments() {
        // Binary messages fragment the same way.
        var machine = WebSocketConnectionStateMachine()
        _ = machine.frameReceived(clientFrame(.binary, [1, 2], fin: false))
        _ = machine.frameReceived(clientFrame(.continuation, [], fin: false))
        #expect(machine.frameReceived(clientFrame(.continuation, [3])) == .binary(ByteBuffer(bytes: [1, 2, 3])))
    }

    @Test func multibyteCharacterSplitAcrossFragmentsIsValid() {
        // UTF-8 is checked over the whole message, so a character may straddle fragments.
        let bytes = Array("κόσμε😀".utf8)
        for split in 1..<bytes.count {
            var machine = WebSocketConnectionStateMachine()
            #expect(machine.frameReceived(clientFrame(.text, Array(bytes[..<split]), fin: false)) == WebSocketConnectionStateMachine.Action.none)
            #expect(machine.frameReceived(clientFrame(.continuation, Array(bytes[split...]))) == text("κόσμε😀"), "split at \(split)")
        }
    }

    @Test func continuationWithoutAStartFailsWith1002() {
        // A continuation frame must follow an unfinished text or binary frame.
        var machine = WebSocketConnectionStateMachine()
        #expect(failCode(machine.frameReceived(clientFrame(.continuation, "x"))) == 1002)
        var afterComplete = WebSocketConnectionStateMachine()
        _ = afterComplete.frameReceived(clientFrame(.text, "done"))
        #expect(failCode(afterComplete.frameReceived(clientFrame(.continuation, "x", fin: false))) == 1002)
    }

    @Test(arguments: [WebSocketOpcode.text, .binary])
    func newMessageInsideAFragmentedOneFailsWith1002(opcode: WebSocketOpcode) {
        // Fragments of different messages must not interleave.
        var machine = WebSocketConnectionStateMachine()
        _ = machine.frameReceived(clientFrame(.text, "part", fin: false))
        #expect(failCode(machine.frameReceived(clientFrame(opcode, Array("new".utf8)))) == 1002)
    }

    @Test(arguments: [WebSocketOpcode.ping, .pong, .connectionClose])
    func fragmentedControlFrameFailsWith1002(opcode: WebSocketOpcode) {
        // §5.5: control frames must not be fragmented.
        var machine = WebSocketConnectionStateMachine()
        #expect(failCode(machine.frameReceived(clientFrame(opcode, [0x03, 0xE8], fin: false))) == 1002)
    }
}

@Suite("WebSocket framing: control frames (RFC 6455 §5.5)")
struct WebSocketControlFrameTests {
    @Test func pingIsAnsweredWithAPongOfTheSameData() {
        // §5.5.3: a pong carries the application data of the ping it answers.
        var machine = WebSocketConnectionStateMachine()
        #expect(machine.frameReceived(clientFrame(.ping, [1, 2, 3])) == .sendPong(ByteBuffer(bytes: [1, 2, 3])))
        #expect(machine.frameReceived(clientFrame(.ping)) == .sendPong(ByteBuffer()))
    }

    @Test func unsolicitedPongNeedsNoAnswer() {
        // §5.5.3: an unsolicited pong is a heartbeat and needs no response.
        var machine = WebSocketConnectionStateMachine()
        #expect(machine.frameReceived(clientFrame(.pong, "hi")) == WebSocketConnectionStateMachine.Action.none)
        #expect(machine.state == .open)
    }

    @Test func controlFrameOf125BytesIsAllowed() {
        // §5.5: control frames carry at most 125 bytes; 125 is fine.
        var machine = WebSocketConnectionStateMachine()
        let payload = [UInt8](repeating: 0x61, count: 125)
        #expect(machine.frameReceived(clientFrame(.ping, payload)) == .sendPong(ByteBuffer(bytes: payload)))
    }

    @Test(arguments: [WebSocketOpcode.ping, .pong, .connectionClose])
    func controlFrameOver125BytesFailsWith1002(opcode: WebSocketOpcode) {
        // §5.5: a control frame payload of 126 bytes or more is a protocol error.
        var machine = WebSocketConnectionStateMachine()
        let payload: [UInt8] = [0x03, 0xE8] + [UInt8](repeating: 0x61, count: 124)
        #expect(failCode(machine.frameReceived(clientFrame(opcode, payload))) == 1002)
    }
}

@Suite("WebSocket data: UTF-8 and size limits (RFC 6455 §8.1, §7.4.1)")
struct WebSocketDataRulesTests {
    @Test(arguments: [[0xFF], [0xC3, 0x28], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0x61, 0xF4, 0x90, 0x80, 0x80]] as [[UInt8]])
    func invalidUTF8TextFailsWith1007(bytes: [UInt8]) {
        // §8.1: a text message that is not valid UTF-8 fails the connection with 1007.
        var machine = WebSocketConnectionStateMachine()
        #expect(failCode(machine.frameReceived(clientFrame(.text, bytes))) == 1007)
    }

    @Test func textEndingInsideACharacterFailsWith1007() {
        // A message whose last character is cut short is not valid UTF-8.
        var single = WebSocketConnectionStateMachine()
        #expect(failCode(single.frameReceived(clientFrame(.text, [0x61, 0xE2, 0x82]))) == 1007)
        var fragmented = WebSocketConnectionStateMachine()
        _ = fragmented.frameReceived(clientFrame(.text, [0x61, 0xCE], fin: false))
        #expect(failCode(fragmented.frameReceived(clientFrame(.continuation, []))) == 1007)
    }

    @Test func invalidUTF8FailsAtTheFragmentThatBreaksIt() {
        // Autobahn 6.4: fail fast, at the fragment where the bytes become invalid, before the final fragment.
        var machine = WebSocketConnectionStateMachine()
        #expect(machine.frameReceived(clientFrame(.text, [0xCE, 0xBA, 0xE1], fin: false)) == WebSocketConnectionStateMachine.Action.none)
        #expect(failCode(machine.frameReceived(clientFrame(.continuation, [0xBD, 0xC3, 0xF4], fin: false))) == 1007)
        #expect(machine.state == .closed)

        var surrogate = WebSocketConnectionStateMachine()
        _ = surrogate.frameReceived(clientFrame(.text, "abc", fin: false))
        #expect(failCode(surrogate.frameReceived(clientFrame(.continuation, [0xED, 0xA0], fin: false))) == 1007)
    }

    @Test func binaryIsNotCheckedForUTF8() {
        // Only text messages must be UTF-8.
        var machine = WebSocketConnectionStateMachine()
        _ = machine.frameReceived(clientFrame(.binary, [0xFF], fin: false))
        #expect(machine.frameReceived(clientFrame(.continuation, [0xC0])) == .binary(ByteBuffer(bytes: [0xFF, 0xC0])))
    }

    @Test func messageAtTheSizeLimitIsAccepted() {
        // A message of exactly maxMessageSize bytes, whole or fragmented, is fine.
        var whole = WebSocketConnectionStateMachine(configuration: .init(maxMessageSize: 10))
        #expect(whole.frameReceived(clientFrame(.text, String(repeating: "a", count: 10))) == text(String(repeating: "a", count: 10)))
        var fragmented = WebSocketConnectionStateMachine(configuration: .init(maxMessageSize: 10))
        _ = fragmented.frameReceived(clientFrame(.binary, [UInt8](repeating: 1, count: 6), fin: false))
        #expect(fragmented.frameReceived(clientFrame(.continuation, [UInt8](repeating: 1, count: 4))) == .binary(ByteBuffer(bytes: [UInt8](repeating: 1, count: 10))))
    }

    @Test func messageOverTheSizeLimitFailsWith1009() {
        // §7.4.1: a message too big to process fails with 1009, counting all its fragments together.
        var whole = WebSocketConnectionStateMachine(configuration: .init(maxMessageSize: 10))
        #expect(failCode(whole.frameReceived(clientFrame(.binary, [UInt8](repeating: 1, count: 11)))) == 1009)

        var fragmented = WebSocketConnectionStateMachine(configuration: .init(maxMessageSize: 10))
        #expect(fragmented.frameReceived(clientFrame(.text, "123456", fin: false)) == WebSocketConnectionStateMachine.Action.none)
        #expect(failCode(fragmented.frameReceived(clientFrame(.continuation, "12345", fin: false))) == 1009)
    }

    @Test func sizeLimitAppliesPerMessage() {
        // Each message starts its own count.
        var machine = WebSocketConnectionStateMachine(configuration: .init(maxMessageSize: 4))
        for _ in 0..<5 {
            #expect(machine.frameReceived(clientFrame(.text, "abcd")) == text("abcd"))
        }
    }
}

@Suite("WebSocket closing handshake (RFC 6455 §5.5.1, §7.4)")
struct WebSocketCloseHandshakeTests {
    @Test func emptyCloseIsReportedAs1005AndAnsweredWith1000() throws {
        // §7.1.5: no status code in the close frame is reported as 1005; the reply is a normal closure.
        var machine = WebSocketConnectionStateMachine()
        guard case .replyClose(let code, let reason, let echo) = machine.frameReceived(clientFrame(.connectionClose)) else {
            Issue.record("empty close frame not answered")
            return
        }
        #expect(code == 1005)
        #expect(reason == "")
        #expect(echo.opcode == .connectionClose)
        #expect(echo.fin)
        #expect(echo.maskKey == nil)
        #expect(closePayload(echo).code == 1000)
        #expect(machine.state == .closed)
    }

    @Test(arguments: [UInt16(1000), 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999])
    func validCodeIsReportedAndEchoed(code: UInt16) {
        // §5.5.1: the endpoint answers a close with a close frame, typically echoing the status code.
        var machine = WebSocketConnectionStateMachine()
        guard case .replyClose(let received, let reason, let echo) = machine.frameReceived(closeFrame(code, Array("bye".utf8))) else {
            Issue.record("close \(code) not answered")
            return
        }
        #expect(received == code)
        #expect(reason == "bye")
        #expect(echo.opcode == .connectionClose)
        #expect(echo.maskKey == nil)
        #expect(closePayload(echo).code == code)
    }

    @Test func oneByteCloseBodyFailsWith1002() {
        // §5.5.1: a close body, if present, starts with a two-byte code; one byte is malformed.
        var machine = WebSocketConnectionStateMachine()
        #expect(failCode(machine.frameReceived(clientFrame(.connectionClose, [0x03]))) == 1002)
    }

    @Test(arguments: [UInt16(0), 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
    func invalidCloseCodeFailsWith1002(code: UInt16) {
        // §7.4: 1004–1006 and 1015 are never sent, and codes outside 1000–4999's assigned ranges are invalid.
        var machine = WebSocketConnectionStateMachine()
        #expect(failCode(machine.frameReceived(closeFrame(code))) == 1002)
    }

    @Test func invalidUTF8CloseReasonFailsWith1007() {
        // §5.5.1: the close reason is UTF-8 text.
        var machine = WebSocketConnectionStateMachine()
        #expect(failCode(machine.frameReceived(closeFrame(1000, [0x61, 0xFF]))) == 1007)
        var truncated = WebSocketConnectionStateMachine()
        #expect(failCode(truncated.frameReceived(closeFrame(1000, [0xE2, 0x82]))) == 1007)
    }

    @Test func serverInitiatedCloseSendsOneCloseFrame() {
        // The server's close frame carries the code and reason; asking twice sends nothing more.
        var machine = WebSocketConnectionStateMachine()
        let frame = machine.closeRequested(code: 1001, reason: "going away")
        #expect(frame?.opcode == .connectionClose)
        #expect(frame?.fin == true)
        #expect(frame?.maskKey == nil)
        if let frame {
            let payload = closePayload(frame)
            #expect(payload.code == 1001)
            #expect(payload.reason == Array("going away".utf8))
        }
        #expect(machine.state == .closeSent)
        #expect(machine.closeRequested(code: 1000, reason: "again") == nil)
    }

    @Test func clientCloseAfterOursClosesTheConnection() {
        // §7.1.2: after both close frames are exchanged the TCP connection is closed, with no second close frame.
        var machine = WebSocketConnectionStateMachine()
        _ = machine.closeRequested(code: 1000, reason: "")
        #expect(machine.frameReceived(closeFrame(1000)) == .closeConnection)
        #expect(machine.state == .closed)
    }

    @Test func pingsAreStillReadAfterOurClose() {
        // §5.5.1: after sending close the endpoint keeps reading until the peer's close; a pong is not required.
        var machine = WebSocketConnectionStateMachine()
        _ = machine.closeRequested(code: 1000, reason: "")
        #expect(failCode(machine.frameReceived(clientFrame(.ping, "p"))) == nil)
        #expect(machine.frameReceived(closeFrame(1000)) == .closeConnection)
    }

    @Test func closeFrameReasonIsCutToFitOnACharacterBoundary() {
        // §5.5: control payloads are at most 125 bytes, so the reason is cut to 123 bytes without splitting a character.
        let cases: [(String, Int)] = [
            (String(repeating: "a", count: 200), 123),
            (String(repeating: "é", count: 100), 122),
            (String(repeating: "😀", count: 40), 120),
            (String(repeating: "€", count: 50), 123),
            ("short", 5),
        ]
        for (reason, expectedLength) in cases {
            let frame = WebSocketConnectionStateMachine.closeFrame(code: 1000, reason: reason)
            #expect(frame.length <= 125)
            let payload = closePayload(frame)
            #expect(payload.code == 1000)
            #expect(payload.reason.count == expectedLength)
            #expect(payload.reason.withUnsafeBytes { UTF8Validator.isValid($0) })
            #expect(Array(reason.utf8).starts(with: payload.reason))
        }
    }
}
