import NIOCore
import SockwaySockJS
import Testing

@testable import SockwayServer

/// SockJS over HTTP, end to end through the real NIO pipeline, in memory.
@Suite struct HTTPTransportTests {
    // The greeting answers with a Content-Length on a kept-alive HTTP/1.1 connection.
    @Test func greetingKeepsTheConnectionAlive() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        try connection.request("GET", "/echo")
        let first = try connection.readResponse()
        #expect(first.status == 200)
        #expect(first.body == "Welcome to SockJS!\n")
        #expect(first.header("Content-Length") == "19")
        try connection.request("GET", "/echo/")
        #expect(try connection.readResponse().status == 200)
        #expect(connection.isActive)
    }

    // HTTP/1.0 without keep-alive gets its answer and then the connection closes.
    @Test func http10ClosesAfterTheResponse() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        try connection.request("GET", "/echo", version: "HTTP/1.0")
        let response = try connection.readResponse()
        #expect(response.body == "Welcome to SockJS!\n")
        #expect(response.header("Transfer-Encoding") == nil)
        #expect(!connection.isActive)
    }

    // Paths outside every endpoint are 404, and / is the demo page.
    @Test func demoPageAndNotFound() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        try connection.request("GET", "/")
        let page = try connection.readResponse()
        #expect(page.status == 200)
        #expect(page.body.contains("SockJS"))
        try connection.request("GET", "/nope")
        #expect(try connection.readResponse().status == 404)
    }

    // xhr-polling: open frame, a send on another connection, then the echo on the next poll.
    @Test func xhrPollingRoundTrip() throws {
        let server = InMemoryServer()
        let poll = try server.connect()
        let send = try server.connect()
        try poll.request("POST", "/echo/000/s1/xhr")
        #expect(try poll.readResponse().body == "o\n")
        try send.request("POST", "/echo/000/s1/xhr_send", body: #"["a","b"]"#)
        let sent = try send.readResponse()
        #expect(sent.status == 204)
        #expect(sent.header("Content-Type") == "text/plain; charset=UTF-8")
        try poll.request("POST", "/echo/000/s1/xhr")
        #expect(try poll.readResponse().body == #"a["a","b"]"# + "\n")
    }

    // Sending to a session that does not exist is 404; broken payloads get the SockJS error bodies.
    @Test func sendErrors() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        try connection.request("POST", "/echo/000/missing/xhr_send", body: #"["x"]"#)
        #expect(try connection.readResponse().status == 404)
        try connection.request("POST", "/echo/000/s2/xhr")
        _ = try connection.readResponse()
        try connection.request("POST", "/echo/000/s2/xhr_send", body: #"["x"#)
        let broken = try connection.readResponse()
        #expect(broken.status == 500)
        #expect(broken.body == "Broken JSON encoding.")
        try connection.request("POST", "/echo/000/s2/xhr_send", body: "")
        #expect(try connection.readResponse().body == "Payload expected.")
    }

    // A send body over the send-body limit is refused with 413 and the connection closes (the rest of
    // the body is not read).
    @Test func oversizedSendBodyIsRefused() throws {
        let server = InMemoryServer(options: .init(maxMessageBytes: 64, maxSendBodyBytes: 80))
        let connection = try server.connect()
        try connection.request("POST", "/echo/000/big/xhr")
        _ = try connection.readResponse()
        try connection.request("POST", "/echo/000/big/xhr_send", body: "[\"" + String(repeating: "x", count: 20) + "\"," + String(repeating: "\"y\",", count: 20) + "\"z\"]")
        let refused = try connection.readResponse()
        #expect(refused.status == 413)
        #expect(refused.body == "Payload too large.")
        #expect(!connection.isActive)
    }

    // The send-body limit is separate from the message limit, and defaults to eight times it: a
    // jsonp form body is several times larger than the messages it carries.
    @Test func sendBodyLimitDefaultsToEightMessages() throws {
        #expect(SockwayEndpointOptions(maxMessageBytes: 1000).rules.maxSendBodyBytes == 8000)
        #expect(SockwayEndpointOptions(maxMessageBytes: 1000, maxSendBodyBytes: 5).rules.maxSendBodyBytes == 5)
        #expect(SockwayEndpointOptions(maxMessageBytes: 1000).rules.maxMessageBytes == 1000)
    }

    // A body under the body limit holding one message over the message limit is refused whole with
    // 413: none of its messages is delivered, and the session and connection go on.
    @Test func oversizedMessageIsRefusedWhole() throws {
        let server = InMemoryServer(options: .init(maxMessageBytes: 64))
        let poll = try server.connect()
        let send = try server.connect()
        try poll.request("POST", "/echo/000/big/xhr")
        _ = try poll.readResponse()
        try send.request("POST", "/echo/000/big/xhr_send", body: "[\"small\",\"" + String(repeating: "é", count: 33) + "\"]")
        let refused = try send.readResponse()
        #expect(refused.status == 413)
        #expect(refused.body == "Message too large.")
        #expect(send.isActive)
        try send.request("POST", "/echo/000/big/xhr_send", body: "[\"" + String(repeating: "x", count: 64) + "\"]")
        #expect(try send.readResponse().status == 204)
        try poll.request("POST", "/echo/000/big/xhr")
        #expect(try poll.readResponse().body == "a[\"" + String(repeating: "x", count: 64) + "\"]\n")
    }

    // Invalid UTF-8 in a send body (xhr_send, or a jsonp_send form value once percent-decoded) and
    // lone surrogate escapes get 500 "Broken JSON encoding." and nothing of the body is delivered.
    @Test func invalidTextIsRefusedNotAltered() throws {
        let server = InMemoryServer()
        let poll = try server.connect()
        let send = try server.connect()
        try poll.request("POST", "/echo/000/u8/xhr")
        _ = try poll.readResponse()
        let invalid = Array(#"["ok",""#.utf8) + [0xC0, 0xAF] + Array(#""]"#.utf8)
        var request = ByteBuffer(string: "POST /echo/000/u8/xhr_send HTTP/1.1\r\nHost: x\r\nContent-Length: \(invalid.count)\r\n\r\n")
        request.writeBytes(invalid)
        try send.write(request)
        var refused = try send.readResponse()
        #expect(refused.status == 500)
        #expect(refused.body == "Broken JSON encoding.")
        try send.request("POST", "/echo/000/u8/xhr_send", body: #"["ok","\ud800"]"#)
        refused = try send.readResponse()
        #expect(refused.status == 500)
        #expect(refused.body == "Broken JSON encoding.")
        let form = [("Content-Type", "application/x-www-form-urlencoded")]
        try send.request("POST", "/echo/000/u8/jsonp_send", body: "d=%5B%22ok%22%2C%22%ED%A0%80%22%5D", headers: form)
        refused = try send.readResponse()
        #expect(refused.status == 500)
        #expect(refused.body == "Broken JSON encoding.")
        try send.request("POST", "/echo/000/u8/jsonp_send", body: "d=%5B%22fine%20%C3%A9%22%5D", headers: form)
        #expect(try send.readResponse().body == "ok")
        try poll.request("POST", "/echo/000/u8/xhr")
        #expect(try poll.readResponse().body == #"a["fine é"]"# + "\n")
    }

    // A second receiver gets 2010 while the first stays attached and still gets the messages.
    @Test func secondReceiverIsRefused() throws {
        let server = InMemoryServer()
        let first = try server.connect()
        let second = try server.connect()
        let send = try server.connect()
        try first.request("POST", "/echo/000/s3/xhr_streaming")
        var reader = ChunkReader()
        #expect(reader.feed(try first.readText().afterHead) == [String(repeating: "h", count: 2048) + "\n", "o\n"])
        try second.request("POST", "/echo/000/s3/xhr_streaming")
        let refused = try second.readResponse()
        #expect(refused.chunks.last == #"c[2010,"Another connection still open"]"# + "\n")
        #expect(refused.ended)
        try send.request("POST", "/echo/000/s3/xhr_send", body: #"["x"]"#)
        _ = try send.readResponse()
        #expect(reader.feed(try first.readText()) == [#"a["x"]"# + "\n"])
    }

    // Streaming responses end once their frames reach the response limit; the next one resumes the session.
    @Test func streamingEndsAtTheResponseLimit() throws {
        let server = InMemoryServer(options: .init(responseLimit: 100))
        let stream = try server.connect()
        let send = try server.connect()
        try stream.request("POST", "/echo/000/s4/xhr_streaming")
        var reader = ChunkReader()
        _ = reader.feed(try stream.readText().afterHead)
        let message = String(repeating: "y", count: 120)
        try send.request("POST", "/echo/000/s4/xhr_send", body: "[\"\(message)\"]")
        _ = try send.readResponse()
        #expect(reader.feed(try stream.readText()) == ["a[\"\(message)\"]\n", nil])
        // The session lives on: the next streaming request gets what is sent next, without an open frame.
        try send.request("POST", "/echo/000/s4/xhr_send", body: #"["z"]"#)
        _ = try send.readResponse()
        try stream.request("POST", "/echo/000/s4/xhr_streaming")
        var next = ChunkReader()
        #expect(next.feed(try stream.readText().afterHead) == [String(repeating: "h", count: 2048) + "\n", #"a["z"]"# + "\n"])
    }

    // Over HTTP/1.0 a streaming response has neither chunking nor a length, and ends by closing.
    @Test func http10StreamingEndsByClosing() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        try connection.request("POST", "/close/000/s5/xhr_streaming", headers: [("Connection", "Keep-Alive")], version: "HTTP/1.0")
        let text = try connection.readText()
        #expect(!text.lowercased().contains("transfer-encoding"))
        #expect(!text.lowercased().contains("content-length"))
        #expect(text.afterHead == String(repeating: "h", count: 2048) + "\n" + "o\n" + #"c[3000,"Go away!"]"# + "\n")
        #expect(!connection.isActive)
    }

    // A receiver cut by the network closes the session with 1002, which later polls are told.
    @Test func abortedReceiverInterruptsTheSession() throws {
        let server = InMemoryServer()
        let stream = try server.connect()
        try stream.request("POST", "/echo/000/s6/xhr_streaming")
        _ = try stream.readText()
        try stream.close()
        let poll = try server.connect()
        try poll.request("POST", "/echo/000/s6/xhr")
        #expect(try poll.readResponse().body == #"c[1002,"Connection interrupted"]"# + "\n")
    }

    // An attached receiver gets a heartbeat frame every heartbeat interval, driven by the loop's clock.
    @Test func heartbeatOnAnIdleReceiver() throws {
        let server = InMemoryServer()
        let stream = try server.connect()
        try stream.request("GET", "/echo/000/s7/eventsource")
        var reader = ChunkReader()
        #expect(reader.feed(try stream.readText().afterHead) == ["\r\n", "data: o\r\n\r\n"])
        server.advance(by: .seconds(24))
        #expect(try stream.readText().isEmpty)
        server.advance(by: .seconds(1))
        #expect(reader.feed(try stream.readText()) == ["data: h\r\n\r\n"])
    }

    // htmlfile and jsonp deliver markup-looking messages intact, never as raw markup.
    @Test func scriptTransportsAreMarkupSafe() throws {
        let server = InMemoryServer()
        let html = try server.connect()
        let send = try server.connect()
        try html.request("GET", "/echo/000/s8/htmlfile?c=cb")
        _ = try html.readText()
        let hostile = "</script><!--<script>alert(1)</script>\u{2028}\u{2029}&"
        var body = ByteBuffer()
        body.writeString("[")
        SockJSJSON.writeQuoted(hostile, into: &body)
        body.writeString("]")
        try send.request("POST", "/echo/000/s8/xhr_send", body: String(buffer: body))
        _ = try send.readResponse()
        var reader = ChunkReader()
        let chunks = reader.feed(try html.readText())
        let chunk = try #require(chunks.first ?? nil)
        let inner = chunk.dropFirst("<script>\n".count).dropLast("\n</script>\r\n".count)
        #expect(!inner.contains("<"))
        #expect(!inner.contains("\u{2028}"))
        // Undo both JSON layers and get the message back.
        let argument = inner.dropFirst("p(".count).dropLast(");".count)
        let frame = try Array(argument.utf8).withUnsafeBytes { try SockJSPayload.parseWebSocketMessage($0) }
        let messages = try Array(frame[0].dropFirst().utf8).withUnsafeBytes { try SockJSPayload.parseArray($0) }
        #expect(messages == [hostile])
    }

    // JSONP polling wraps the frame in the callback; jsonp_send accepts a form body and answers "ok".
    @Test func jsonpPolling() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        try connection.request("GET", "/echo/000/s9/jsonp?c=%63allback")
        let open = try connection.readResponse()
        #expect(open.body == #"/**/callback("o");"# + "\r\n")
        #expect(open.header("X-Content-Type-Options") == "nosniff")
        try connection.request(
            "POST",
            "/echo/000/s9/jsonp_send",
            body: "d=%5B%22x%22%5D",
            headers: [("Content-Type", "application/x-www-form-urlencoded")]
        )
        #expect(try connection.readResponse().body == "ok")
        try connection.request("GET", "/echo/000/s9/jsonp?c=callback")
        #expect(try connection.readResponse().body == #"/**/callback("a[\"x\"]");"# + "\r\n")
    }

    // The close endpoint answers every receiver with c[3000,"Go away!"] until the session is reaped.
    @Test func closedSessionRepeatsItsCloseFrame() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        try connection.request("POST", "/close/000/s10/xhr")
        #expect(try connection.readResponse().body == "o\n")
        for _ in 0..<2 {
            try connection.request("POST", "/close/000/s10/xhr")
            #expect(try connection.readResponse().body == #"c[3000,"Go away!"]"# + "\n")
        }
        server.advance(by: .seconds(5))
        #expect(server.sessionCount("/close") == 0)
        try connection.request("POST", "/close/000/s10/xhr")
        #expect(try connection.readResponse().body == "o\n")
    }

    // Ten thousand sessions opened and abandoned are all reaped after the disconnect delay.
    @Test func abandonedSessionsAreReaped() throws {
        let server = InMemoryServer(
            endpoints: SockwayDemoEndpoints.all(options: .init()),
            configuration: .init(maxSessionsPerAddress: nil)
        )
        let connection = try server.connect()
        for index in 0..<10_000 {
            try connection.request("POST", "/echo/000/abandoned-\(index)/xhr")
            _ = try connection.readBytes()
        }
        #expect(server.sessionCount() == 10_000)
        server.advance(by: .milliseconds(4_999))
        #expect(server.sessionCount() == 10_000)
        server.advance(by: .milliseconds(1))
        #expect(server.sessionCount() == 0)
    }

    // Messages sent while no receiver is attached reach the next one in order, exactly once.
    @Test func queuedMessagesAreDeliveredOnceInOrder() throws {
        let server = InMemoryServer()
        let poll = try server.connect()
        let send = try server.connect()
        try poll.request("POST", "/echo/000/s11/xhr")
        _ = try poll.readResponse()
        for index in 0..<5 {
            try send.request("POST", "/echo/000/s11/xhr_send", body: "[\"\(index)\"]")
            _ = try send.readResponse()
        }
        try poll.request("POST", "/echo/000/s11/xhr")
        #expect(try poll.readResponse().body == #"a["0","1","2","3","4"]"# + "\n")
        try send.request("POST", "/echo/000/s11/xhr_send", body: #"["5"]"#)
        _ = try send.readResponse()
        try poll.request("POST", "/echo/000/s11/xhr")
        #expect(try poll.readResponse().body == #"a["5"]"# + "\n")
    }

    // A session whose client does not poll closes with 1013 when its outbox overflows; what was
    // queued before the overflow is still delivered, then the close frame.
    @Test func outboxOverflowClosesTheSession() throws {
        let server = InMemoryServer(options: .init(maxQueuedMessages: 3))
        let poll = try server.connect()
        let send = try server.connect()
        try poll.request("POST", "/echo/000/s12/xhr")
        _ = try poll.readResponse()
        try send.request("POST", "/echo/000/s12/xhr_send", body: #"["1","2","3","4"]"#)
        _ = try send.readResponse()
        try poll.request("POST", "/echo/000/s12/xhr")
        #expect(try poll.readResponse().body == #"a["1","2","3"]"# + "\n")
        try poll.request("POST", "/echo/000/s12/xhr")
        #expect(try poll.readResponse().body == #"c[1013,"Send queue full"]"# + "\n")
    }

    // A send that arrives while the outbox is at least half full is held, undelivered, until a
    // receiver drains it: the client slows down instead of overflowing the outbox and losing the
    // session. Its 204 comes once it was delivered.
    @Test func sendIsHeldWhileTheOutboxIsBackedUp() throws {
        let server = InMemoryServer(options: .init(maxQueuedMessages: 4))
        let poll = try server.connect()
        let send = try server.connect()
        try poll.request("POST", "/echo/000/s14/xhr")
        _ = try poll.readResponse()
        try send.request("POST", "/echo/000/s14/xhr_send", body: #"["1"]"#)
        #expect(try send.readResponse().status == 204)
        try send.request("POST", "/echo/000/s14/xhr_send", body: #"["2"]"#)
        #expect(try send.readResponse().status == 204)  // arrived with room: delivered, now half full
        try send.request("POST", "/echo/000/s14/xhr_send", body: #"["3"]"#)
        #expect(try send.readText().isEmpty)  // backed up: held, not delivered
        try poll.request("POST", "/echo/000/s14/xhr")
        #expect(try poll.readResponse().body == #"a["1","2"]"# + "\n")
        #expect(try send.readResponse().status == 204)
        try poll.request("POST", "/echo/000/s14/xhr")
        #expect(try poll.readResponse().body == #"a["3"]"# + "\n")
    }

    // A held send is refused with 404 when the session closes meanwhile (it times out without a
    // receiver): its messages were not delivered, so it is never acknowledged.
    @Test func heldSendIsRefusedWhenTheSessionCloses() throws {
        let server = InMemoryServer(options: .init(maxQueuedMessages: 2))
        let poll = try server.connect()
        let send = try server.connect()
        try poll.request("POST", "/echo/000/s15/xhr")
        _ = try poll.readResponse()
        try send.request("POST", "/echo/000/s15/xhr_send", body: #"["1"]"#)
        #expect(try send.readResponse().status == 204)
        try send.request("POST", "/echo/000/s15/xhr_send", body: #"["2"]"#)
        #expect(try send.readText().isEmpty)
        server.advance(by: .seconds(6))
        #expect(try send.readResponse().status == 404)
        #expect(server.sessionCount() == 0)
    }

    // Held too long (a receiver that never drains), a send is refused with 503 and Retry-After, its
    // messages undelivered; the session goes on.
    @Test func heldSendIsRefusedAfterTheHoldTimeout() throws {
        let server = InMemoryServer(options: .init(disconnectDelay: .seconds(60), sendHoldTimeout: .seconds(2), maxQueuedMessages: 2))
        let poll = try server.connect()
        let send = try server.connect()
        try poll.request("POST", "/echo/000/s16/xhr")
        _ = try poll.readResponse()
        try send.request("POST", "/echo/000/s16/xhr_send", body: #"["1"]"#)
        #expect(try send.readResponse().status == 204)
        try send.request("POST", "/echo/000/s16/xhr_send", body: #"["2"]"#)
        #expect(try send.readText().isEmpty)
        server.advance(by: .seconds(3))
        let refused = try send.readResponse()
        #expect(refused.status == 503)
        #expect(refused.header("Retry-After") == "1")
        try poll.request("POST", "/echo/000/s16/xhr")
        #expect(try poll.readResponse().body == #"a["1"]"# + "\n")
    }

    // Past the bound on held sends per session, more are refused with 503 at once, undelivered.
    @Test func tooManyHeldSendsAreRefused() throws {
        let server = InMemoryServer(options: .init(maxHeldSendRequests: 2, maxQueuedMessages: 2))
        let poll = try server.connect()
        try poll.request("POST", "/echo/000/s17/xhr")
        _ = try poll.readResponse()
        let senders = try (0..<4).map { _ in try server.connect() }
        for (index, sender) in senders.enumerated() {
            try sender.request("POST", "/echo/000/s17/xhr_send", body: "[\"\(index)\"]")
        }
        #expect(try senders[0].readResponse().status == 204)
        #expect(try senders[1].readText().isEmpty)
        #expect(try senders[2].readText().isEmpty)
        #expect(try senders[3].readResponse().status == 503)
        try poll.request("POST", "/echo/000/s17/xhr")
        #expect(try poll.readResponse().body == #"a["0"]"# + "\n")
        #expect(try senders[1].readResponse().status == 204)
        #expect(try senders[2].readText().isEmpty)  // "1" is queued: half full again
        try poll.request("POST", "/echo/000/s17/xhr")
        #expect(try poll.readResponse().body == #"a["1"]"# + "\n")
        #expect(try senders[2].readResponse().status == 204)
        try poll.request("POST", "/echo/000/s17/xhr")
        #expect(try poll.readResponse().body == #"a["2"]"# + "\n")
    }

    // A send to a session that is closing is refused (404), not acknowledged and dropped.
    @Test func sendToAClosingSessionIsRefused() throws {
        let server = InMemoryServer()
        let poll = try server.connect()
        let send = try server.connect()
        try poll.request("POST", "/close/000/s18/xhr")
        #expect(try poll.readResponse().body == "o\n")
        try send.request("POST", "/close/000/s18/xhr_send", body: #"["x"]"#)
        #expect(try send.readResponse().status == 404)
    }

    // Pipelined requests are answered in order after a long poll ends.
    @Test func pipelinedRequestsWaitForTheLongPoll() throws {
        let server = InMemoryServer()
        let poll = try server.connect()
        let send = try server.connect()
        try poll.request("POST", "/echo/000/s13/xhr")
        _ = try poll.readResponse()
        try poll.request("POST", "/echo/000/s13/xhr")
        try poll.request("GET", "/echo")
        // Only the long poll's head is out; the greeting waits behind it.
        #expect(!(try poll.readText().contains("Welcome")))
        try send.request("POST", "/echo/000/s13/xhr_send", body: #"["p"]"#)
        _ = try send.readResponse()
        let text = try poll.readText()
        #expect(text.contains(#"a["p"]"#))
        #expect(text.hasSuffix("Welcome to SockJS!\n"))
    }
}
