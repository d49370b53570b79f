import NIOCore
import NIOHTTP1
import SockwaySockJS
import SockwayZlib
import Testing

@testable import SockwayServer

/// A WebSocket frame as the server sent it.
struct ServerFrame: Equatable {
    var fin: Bool
    var opcode: UInt8
    var payload: [UInt8]
    var rsv1 = false

    var text: String { String(decoding: payload, as: UTF8.self) }
    var closeCode: UInt16? {
        opcode == 0x8 && payload.count >= 2 ? UInt16(payload[0]) << 8 | UInt16(payload[1]) : nil
    }
}

extension InMemoryConnection {
    /// Upgrades to WebSocket at `path`; returns the 101 response head.
    func upgrade(_ path: String, headers: [(String, String)] = []) throws -> String {
        try request(
            "GET",
            path,
            headers: [
                ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw=="),
            ] + headers
        )
        var bytes = try readBytes()
        let text = String(buffer: bytes)
        guard let end = text.range(of: "\r\n\r\n") else { return text }
        let headLength = text[..<end.upperBound].utf8.count
        let head = bytes.readString(length: headLength) ?? ""
        leftover = bytes
        return head
    }

    /// Sends a masked client frame.
    func sendFrame(opcode: UInt8, _ payload: [UInt8], fin: Bool = true) throws {
        try write(Self.frame(opcode: opcode, payload, fin: fin))
    }

    /// A masked client frame's bytes.
    static func frame(opcode: UInt8, _ payload: [UInt8], fin: Bool = true) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger((fin ? 0x80 : 0) | opcode)
        if payload.count < 126 {
            buffer.writeInteger(UInt8(0x80 | payload.count))
        } else if payload.count < 65536 {
            buffer.writeInteger(UInt8(0x80 | 126))
            buffer.writeInteger(UInt16(payload.count))
        } else {
            buffer.writeInteger(UInt8(0x80 | 127))
            buffer.writeInteger(UInt64(payload.count))
        }
        let key: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        buffer.writeBytes(key)
        buffer.writeBytes(payload.enumerated().map { $0.element ^ key[$0.offset % 4] })
        return buffer
    }

    func sendText(_ text: String) throws {
        try sendFrame(opcode: 0x1, Array(text.utf8))
    }

    /// Reads the frames the server has written so far.
    func readFrames() throws -> [ServerFrame] {
        var buffer = try readBytes()
        var frames: [ServerFrame] = []
        while buffer.readableBytes >= 2 {
            let first = buffer.readInteger(as: UInt8.self)!
            let second = buffer.readInteger(as: UInt8.self)!
            var length = Int(second & 0x7F)
            if length == 126 { length = Int(buffer.readInteger(as: UInt16.self)!) }
            if length == 127 { length = Int(buffer.readInteger(as: UInt64.self)!) }
            let payload = buffer.readBytes(length: length) ?? []
            frames.append(ServerFrame(fin: first & 0x80 != 0, opcode: first & 0x0F, payload: payload, rsv1: first & 0x40 != 0))
        }
        return frames
    }
}

@Suite struct WebSocketTransportTests {
    // The upgrade answers 101 with the RFC 6455 accept key and no Content-Length, then sends "o".
    @Test func sockJSWebSocketOpensAndEchoes() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        let head = try connection.upgrade("/echo/000/ws1/websocket")
        #expect(head.hasPrefix("HTTP/1.1 101"))
        #expect(head.lowercased().contains("sec-websocket-accept: hsmrc0smlyukagmm5oppg2hagwk="))
        #expect(!head.lowercased().contains("content-length"))
        #expect(try connection.readFrames() == [ServerFrame(fin: true, opcode: 1, payload: Array("o".utf8))])
        try connection.sendText(#"["a","b"]"#)
        try connection.sendText(#""c""#)
        #expect(try connection.readFrames().map(\.text) == [#"a["a","b"]"#, #"a["c"]"#])
    }

    // Frames that arrive in one read are echoed in one frame: the replies to everything a read brought
    // are coalesced (one write, and one deflate call when compressing), in order.
    @Test func repliesToOneReadShareAFrame() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        _ = try connection.upgrade("/echo/000/ws1/websocket")
        #expect(try connection.readFrames().map(\.text) == ["o"])
        var batch = InMemoryConnection.frame(opcode: 1, Array(#"["a","b"]"#.utf8))
        var second = InMemoryConnection.frame(opcode: 1, Array(#""c""#.utf8))
        batch.writeBuffer(&second)
        try connection.write(batch)
        #expect(try connection.readFrames().map(\.text) == [#"a["a","b","c"]"#])
    }

    // A client whose replies pile up (the channel does not take them) is not read from until they
    // drain: it slows down instead of overflowing the outbox and losing its session to 1013.
    @Test func readingPausesWhileRepliesPileUp() throws {
        let server = InMemoryServer(options: .init(maxQueuedMessages: 4))
        let connection = try server.connect()
        _ = try connection.upgrade("/echo/000/ws9/websocket")
        #expect(try connection.readFrames().map(\.text) == ["o"])
        let reads = ReadCounter()
        try connection.channel.pipeline.syncOperations.addHandler(reads, position: .first)
        connection.channel.isWritable = false
        try connection.sendText(#"["1","2"]"#)
        connection.channel.read()
        #expect(reads.count == 0)
        connection.channel.isWritable = true
        connection.channel.pipeline.fireChannelWritabilityChanged()
        connection.channel.embeddedEventLoop.run()
        #expect(reads.count == 1)
        #expect(try connection.readFrames().map(\.text) == [#"a["1","2"]"#])
        // Not backed up: reads pass straight through.
        try connection.sendText(#"["3"]"#)
        connection.channel.read()
        #expect(reads.count == 2)
    }

    // Coalescing never reorders: replies to the messages before a ping or a protocol error in the same
    // read go out before the pong or the close (Autobahn 2.x, 3.2, 4.1.3, 5.15).
    @Test func controlFramesStayAfterEarlierReplies() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        _ = try connection.upgrade("/echo/websocket")
        var batch = InMemoryConnection.frame(opcode: 1, Array("a".utf8))
        var ping = InMemoryConnection.frame(opcode: 9, Array("p".utf8))
        var second = InMemoryConnection.frame(opcode: 1, Array("b".utf8))
        batch.writeBuffer(&ping)
        batch.writeBuffer(&second)
        try connection.write(batch)
        #expect(try connection.readFrames().map { [$0.opcode] + $0.payload } == [[1] + Array("a".utf8), [10] + Array("p".utf8), [1] + Array("b".utf8)])

        var failing = InMemoryConnection.frame(opcode: 1, Array("c".utf8))
        var reserved = InMemoryConnection.frame(opcode: 3, [])
        failing.writeBuffer(&reserved)
        try connection.write(failing)
        let frames = try connection.readFrames()
        #expect(frames.map(\.opcode) == [1, 8])
        #expect(frames.first?.text == "c")
        #expect(frames.last?.closeCode == 1002)
    }

    // Empty WebSocket messages and empty arrays carry no messages and are ignored.
    @Test func emptyFramesAreIgnored() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        _ = try connection.upgrade("/echo/000/ws2/websocket")
        _ = try connection.readFrames()
        try connection.sendText("")
        try connection.sendText("[]")
        try connection.sendText(#"["a"]"#)
        #expect(try connection.readFrames().map(\.text) == [#"a["a"]"#])
    }

    // Broken JSON drops the connection with a WebSocket close frame and no SockJS close frame.
    @Test func brokenJSONFailsTheConnection() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        _ = try connection.upgrade("/echo/000/ws3/websocket")
        _ = try connection.readFrames()
        try connection.sendText(#"["a"#)
        let frames = try connection.readFrames()
        #expect(frames.count == 1)
        #expect(frames.first?.closeCode == 1007)
        #expect(!connection.isActive)
    }

    // The close endpoint sends o, then c[3000,"Go away!"], then a WebSocket close; the session is reaped.
    @Test func serverCloseSendsTheCloseFrame() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        _ = try connection.upgrade("/close/000/ws4/websocket")
        let frames = try connection.readFrames()
        try #require(frames.map(\.opcode) == [1, 1, 8])
        #expect(frames[1].text == #"c[3000,"Go away!"]"#)
        #expect(frames[2].closeCode == 1000)
        #expect(server.sessionCount("/close") == 0)
        // The client answers the close; the server then drops the TCP connection.
        try connection.sendFrame(opcode: 0x8, [0x03, 0xE8])
        #expect(!connection.isActive)
    }

    // The raw endpoint has no SockJS framing: one WebSocket message per message.
    @Test func rawWebSocketEchoes() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        _ = try connection.upgrade("/echo/websocket")
        #expect(try connection.readFrames().isEmpty)
        try connection.sendText("Hello world!\u{FFFF}")
        #expect(try connection.readFrames() == [ServerFrame(fin: true, opcode: 1, payload: Array("Hello world!\u{FFFF}".utf8))])
    }

    // The raw endpoint carries the application's close code and reason in the WebSocket close frame.
    @Test func rawWebSocketCloseCarriesTheReason() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        _ = try connection.upgrade("/close/websocket")
        let frames = try connection.readFrames()
        try #require(frames.count == 1)
        #expect(frames[0].closeCode == 3000)
        #expect(String(decoding: frames[0].payload.dropFirst(2), as: UTF8.self) == "Go away!")
    }

    // The client's close is answered with a close frame and the session ends.
    @Test func clientCloseIsEchoed() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        _ = try connection.upgrade("/echo/000/ws5/websocket")
        _ = try connection.readFrames()
        #expect(server.sessionCount() == 1)
        try connection.sendFrame(opcode: 0x8, [0x03, 0xE8] + Array("bye".utf8))
        let frames = try connection.readFrames()
        #expect(frames.map(\.closeCode) == [1000])
        #expect(server.sessionCount() == 0)
        #expect(!connection.isActive)
    }

    // A ping is answered with a pong carrying the same data.
    @Test func pingIsAnswered() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        _ = try connection.upgrade("/echo/000/ws6/websocket")
        _ = try connection.readFrames()
        try connection.sendFrame(opcode: 0x9, [1, 2, 3])
        #expect(try connection.readFrames() == [ServerFrame(fin: true, opcode: 0xA, payload: [1, 2, 3])])
    }

    // A message over the size limit fails the connection with 1009.
    @Test func oversizedMessageFailsWith1009() throws {
        let server = InMemoryServer(options: .init(maxMessageBytes: 100))
        let connection = try server.connect()
        _ = try connection.upgrade("/echo/000/ws7/websocket")
        _ = try connection.readFrames()
        try connection.sendFrame(opcode: 0x1, Array(repeating: UInt8(ascii: "a"), count: 60), fin: false)
        try connection.sendFrame(opcode: 0x0, Array(repeating: UInt8(ascii: "a"), count: 60))
        #expect(try connection.readFrames().map(\.closeCode) == [1009])
    }

    // Without websocket, neither WebSocket URL upgrades: the session URL is 404.
    @Test func disabledWebSocketDoesNotUpgrade() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        let head = try connection.upgrade("/disabled_websocket_echo/000/ws8/websocket")
        #expect(head.hasPrefix("HTTP/1.1 404"))
    }

    // A GET without upgrade headers on a WebSocket URL is 400; POST is 405.
    @Test func plainRequestsToWebSocketURLs() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        try connection.request("GET", "/echo/0/0/websocket")
        #expect(try connection.readResponse().status == 400)
        try connection.request("POST", "/echo/0/0/websocket")
        let refused = try connection.readResponse()
        #expect(refused.status == 405)
        #expect(refused.header("Allow") == "GET")
    }

    // The raw URL echoes binary messages as binary; the SockJS URL refuses them with 1003.
    @Test func binaryMessages() throws {
        let server = InMemoryServer()
        let raw = try server.connect()
        _ = try raw.upgrade("/echo/websocket")
        try raw.sendFrame(opcode: 0x2, [0, 1, 2, 255])
        #expect(try raw.readFrames() == [ServerFrame(fin: true, opcode: 2, payload: [0, 1, 2, 255])])
        let framed = try server.connect()
        _ = try framed.upgrade("/echo/000/wsb/websocket")
        _ = try framed.readFrames()
        try framed.sendFrame(opcode: 0x2, [1])
        #expect(try framed.readFrames().map(\.closeCode) == [1003])
    }

    // permessage-deflate is agreed in the 101 response, and large messages come back compressed.
    @Test func compressionIsNegotiatedAndUsed() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        let head = try connection.upgrade("/echo/websocket", headers: [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")])
        #expect(head.lowercased().contains("sec-websocket-extensions: permessage-deflate; client_no_context_takeover"))
        let text = String(repeating: "compress me ", count: 50)
        try connection.sendText(text)
        let frames = try connection.readFrames()
        try #require(frames.count == 1)
        #expect(frames[0].rsv1)
        #expect(frames[0].payload.count < text.utf8.count)
        let inflater = try Inflater()
        var output = ByteBuffer()
        try frames[0].payload.withUnsafeBytes { try inflater.inflateFragment($0, into: &output, limit: 1 << 20) }
        try inflater.finishMessage(into: &output, limit: 1 << 20)
        #expect(String(buffer: output) == text)
        // Small messages stay uncompressed.
        try connection.sendText("tiny")
        #expect(try connection.readFrames() == [ServerFrame(fin: true, opcode: 1, payload: Array("tiny".utf8))])
    }

    // Without an offer, or with compression off for the endpoint, nothing is agreed.
    @Test func compressionCanBeSwitchedOff() throws {
        let server = InMemoryServer(options: .init(compression: .disabled))
        let connection = try server.connect()
        let head = try connection.upgrade("/echo/websocket", headers: [("Sec-WebSocket-Extensions", "permessage-deflate")])
        #expect(!head.lowercased().contains("sec-websocket-extensions"))
    }

    // Heartbeats reach an idle SockJS WebSocket as "h" frames.
    @Test func heartbeatFrames() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        _ = try connection.upgrade("/echo/000/ws9/websocket")
        _ = try connection.readFrames()
        server.advance(by: .seconds(25))
        #expect(try connection.readFrames().map(\.text) == ["h"])
    }
}

@Suite struct WebSocketPipelineTests {
    // An idle WebSocket connection must not keep the HTTP machinery it was upgraded from: the encoder
    // and Sockway's HTTP handler (with its parser) go, and only the frame codec and handler stay.
    @Test func upgradeLeavesOnlyTheWebSocketHandlers() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        _ = try connection.upgrade("/echo/websocket")
        let pipeline = connection.channel.pipeline.debugDescription
        for gone in ["HTTPDecoder", "HTTPResponseEncoder", "HTTPServerUpgradeHandler", "SockwayHTTPHandler"] {
            #expect(!pipeline.contains(gone), "\(pipeline)")
        }
        #expect(pipeline.contains("SockwayWebSocketHandler"))
    }

    @Test func upgradeFreesTheHTTPHandlers() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        weak let encoder = try connection.channel.pipeline.syncOperations.handler(type: HTTPResponseEncoder.self)
        weak let sockway = try connection.channel.pipeline.syncOperations.handler(type: SockwayHTTPHandler.self)
        _ = try connection.upgrade("/echo/websocket")
        connection.channel.embeddedEventLoop.run()
        #expect(encoder == nil)
        #expect(sockway == nil)
    }
}

@Suite struct WebSocketKeepaliveTransportTests {
    // Configured pings go out on both URLs at the interval; the connection stays open while the
    // client answers.
    @Test(arguments: ["/echo/websocket", "/echo/000/k1/websocket"])
    func serverPingsAtTheInterval(path: String) throws {
        var options = SockwayEndpointOptions()
        options.webSocketPingInterval = .seconds(10)
        let server = InMemoryServer(options: options)
        let connection = try server.connect()
        _ = try connection.upgrade(path)
        _ = try connection.readFrames()
        server.advance(by: .seconds(9))
        #expect(try connection.readFrames().isEmpty)
        server.advance(by: .seconds(1))
        #expect(try connection.readFrames().map(\.opcode) == [0x9])
        try connection.sendFrame(opcode: 0xA, [])
        server.advance(by: .seconds(10))
        #expect(try connection.readFrames().map(\.opcode) == [0x9])
        #expect(connection.isActive)
    }

    // A client that sends nothing for the idle timeout is closed with 1001, and its session ends.
    @Test func idleClientIsClosed() throws {
        var options = SockwayEndpointOptions()
        options.webSocketIdleTimeout = .seconds(30)
        let server = InMemoryServer(options: options)
        let connection = try server.connect()
        _ = try connection.upgrade("/echo/websocket")
        server.advance(by: .seconds(20))
        try connection.sendText("still here")
        #expect(try connection.readFrames().map(\.text) == ["still here"])
        server.advance(by: .seconds(29))
        #expect(try connection.readFrames().isEmpty)
        server.advance(by: .seconds(1))
        let frames = try connection.readFrames()
        #expect(frames.map(\.closeCode) == [1001])
        #expect(frames.first.map { String(decoding: $0.payload.dropFirst(2), as: UTF8.self) } == "Idle timeout")
    }

    // Without either setting, nothing is scheduled: an idle connection gets no frames, ever.
    @Test func noKeepaliveByDefault() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        _ = try connection.upgrade("/echo/websocket")
        server.advance(by: .seconds(3600))
        #expect(try connection.readFrames().isEmpty)
        #expect(connection.isActive)
    }
}

/// Counts the reads that reach the head of the pipeline.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = Any
    private(set) var count = 0

    func read(context: ChannelHandlerContext) {
        count += 1
        context.read()
    }
}
