import NIOCore
import SockwaySocketIO
import Testing

@Suite("Packet decoding: the protocol's examples")
struct SocketIOPacketSpecDecodingTests {
    @Test func connectToMainNamespace() throws {
        // 0 → { type: CONNECT, namespace: "/" }
        #expect(try decodePacket("0") == SocketIOPacket(type: .connect))
    }

    @Test func connectToCustomNamespaceWithPayload() throws {
        // 0/admin,{"sid":…} → CONNECT on /admin with the object.
        let packet = try decodePacket(#"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#)
        #expect(packet == SocketIOPacket(type: .connect, namespace: "/admin", data: ["sid": "oSO0OpakMV_3jnilAAAA"]))
    }

    @Test func connectError() throws {
        // 4{"message":"Not authorized"} → CONNECT_ERROR with the object.
        #expect(try decodePacket(#"4{"message":"Not authorized"}"#) == SocketIOPacket(type: .connectError, data: ["message": "Not authorized"]))
    }

    @Test func events() throws {
        // 2["foo"] and 2/admin,["bar"].
        #expect(try decodePacket(#"2["foo"]"#) == .event("foo"))
        #expect(try decodePacket(#"2/admin,["bar"]"#) == .event("bar", namespace: "/admin"))
    }

    @Test func eventWithAckID() throws {
        // 212["foo"] → EVENT id 12.
        #expect(try decodePacket(#"212["foo"]"#) == .event("foo", ackID: 12))
    }

    @Test func acks() throws {
        // 3/admin,13["bar"] → ACK id 13 on /admin; 312[] → empty ACK.
        #expect(try decodePacket(#"3/admin,13["bar"]"#) == .ack(13, ["bar"], namespace: "/admin"))
        #expect(try decodePacket("312[]") == .ack(12))
    }

    @Test func disconnects() throws {
        // 1 and 1/admin,.
        #expect(try decodePacket("1") == SocketIOPacket(type: .disconnect))
        #expect(try decodePacket("1/admin,") == SocketIOPacket(type: .disconnect, namespace: "/admin"))
    }

    @Test func binaryEventHeader() throws {
        // 51-["baz",{placeholder 0}] is a header awaiting one attachment.
        let header = try decodeHeader(#"51-["baz",{"_placeholder":true,"num":0}]"#)
        #expect(header?.attachmentCount == 1)
        #expect(header?.packet.type == .binaryEvent)
        #expect(header?.packet.namespace == "/")
        #expect(header?.packet.data == ["baz", ["_placeholder": true, "num": 0]])
    }

    @Test func binaryEventHeaderOnCustomNamespace() throws {
        // 52-/admin,[…] awaits two attachments on /admin.
        let header = try decodeHeader(#"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        #expect(header?.attachmentCount == 2)
        #expect(header?.packet.namespace == "/admin")
    }

    @Test func binaryHeaderDescribesItselfAsOnTheWire() throws {
        // A header's description keeps its announced count (its placeholders are JSON, not binaries).
        let text = #"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
        #expect(try decodeHeader(text)?.description == text)
    }

    @Test func binaryAckHeader() throws {
        // 61-15["bar",{placeholder 0}] is a BINARY_ACK header with id 15.
        let header = try decodeHeader(#"61-15["bar",{"_placeholder":true,"num":0}]"#)
        #expect(header?.packet.type == .binaryAck)
        #expect(header?.packet.ackID == 15)
        #expect(header?.attachmentCount == 1)
    }

    @Test func sampleSessionClientPackets() throws {
        // The sample session's client side: 0/admin, (CONNECT, no payload) and 2/admin,1["tellme"].
        #expect(try decodePacket("0/admin,") == SocketIOPacket(type: .connect, namespace: "/admin"))
        #expect(try decodePacket(#"2/admin,1["tellme"]"#) == .event("tellme", namespace: "/admin", ackID: 1))
    }
}

@Suite("Packet decoding: the header grammar")
struct SocketIOPacketGrammarTests {
    @Test func namespaceRunsToTheCommaOrTheEnd() throws {
        // A namespace starts with "/" and ends at the first "," or at the end of the message.
        #expect(try decodePacket("1/admin")?.namespace == "/admin")
        #expect(try decodePacket("1/admin,")?.namespace == "/admin")
        #expect(try decodePacket("0/")?.namespace == "/")
        #expect(try decodePacket(#"2/,["x"]"#)?.namespace == "/")
        #expect(try decodePacket(#"2/a/b?c=d,["x"]"#)?.namespace == "/a/b?c=d")
    }

    @Test func namespaceMayHoldUTF8() throws {
        // Non-ASCII namespaces decode as text.
        #expect(try decodePacket(#"2/ñamé,["x"]"#)?.namespace == "/ñamé")
    }

    @Test func namespaceMustBeValidUTF8() {
        // Bytes that are not UTF-8 in the namespace are refused.
        var bytes = ByteBuffer(string: "2/a")
        bytes.writeBytes([0xFF])
        bytes.writeString(#",["x"]"#)
        #expect(throws: SocketIOError.invalidNamespace) { try SocketIOPacketDecoder.decodeText(bytes) }
    }

    @Test func ackIDIsTheDigitsAfterTheNamespace() throws {
        // Id digits follow the namespace's comma, or the type when there is no namespace.
        #expect(try decodePacket(#"20["x"]"#)?.ackID == 0)
        #expect(try decodePacket(#"2007["x"]"#)?.ackID == 7)
        #expect(try decodePacket(#"2/n,456["x"]"#)?.ackID == 456)
        #expect(try decodePacket(#"2["x"]"#)?.ackID == nil)
    }

    @Test func ackIDMayStandAlone() throws {
        // An id with nothing after it is allowed for types whose payload is optional.
        #expect(try decodePacket("05") == SocketIOPacket(type: .connect, ackID: 5))
    }

    @Test func ackIDUpToMaxSafeIntegerIsAccepted() throws {
        // 2^53 − 1 is the largest id; one more is refused.
        #expect(try decodePacket(#"29007199254740991["x"]"#)?.ackID == 9_007_199_254_740_991)
        #expect(throws: SocketIOError.ackIDTooLarge) { try decodePacket(#"29007199254740992["x"]"#) }
        #expect(throws: SocketIOError.ackIDTooLarge) { try decodePacket("2" + String(repeating: "9", count: 400) + #"["x"]"#) }
    }

    @Test func payloadMayBeSurroundedByWhitespace() throws {
        // The payload is JSON, and JSON allows whitespace around the value.
        #expect(try decodePacket("2 [\"x\"] \n") == .event("x"))
    }

    @Test(arguments: [
        ("0", SocketIOPacketType.connect), ("1", .disconnect), (#"2["a"]"#, .event), ("3[]", .ack),
        (#"4"no""#, .connectError),
    ])
    func eachPlainTypeDigitDecodes(text: String, type: SocketIOPacketType) throws {
        // Digits 0–4 are the plain packet types.
        #expect(try decodePacket(text)?.type == type)
    }

    @Test func bufferInputIsReadWithoutConsuming() throws {
        // Decoding reads the buffer's readable bytes and leaves its reader index alone.
        var bytes = ByteBuffer(string: #"42["x"]"#)
        bytes.moveReaderIndex(forwardBy: 1)  // past Engine.IO's "4"
        #expect(try SocketIOPacketDecoder.decodeText(bytes) == .packet(.event("x")))
        #expect(bytes.readableBytes == 6)
    }
}

@Suite("Packet decoding: malformed headers")
struct SocketIOPacketMalformedHeaderTests {
    @Test func emptyMessageIsRefused() {
        // An empty message has no type (the reference would read it as CONNECT; that is a quirk, not a rule).
        #expect(throws: SocketIOError.emptyPacket) { try decodePacket("") }
    }

    @Test(arguments: ["7", "9[]", "abc", "-1", "/admin,", "[\"x\"]", " 2", "\u{0}"])
    func unknownTypesAreRefused(text: String) {
        // Only 0–6 are packet types (the suite's "4abc" is this case after the Engine.IO "4").
        #expect(throws: SocketIOError.unknownPacketType) { try decodePacket(text) }
    }

    @Test(arguments: [#"5-["x"]"#, #"5["x"]"#, #"5a-["x"]"#, "5", "51", #"51["x"]"#, #"5 1-["x"]"#, "6-", #"61e0-["x"]"#])
    func malformedAttachmentCountsAreRefused(text: String) {
        // A binary type needs decimal digits then "-".
        #expect(throws: SocketIOError.invalidAttachmentCount) { try decodePacket(text) }
    }

    @Test func attachmentCountAboveTheBoundIsRefused() throws {
        // Default bound 10 (the reference's maxAttachments); it is configurable.
        #expect(try decodeHeader(#"510-["x"]"#)?.attachmentCount == 10)
        #expect(throws: SocketIOError.tooManyAttachments) { try decodePacket(#"511-["x"]"#) }
        #expect(throws: SocketIOError.tooManyAttachments) { try decodePacket("5" + String(repeating: "9", count: 100) + #"-["x"]"#) }
        let strict = SocketIOPacketDecoder.Configuration(maxAttachments: 1)
        #expect(throws: SocketIOError.tooManyAttachments) { try decodePacket(#"52-["x"]"#, configuration: strict) }
    }

    @Test func hugeMaxAttachmentsDoesNotOverflow() {
        // With the bound at Int.max, a count too long for Int is still refused, not wrapped.
        let loose = SocketIOPacketDecoder.Configuration(maxAttachments: .max)
        #expect(throws: SocketIOError.tooManyAttachments) {
            try decodePacket("5" + String(repeating: "9", count: 30) + #"-["x"]"#, configuration: loose)
        }
    }

    @Test func invalidAckIDIsInvalidJSON() {
        // The suite's "42abc[…]": letters where the id goes are not JSON.
        #expect(throws: SocketIOError.invalidJSON) { try decodePacket(#"2abc["message-with-ack",1,"2",{"3":[false]}]"#) }
    }

    @Test(arguments: [#"2["x""#, #"2["x"]]"#, "2{", #"2/admin,["x"] garbage"#, "0/admin,{sid:1}", "2-1[\"x\"]", "2[\"x\"],"])
    func invalidJSONPayloadsAreRefused(text: String) {
        // The payload must be exactly one JSON value.
        #expect(throws: SocketIOError.invalidJSON) { try decodePacket(text) }
    }

    @Test func overDeepPayloadIsRefused() throws {
        // Nesting past the configured depth is refused before it costs stack.
        let deep = "2[\"x\"," + String(repeating: "[", count: 64) + String(repeating: "]", count: 64) + "]"
        #expect(throws: SocketIOError.jsonNestingTooDeep) { try decodePacket(deep) }
        let config = SocketIOPacketDecoder.Configuration(maxNestingDepth: 100)
        #expect(try decodePacket(deep, configuration: config)?.eventName == "x")
    }

    @Test func namespaceWithoutLeadingSlashIsNoNamespace() {
        // Only "/" opens a namespace; "admin," is then read as the payload, and is not JSON.
        #expect(throws: SocketIOError.invalidJSON) { try decodePacket(#"2admin,["x"]"#) }
    }

    @Test func namespaceWithoutCommaSwallowsTheRest() {
        // Without the comma the payload is part of the namespace, so a mandatory payload is missing.
        #expect(throws: SocketIOError.invalidPayload) { try decodePacket(#"2/admin["x"]"#) }
    }
}

@Suite("Packet decoding: payload rules per type")
struct SocketIOPacketPayloadRuleTests {
    @Test func connectPayloadIsAbsentOrAnObject() throws {
        // CONNECT: no payload or an object (auth data); anything else is refused.
        #expect(try decodePacket("0")?.data == nil)
        #expect(try decodePacket(#"0{"token":"123"}"#)?.data == ["token": "123"])
        for text in ["0[]", #"0"x""#, "0null", "0 1.5", "0true"] {
            #expect(throws: SocketIOError.invalidPayload, "\(text)") { try decodePacket(text) }
        }
    }

    @Test func disconnectHasNoPayload() {
        // DISCONNECT: any payload is refused.
        for text in ["1{}", "1[]", "1/admin,{}", "1null"] {
            #expect(throws: SocketIOError.invalidPayload, "\(text)") { try decodePacket(text) }
        }
    }

    @Test func eventPayloadIsANonEmptyArray() throws {
        // EVENT: mandatory, a non-empty array (the suite's "42{}" is refused here).
        for text in ["2", "2{}", "2[]", #"2"x""#, "2/admin,", "212"] {
            #expect(throws: SocketIOError.invalidPayload, "\(text)") { try decodePacket(text) }
        }
    }

    @Test func eventNameIsAStringOrANumber() throws {
        // The first element names the event: a string, or a number as the reference also allows.
        #expect(try decodePacket(#"2["x",1]"#)?.eventName == "x")
        #expect(try decodePacket("2[1,2]")?.data == [1, 2])
        for text in ["2[null]", "2[[\"x\"]]", #"2[{"a":1}]"#, "2[true]"] {
            #expect(throws: SocketIOError.invalidPayload, "\(text)") { try decodePacket(text) }
        }
    }

    @Test(arguments: SocketIOPacket.reservedEventNames.sorted())
    func reservedEventNamesAreRefused(name: String) {
        // The reference decoder refuses events named like its own (connect, disconnect, newListener, …).
        #expect(throws: SocketIOError.reservedEventName) { try decodePacket(#"2[""# + name + #""]"#) }
    }

    @Test func reservedEventNamesCanBeAllowed() throws {
        // With rejectsReservedEventNames off, they decode like any other name.
        let config = SocketIOPacketDecoder.Configuration(rejectsReservedEventNames: false)
        #expect(try decodePacket(#"2["disconnect"]"#, configuration: config)?.eventName == "disconnect")
    }

    @Test func reservedNamesAreTheReferenceList() {
        // The list as the reference parser has it.
        #expect(SocketIOPacket.reservedEventNames == ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"])
    }

    @Test func ackPayloadIsAnArray() throws {
        // ACK: mandatory, an array, possibly empty.
        #expect(try decodePacket("30[]")?.data == [])
        #expect(try decodePacket(#"30[null,{"a":1}]"#)?.arguments == [nil, ["a": 1]])
        for text in ["30", "30{}", #"30"x""#, "3"] {
            #expect(throws: SocketIOError.invalidPayload, "\(text)") { try decodePacket(text) }
        }
    }

    @Test func connectErrorPayloadIsAStringOrAnObject() throws {
        // CONNECT_ERROR: an object (v5) or a string (older servers); required.
        #expect(try decodePacket(#"4"nope""#)?.data == "nope")
        #expect(try decodePacket(#"4/a,{"message":"m","data":{"x":1}}"#)?.namespace == "/a")
        for text in ["4", "4[]", "41", "4null"] {
            #expect(throws: SocketIOError.invalidPayload, "\(text)") { try decodePacket(text) }
        }
    }

    @Test func binaryEventHeaderFollowsTheEventRule() {
        // BINARY_EVENT: as EVENT; a placeholder cannot be the event name.
        #expect(throws: SocketIOError.invalidPayload) { try decodePacket(#"51-[{"_placeholder":true,"num":0}]"#) }
        #expect(throws: SocketIOError.invalidPayload) { try decodePacket("51-") }
        #expect(throws: SocketIOError.reservedEventName) { try decodePacket(#"51-["connect",{"_placeholder":true,"num":0}]"#) }
    }

    @Test func binaryAckHeaderFollowsTheAckRule() throws {
        // BINARY_ACK: as ACK, an array.
        #expect(try decodeHeader(#"61-1[{"_placeholder":true,"num":0}]"#)?.attachmentCount == 1)
        #expect(throws: SocketIOError.invalidPayload) { try decodePacket(#"61-1{"_placeholder":true,"num":0}"#) }
    }

    @Test func validatePayloadIsPublic() throws {
        // The same rules check outgoing packets.
        try SocketIOPacket.event("ok").validatePayload()
        #expect(throws: SocketIOError.invalidPayload) { try SocketIOPacket(type: .event, data: []).validatePayload() }
        #expect(throws: SocketIOError.reservedEventName) { try SocketIOPacket.event("connect").validatePayload() }
        try SocketIOPacket.event("connect").validatePayload(rejectingReservedEventNames: false)
    }
}

@Suite("Packet round trips")
struct SocketIOPacketRoundTripTests {
    @Test(arguments: [
        SocketIOPacket(type: .connect),
        SocketIOPacket(type: .connect, namespace: "/admin", data: ["token": "123", "n": 1.5]),
        SocketIOPacket(type: .disconnect, namespace: "/chat"),
        .event("message", [1, "2", ["3": [true]]]),
        .event("x", ["é\n\"😀", nil, -0.5, 1e21], namespace: "/ns", ackID: 99),
        .ack(0),
        .ack(9_007_199_254_740_991, [["deep": [[[]]]]], namespace: "/a"),
        SocketIOPacket(type: .connectError, data: "Not authorized"),
        SocketIOPacket(type: .connectError, namespace: "/x", data: ["message": "no"]),
    ])
    func plainPacketsRoundTrip(packet: SocketIOPacket) throws {
        // decode(encode(p)) == p for every plain packet.
        let (text, attachments) = encode(packet)
        #expect(attachments.isEmpty)
        #expect(try decodePacket(text) == packet)
    }

    @Test func binaryPacketsRoundTripThroughTheDecoder() throws {
        // An event or ack with binaries comes back equal after encode → decoder (text, then attachments).
        let packets: [SocketIOPacket] = [
            .event("upload", [.binary(buffer([1, 2, 3])), ["meta": "m", "more": [.binary(buffer([])), .binary(buffer([9]))]]]),
            .ack(7, [.binary(buffer(Array(0...255)))], namespace: "/files"),
        ]
        for packet in packets {
            let (text, attachments) = encode(packet)
            var decoder = SocketIOPacketDecoder()
            var result = try decoder.textMessageReceived(text)
            for attachment in attachments {
                #expect(result == nil)
                result = try decoder.binaryMessageReceived(attachment)
            }
            #expect(result == packet)
            #expect(!decoder.isAwaitingAttachments)
        }
    }

    @Test func reencodingDecodedTextGivesTheSameBytes() throws {
        // Canonical wire texts survive decode → encode unchanged.
        let texts = [
            "0", #"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#, #"4{"message":"Not authorized"}"#, #"2["foo"]"#, #"2/admin,["bar"]"#,
            #"212["foo"]"#, #"3/admin,13["bar"]"#, "1", "1/admin,", #"2["message",1,"2",{"3":[true]}]"#,
        ]
        for text in texts {
            let packet = try #require(try decodePacket(text))
            #expect(encode(packet).text == text)
        }
    }
}
