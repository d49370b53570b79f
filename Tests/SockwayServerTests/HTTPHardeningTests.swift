import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import SockwayServer

/// Counts the reads the server's pipeline asks of the socket, to see reading pause and resume.
private final class SocketReadCounter: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = Any
    var reads = 0
    func read(context: ChannelHandlerContext) {
        reads += 1
        context.read()
    }
}

/// The status lines in `text`, in order (a body without a final line break runs into the next one).
private func statusLines(_ text: String) -> [String] {
    let expression = try! NSRegularExpression(pattern: "HTTP/1\\.[01] [0-9]{3} [^\\r]*")
    return expression.matches(in: text, range: NSRange(text.startIndex..., in: text)).map {
        String(text[Range($0.range, in: text)!])
    }
}

@Suite("HTTP hardening: framing, bounds, deadlines, pipelining")
struct HTTPHardeningTests {
    // MARK: Request smuggling (RFC 9112 §6.3, §11.2)

    @Test(
        "a request with broken framing gets 400 alone: nothing is answered for it or after it",
        arguments: [
            "GET /echo/info HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\nx\r\n0\r\n\r\n",
            "GET /echo/info HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
            "GET /echo/info HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "POST /echo/000/abc/xhr_send HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\n[\"a\"]",
            "POST /echo/000/abc/xhr_send HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            "POST /echo/000/abc/xhr_send HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "GET /echo/info HTTP/1.1\r\nHost: h\r\nX-A: a\r\n folded\r\n\r\n",
        ]
    )
    func smugglingRefused(request: String) throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        try connection.write(request + "GET /echo/info HTTP/1.1\r\nHost: h\r\n\r\n")
        let text = try connection.readText()
        #expect(statusLines(text) == ["HTTP/1.1 400 Bad Request"], "\(text)")
        #expect(text.contains("Connection: close"))
        #expect(!connection.isActive)
    }

    @Test("a GET with a body is answered only once its body is complete")
    func getAnsweredAfterItsBody() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        try connection.write("GET /echo/info HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n12345")
        #expect(try connection.readText().isEmpty)
        try connection.write("67890")
        #expect(try connection.readResponse().status == 200)
    }

    @Test("a declared body over the URL's bound is 413 before it arrives, and the connection closes")
    func declaredBodyTooLarge() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        try connection.write("POST /echo/000/abc/xhr_send HTTP/1.1\r\nHost: h\r\nContent-Length: 100000000\r\n\r\n[\"a\"")
        let text = try connection.readText()
        #expect(statusLines(text) == ["HTTP/1.1 413 Payload Too Large"])
        #expect(!connection.isActive)
    }

    // MARK: Head bounds

    @Test("a request line over 8 KiB is 414; a head over 16 KiB or over 100 fields is 431")
    func headBounds() throws {
        let server = InMemoryServer()
        let long = try server.connect()
        try long.write("GET /echo/info?" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\n")
        #expect(statusLines(try long.readText()) == ["HTTP/1.1 414 URI Too Long"])
        #expect(!long.isActive)

        let big = try server.connect()
        try big.write("GET /echo/info HTTP/1.1\r\nHost: h\r\nX-Big: " + String(repeating: "b", count: 17000))
        #expect(statusLines(try big.readText()) == ["HTTP/1.1 431 Request Header Fields Too Large"])
        #expect(!big.isActive)

        let many = try server.connect()
        var request = "GET /echo/info HTTP/1.1\r\nHost: h\r\n"
        for index in 0..<100 { request += "X-\(index): v\r\n" }
        try many.write(request + "\r\n")
        #expect(statusLines(try many.readText()) == ["HTTP/1.1 431 Request Header Fields Too Large"])
    }

    @Test("the head bounds are configurable")
    func headBoundsConfigurable() throws {
        let server = InMemoryServer(
            endpoints: SockwayDemoEndpoints.all(options: .init()),
            configuration: .init(maxRequestHeaderFields: 3)
        )
        let connection = try server.connect()
        try connection.write("GET /echo/info HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
        #expect(try connection.readResponse().status == 431)
    }

    // MARK: Deadlines

    @Test("a head trickled a byte every 2 s is closed with 408 at the 10 s head deadline")
    func slowHeadClosed() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        for byte in "GET /echo/info HTTP/1.1\r\n".utf8.prefix(6) {
            try connection.write(ByteBuffer(bytes: [byte]))
            server.advance(by: .seconds(2))
            if !connection.isActive { break }
        }
        #expect(!connection.isActive)
        #expect(statusLines(try connection.readText()) == ["HTTP/1.1 408 Request Timeout"])
    }

    @Test("a connection that sends nothing is closed at the head deadline, without an answer")
    func silentConnectionClosed() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        server.advance(by: .seconds(9))
        #expect(connection.isActive)
        server.advance(by: .seconds(1))
        #expect(!connection.isActive)
        #expect(try connection.readText().isEmpty)
    }

    @Test("an idle kept-alive connection is closed after the keep-alive timeout (15 s), not the head deadline")
    func keepAliveTimeout() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        try connection.request("GET", "/echo/info")
        #expect(try connection.readResponse().status == 200)
        server.advance(by: .seconds(12))
        #expect(connection.isActive)
        try connection.request("GET", "/echo/info")
        #expect(try connection.readResponse().status == 200)
        server.advance(by: .seconds(15))
        #expect(!connection.isActive)
    }

    @Test("a body trickled slowly is closed with 408 at the body deadline, whatever its pace")
    func slowBody() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        try connection.write("POST /echo/000/abc/xhr_send HTTP/1.1\r\nHost: h\r\nContent-Length: 20\r\n\r\n[\"a")
        for _ in 0..<4 {
            server.advance(by: .seconds(2))
            try connection.write("b")
        }
        #expect(connection.isActive)
        server.advance(by: .seconds(2))
        #expect(!connection.isActive)
        #expect(statusLines(try connection.readText()) == ["HTTP/1.1 408 Request Timeout"])
    }

    @Test("a large body earns a second per 16 KiB beyond the body timeout")
    func largeBodyEarnsTime() throws {
        let server = InMemoryServer(options: .init(disconnectDelay: .seconds(60)))
        let connection = try server.connect()
        try connection.request("POST", "/echo/000/big/xhr")
        _ = try connection.readResponse()
        let message = "[\"" + String(repeating: "x", count: 65536) + "\"]"
        try connection.write("POST /echo/000/big/xhr_send HTTP/1.1\r\nHost: h\r\nContent-Length: \(message.utf8.count)\r\n\r\n")
        try connection.write(String(message.dropLast(1)))
        server.advance(by: .seconds(13))
        #expect(connection.isActive, "64 KiB earned 4 s")
        try connection.write("]")
        #expect(statusLines(try connection.readText()) == ["HTTP/1.1 204 No Content"])
    }

    @Test("a URL that takes no body refuses one over 64 KiB; an upgrade request with a body is not upgraded")
    func bodiesWhereNoneBelongs() throws {
        let server = InMemoryServer()
        let info = try server.connect()
        try info.write("GET /echo/info HTTP/1.1\r\nHost: h\r\nContent-Length: 70000\r\n\r\n")
        #expect(statusLines(try info.readText()) == ["HTTP/1.1 413 Payload Too Large"])

        let upgrade = try server.connect()
        try upgrade.write(
            "GET /echo/websocket HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                + "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nContent-Length: 3\r\n\r\nabc"
        )
        let lines = statusLines(try upgrade.readText())
        #expect(lines.count == 1 && !lines[0].contains("101"), "\(lines)")
    }

    @Test("request bodies count towards the server-wide queued bytes: past the bound a send gets 503 and the connection closes")
    func bodiesCountTowardsTheServerBound() throws {
        let server = InMemoryServer(endpoints: SockwayDemoEndpoints.all(options: .init()), configuration: .init(maxTotalQueuedBytes: 100))
        let connection = try server.connect()
        try connection.request("POST", "/echo/000/q/xhr")
        _ = try connection.readResponse()
        try connection.write("POST /echo/000/q/xhr_send HTTP/1.1\r\nHost: h\r\nContent-Length: 300\r\n\r\n[\"" + String(repeating: "a", count: 150))
        #expect(server.runtime.budget.queued.bytes >= 150)
        try connection.write(String(repeating: "a", count: 146) + "\"]")
        #expect(statusLines(try connection.readText()) == ["HTTP/1.1 503 Service Unavailable"])
        #expect(!connection.isActive)
        #expect(server.runtime.budget.queued.bytes == 0)
    }

    @Test("a chunk announced larger than the body's bound is 413 before its bytes arrive")
    func oversizedChunk() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        try connection.write("POST /echo/000/abc/xhr_send HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5F5E100\r\n")
        #expect(statusLines(try connection.readText()) == ["HTTP/1.1 413 Payload Too Large"])
        #expect(!connection.isActive)
    }

    @Test("a long poll is not cut by any request deadline")
    func longPollHasNoDeadline() throws {
        let server = InMemoryServer(options: .init(heartbeatInterval: .seconds(100), disconnectDelay: .seconds(200)))
        let connection = try server.connect()
        try connection.request("POST", "/echo/000/poll/xhr")
        #expect(try connection.readResponse().body == "o\n")
        try connection.request("POST", "/echo/000/poll/xhr")
        server.advance(by: .seconds(90))
        #expect(connection.isActive)
        // The poll's head is out (xhr polling starts its chunked response at once); nothing else.
        let text = try connection.readText()
        #expect(statusLines(text) == ["HTTP/1.1 200 OK"])
        #expect(!text.contains("0\r\n\r\n"))
    }

    // MARK: Pipelining

    @Test("pipelined requests are answered in order, each once")
    func pipelinedInOrder() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        var requests = ""
        for index in 0..<50 { requests += "GET /echo/info?n=\(index) HTTP/1.1\r\nHost: h\r\n\r\n" }
        requests += "GET /nothing-here HTTP/1.1\r\nHost: h\r\n\r\n"
        try connection.write(requests)
        let lines = statusLines(try connection.readText())
        #expect(lines.count == 51)
        #expect(lines.last == "HTTP/1.1 404 Not Found")
    }

    @Test("while responses are unread (the channel is not writable), no further request is served and reading stops past the bound")
    func pipeliningBackpressure() throws {
        let server = InMemoryServer(
            endpoints: SockwayDemoEndpoints.all(options: .init()),
            configuration: .init(maxPipelinedBytes: 4096)
        )
        let connection = try server.connect()
        let counter = SocketReadCounter()
        try connection.channel.pipeline.syncOperations.addHandler(counter, position: .first)
        let request = "GET /echo/info HTTP/1.1\r\nHost: h\r\n\r\n"
        try connection.write(request)
        #expect(statusLines(try connection.readText()).count == 1)

        connection.channel.isWritable = false
        connection.channel.pipeline.fireChannelWritabilityChanged()
        try connection.write(String(repeating: request, count: 200))
        #expect(try connection.readText().isEmpty)
        let readsBefore = counter.reads
        connection.channel.read()
        #expect(counter.reads == readsBefore, "reading goes on past the bound")

        connection.channel.isWritable = true
        connection.channel.pipeline.fireChannelWritabilityChanged()
        connection.channel.embeddedEventLoop.run()
        #expect(statusLines(try connection.readText()).count == 200)
        #expect(counter.reads == readsBefore + 1, "reading resumes once the requests are served")
    }

    @Test("requests sent ahead during a long poll wait, and are served after it")
    func pipelinedBehindLongPoll() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        try connection.request("POST", "/echo/000/lp/xhr")
        #expect(try connection.readResponse().body == "o\n")
        try connection.write("POST /echo/000/lp/xhr HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\nGET /echo/info HTTP/1.1\r\nHost: h\r\n\r\n")
        var text = try connection.readText()
        #expect(statusLines(text).count == 1, "only the poll's head is out")
        let sender = try server.connect()
        try sender.request("POST", "/echo/000/lp/xhr_send", body: "[\"x\"]")
        #expect(try sender.readResponse().status == 204)
        text += try connection.readText()
        #expect(statusLines(text) == ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"])
        #expect(text.contains("a[\"x\"]"))
        #expect(text.contains("\"websocket\""))
    }

    // MARK: Upgrades

    @Test("a WebSocket upgrade on the first request and on a kept-alive connection both go through Sockway's handler")
    func upgradesFirstAndLate() throws {
        let server = InMemoryServer()
        let first = try server.connect()
        _ = try first.upgrade("/echo/websocket")
        #expect(first.channel.pipeline.debugDescription.contains("SockwayWebSocketHandler"))

        let late = try server.connect()
        try late.request("GET", "/echo/info")
        #expect(try late.readResponse().status == 200)
        _ = try late.upgrade("/echo/websocket")
        #expect(late.channel.pipeline.debugDescription.contains("SockwayWebSocketHandler"))
    }

    @Test("Expect: 100-continue gets its interim answer before the body")
    func expectContinue() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        try connection.request("POST", "/echo/000/ec/xhr")
        _ = try connection.readResponse()
        try connection.write("POST /echo/000/ec/xhr_send HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        #expect(statusLines(try connection.readText()) == ["HTTP/1.1 100 Continue"])
        try connection.write("[\"a\"]")
        #expect(statusLines(try connection.readText()) == ["HTTP/1.1 204 No Content"])
    }

    @Test("refusals are counted by kind")
    func refusalsCounted() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        try connection.write("GET / HTTP/1.1\r\nHost: h\r\nBad Field: x\r\n\r\n")
        _ = try connection.readText()
        #expect(server.runtime.refusals.totals["malformed_request"] == 1)

        let socket = try server.connect()
        _ = try socket.upgrade("/echo/websocket")
        var unmasked = ByteBuffer()
        unmasked.writeBytes([0x81, 0x01, 0x61])
        try socket.write(unmasked)
        #expect(server.runtime.refusals.totals["malformed_frame"] == 1)
    }
}
