import NIOCore
import SockwaySocketIO
import Testing

@Suite("Binary packets: the connection decoder")
struct SocketIODecoderStateMachineTests {
    @Test func plainTextPacketsComeOutAtOnce() throws {
        // A non-binary text message yields its packet immediately.
        var decoder = SocketIOPacketDecoder()
        #expect(try decoder.textMessageReceived(#"2["foo"]"#) == .event("foo"))
        #expect(!decoder.isAwaitingAttachments)
    }

    @Test func binaryEventWaitsForItsAttachment() throws {
        // 51-[…] then one binary message → EVENT with the buffer in place of the placeholder.
        var decoder = SocketIOPacketDecoder()
        #expect(try decoder.textMessageReceived(#"51-["baz",{"_placeholder":true,"num":0}]"#) == nil)
        #expect(decoder.isAwaitingAttachments)
        let packet = try decoder.binaryMessageReceived(buffer([1, 2, 3, 4]))
        #expect(packet == .event("baz", [.binary(buffer([1, 2, 3, 4]))]))
        #expect(packet?.type == .event)
        #expect(!decoder.isAwaitingAttachments)
    }

    @Test func twoAttachmentsFillTheirPlaceholdersInOrder() throws {
        // 52-/admin,[…] then <01 02>, <03 04>: placeholder 0 gets the first, 1 the second.
        var decoder = SocketIOPacketDecoder()
        #expect(try decoder.textMessageReceived(#"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#) == nil)
        #expect(try decoder.binaryMessageReceived(buffer([1, 2])) == nil)
        #expect(decoder.isAwaitingAttachments)
        let packet = try decoder.binaryMessageReceived(buffer([3, 4]))
        #expect(packet == .event("baz", [.binary(buffer([1, 2])), .binary(buffer([3, 4]))], namespace: "/admin"))
    }

    @Test func placeholdersMayComeOutOfOrder() throws {
        // num, not position, picks the attachment.
        var decoder = SocketIOPacketDecoder()
        _ = try decoder.textMessageReceived(#"52-["e",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]"#)
        _ = try decoder.binaryMessageReceived(buffer([0]))
        let packet = try decoder.binaryMessageReceived(buffer([1]))
        #expect(packet?.arguments == [.binary(buffer([1])), .binary(buffer([0]))])
    }

    @Test func binaryAckBecomesAck() throws {
        // 61-15["bar",{placeholder}] + buffer → ACK id 15 (the reference reports the plain type).
        var decoder = SocketIOPacketDecoder()
        _ = try decoder.textMessageReceived(#"61-15["bar",{"_placeholder":true,"num":0}]"#)
        let packet = try decoder.binaryMessageReceived(buffer([1, 2, 3, 4]))
        #expect(packet == .ack(15, ["bar", .binary(buffer([1, 2, 3, 4]))]))
    }

    @Test func testSuiteBinaryMessagesDecode() throws {
        // The official suite's "452-789[…]" (after Engine.IO's 4) with <1 2 3> and <4 5 6>.
        var decoder = SocketIOPacketDecoder()
        _ = try decoder.textMessageReceived(#"52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        _ = try decoder.binaryMessageReceived(buffer([1, 2, 3]))
        let packet = try #require(try decoder.binaryMessageReceived(buffer([4, 5, 6])))
        #expect(packet.eventName == "message-with-ack")
        #expect(packet.ackID == 789)
        #expect(packet.arguments == [.binary(buffer([1, 2, 3])), .binary(buffer([4, 5, 6]))])
        // Echoing the arguments back as an ack encodes as the suite expects.
        let (text, attachments) = encode(.ack(789, packet.arguments))
        #expect(text == #"62-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        #expect(attachments == [buffer([1, 2, 3]), buffer([4, 5, 6])])
    }

    @Test func zeroAttachmentsCompleteAtOnce() throws {
        // 50-[…] announces no attachments: the packet is complete and the decoder is not left waiting
        // (the reference leaves its reconstructor set here, so its next text message fails; not so here).
        var decoder = SocketIOPacketDecoder()
        #expect(try decoder.textMessageReceived(#"50-["x",1]"#) == .event("x", [1]))
        #expect(!decoder.isAwaitingAttachments)
        #expect(try decoder.textMessageReceived(#"2["y"]"#) == .event("y"))
    }

    @Test func placeholderObjectsAreFoundAnywhere() throws {
        // Placeholders deep inside objects and arrays are replaced too.
        var decoder = SocketIOPacketDecoder()
        _ = try decoder.textMessageReceived(#"51-["e",{"a":[{"b":{"_placeholder":true,"num":0}}]}]"#)
        let packet = try decoder.binaryMessageReceived(buffer([42]))
        #expect(packet?.data?[1]?["a"]?[0]?["b"] == .binary(buffer([42])))
    }

    @Test func objectsWithPlaceholderFalseAreLeftAlone() throws {
        // Only "_placeholder": true marks a placeholder; other objects stay JSON.
        var decoder = SocketIOPacketDecoder()
        _ = try decoder.textMessageReceived(#"51-["e",{"_placeholder":false,"num":0},{"_placeholder":true,"num":0}]"#)
        let packet = try decoder.binaryMessageReceived(buffer([1]))
        #expect(packet?.arguments == [["_placeholder": false, "num": 0], .binary(buffer([1]))])
    }

    @Test func unreferencedAttachmentsAreDropped() throws {
        // As in the reference, an attachment that no placeholder names is accepted and dropped.
        var decoder = SocketIOPacketDecoder()
        _ = try decoder.textMessageReceived(#"52-["e",{"_placeholder":true,"num":1}]"#)
        _ = try decoder.binaryMessageReceived(buffer([0]))
        #expect(try decoder.binaryMessageReceived(buffer([1])) == .event("e", [.binary(buffer([1]))]))
    }

    @Test func textWhileAwaitingAttachmentsIsRefused() throws {
        // "got plaintext data when reconstructing a packet": a text message before the last attachment.
        var decoder = SocketIOPacketDecoder()
        _ = try decoder.textMessageReceived(#"52-["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        _ = try decoder.binaryMessageReceived(buffer([1]))
        #expect(throws: SocketIOError.unexpectedTextMessage) { try decoder.textMessageReceived(#"2["x"]"#) }
        // The decoder is idle again afterwards.
        #expect(!decoder.isAwaitingAttachments)
    }

    @Test func binaryWithoutHeaderIsRefused() {
        // "got binary data when not reconstructing a packet".
        var decoder = SocketIOPacketDecoder()
        #expect(throws: SocketIOError.unexpectedBinaryMessage) { try decoder.binaryMessageReceived(buffer([1])) }
    }

    @Test func extraBinaryAfterCompletionIsRefused() throws {
        // Once the packet is complete, the next binary has no header to belong to.
        var decoder = SocketIOPacketDecoder()
        _ = try decoder.textMessageReceived(#"51-["e",{"_placeholder":true,"num":0}]"#)
        _ = try decoder.binaryMessageReceived(buffer([1]))
        #expect(throws: SocketIOError.unexpectedBinaryMessage) { try decoder.binaryMessageReceived(buffer([2])) }
    }

    @Test func attachmentBytesAreBounded() throws {
        // The attachments of one packet may not together exceed maxAttachmentBytes.
        var decoder = SocketIOPacketDecoder(configuration: .init(maxAttachmentBytes: 5))
        _ = try decoder.textMessageReceived(#"52-["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        _ = try decoder.binaryMessageReceived(buffer([1, 2, 3]))
        #expect(throws: SocketIOError.attachmentsTooLarge) { try decoder.binaryMessageReceived(buffer([4, 5, 6])) }
        #expect(!decoder.isAwaitingAttachments)
        // Exactly at the bound is fine.
        _ = try decoder.textMessageReceived(#"52-["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        _ = try decoder.binaryMessageReceived(buffer([1, 2, 3]))
        #expect(try decoder.binaryMessageReceived(buffer([4, 5]))?.arguments.count == 2)
    }

    @Test func resetDropsAPartialPacket() throws {
        // reset() forgets a half-received packet, like the reference's destroy().
        var decoder = SocketIOPacketDecoder()
        _ = try decoder.textMessageReceived(#"51-["e",{"_placeholder":true,"num":0}]"#)
        decoder.reset()
        #expect(!decoder.isAwaitingAttachments)
        #expect(try decoder.textMessageReceived("0") == SocketIOPacket(type: .connect))
    }

    @Test func errorsInTheHeaderLeaveTheDecoderIdle() throws {
        // A bad text message throws and leaves no state behind.
        var decoder = SocketIOPacketDecoder()
        #expect(throws: SocketIOError.invalidPayload) { try decoder.textMessageReceived("2{}") }
        #expect(!decoder.isAwaitingAttachments)
        #expect(throws: SocketIOError.unexpectedBinaryMessage) { try decoder.binaryMessageReceived(buffer([1])) }
    }

    @Test func byteBufferAndRawInputsDecodeAlike() throws {
        // The three text entry points agree.
        var decoder = SocketIOPacketDecoder()
        let text = #"2/n,3["a"]"#
        let fromString = try decoder.textMessageReceived(text)
        let fromBuffer = try decoder.textMessageReceived(ByteBuffer(string: text))
        let fromBytes = try Array(text.utf8).withUnsafeBytes { try decoder.textMessageReceived($0) }
        #expect(fromString == .event("a", namespace: "/n", ackID: 3))
        #expect(fromBuffer == fromString)
        #expect(fromBytes == fromString)
    }
}

@Suite("Binary packets: placeholder rules")
struct SocketIOPlaceholderRuleTests {
    @Test(arguments: [
        #"51-["e",{"_placeholder":true,"num":1}]"#,  // out of range
        #"51-["e",{"_placeholder":true,"num":-1}]"#,  // negative
        #"51-["e",{"_placeholder":true,"num":0.5}]"#,  // not an integer
        #"51-["e",{"_placeholder":true,"num":"0"}]"#,  // a string
        #"51-["e",{"_placeholder":true}]"#,  // missing
        #"51-["e",{"_placeholder":true,"num":null}]"#,  // null
        #"52-["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]"#,  // duplicated
        #"50-["e",{"_placeholder":true,"num":0}]"#,  // no attachments at all
        #"51-["e",{"_placeholder":true,"num":1e300}]"#,  // huge
    ])
    func badPlaceholdersFailAtTheHeader(text: String) {
        // A placeholder's num must be an integer below the count, used once; checked before any
        // attachment is buffered.
        var decoder = SocketIOPacketDecoder()
        #expect(throws: SocketIOError.invalidPlaceholder) { try decoder.textMessageReceived(text) }
        #expect(!decoder.isAwaitingAttachments)
    }

    @Test func integralDoublesCountAsIntegers() throws {
        // 1.0 and 1e0 are the integer 1 in JSON, as in JavaScript.
        #expect(try decodeHeader(#"52-["e",{"_placeholder":true,"num":0.0},{"_placeholder":true,"num":1e0}]"#)?.attachmentCount == 2)
    }

    @Test func placeholdersInPlainPacketsAreJustJSON() throws {
        // Only binary types are reassembled: in an EVENT, a placeholder-like object is ordinary data.
        let packet = try decodePacket(#"2["e",{"_placeholder":true,"num":5}]"#)
        #expect(packet?.arguments == [["_placeholder": true, "num": 5]])
    }
}

@Suite("Binary packets: the reassembler on its own")
struct SocketIOBinaryReassemblerTests {
    private func header(_ text: String) throws -> SocketIOBinaryPacketHeader {
        try #require(try decodeHeader(text))
    }

    @Test func countsDownRemainingAttachments() throws {
        // remainingAttachments goes from the announced count to zero.
        var reassembler = SocketIOBinaryReassembler(header: try header(#"52-["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#))
        #expect(reassembler.remainingAttachments == 2)
        #expect(try reassembler.attachmentReceived(buffer([1])) == nil)
        #expect(reassembler.remainingAttachments == 1)
        #expect(try reassembler.attachmentReceived(buffer([2])) != nil)
        #expect(reassembler.remainingAttachments == 0)
        #expect(throws: SocketIOError.unexpectedBinaryMessage) { try reassembler.attachmentReceived(buffer([3])) }
    }

    @Test func reconstructNeedsTheAnnouncedCount() throws {
        // reconstruct refuses a different number of attachments than the header announced.
        let header = try header(#"51-["e",{"_placeholder":true,"num":0}]"#)
        #expect(throws: SocketIOError.invalidPlaceholder) { try SocketIOBinaryReassembler.reconstruct(header, attachments: []) }
        let packet = try SocketIOBinaryReassembler.reconstruct(header, attachments: [buffer([5])])
        #expect(packet == .event("e", [.binary(buffer([5]))]))
    }

    @Test func reconstructChecksPlaceholdersItself() {
        // A hand-made header with a bad placeholder fails in reconstruct too.
        let header = SocketIOBinaryPacketHeader(
            packet: SocketIOPacket(type: .binaryEvent, data: ["e", ["_placeholder": true, "num": 3]]), attachmentCount: 1
        )
        #expect(throws: SocketIOError.invalidPlaceholder) { try SocketIOBinaryReassembler.checkPlaceholders(header) }
        #expect(throws: SocketIOError.invalidPlaceholder) { try SocketIOBinaryReassembler.reconstruct(header, attachments: [buffer([1])]) }
    }

    @Test func bytesBoundIsCheckedPerPacket() throws {
        // maxAttachmentBytes bounds the sum, not each attachment.
        var reassembler = SocketIOBinaryReassembler(
            header: try header(#"52-["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#), maxAttachmentBytes: 3
        )
        _ = try reassembler.attachmentReceived(buffer([1, 2]))
        #expect(throws: SocketIOError.attachmentsTooLarge) { try reassembler.attachmentReceived(buffer([3, 4])) }
    }
}

@Suite("Errors")
struct SocketIOErrorTests {
    @Test func errorsDescribeThemselves() {
        // Each error has a short description; the reassembly ones use the reference's wording.
        #expect(SocketIOError.unexpectedTextMessage.description == "got plaintext data when reconstructing a packet")
        #expect(SocketIOError.unexpectedBinaryMessage.description == "got binary data when not reconstructing a packet")
        #expect(SocketIOError.invalidPayload.description == "invalid payload")
        #expect(SocketIOError.invalidPayload != SocketIOError.invalidJSON)
    }
}
