import Foundation
import NIOCore
import SockwaySockJS
import Testing

@Suite("Frames: the text of each SockJS frame")
struct SockJSFrameTextTests {
    @Test func openFrameIsO() {
        // The open frame is the single letter `o`.
        #expect(SockJSFrame.open.text == "o")
    }

    @Test func heartbeatFrameIsH() {
        // The heartbeat frame is the single letter `h`.
        #expect(SockJSFrame.heartbeat.text == "h")
    }

    @Test func messageFrameIsAJSONArrayOfQuotedMessages() {
        // `a` followed by the messages as a JSON array, comma-joined with no spaces.
        #expect(SockJSFrame.messages(["x"]).text == #"a["x"]"#)
        #expect(SockJSFrame.messages(["a", "b\"c", "\n"]).text == #"a["a","b\"c","\n"]"#)
        #expect(SockJSFrame.messages([]).text == "a[]")
    }

    @Test func closeFrameCarriesCodeAndQuotedReason() {
        // `c[code,"reason"]`, as in the suite's `c[3000,"Go away!"]`.
        #expect(SockJSFrame.close(.goAway).text == #"c[3000,"Go away!"]"#)
        #expect(SockJSFrame.close(.anotherConnectionStillOpen).text == #"c[2010,"Another connection still open"]"#)
        #expect(SockJSFrame.close(.connectionInterrupted).text == #"c[1002,"Connection interrupted"]"#)
        #expect(SockJSFrame.close(SockJSCloseReason(code: 4000, reason: "a\"b")).text == #"c[4000,"a\"b"]"#)
    }

    @Test func writeAppendsTheFrameText() {
        // write(into:) appends exactly the frame text.
        var buffer = ByteBuffer(string: "x")
        SockJSFrame.messages(["y"]).write(into: &buffer)
        #expect(String(buffer: buffer) == #"xa["y"]"#)
    }
}

@Suite("Transports: per-frame wrapping")
struct SockJSTransportWrappingTests {
    @Test func xhrFramesEndWithANewline() {
        // xhr-polling and xhr-streaming send each frame followed by `\n`.
        for transport in [SockJSTransport.xhrPolling, .xhrStreaming] {
            #expect(transport.wrappedFrame(.open) == "o\n")
            #expect(transport.wrappedFrame(.heartbeat) == "h\n")
            #expect(transport.wrappedFrame(.messages(["x"])) == "a[\"x\"]\n")
            #expect(transport.wrappedFrame(.close(.goAway)) == "c[3000,\"Go away!\"]\n")
        }
    }

    @Test func webSocketFramesAreTheBareFrameText() {
        // Over the websocket transport each frame is one text message, with no wrapping.
        #expect(SockJSTransport.webSocket.wrappedFrame(.open) == "o")
        #expect(SockJSTransport.webSocket.wrappedFrame(.messages(["a"])) == #"a["a"]"#)
    }

    @Test func eventSourceFramesAreDataEvents() {
        // eventsource sends `data: <frame>\r\n\r\n`.
        #expect(SockJSTransport.eventSource.wrappedFrame(.open) == "data: o\r\n\r\n")
        #expect(SockJSTransport.eventSource.wrappedFrame(.messages(["x"])) == "data: a[\"x\"]\r\n\r\n")
    }

    @Test func eventSourceEscapesControlCharactersAsTheSuiteExpects() {
        // The suite sends `["  \u0000\n\r "]` and expects `data: a["  \\u0000\\n\\r "]\r\n\r\n`.
        let wrapped = SockJSTransport.eventSource.wrappedFrame(.messages(["  \u{0}\n\r "]))
        #expect(wrapped == #"data: a["  \u0000\n\r "]"# + "\r\n\r\n")
    }

    @Test func eventSourcePercentEscapesPercentSigns() {
        // The client runs decodeURI on each event, so a literal `%` travels as `%25`.
        #expect(SockJSTransport.eventSource.wrappedFrame(.messages(["50%"])) == "data: a[\"50%25\"]\r\n\r\n")
        #expect(
            SockJSTransport.eventSource.wrappedFrame(.messages(["%0A%0D%00%25"]))
                == "data: a[\"%250A%250D%2500%2525\"]\r\n\r\n"
        )
    }

    @Test func eventSourceEventBodyHoldsNoRawLineBreaks() {
        // A CR or LF inside an event would split it; nothing but the terminator may contain them.
        let wrapped = SockJSTransport.eventSource.wrappedFrame(.messages(["a\r\nb\n\rc", "\u{2028}\u{0}"]))
        #expect(wrapped.hasSuffix("\r\n\r\n"))
        let body = wrapped.utf8.dropLast(4)
        #expect(!body.contains(0x0A))
        #expect(!body.contains(0x0D))
        #expect(!body.contains(0x00))
    }

    @Test func htmlFileFramesAreScriptElements() {
        // htmlfile sends `<script>\np("<frame, JSON-quoted>");\n</script>\r\n`.
        #expect(SockJSTransport.htmlFile.wrappedFrame(.open, callback: "callback") == "<script>\np(\"o\");\n</script>\r\n")
        #expect(
            SockJSTransport.htmlFile.wrappedFrame(.messages(["x"]), callback: "callback")
                == "<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n"
        )
    }

    @Test func jsonpFramesCallTheCallback() {
        // jsonp sends `/**/<callback>("<frame, JSON-quoted>");\r\n`.
        #expect(SockJSTransport.jsonpPolling.wrappedFrame(.open, callback: "callback") == "/**/callback(\"o\");\r\n")
        #expect(
            SockJSTransport.jsonpPolling.wrappedFrame(.messages(["x"]), callback: "callback")
                == "/**/callback(\"a[\\\"x\\\"]\");\r\n"
        )
        #expect(
            SockJSTransport.jsonpPolling.wrappedFrame(.close(.goAway), callback: "x")
                == "/**/x(\"c[3000,\\\"Go away!\\\"]\");\r\n"
        )
        #expect(
            SockJSTransport.jsonpPolling.wrappedFrame(.messages(["abc", "%61bc"]), callback: "x")
                == #"/**/x("a[\"abc\",\"%61bc\"]");"# + "\r\n"
        )
    }

    // The one-pass jsonp writer gives exactly what quoting the frame's text gives, and steps aside when
    // any message needs an escape in either quoting.
    @Test(arguments: [
        [], [""], ["x"], ["plain", "also plain", String(repeating: "y", count: 200)], ["plain", "quote \""],
        ["<b>"], ["&"], ["é"], ["\u{2028}"], ["back\\slash"], ["tab\t"],
    ])
    func jsonpMessagesInOnePassMatchTheDoubleQuoting(messages: [String]) {
        var frameText = ByteBuffer()
        SockJSFrame.messages(messages).write(into: &frameText)
        var expected = ByteBuffer()
        frameText.withUnsafeReadableBytes { SockJSJSON.writeQuoted(utf8: $0, into: &expected, htmlSafe: true) }
        #expect(SockJSTransport.jsonpPolling.wrappedFrame(.messages(messages), callback: "c") == "/**/c(" + String(buffer: expected) + ");\r\n")
    }

    // Percent-escaping for eventsource finds `%`, CR, LF and NUL at every offset of an eight-byte word.
    @Test func eventSourceEscapesAtEveryOffset() {
        for length in 1..<24 {
            for position in 0..<length {
                for special in ["%", "\r", "\n", "\u{0}"] {
                    var characters = Array(repeating: "x", count: length)
                    characters[position] = special
                    let message = characters.joined()
                    let wrapped = SockJSTransport.eventSource.wrappedFrame(.messages([message]))
                    var frameText = ByteBuffer()
                    SockJSFrame.messages([message]).write(into: &frameText)
                    var plain = String(buffer: frameText)
                    plain = plain.replacingOccurrences(of: "%", with: "%25")
                    #expect(wrapped == "data: " + plain + "\r\n\r\n", "\(length) \(position)")
                }
            }
        }
        #expect(SockJSTransport.eventSource.wrappedFrame(.messages(["a%b%"])) == "data: a[\"a%25b%25\"]\r\n\r\n")
    }

    static let scriptBreakers = ["</script>", "<!--", "\u{2028}", "\u{2029}", "</script><!--\u{2028}\u{2029}<script>&x"]

    @Test(arguments: scriptBreakers)
    func htmlFileFramesCannotBreakOutOfTheScriptElement(message: String) throws {
        // Inside the `p("…")` call there is no `<`, `>`, U+2028 or U+2029, and the frame decodes back intact.
        let wrapped = SockJSTransport.htmlFile.wrappedFrame(.messages([message]), callback: "callback")
        let prefix = "<script>\np("
        let suffix = ");\n</script>\r\n"
        try #require(wrapped.hasPrefix(prefix) && wrapped.hasSuffix(suffix))
        let argument = String(decoding: wrapped.utf8.dropFirst(prefix.utf8.count).dropLast(suffix.utf8.count), as: UTF8.self)
        expectScriptSafe(argument)
        expectDecodes(argument, to: message)
    }

    @Test(arguments: scriptBreakers)
    func jsonpFramesCannotBreakOutOfTheScript(message: String) throws {
        // Inside the callback call there is no `<`, `>`, U+2028 or U+2029, and the frame decodes back intact.
        let wrapped = SockJSTransport.jsonpPolling.wrappedFrame(.messages([message]), callback: "cb")
        let prefix = "/**/cb("
        let suffix = ");\r\n"
        try #require(wrapped.hasPrefix(prefix) && wrapped.hasSuffix(suffix))
        let argument = String(decoding: wrapped.utf8.dropFirst(prefix.utf8.count).dropLast(suffix.utf8.count), as: UTF8.self)
        expectScriptSafe(argument)
        expectDecodes(argument, to: message)
    }

    private func expectScriptSafe(_ argument: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!argument.contains("</script>"), sourceLocation: sourceLocation)
        #expect(!argument.contains("<!--"), sourceLocation: sourceLocation)
        #expect(!argument.contains("<"), sourceLocation: sourceLocation)
        #expect(!argument.contains(">"), sourceLocation: sourceLocation)
        #expect(!argument.unicodeScalars.contains("\u{2028}"), sourceLocation: sourceLocation)
        #expect(!argument.unicodeScalars.contains("\u{2029}"), sourceLocation: sourceLocation)
    }

    /// Un-quotes the outer JSON string to get the frame, then parses the frame's array.
    private func expectDecodes(_ argument: String, to message: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard case .success(let frames) = parseWebSocketMessage(argument), frames.count == 1 else {
            Issue.record("outer string does not decode: \(argument)", sourceLocation: sourceLocation)
            return
        }
        let frame = frames[0]
        #expect(frame == SockJSFrame.messages([message]).text, sourceLocation: sourceLocation)
        #expect(frame.first == "a", sourceLocation: sourceLocation)
        #expect(parseArray(String(frame.dropFirst())) == .success([message]), sourceLocation: sourceLocation)
    }
}

@Suite("Transports: preludes")
struct SockJSTransportPreludeTests {
    @Test func xhrStreamingPreludeIs2048HsAndANewline() {
        // The suite: xhr_streaming first sends 2 KiB of `h` and a newline (old IE buffers 2 KiB).
        #expect(SockJSTransport.xhrStreaming.prelude(callback: nil) == String(repeating: "h", count: 2048) + "\n")
    }

    @Test func eventSourcePreludeIsAnEmptyLine() {
        // The suite: eventsource first sends `\r\n` (Opera dropped the first event otherwise).
        #expect(SockJSTransport.eventSource.prelude(callback: nil) == "\r\n")
    }

    @Test func htmlFilePreludeIsTheSuitesPagePaddedPast1KiB() {
        // The suite: the page, stripped, is its `head` with the callback, and the chunk is over 1024 bytes.
        let prelude = SockJSTransport.htmlFile.prelude(callback: "callback") ?? ""
        #expect(prelude.utf8.count > 1024)
        #expect(prelude.contains("var c = parent.callback;"))
        let head = """
            <!doctype html>
            <html><head>
              <meta http-equiv="X-UA-Compatible" content="IE=edge" />
              <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
            </head><body><h2>Don't panic!</h2>
              <script>
                document.domain = document.domain;
                var c = parent.callback;
                c.start();
                function p(d) {c.message(d);};
                window.onload = function() {c.stop();};
              </script>
            """
        #expect(pythonStrip(prelude) == head)
    }

    @Test func htmlFilePreludeNamesTheGivenCallback() {
        // The page hands frames to `parent.<callback>`.
        let prelude = SockJSTransport.htmlFile.prelude(callback: "my_cb.x-1") ?? ""
        #expect(prelude.contains("var c = parent.my_cb.x-1;"))
    }

    @Test func pollingTransportsHaveNoPrelude() {
        // xhr-polling and jsonp answer with exactly one frame, nothing before it.
        #expect(SockJSTransport.xhrPolling.prelude(callback: nil) == nil)
        #expect(SockJSTransport.jsonpPolling.prelude(callback: "callback") == nil)
    }
}
