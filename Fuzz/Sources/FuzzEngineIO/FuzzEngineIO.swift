import FuzzSupport
import NIOCore
import SockwayEngineIO

// Engine.IO v4 decoding: polling payloads (`EngineIOPayload.decode`), WebSocket frames
// (`EngineIOPacket.decodeWebSocketFrame`), base64 and the query string (`EngineIOQuery`).
//
// Input: a mode byte, a limit byte, then the body, frame or query.
// Invariants: decoding is exact, so a decoded payload encodes back to the very same bytes, and the
// encoder's size prediction is right; the body limit and UTF-8 rule hold; packet-by-packet decoding
// delivers exactly what whole-body decoding does, up to the first bad packet; a query never grows.

@main
enum FuzzEngineIOMain {
    static func main() {
        runLibFuzzer { data, size in fuzz(data!, size) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let mode = input.byte()
    let limitByte = input.byte()
    let bytes = input.rest()

    switch mode % 4 {
    case 0:
        // A polling POST body.
        let maxPayload = limitByte == 0 ? EngineIOPayload.defaultMaxPayload : Int(limitByte)
        let body = ByteBuffer(bytes: bytes)
        let whole = Result { () throws(EngineIODecodingError) in try EngineIOPayload.decode(body, maxPayload: maxPayload) }
        var delivered: [EngineIOPacket] = []
        let stepwise = Result { () throws(EngineIODecodingError) in
            try EngineIOPayload.decode(body, maxPayload: maxPayload) { delivered.append($0) }
        }
        switch whole {
        case .success(let packets):
            fuzzCheck(bytes.count <= maxPayload, "a body over maxPayload accepted")
            fuzzCheck(isValidUTF8(bytes), "a body that is not UTF-8 accepted")
            fuzzCheck(stepwise.isSuccess && delivered == packets, "packet-by-packet decoding disagrees")
            var encoded = ByteBuffer()
            EngineIOPayload.encode(packets, into: &encoded)
            fuzzCheck(encoded.readableBytes == EngineIOPayload.encodedByteCount(of: packets), "encodedByteCount is wrong")
            fuzzCheck(Array(encoded.readableBytesView) == Array(bytes), "re-encoding changed the body: \(hex(bytes)) -> \(hex(encoded.readableBytesView))")
        case .failure(let error):
            fuzzCheck(stepwise.failure == error, "packet-by-packet decoding failed differently")
            switch error {
            case .payloadTooLarge:
                fuzzCheck(bytes.count > maxPayload, "payloadTooLarge for \(bytes.count) bytes")
                fuzzCheck(delivered.isEmpty, "packets delivered from a body over the limit")
            case .invalidUTF8:
                fuzzCheck(bytes.count <= maxPayload && !isValidUTF8(bytes), "invalidUTF8 for valid UTF-8")
                fuzzCheck(delivered.isEmpty, "packets delivered from a body that is not UTF-8")
            case .emptyPacket, .unknownPacketType, .invalidBase64:
                fuzzCheck(isValidUTF8(bytes), "a packet error before the UTF-8 check")
                // What came before the bad packet was good: it encodes back to the body's start.
                var encoded = ByteBuffer()
                EngineIOPayload.encode(delivered, into: &encoded)
                fuzzCheck(bytes.starts(with: encoded.readableBytesView), "delivered packets are not the body's start")
            }
        }
    case 1:
        // A WebSocket text frame.
        let frame = ByteBuffer(bytes: bytes)
        let decoded = Result { () throws(EngineIODecodingError) in try EngineIOPacket.decodeWebSocketFrame(frame, kind: .text) }
        switch decoded {
        case .success(let packet):
            fuzzCheck(isValidUTF8(bytes), "a text frame that is not UTF-8 accepted")
            if packet.isBinary {
                // `b<base64>` in a text frame: the polling form, byte for byte.
                var polling = ByteBuffer()
                packet.writePollingPacket(into: &polling)
                fuzzCheck(polling.readableBytesView.elementsEqual(bytes), "b<base64> frame does not re-encode")
            } else {
                let (kind, encoded) = packet.webSocketFrame()
                fuzzCheck(kind == .text && encoded.readableBytes == packet.webSocketFrameByteCount, "frame size prediction wrong")
                fuzzCheck(encoded.readableBytesView.elementsEqual(bytes), "re-encoding changed the frame")
            }
            // A packet without the separator is a one-packet polling payload too.
            if !bytes.contains(EngineIOPayload.separator) {
                let body = Result { () throws(EngineIODecodingError) in try EngineIOPayload.decode(frame) }
                fuzzCheck(body.success == [packet], "frame and one-packet payload decode differently")
            }
        case .failure(.invalidUTF8):
            fuzzCheck(!isValidUTF8(bytes), "invalidUTF8 for valid UTF-8")
        case .failure:
            break
        }
    case 2:
        // Base64 alone: canonical text decodes and encodes back exactly.
        let text = ByteBuffer(bytes: bytes)
        if let decoded = try? EngineIOBase64.decode(text) {
            fuzzCheck(decoded.readableBytes <= EngineIOBase64.maximumDecodedByteCount(forEncodedByteCount: bytes.count), "decoded past the bound")
            var encoded = ByteBuffer()
            EngineIOBase64.encode(decoded, into: &encoded)
            fuzzCheck(encoded.readableBytes == EngineIOBase64.encodedByteCount(forByteCount: decoded.readableBytes), "encodedByteCount is wrong")
            fuzzCheck(encoded.readableBytesView.elementsEqual(bytes), "base64 is not canonical: \(hex(bytes))")
        }
        // Any bytes encode to base64 that decodes back.
        var encoded = ByteBuffer()
        EngineIOBase64.encode(bytes, into: &encoded)
        fuzzCheck((try? EngineIOBase64.decode(encoded)) == ByteBuffer(bytes: bytes), "base64 round trip failed")
        // And a binary frame is always a binary message.
        let binary = try? EngineIOPacket.decodeWebSocketFrame(ByteBuffer(bytes: bytes), kind: .binary)
        fuzzCheck(binary == .message(binary: ByteBuffer(bytes: bytes)), "a binary frame is not its message")
    default:
        // The query string, alone and as part of a request target.
        let query = String(decoding: bytes, as: UTF8.self)
        let parsed = EngineIOQuery(parsing: query)
        let decodedLength = parsed.parameters.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
        fuzzCheck(decodedLength <= query.utf8.count, "the query grew from \(query.utf8.count) to \(decodedLength) bytes")
        if !query.utf8.contains(UInt8(ascii: "#")) {
            fuzzCheck(EngineIOQuery(uri: "/engine.io/?" + query) == EngineIOQuery(parsing: query), "uri and query parsing disagree")
        }
        _ = parsed.sid
        _ = parsed.transport
        _ = parsed.protocolVersion
    }
    return 0
}

extension Result {
    fileprivate var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }

    fileprivate var success: Success? {
        if case .success(let value) = self { return value }
        return nil
    }

    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
