import NIOCore
import SockwaySockJS
import Testing

@Suite("Payload: arrays of messages (xhr_send, jsonp_send)")
struct SockJSPayloadArrayTests {
    @Test func arrayOfStringsGivesOneMessageEach() {
        // A JSON array of strings is the list of messages, in order.
        #expect(parseArray(#"["a","b","c"]"#) == .success(["a", "b", "c"]))
        #expect(parseArray(#"["x"]"#) == .success(["x"]))
    }

    @Test func emptyArrayCarriesNoMessages() {
        // `[]` is valid: clients send it as a heartbeat.
        #expect(parseArray("[]") == .success([]))
        #expect(parseArray("[ ]") == .success([]))
    }

    @Test func whitespaceAroundTokensIsAllowed() {
        // JSON whitespace (space, tab, CR, LF) may surround every token.
        #expect(parseArray(" \t\r\n[ \"a\" ,\n\"b\"\t] \r\n") == .success(["a", "b"]))
    }

    @Test func emptyStringIsAMessage() {
        // An empty string is a message like any other.
        #expect(parseArray(#"["", ""]"#) == .success(["", ""]))
    }

    @Test func standardEscapesAreDecoded() {
        // \" \\ \/ \b \f \n \r \t are decoded to their characters.
        #expect(parseArray(#"["\"\\\/\b\f\n\r\t"]"#) == .success(["\"\\/\u{08}\u{0C}\n\r\t"]))
    }

    @Test func unicodeEscapesAreDecodedInEitherCase() {
        // \uXXXX takes upper- or lowercase hex digits.
        #expect(parseArray(#"["\u0041\u00e9\u00E9\u2028\uffff"]"#) == .success(["Aé\u{E9}\u{2028}\u{FFFF}"]))
        #expect(parseArray(#"["\u0000"]"#) == .success(["\u{0}"]))
    }

    @Test func escapedSurrogatePairBecomesOneScalar() {
        // A high surrogate escape followed by a low surrogate escape is one astral scalar.
        guard case .success(let messages) = parseArray(#"["\ud83d\ude00", "\uD834\uDD1E"]"#) else {
            Issue.record("surrogate pair rejected")
            return
        }
        #expect(messages == ["😀", "𝄞"])
        #expect(messages.map(\.unicodeScalars.count) == [1, 1])
    }

    @Test func loneSurrogateEscapesAreRefusedNotAltered() {
        // A surrogate without its partner cannot be a scalar: a server refuses the whole payload
        // ("Broken JSON encoding.") rather than deliver it altered.
        for payload in [#"["\ud83d"]"#, #"["\ude00"]"#, #"["a\ud83db"]"#, #"["\ud83d\u0041"]"#, #"["\ude00\ud83d"]"#, #"["ok","\ud83d\ud83d\ude00"]"#] {
            #expect(parseArray(payload) == .failure(.brokenJSON), "\(payload)")
        }
        // Inside a non-string value too (an object's string), since that is delivered as text.
        #expect(parseArray(#"[{"k":"\udc00"}]"#) == .failure(.brokenJSON))
    }

    @Test func loneSurrogateEscapesBecomeReplacementCharactersWhenRepairing() {
        // A client reading a server's frames repairs instead: the text around the surrogate survives.
        #expect(parseArray(#"["\ud83d"]"#, repair: .replaceWithU_FFFD) == .success(["\u{FFFD}"]))
        #expect(parseArray(#"["\ude00"]"#, repair: .replaceWithU_FFFD) == .success(["\u{FFFD}"]))
        #expect(parseArray(#"["a\ud83db"]"#, repair: .replaceWithU_FFFD) == .success(["a\u{FFFD}b"]))
        #expect(parseArray(#"["\ud83d\u0041"]"#, repair: .replaceWithU_FFFD) == .success(["\u{FFFD}A"]))
        #expect(parseArray(#"["\ude00\ud83d"]"#, repair: .replaceWithU_FFFD) == .success(["\u{FFFD}\u{FFFD}"]))
        #expect(parseArray(#"["\ud83d\ud83d\ude00"]"#, repair: .replaceWithU_FFFD) == .success(["\u{FFFD}😀"]))
    }

    @Test func invalidUTF8IsRefusedNotAltered() {
        // RFC 3629: stray continuation bytes, overlong forms, encoded surrogates, values past U+10FFFF
        // and truncated sequences make the whole payload broken, wherever they are.
        let bad: [[UInt8]] = [
            [0x80], [0xBF], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF],
            [0xF0, 0x80, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80],
            [0xF5, 0x80, 0x80, 0x80], [0xFF], [0xC3], [0xE2, 0x82], [0xF0, 0x9F, 0x98],
        ]
        for sequence in bad {
            for (before, after) in [("", ""), ("ab", "cd"), ("12345678", "")] {
                let inString = Array("[\"\(before)".utf8) + sequence + Array("\(after)\"]".utf8)
                #expect(parseArray(bytes: inString) == .failure(.brokenJSON), "\(sequence)")
            }
            // Outside a string too: JSON text is UTF-8 as a whole.
            #expect(parseArray(bytes: Array(#"["ok"] "#.utf8) + sequence) == .failure(.brokenJSON))
        }
        // The boundaries that are valid stay valid.
        let good: [[UInt8]] = [[0xC2, 0x80], [0xDF, 0xBF], [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF], [0xEE, 0x80, 0x80], [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF]]
        for sequence in good {
            let text = String(decoding: sequence, as: UTF8.self)
            #expect(parseArray(bytes: Array("[\"".utf8) + sequence + Array("\"]".utf8)) == .success([text]))
        }
        // Repairing (a client reading a server) replaces instead.
        #expect(parseArray(bytes: Array("[\"a".utf8) + [0xC0, 0x80] + Array("b\"]".utf8), repair: .replaceWithU_FFFD) == .success(["a\u{FFFD}\u{FFFD}b"]))
    }

    @Test func everyScalarOfTheBMPRoundTrips() {
        // What the browser test sends: every Unicode scalar of the BMP, raw and escaped, arrives intact.
        var text = ""
        for value in 0...0xFFFF { if let scalar = Unicode.Scalar(value) { text.unicodeScalars.append(scalar) } }
        #expect(parseArray("[" + SockJSJSON.quoted(text) + "]") == .success([text]))
        var escaped = "[\""
        for value in 0...0xFFFF where Unicode.Scalar(value) != nil {
            let hex = String(value, radix: 16)
            escaped += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        }
        #expect(parseArray(escaped + "\"]") == .success([text]))
    }

    @Test func rawUTF8PassesThrough() {
        // Unescaped non-ASCII text is taken as is.
        #expect(parseArray(#"["héllo 😀 \#u{2028}"]"#) == .success(["héllo 😀 \u{2028}"]))
    }

    @Test func nonStringElementsAreDeliveredAsTheirJSONText() {
        // Numbers, literals, objects and arrays are not dropped: each arrives as its JSON text.
        #expect(
            parseArray(#"[1,-2.5e3,true,false,null,{"a":[1,"b"]},[],{}]"#)
                == .success(["1", "-2.5e3", "true", "false", "null", #"{"a":[1,"b"]}"#, "[]", "{}"])
        )
    }

    @Test func moderateNestingIsAccepted() {
        // Nesting well inside the limit is ordinary JSON.
        let depth = SockJSPayload.maximumDepth / 2
        let element = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        #expect(parseArray("[" + element + "]") == .success([element]))
    }

    @Test func nestingBeyondTheLimitIsBrokenJSON() {
        // Values nested deeper than maximumDepth are refused, so hostile input cannot exhaust the stack.
        for depth in [SockJSPayload.maximumDepth + 1, SockJSPayload.maximumDepth + 10, 100_000] {
            let element = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            #expect(parseArray("[" + element + "]") == .failure(.brokenJSON))
            #expect(parseWebSocketMessage("[" + element + "]") == .failure(.brokenJSON))
        }
        let objects = String(repeating: #"{"a":"#, count: 100_000) + "1" + String(repeating: "}", count: 100_000)
        #expect(parseArray("[" + objects + "]") == .failure(.brokenJSON))
    }
}

@Suite("Payload: refused arrays")
struct SockJSPayloadErrorTests {
    @Test func emptyBodyIsPayloadExpected() {
        // The suite: an empty xhr_send body answers "Payload expected.".
        #expect(parseArray("") == .failure(.payloadExpected))
    }

    @Test func truncatedJSONIsBrokenJSON() {
        // The suite: `["x` answers "Broken JSON encoding.".
        #expect(parseArray(#"["x"#) == .failure(.brokenJSON))
        #expect(parseArray("[") == .failure(.brokenJSON))
        #expect(parseArray(#"["x","#) == .failure(.brokenJSON))
        #expect(parseArray(#"["x\"#) == .failure(.brokenJSON))
    }

    @Test func validJSONThatIsNotAnArrayIsPayloadExpected() {
        // A well-formed JSON value that is not an array carries no messages: "Payload expected.".
        for text in [#""x""#, "{}", #"{"a":1}"#, "1", "null", "true", #"  "x"  "#] {
            #expect(parseArray(text) == .failure(.payloadExpected), "\(text)")
        }
    }

    @Test func invalidJSONThatIsNotAnArrayIsBrokenJSON() {
        // Something that is not JSON at all is broken, not merely unexpected.
        for text in ["x", "{", "nul", #""x"#, "tru", "-", "{}x"] {
            #expect(parseArray(text) == .failure(.brokenJSON), "\(text)")
        }
    }

    @Test func trailingGarbageIsBrokenJSON() {
        // One JSON value, then only whitespace: anything more is broken.
        for text in [#"["a"]x"#, #"["a"]]"#, #"["a"] ["b"]"#, "[],", "[]\u{0}"] {
            #expect(parseArray(text) == .failure(.brokenJSON), "\(text)")
        }
    }

    @Test func malformedElementsAreBrokenJSON() {
        // Trailing commas, missing commas, bad numbers, bad escapes and bad literals are not JSON.
        let cases = [
            #"["a",]"#, #"["a" "b"]"#, "[,]", "[01]", "[1.]", "[.5]", "[+1]", "[1e]", "[tru]", "[nulll]",
            #"["\x"]"#, #"["\u12"]"#, #"["\u12G4"]"#, #"[{"a"}]"#, #"[{a:1}]"#, #"[{"a":1,}]"#, "['a']",
        ]
        for text in cases {
            #expect(parseArray(text) == .failure(.brokenJSON), "\(text)")
        }
    }

    @Test func rawControlCharactersInsideStringsAreBrokenJSON() {
        // RFC 8259 §7: code points below U+0020 must be escaped inside strings.
        for control in ["\n", "\r", "\t", "\u{0}", "\u{1F}"] {
            #expect(parseArray("[\"a" + control + "b\"]") == .failure(.brokenJSON))
            // Also after an escape, where a decoder may take a slower path.
            #expect(parseArray("[\"\\n" + control + "\"]") == .failure(.brokenJSON))
        }
    }
}

@Suite("Payload: websocket messages")
struct SockJSPayloadWebSocketTests {
    @Test func emptyMessageCarriesNoMessages() {
        // An empty websocket text message is ignored, not an error.
        #expect(parseWebSocketMessage("") == .success([]))
    }

    @Test func singleStringValueIsOneMessage() {
        // The websocket transport also takes one JSON string as one message.
        #expect(parseWebSocketMessage(#""a""#) == .success(["a"]))
        #expect(parseWebSocketMessage(#" "a\nb" "#) == .success(["a\nb"]))
    }

    @Test func arrayIsAListOfMessages() {
        // As on the other transports, an array carries one message per element.
        #expect(parseWebSocketMessage(#"["a","b"]"#) == .success(["a", "b"]))
        #expect(parseWebSocketMessage("[]") == .success([]))
    }

    @Test func brokenJSONIsRefused() {
        // The suite: `["a` must end the connection.
        #expect(parseWebSocketMessage(#"["a"#) == .failure(.brokenJSON))
        #expect(parseWebSocketMessage(#""a"#) == .failure(.brokenJSON))
        #expect(parseWebSocketMessage(#""a" "b""#) == .failure(.brokenJSON))
        #expect(parseWebSocketMessage(#"["a"]x"#) == .failure(.brokenJSON))
    }

    @Test func nonStringSingleValueIsItsJSONText() {
        // A single non-string value is delivered as its JSON text, like an array element.
        #expect(parseWebSocketMessage("42") == .success(["42"]))
        #expect(parseWebSocketMessage(#"{"a":1}"#) == .success([#"{"a":1}"#]))
    }
}

@Suite("Payload: quoting round trip")
struct SockJSPayloadRoundTripTests {
    static let hostileMessages: [String] = {
        var messages = [
            "\u{0}", "\u{2028}", "\u{2029}", "😀", "𝄞", "\u{10FFFF}", "\u{FFFD}", "\u{FFFE}", "\u{FFFF}",
            "\"\\/", "</script><!--&", "\u{7F}\u{80}\u{9F}",
        ]
        // Every code point the quoting escapes: controls, quote, backslash and the SockJS set.
        let controls = (UInt32(0)..<0x20).map { Unicode.Scalar($0)! }
        messages.append(string(of: controls + ["\"", "\\"] + serverEscapableScalars))
        messages.append(contentsOf: serverEscapableScalars.map { string(of: [$0]) })
        // 64 KiB mixing plain text, escapes and multibyte characters.
        let chunk = "abc\u{2028}\"\\\n\u{0}é😀\u{FFF0}<>&"
        var big = ""
        while big.utf8.count < 64 * 1024 { big += chunk }
        messages.append(big)
        return messages
    }()

    @Test(arguments: [false, true])
    func quotingThenParsingGivesTheOriginalBack(htmlSafe: Bool) {
        // Whatever the server quotes, a JSON parser reads back unchanged.
        for message in Self.hostileMessages {
            let quoted = SockJSJSON.quoted(message, htmlSafe: htmlSafe)
            #expect(parseArray("[" + quoted + "]") == .success([message]))
            #expect(parseWebSocketMessage(quoted) == .success([message]))
        }
    }

    @Test(arguments: [#"\""#, #"\\"#, #"\n"#, #"\u00e9"#, "é", "😀"])
    func escapeAtEveryOffsetOfAWordIsDecoded(_ escaped: String) {
        // The parser skips eight plain bytes at a time; an escape at any offset still stops it.
        let decoded = try! #require(try? SockJSPayload.parseArray(ByteBuffer(string: "[\"" + escaped + "\"]")).first)
        for length in 0..<20 {
            for offset in 0...length {
                let head = String(repeating: "a", count: offset)
                let tail = String(repeating: "b", count: length - offset)
                #expect(parseArray("[\"" + head + escaped + tail + "\"]") == .success([head + decoded + tail]))
            }
        }
    }

    @Test func escapeHeavyStringsRoundTrip() {
        // JSON-in-a-string (a STOMP or chat payload) is mostly escapes: whatever mix of runs and escapes,
        // quoting then parsing gives the text back.
        var generator = SystemRandomNumberGenerator()
        let pieces = ["{", "\"type\"", ":", "\\", "\n", "\u{1}", "plain run of text", "é", "😀", "\u{2028}", "\u{FFFF}", "</script>", "12345678"]
        for _ in 0..<300 {
            let text = (0..<Int.random(in: 0...40, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined()
            #expect(parseArray("[" + SockJSJSON.quoted(text) + "]") == .success([text]))
            #expect(parseArray("[" + SockJSJSON.quoted(text, htmlSafe: true) + "," + SockJSJSON.quoted(text) + "]") == .success([text, text]))
        }
        // Escapes of every kind, next to runs, and a bad escape after a good one.
        #expect(parseArray(#"["ab\/c\u00E9\ud83d\uDE00d\""]"#) == .success(["ab/cé😀d\""]))
        #expect(parseArray(#"["ab\/c\u00E9\ud83d\uDE00d\ud800x\udc00\""]"#, repair: .replaceWithU_FFFD) == .success(["ab/cé😀d\u{FFFD}x\u{FFFD}\""]))
        #expect(parseArray(#"["a\n", "\tb"]"#) == .success(["a\n", "\tb"]))
        #expect(parseArray(#"["ok\n\q"]"#) == .failure(.brokenJSON))
        #expect(parseArray(#"["a\u12"]"#) == .failure(.brokenJSON))
        #expect(parseArray(#"["a\"#) == .failure(.brokenJSON))
        #expect(parseArray(#"["a\n"#) == .failure(.brokenJSON))
    }

    @Test func rawControlByteAtEveryOffsetOfAWordIsBrokenJSON() {
        for length in 1..<20 {
            for offset in 0..<length {
                var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                bytes[offset] = 0x1F
                #expect(parseArray("[\"" + String(decoding: bytes, as: UTF8.self) + "\"]") == .failure(.brokenJSON))
            }
        }
    }

    @Test func aFrameOfManyMessagesParsesBackToTheSameMessages() {
        // The body of an `a` frame is a JSON array of the original messages.
        let messages = Self.hostileMessages
        let text = SockJSFrame.messages(messages).text
        #expect(text.hasPrefix("a["))
        #expect(parseArray(String(text.dropFirst())) == .success(messages))
    }
}
