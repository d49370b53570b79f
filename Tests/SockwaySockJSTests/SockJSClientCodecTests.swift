import NIOCore
import SockwaySockJS
import Testing

@Suite("Client side: parsing server frames")
struct SockJSFrameParsingTests {
    private func parse(_ text: String) throws -> SockJSFrame {
        try SockJSFrame.parse(ByteBuffer(string: text))
    }

    @Test func parsesEveryKind() throws {
        #expect(try parse("o") == .open)
        #expect(try parse("h") == .heartbeat)
        #expect(try parse(#"a["x","\u2028",""]"#) == .messages(["x", "\u{2028}", ""]))
        #expect(try parse(#"c[3000,"Go away!"]"#) == .close(SockJSCloseReason(code: 3000, reason: "Go away!")))
        #expect(try parse(#"c[1002, "Connection interrupted"]"#) == .close(.connectionInterrupted))
    }

    // Whatever the server writes, the client reads back the same frame.
    @Test(arguments: [
        SockJSFrame.open, .heartbeat, .messages(["a", "</script>", "\u{0}\u{1F600}\"\\", String(repeating: "é", count: 300)]),
        .close(.goAway), .close(SockJSCloseReason(code: 4000, reason: "quote \" and \\")),
    ])
    func roundTrips(frame: SockJSFrame) throws {
        var buffer = ByteBuffer()
        frame.write(into: &buffer)
        #expect(try SockJSFrame.parse(buffer) == frame)
    }

    @Test(arguments: ["", "x", "oo", "hh", "a", "a[", #"a["x"]x"#, "c[]", #"c[3000]"#, #"c["3000","x"]"#, #"c[3000,"x""#])
    func refusesMalformedFrames(text: String) {
        #expect(throws: SockJSFrameError.malformed) { try parse(text) }
    }
}

@Suite("Client side: message batches as bytes")
struct SockJSMessageBatchTests {
    private func bytes(of batch: SockJSMessageBatch) -> [[UInt8]] {
        var out: [[UInt8]] = []
        batch.forEach { out.append(Array($0)) }
        return out
    }

    // Each message's bytes are what its String would hold: escapes decoded (surrogate pairs joined,
    // lone ones replaced), other JSON values as their text.
    @Test func bytesAreTheDecodedMessages() throws {
        let text = #"a["plain","q\"b\\s\/\n","\ud83d\ude00 \u00e9","lone \ud800!",12.5,{"k":[1]},""]"#
        guard case .messages(let batch) = try SockJSReceivedFrame.parse(ByteBuffer(string: text)) else {
            Issue.record("not a message frame")
            return
        }
        let expected = ["plain", "q\"b\\s/\n", "\u{1F600} é", "lone \u{FFFD}!", "12.5", #"{"k":[1]}"#, ""]
        #expect(batch.count == expected.count)
        #expect(batch.strings == expected)
        #expect(bytes(of: batch) == expected.map { Array($0.utf8) })
        #expect(try SockJSReceivedFrame.parse(ByteBuffer(string: text)).decoded == SockJSFrame.parse(ByteBuffer(string: text)))
    }

    @Test func emptyArrayHasNoMessages() throws {
        let batch = try SockJSMessageBatch(array: ByteBuffer(string: "[]"))
        #expect(batch.count == 0)
        #expect(bytes(of: batch).isEmpty)
    }

    // Whatever is wrong is found when the frame is parsed, so reading a batch cannot fail.
    @Test(arguments: ["[", #"["x""#, #"["x",]"#, #"["\q"]"#, #"["\u12"]"#, "[\"\u{1}\"]", #"["x"]]"#, "[tru]", #"{"a":1}"#])
    func refusesWhatIsNotAnArrayOfMessages(text: String) {
        #expect(throws: SockJSFrameError.malformed) { try SockJSMessageBatch(array: ByteBuffer(string: text)) }
    }

    @Test func otherFramesParseAsBefore() throws {
        for text in ["o", "h", #"c[3000,"Go away!"]"#] {
            #expect(try SockJSReceivedFrame.parse(ByteBuffer(string: text)).decoded == SockJSFrame.parse(ByteBuffer(string: text)))
        }
    }
}

@Suite("Client side: response bodies")
struct SockJSBodyDecoderTests {
    private func frames(_ format: SockJSBodyDecoder.Format, _ pieces: [String]) throws -> [SockJSFrame] {
        var decoder = SockJSBodyDecoder(format: format)
        var out: [SockJSFrame] = []
        for piece in pieces {
            decoder.append(ByteBuffer(string: piece))
            while let frame = try decoder.next() { out.append(frame.decoded) }
        }
        #expect(decoder.bufferedBytes == 0)
        return out
    }

    // xhr_streaming: the 2 KiB prelude of h's is skipped; frames split anywhere come out whole.
    @Test func linesSkipThePreludeAndJoinPieces() throws {
        let prelude = String(repeating: "h", count: 2048) + "\n"
        let body = prelude + "o\n" + #"a["one","two"]"# + "\nh\n" + #"c[3000,"Go away!"]"# + "\n"
        let pieces = stride(from: 0, to: body.utf8.count, by: 7).map { start in
            String(decoding: Array(body.utf8)[start..<min(start + 7, body.utf8.count)], as: UTF8.self)
        }
        #expect(try frames(.lines, pieces) == [.open, .messages(["one", "two"]), .heartbeat, .close(.goAway)])
    }

    @Test func eventSourceReadsDataLines() throws {
        let body = "\r\ndata: o\r\n\r\n" + #"data: a["x"]"# + "\r\n\r\ndata: h\r\n\r\n"
        #expect(try frames(.eventSource, [body]) == [.open, .messages(["x"]), .heartbeat])
    }

    // What the server percent-encodes in an event comes back as it was.
    @Test func eventSourceDecodesWhatTheServerEscaped() throws {
        let frame = SockJSFrame.messages(["100% sure", "%25", "line\r\nbreak\u{0}"])
        let wrapped = SockJSTransport.eventSource.wrappedFrame(frame)
        #expect(try frames(.eventSource, [wrapped]) == [frame])
    }

    // jsonp: the frame is a JSON string inside the callback call; what the server escapes for HTML
    // safety comes back as the original text.
    @Test func jsonpUnwrapsTheCallback() throws {
        var buffer = ByteBuffer()
        SockJSFrame.messages(["</script>", "a\u{2028}b"]).write(into: &buffer)
        let quoted = SockJSJSON.quoted(String(buffer: buffer), htmlSafe: true)
        let body = "_cb.x(" + quoted + ");\r\n"
        #expect(try frames(.jsonp, [body]) == [.messages(["</script>", "a\u{2028}b"])])
        #expect(try frames(.jsonp, [#"c("o");"# + "\r\n"]) == [.open])
    }

    @Test func aLineOverTheLimitIsRefused() {
        var decoder = SockJSBodyDecoder(format: .lines, maxLineBytes: 16)
        decoder.append(ByteBuffer(string: String(repeating: "a", count: 17)))
        #expect(throws: SockJSFrameError.tooLong) { try decoder.next() }
    }
}

@Suite("Message arrays: what clients send")
struct SockJSMessageArrayTests {
    @Test func arrayIsWhatTheServerParses() throws {
        let messages = ["x", "\"quoted\"", "\u{0}", "\u{1F600}", ""]
        var buffer = ByteBuffer()
        SockJSMessageArray.writeArray(messages, into: &buffer)
        #expect(try SockJSPayload.parseArray(buffer) == messages)
    }

    // An array of plain messages is written in one go; any escape sends it down the per-message path.
    // Both write the same bytes as the generic writer.
    @Test(arguments: [[], [""], ["a"], ["plain", "also plain", String(repeating: "x", count: 100)], ["plain", "needs \"escape\"", "x"], ["\u{2028}"], ["é"]])
    func plainArraysAreWrittenInOneGo(messages: [String]) throws {
        var fast = ByteBuffer()
        SockJSMessageArray.writeArray(messages, into: &fast)
        var generic = ByteBuffer()
        SockJSMessageArray.writeArray(messages.lazy.map { $0 }, into: &generic)
        #expect(fast == generic)
        #expect(try SockJSPayload.parseArray(fast) == messages)
    }

    @Test func formEncodesTheArray() {
        var buffer = ByteBuffer()
        SockJSMessageArray.writeForm(["a b", "é&="], into: &buffer)
        #expect(String(buffer: buffer) == "d=%5B%22a%20b%22%2C%22%C3%A9%26%3D%22%5D")
    }
}

@Suite("Query: form bodies on bytes (jsonp_send)")
struct SockJSFormValueTests {
    private func value(_ body: String) -> String? {
        var body = body
        return body.withUTF8 { SockJSQuery.formValue(named: "d", in: UnsafeRawBufferPointer($0)) }.map { String(decoding: $0, as: UTF8.self) }
    }

    @Test func findsAndDecodesTheValue() {
        #expect(value("d=%5B%22a%20b%22%5D") == #"["a b"]"#)
        #expect(value("x=1&d=a+b&d=second") == "a b")
        #expect(value("dd=1&d=%C3%A9") == "é")
        #expect(value("d=") == "")
        #expect(value("d") == "")
        #expect(value("x=1") == nil)
        #expect(value("") == nil)
        #expect(value("d=%zz%") == "%zz%")  // malformed escapes stay as they came
        #expect(value("d=ab%4") == "ab%4")
        #expect(value("d=%41%42+%43") == "AB C")
        #expect(value("a=%&d=%25%") == "%25%")
    }

    // Runs are copied eight bytes at a time: escapes and `+` at every offset around a word decode as
    // a byte-at-a-time decoder would.
    @Test func escapesAtEveryOffsetDecode() {
        for length in 0..<40 {
            for position in 0..<max(1, length) {
                var plain = Array(repeating: UInt8(ascii: "x"), count: length)
                var expected = plain
                if length > 0 {
                    plain[position] = UInt8(ascii: "+")
                    expected[position] = UInt8(ascii: " ")
                }
                var encoded = plain
                encoded.insert(contentsOf: Array("%41".utf8), at: min(position + 1, encoded.count))
                expected.insert(UInt8(ascii: "A"), at: min(position + 1, expected.count))
                let decoded = encoded.withUnsafeBytes { SockJSQuery.percentDecodeBytes($0, plusAsSpace: true) }
                #expect(decoded == expected, "length \(length), position \(position)")
                let literal = plain.withUnsafeBytes { SockJSQuery.percentDecodeBytes($0, plusAsSpace: false) }
                #expect(literal == plain)
            }
        }
    }

    // The byte path and the string path agree on what the client sends.
    @Test func agreesWithTheClientEncoding() throws {
        let messages = ["x", "a b+c", "%25", "\u{1F600}", "&=;", "</script>"]
        var body = ByteBuffer()
        SockJSMessageArray.writeForm(messages, into: &body)
        let decoded = try #require(body.withUnsafeReadableBytes { SockJSQuery.formValue(named: "d", in: $0) })
        let parsed = try decoded.withUnsafeBytes { try SockJSPayload.parseArray($0) }
        #expect(parsed == messages)
    }
}
