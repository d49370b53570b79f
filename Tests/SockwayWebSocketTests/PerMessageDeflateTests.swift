import NIOCore
import NIOWebSocket
import SockwayWebSocket
import SockwayZlib
import Testing

/// A codec as a server endpoint would have after agreeing on `offer`.
func deflateCodec(
    _ configuration: PerMessageDeflateConfiguration = .init(),
    offer: String = "permessage-deflate"
) throws -> PerMessageDeflateCodec {
    let parameters = try #require(PerMessageDeflateNegotiation.negotiate(offers: [offer], configuration: configuration))
    return PerMessageDeflateCodec(parameters: parameters, configuration: configuration, resources: PerMessageDeflateResources())
}

/// `bytes` compressed as a permessage-deflate client would send them (tail removed).
func deflated(_ bytes: [UInt8], deflater: Deflater? = nil) throws -> [UInt8] {
    let deflater = try deflater ?? Deflater()
    var output = ByteBuffer()
    try bytes.withUnsafeBytes { try deflater.compressMessage($0, into: &output) }
    return Array(output.readableBytesView)
}

private func maskedFrame(_ opcode: WebSocketOpcode, _ payload: [UInt8], fin: Bool = true, rsv1: Bool = false) -> WebSocketFrame {
    let key: WebSocketMaskingKey = [0x0A, 0x0B, 0x0C, 0x0D]
    var data = ByteBuffer(bytes: payload)
    data.webSocketMask(key)
    return WebSocketFrame(fin: fin, rsv1: rsv1, opcode: opcode, maskKey: key, data: data)
}

private func inflate(_ bytes: ByteBuffer, with inflater: Inflater, limit: Int = 1 << 24) throws -> String {
    var output = ByteBuffer()
    try bytes.withUnsafeReadableBytes { try inflater.inflateFragment($0, into: &output, limit: limit) }
    try inflater.finishMessage(into: &output, limit: limit)
    return String(buffer: output)
}

@Suite("permessage-deflate: negotiation (RFC 7692 §5, §7.1)")
struct PerMessageDeflateNegotiationTests {
    private func negotiate(_ offers: [String], _ configuration: PerMessageDeflateConfiguration = .init()) -> String? {
        PerMessageDeflateNegotiation.negotiate(offers: offers, configuration: configuration)?.responseHeaderValue
    }

    @Test func noOfferNoExtension() {
        // Without a permessage-deflate offer the response carries no extension.
        #expect(negotiate([]) == nil)
        #expect(negotiate(["x-webkit-deflate-frame"]) == nil)
    }

    @Test func plainOfferIsAcceptedAskingClientsNotToKeepContext() {
        // The server may add client_no_context_takeover (§7.1.1.2); it keeps no inflater per connection.
        #expect(negotiate(["permessage-deflate"]) == "permessage-deflate; client_no_context_takeover")
    }

    @Test func sharedCompressorAlwaysResetsItsContext() {
        // The shared compressor is reset after every message, so server_no_context_takeover is declared.
        #expect(
            negotiate(["permessage-deflate"], .init(compression: .sharedPerEventLoop))
                == "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        )
    }

    @Test func clientRequestedServerNoContextTakeoverIsHonoured() {
        // §7.1.1.1: an offer with server_no_context_takeover is accepted only by answering it.
        #expect(negotiate(["permessage-deflate; server_no_context_takeover"])?.contains("server_no_context_takeover") == true)
    }

    @Test func serverWindowIsLimitedAsAsked() throws {
        // §7.1.2.1: server_max_window_bits=N is answered with N or less, and the compressor obeys it.
        let parameters = try #require(
            PerMessageDeflateNegotiation.negotiate(offers: ["permessage-deflate; server_max_window_bits=10"], configuration: .init())
        )
        #expect(parameters.serverWindowBits == 10)
        #expect(parameters.responseHeaderValue.hasSuffix("server_max_window_bits=10"))
        #expect(negotiate(["permessage-deflate; server_max_window_bits=\"12\""])?.hasSuffix("server_max_window_bits=12") == true)
    }

    @Test func eightBitServerWindowIsDeclinedAndTheNextOfferTaken() {
        // zlib cannot write raw DEFLATE with a 256-byte window, so that offer is declined, not broken.
        #expect(negotiate(["permessage-deflate; server_max_window_bits=8"]) == nil)
        #expect(
            negotiate(["permessage-deflate; server_max_window_bits=8, permessage-deflate"])
                == "permessage-deflate; client_no_context_takeover"
        )
    }

    @Test(arguments: [
        "permessage-deflate; foo", "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_max_window_bits", "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=08", "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; server_no_context_takeover=1", "permessage-deflate; client_max_window_bits=abc",
    ])
    func invalidOffersAreDeclined(_ offer: String) {
        // §5: an offer with an unknown, repeated or invalid parameter is declined.
        #expect(negotiate([offer]) == nil)
    }

    @Test func windowBitsAreNeverAnsweredUnlessOffered() {
        // The answer carries no window-bits parameter the client did not offer, and client_max_window_bits
        // without a value is accepted (we inflate with a 15-bit window, which reads any smaller one).
        let answer = negotiate(["permessage-deflate; client_max_window_bits"])
        #expect(answer == "permessage-deflate; client_no_context_takeover")
        #expect(negotiate(["permessage-deflate; client_max_window_bits=9"]) == "permessage-deflate; client_no_context_takeover")
    }

    @Test func offersAcrossHeaderLinesAreConsideredInOrder() {
        // Several offers, in one header or several, are tried in order; the first acceptable wins.
        #expect(
            negotiate(["foo, permessage-deflate; bogus", "permessage-deflate; server_max_window_bits=11"])
                == "permessage-deflate; client_no_context_takeover; server_max_window_bits=11"
        )
    }

    @Test func disabledCompressionDeclinesEverything() {
        #expect(negotiate(["permessage-deflate"], .disabled) == nil)
    }
}

@Suite("permessage-deflate: the codec (RFC 7692 §7.2)")
struct PerMessageDeflateCodecTests {
    @Test func compressedMessagesLoseTheirTailAndInflateBack() throws {
        // §7.2.1: the trailing 00 00 ff ff is removed; appending it again restores the message.
        var codec = try deflateCodec()
        let message = ByteBuffer(string: String(repeating: "sockway ", count: 40))
        var output = ByteBuffer()
        #expect(try codec.compress(message, into: &output))
        #expect(output.readableBytes < message.readableBytes)
        #expect(Array(output.readableBytesView.suffix(4)) != [0, 0, 0xFF, 0xFF])
        #expect(try inflate(output, with: Inflater()) == String(buffer: message))
    }

    @Test func contextTakeoverCarriesHistoryAcrossMessages() throws {
        // Per-connection compression keeps its window, so the peer's inflater must keep its own too.
        var codec = try deflateCodec()
        let inflater = try Inflater()
        let text = String(repeating: "context ", count: 20)
        var sizes: [Int] = []
        for _ in 0..<3 {
            var output = ByteBuffer()
            _ = try codec.compress(ByteBuffer(string: text), into: &output)
            sizes.append(output.readableBytes)
            #expect(try inflate(output, with: inflater) == text)
        }
        #expect(sizes[1] < sizes[0])
    }

    @Test func noContextTakeoverMakesEveryMessageStandAlone() throws {
        // With server_no_context_takeover every message inflates with a fresh inflater.
        var codec = try deflateCodec(.init(compression: .sharedPerEventLoop))
        let text = String(repeating: "shared ", count: 20)
        for _ in 0..<3 {
            var output = ByteBuffer()
            #expect(try codec.compress(ByteBuffer(string: text), into: &output))
            #expect(try inflate(output, with: Inflater()) == text)
        }
    }

    @Test func smallMessagesStayUncompressed() throws {
        // Below the threshold compression is skipped.
        let codec = try deflateCodec(.init(threshold: 64))
        #expect(!codec.shouldCompress(byteCount: 63))
        #expect(codec.shouldCompress(byteCount: 64))
    }

    @Test func incompressibleMessageGoesOutAsItIsWithoutSharedHistory() throws {
        // Without context takeover a message that does not shrink is sent uncompressed.
        var codec = try deflateCodec(.init(compression: .sharedPerEventLoop))
        var generator = SystemRandomNumberGenerator()
        let noise = ByteBuffer(bytes: (0..<200).map { _ in UInt8.random(in: 0...255, using: &generator) })
        var output = ByteBuffer()
        #expect(try !codec.compress(noise, into: &output))
        #expect(output.readableBytes == 0)
    }
}

@Suite("permessage-deflate: inbound messages")
struct PerMessageDeflateInboundTests {
    @Test func fragmentedCompressedTextIsReassembled() throws {
        // RSV1 on the first frame only; the fragments together form one DEFLATE stream.
        var machine = WebSocketConnectionStateMachine(compression: try deflateCodec())
        let compressed = try deflated(Array(String(repeating: "fragment ", count: 30).utf8))
        let third = compressed.count / 3
        #expect(machine.frameReceived(maskedFrame(.text, Array(compressed[..<third]), fin: false, rsv1: true)) == .none)
        #expect(machine.frameReceived(maskedFrame(.continuation, Array(compressed[third..<(2 * third)]), fin: false)) == .none)
        let last = machine.frameReceived(maskedFrame(.continuation, Array(compressed[(2 * third)...])))
        #expect(last == .text(ByteBuffer(string: String(repeating: "fragment ", count: 30))))
    }

    @Test func rsv1OnAContinuationOrControlFrameFailsWith1002() throws {
        // §6.1: only the first frame of a message may set RSV1; control frames never.
        var machine = WebSocketConnectionStateMachine(compression: try deflateCodec())
        _ = machine.frameReceived(maskedFrame(.text, try deflated(Array("abc".utf8)), fin: false, rsv1: true))
        if case .fail(let code, _) = machine.frameReceived(maskedFrame(.continuation, [0], rsv1: true)) {
            #expect(code == 1002)
        } else {
            Issue.record("RSV1 on a continuation frame was accepted")
        }
        var other = WebSocketConnectionStateMachine(compression: try deflateCodec())
        if case .fail(let code, _) = other.frameReceived(maskedFrame(.ping, [], rsv1: true)) {
            #expect(code == 1002)
        } else {
            Issue.record("RSV1 on a ping was accepted")
        }
    }

    @Test func zipBombClosesWith1009WithoutInflatingIt() throws {
        // 10 MiB of zeros compress to about 10 KiB; with a 1 MiB limit inflation stops at the limit.
        var machine = WebSocketConnectionStateMachine(configuration: .init(maxMessageSize: 1 << 20), compression: try deflateCodec())
        let bomb = try deflated([UInt8](repeating: 0, count: 10 << 20))
        #expect(bomb.count < 64 * 1024)
        if case .fail(let code, _) = machine.frameReceived(maskedFrame(.binary, bomb, rsv1: true)) {
            #expect(code == 1009)
        } else {
            Issue.record("the zip bomb was accepted")
        }
    }

    @Test func inflaterOutputStaysNearTheLimit() throws {
        // The inflater refuses as soon as the output passes the limit: it never holds the whole bomb.
        let bomb = try deflated([UInt8](repeating: 0, count: 10 << 20))
        var output = ByteBuffer()
        #expect(throws: InflateError.tooBig) {
            try bomb.withUnsafeBytes { try Inflater().inflateFragment($0, into: &output, limit: 100_000) }
        }
        #expect(output.readableBytes <= 100_001)
    }

    @Test func corruptCompressedDataFailsWith1007() throws {
        // Data that is not DEFLATE fails the connection as inconsistent data.
        var machine = WebSocketConnectionStateMachine(compression: try deflateCodec())
        if case .fail(let code, _) = machine.frameReceived(maskedFrame(.binary, [0xFF, 0xFF, 0xFF, 0xFF, 0x00], rsv1: true)) {
            #expect(code == 1007)
        } else {
            Issue.record("corrupt data was accepted")
        }
    }

    @Test func invalidUTF8InsideCompressedTextFailsWith1007() throws {
        // UTF-8 is checked on the inflated bytes.
        var machine = WebSocketConnectionStateMachine(compression: try deflateCodec())
        let invalid = try deflated([0x61, 0xC0, 0x80, 0x62] + Array(repeating: 0x61, count: 100))
        if case .fail(let code, _) = machine.frameReceived(maskedFrame(.text, invalid, rsv1: true)) {
            #expect(code == 1007)
        } else {
            Issue.record("invalid UTF-8 was accepted")
        }
    }

    @Test func uncompressedMessagesStillWorkWithTheExtension() throws {
        // A message without RSV1 is taken as it is, even with permessage-deflate agreed.
        var machine = WebSocketConnectionStateMachine(compression: try deflateCodec())
        #expect(machine.frameReceived(maskedFrame(.text, Array("plain".utf8))) == .text(ByteBuffer(string: "plain")))
    }
}
