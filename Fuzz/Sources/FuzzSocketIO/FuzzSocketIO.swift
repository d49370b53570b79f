import FuzzSupport
import NIOCore
import SockwaySocketIO

// Socket.IO v5 decoding: one text message (`SocketIOPacketDecoder.decodeText`), the JSON parser
// (`SocketIOValue(parsingJSON:)`), and a connection's decoder with the binary reassembler fed a
// sequence of text and binary messages.
//
// Input: a mode byte, then a text message or JSON (modes 0, 1), or records
// `<kind byte><length byte><bytes>` for the connection's messages (mode 2).
// Invariants: what decodes encodes to text that decodes to the same packet after one normalising
// pass (±infinity and -0 become `null` and `0`, as in JavaScript); the encoder's attachments are
// the packet's binaries; the attachment bounds hold; a packet comes out only when complete.

private let configuration = SocketIOPacketDecoder.Configuration(maxAttachments: 4, maxAttachmentBytes: 512)

@main
enum FuzzSocketIOMain {
    static func main() {
        runLibFuzzer { data, size in fuzz(data!, size) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let mode = input.byte()
    switch mode % 3 {
    case 0:
        let text = input.rest()
        let lenient = SocketIOPacketDecoder.Configuration(rejectsReservedEventNames: false)
        let decoded = Result { () throws(SocketIOError) in try SocketIOPacketDecoder.decodeText(text, configuration: lenient) }
        switch decoded {
        case .success(.packet(let packet)):
            fuzzCheck(!packet.type.isBinary, "a binary type decoded as a whole packet")
            checkRoundTrip(packet)
        case .success(.binaryHeader(let header)):
            fuzzCheck(header.packet.type.isBinary, "a plain type decoded as a binary header")
            fuzzCheck(header.attachmentCount <= lenient.maxAttachments, "more attachments than allowed")
            // The header's text form decodes to the same header (where JSON can write its numbers).
            if writesExactly(header.packet) {
                let again = Result { () throws(SocketIOError) in try SocketIOPacketDecoder.decodeText(header.description, configuration: lenient) }
                fuzzCheck(again == decoded, "a binary header does not re-encode: \(header)")
            }
        case .failure:
            break
        }
    case 1:
        let json = input.rest()
        guard let value = try? SocketIOValue(parsingJSON: json) else { return 0 }
        // Writing is JSON.stringify: parsing what it writes and writing again changes nothing.
        let once = value.jsonString
        let reparsed = try? SocketIOValue(parsingJSON: once)
        fuzzCheck(reparsed != nil, "written JSON does not parse: \(once)")
        fuzzCheck(reparsed?.jsonString == once, "JSON writing is not stable: \(once)")
    default:
        connection(&input)
    }
    return 0
}

/// A connection's messages through one decoder, checked against the binary packet they complete.
private func connection(_ input: inout FuzzInput) {
    var decoder = SocketIOPacketDecoder(configuration: configuration)
    var awaited = 0
    var attachmentBytes = 0
    while !input.isAtEnd {
        let kind = input.byte()
        let bytes = input.take(Int(input.byte()))
        let wasAwaiting = decoder.isAwaitingAttachments
        if kind & 1 == 0 {
            let outcome = Result { () throws(SocketIOError) in try decoder.textMessageReceived(bytes) }
            if wasAwaiting {
                fuzzCheck(outcome.isFailure, "a text message accepted while attachments were awaited")
            }
            switch outcome {
            case .success(let packet?):
                fuzzCheck(!decoder.isAwaitingAttachments, "a packet came out while attachments are awaited")
                checkRoundTrip(packet)
            case .success(nil):
                fuzzCheck(decoder.isAwaitingAttachments, "a text message vanished")
                if case .binaryHeader(let header) = try? SocketIOPacketDecoder.decodeText(bytes, configuration: configuration) {
                    awaited = header.attachmentCount
                    attachmentBytes = 0
                }
                fuzzCheck(awaited > 0 && awaited <= configuration.maxAttachments, "awaiting \(awaited) attachments")
            case .failure:
                fuzzCheck(!decoder.isAwaitingAttachments, "still awaiting attachments after an error")
            }
        } else {
            let buffer = ByteBuffer(bytes: bytes)
            let outcome = Result { () throws(SocketIOError) in try decoder.binaryMessageReceived(buffer) }
            if !wasAwaiting {
                fuzzCheck(outcome.isFailure, "an unexpected binary message accepted")
                continue
            }
            attachmentBytes += bytes.count
            awaited -= 1
            switch outcome {
            case .success(let packet?):
                fuzzCheck(awaited == 0, "a packet came out with \(awaited) attachments to go")
                fuzzCheck(attachmentBytes <= configuration.maxAttachmentBytes, "attachments over the byte limit")
                fuzzCheck(!packet.type.isBinary, "a reassembled packet kept its binary type")
                checkRoundTrip(packet)
            case .success(nil):
                fuzzCheck(awaited > 0 && decoder.isAwaitingAttachments, "an attachment lost")
            case .failure:
                fuzzCheck(!decoder.isAwaitingAttachments, "still awaiting attachments after an error")
                awaited = 0
            }
        }
    }
}

/// Encoding a decoded packet and decoding that again gives the same packet once normalised by one
/// pass through the encoder (numbers JSON cannot write become `null`).
private func checkRoundTrip(_ packet: SocketIOPacket) {
    let first = packet.encoded()
    fuzzCheck(first.attachments.count == (packet.data?.binaryCount ?? 0), "attachments are not the packet's binaries")
    guard let once = decodeEncoded(first) else {
        // Only a value that the encoder had to change may fail to decode again (an event named by a
        // number that JSON cannot write).
        fuzzCheck(!writesExactly(packet), "an encoded packet does not decode: \(String(buffer: first.text))")
        return
    }
    if writesExactly(packet) {
        fuzzCheck(once == packet, "round trip changed \(packet) into \(once)")
    }
    let second = once.encoded()
    fuzzCheck(second == first, "encoding is not stable: \(String(buffer: first.text)) then \(String(buffer: second.text))")
}

/// The packet decoded back from its text and attachments by a fresh decoder.
private func decodeEncoded(_ encoded: SocketIOEncodedPacket) -> SocketIOPacket? {
    var decoder = SocketIOPacketDecoder(
        configuration: .init(maxAttachments: 1 << 20, maxAttachmentBytes: .max, rejectsReservedEventNames: false)
    )
    let text = Result { () throws(SocketIOError) in try decoder.textMessageReceived(encoded.text) }
    guard case .success(let packet) = text else { return nil }
    if let packet { return packet }
    for attachment in encoded.attachments {
        let outcome = Result { () throws(SocketIOError) in try decoder.binaryMessageReceived(attachment) }
        guard case .success(let packet) = outcome else { return nil }
        if let packet { return packet }
    }
    return nil
}

/// Whether JSON can carry every number in the packet as it is (not ±infinity, NaN or -0).
private func writesExactly(_ packet: SocketIOPacket) -> Bool {
    func exact(_ value: SocketIOValue) -> Bool {
        switch value {
        case .number(let number): return number.isFinite && !(number == 0 && number.sign == .minus)
        case .array(let elements): return elements.allSatisfy(exact)
        case .object(let members): return members.allSatisfy { exact($0.value) }
        case .null, .bool, .string, .binary: return true
        }
    }
    return packet.data.map(exact) ?? true
}

extension Result {
    fileprivate var isFailure: Bool {
        if case .failure = self { return true }
        return false
    }
}
