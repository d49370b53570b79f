import NIOCore
import SockwaySocketIO
import Testing

@Suite("Packet encoding: the protocol's examples")
struct SocketIOPacketSpecEncodingTests {
    @Test func connectToMainNamespace() {
        // { type: CONNECT, namespace: "/" } → 0
        #expect(encode(SocketIOPacket(type: .connect)).text == "0")
    }

    @Test func connectToCustomNamespaceWithPayload() {
        // { type: CONNECT, namespace: "/admin", data: { sid: … } } → 0/admin,{"sid":…}
        let packet = SocketIOPacket(type: .connect, namespace: "/admin", data: ["sid": "oSO0OpakMV_3jnilAAAA"])
        #expect(encode(packet).text == #"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#)
    }

    @Test func connectError() {
        // { type: CONNECT_ERROR, namespace: "/", data: { message: "Not authorized" } } → 4{"message":…}
        let packet = SocketIOPacket(type: .connectError, data: ["message": "Not authorized"])
        #expect(encode(packet).text == #"4{"message":"Not authorized"}"#)
    }

    @Test func eventOnMainNamespace() {
        // { type: EVENT, namespace: "/", data: ["foo"] } → 2["foo"]
        #expect(encode(.event("foo")).text == #"2["foo"]"#)
    }

    @Test func eventOnCustomNamespace() {
        // { type: EVENT, namespace: "/admin", data: ["bar"] } → 2/admin,["bar"]
        #expect(encode(.event("bar", namespace: "/admin")).text == #"2/admin,["bar"]"#)
    }

    @Test func eventWithBinary() {
        // { type: BINARY_EVENT, data: ["baz", <01 02 03 04>] } → 51-["baz",{placeholder 0}] + the buffer
        let packet = SocketIOPacket(type: .binaryEvent, data: ["baz", .binary(buffer([1, 2, 3, 4]))])
        let (text, attachments) = encode(packet)
        #expect(text == #"51-["baz",{"_placeholder":true,"num":0}]"#)
        #expect(attachments == [buffer([1, 2, 3, 4])])
    }

    @Test func eventWithTwoAttachmentsOnCustomNamespace() {
        // Two buffers become placeholders 0 and 1, in order: 52-/admin,[…] + <01 02> + <03 04>
        let packet = SocketIOPacket(
            type: .binaryEvent, namespace: "/admin", data: ["baz", .binary(buffer([1, 2])), .binary(buffer([3, 4]))]
        )
        let (text, attachments) = encode(packet)
        #expect(text == #"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        #expect(attachments == [buffer([1, 2]), buffer([3, 4])])
    }

    @Test func eventWithAckID() {
        // { type: EVENT, data: ["foo"], id: 12 } → 212["foo"]
        #expect(encode(.event("foo", ackID: 12)).text == #"212["foo"]"#)
    }

    @Test func ackOnCustomNamespace() {
        // { type: ACK, namespace: "/admin", data: ["bar"], id: 13 } → 3/admin,13["bar"]
        #expect(encode(.ack(13, ["bar"], namespace: "/admin")).text == #"3/admin,13["bar"]"#)
    }

    @Test func emptyAck() {
        // { type: ACK, data: [], id: 12 } → 312[]
        #expect(encode(.ack(12)).text == "312[]")
    }

    @Test func binaryAck() {
        // { type: BINARY_ACK, data: ["bar", <01 02 03 04>], id: 15 } → 61-15["bar",{placeholder 0}] + the buffer
        let packet = SocketIOPacket(type: .binaryAck, data: ["bar", .binary(buffer([1, 2, 3, 4]))], ackID: 15)
        let (text, attachments) = encode(packet)
        #expect(text == #"61-15["bar",{"_placeholder":true,"num":0}]"#)
        #expect(attachments == [buffer([1, 2, 3, 4])])
    }

    @Test func disconnect() {
        // { type: DISCONNECT, namespace: "/" } → 1 ; on /admin → 1/admin,
        #expect(encode(SocketIOPacket(type: .disconnect)).text == "1")
        #expect(encode(SocketIOPacket(type: .disconnect, namespace: "/admin")).text == "1/admin,")
    }

    @Test func sampleSessionPackets() {
        // The sample session's server side: 0{"sid":…}, 2["hey","Jude"], 0/admin,{"sid":…}, 61-/admin,1[<binary>].
        #expect(encode(SocketIOPacket(type: .connect, data: ["sid": "wZX3oN0bSVIhsaknAAAI"])).text == #"0{"sid":"wZX3oN0bSVIhsaknAAAI"}"#)
        #expect(encode(.event("hey", ["Jude"])).text == #"2["hey","Jude"]"#)
        let ack = SocketIOPacket.ack(1, [.binary(buffer([9]))], namespace: "/admin")
        #expect(encode(ack).text == #"61-/admin,1[{"_placeholder":true,"num":0}]"#)
    }
}

@Suite("Packet encoding: rules")
struct SocketIOPacketEncodingRuleTests {
    @Test func eventWithBinaryBecomesBinaryEvent() {
        // The reference encoder turns an EVENT or ACK holding binaries into BINARY_EVENT / BINARY_ACK.
        let event = SocketIOPacket.event("up", [.binary(buffer([7]))])
        #expect(event.wireType == .binaryEvent)
        #expect(encode(event).text == #"51-["up",{"_placeholder":true,"num":0}]"#)
        let ack = SocketIOPacket.ack(3, [["file": .binary(buffer([8]))]])
        #expect(ack.wireType == .binaryAck)
        #expect(encode(ack).text == #"61-3[{"file":{"_placeholder":true,"num":0}}]"#)
    }

    @Test func eventWithoutBinaryStaysPlain() {
        // No binaries, no conversion.
        #expect(SocketIOPacket.event("x", [1]).wireType == .event)
        #expect(SocketIOPacket.ack(1, [1]).wireType == .ack)
    }

    @Test func placeholdersAreNumberedDepthFirst() {
        // Binaries are numbered in depth-first, left-to-right order, and returned in that order.
        let packet = SocketIOPacket.event(
            "e", [["a": .binary(buffer([0])), "b": [.binary(buffer([1])), ["c": .binary(buffer([2]))]]], .binary(buffer([3]))]
        )
        let (text, attachments) = encode(packet)
        #expect(
            text
                == #"54-["e",{"a":{"_placeholder":true,"num":0},"b":[{"_placeholder":true,"num":1},{"c":{"_placeholder":true,"num":2}}]},{"_placeholder":true,"num":3}]"#
        )
        #expect(attachments == [buffer([0]), buffer([1]), buffer([2]), buffer([3])])
    }

    @Test func explicitBinaryTypeWithoutBinariesWritesZeroCount() {
        // A BINARY_EVENT without binaries still carries its count, as the reference writes it: 50-.
        #expect(encode(SocketIOPacket(type: .binaryEvent, data: ["x"])).text == #"50-["x"]"#)
    }

    @Test func binaryInNonEventPacketIsWrittenAsNodeBuffer() {
        // Only events and acks carry attachments; elsewhere a binary is JSON, as JSON.stringify(Buffer).
        let packet = SocketIOPacket(type: .connect, data: ["k": .binary(buffer([1, 2]))])
        let (text, attachments) = encode(packet)
        #expect(text == #"0{"k":{"type":"Buffer","data":[1,2]}}"#)
        #expect(attachments.isEmpty)
    }

    @Test func emptyNamespaceIsOmittedLikeMain() {
        // The reference writes the namespace only when it is set and not "/".
        #expect(encode(SocketIOPacket(type: .event, namespace: "", data: ["x"])).text == #"2["x"]"#)
        #expect(encode(SocketIOPacket(type: .event, namespace: "/", data: ["x"])).text == #"2["x"]"#)
    }

    @Test func ackIDZeroIsWritten() {
        // Id 0 is an id like any other.
        #expect(encode(.event("x", ackID: 0)).text == #"20["x"]"#)
    }

    @Test func largeAckIDsAreWrittenInFull() {
        // Ids print as decimal integers, never in exponent form.
        #expect(encode(.event("x", ackID: SocketIOPacket.maxAckID)).text == #"29007199254740991["x"]"#)
        #expect(encode(.event("x", ackID: UInt64.max)).text == #"218446744073709551615["x"]"#)
    }

    @Test func namespaceAndIdWithoutPayload() {
        // Namespace and id without data: the comma still follows the namespace.
        #expect(encode(SocketIOPacket(type: .connect, namespace: "/a", ackID: 5)).text == "0/a,5")
    }

    @Test func encodeAppendsToTheBuffer() {
        // encode(into:) appends, so Engine.IO's "4" can be written first and the bytes reused.
        var out = ByteBuffer(string: "4")
        let attachments = SocketIOPacket.event("hey", ["Jude"]).encode(into: &out)
        #expect(String(buffer: out) == #"42["hey","Jude"]"#)
        #expect(attachments.isEmpty)
    }

    @Test func attachmentsShareTheCallersBytes() {
        // Attachments are the caller's buffers (copy-on-write), not copies of the bytes.
        let payload = buffer(Array(repeating: 0xAB, count: 1024))
        let attachments = SocketIOPacket.event("x", [.binary(payload)]).encoded().attachments
        #expect(attachments.count == 1)
        #expect(attachments[0] == payload)
        let shared = attachments[0].withUnsafeReadableBytes { out in payload.withUnsafeReadableBytes { out.baseAddress == $0.baseAddress } }
        #expect(shared)
    }

    @Test func descriptionIsTheTextForm() {
        // description shows the wire text.
        #expect(SocketIOPacket.event("x", namespace: "/n", ackID: 1).description == #"2/n,1["x"]"#)
    }

    @Test func conveniencesReadEventsAndAcks() {
        // eventName and arguments split an event; an ack's arguments are its whole array.
        let event = SocketIOPacket.event("chat", ["hi", 2])
        #expect(event.eventName == "chat")
        #expect(event.arguments == ["hi", 2])
        #expect(SocketIOPacket.ack(1, ["ok"]).arguments == ["ok"])
        #expect(SocketIOPacket.ack(1, ["ok"]).eventName == nil)
        #expect(SocketIOPacket(type: .connect).arguments == [])
    }
}
