import NIOCore
import SockwaySocketIO
import Testing

@Suite("JSON parsing: values and structure")
struct SocketIOJSONParsingTests {
    @Test func literalsParse() throws {
        // The three literal names map to null and the Booleans.
        #expect(try SocketIOValue(parsingJSON: "null") == .null)
        #expect(try SocketIOValue(parsingJSON: "true") == .bool(true))
        #expect(try SocketIOValue(parsingJSON: "false") == .bool(false))
    }

    @Test func anyValueMayBeTheDocument() throws {
        // As with JSON.parse, the top level may be any value, not only an object or array.
        #expect(try SocketIOValue(parsingJSON: "42") == .number(42))
        #expect(try SocketIOValue(parsingJSON: #""x""#) == .string("x"))
        #expect(try SocketIOValue(parsingJSON: "[]") == .array([]))
        #expect(try SocketIOValue(parsingJSON: "{}") == .object([]))
    }

    @Test func objectsKeepMemberOrder() throws {
        // Members come out in the order they were written, not sorted.
        let value = try SocketIOValue(parsingJSON: #"{"z":1,"a":2,"m":[true,null]}"#)
        #expect(value.objectMembers?.map(\.key) == ["z", "a", "m"])
        #expect(value == ["z": 1, "a": 2, "m": [true, nil]])
    }

    @Test func duplicateKeysAreKeptAndTheLastOneWinsLookups() throws {
        // JSON.parse keeps the last value of a repeated key; lookups here see the last one too.
        let value = try SocketIOValue(parsingJSON: #"{"a":1,"a":2}"#)
        #expect(value.objectMembers?.count == 2)
        #expect(value["a"] == .number(2))
    }

    @Test func whitespaceAroundAndInsideIsAllowed() throws {
        // Space, tab, LF and CR may surround any token.
        let value = try SocketIOValue(parsingJSON: " \t\r\n[ 1 ,\n{ \"a\" : \"b\" } ] \n")
        #expect(value == [1, ["a": "b"]])
    }

    @Test func nestedStructuresParse() throws {
        // Arrays and objects nest freely under the depth bound.
        let value = try SocketIOValue(parsingJSON: #"{"a":[[],{"b":{"c":[1,[2,[3]]]}}]}"#)
        #expect(value["a"]?[1]?["b"]?["c"]?[1]?[1]?[0] == .number(3))
    }

    @Test func byteBufferInputIsNotConsumed() throws {
        // Parsing from a ByteBuffer reads its readable bytes and leaves the reader index alone.
        var bytes = ByteBuffer(string: "xx[1,2]")
        bytes.moveReaderIndex(forwardBy: 2)
        #expect(try SocketIOValue(parsingJSON: bytes) == [1, 2])
        #expect(bytes.readableBytes == 5)
    }

    @Test func rawBufferInputParses() throws {
        // The borrowed-bytes entry point parses the same as the String one.
        let value = try Array(#"{"k":"v"}"#.utf8).withUnsafeBytes { try SocketIOValue(parsingJSON: $0) }
        #expect(value == ["k": "v"])
    }
}

@Suite("JSON parsing: numbers")
struct SocketIOJSONNumberParsingTests {
    @Test func integersAndFractionsParse() throws {
        // Numbers become Doubles, exactly where a Double can hold them.
        #expect(try SocketIOValue(parsingJSON: "0") == .number(0))
        #expect(try SocketIOValue(parsingJSON: "-17") == .number(-17))
        #expect(try SocketIOValue(parsingJSON: "0.1") == .number(0.1))
        #expect(try SocketIOValue(parsingJSON: "1.5") == .number(1.5))
        #expect(try SocketIOValue(parsingJSON: "-2.25") == .number(-2.25))
    }

    @Test func exponentsParse() throws {
        // e and E, with or without a sign.
        #expect(try SocketIOValue(parsingJSON: "1e3") == .number(1000))
        #expect(try SocketIOValue(parsingJSON: "1E3") == .number(1000))
        #expect(try SocketIOValue(parsingJSON: "1e+3") == .number(1000))
        #expect(try SocketIOValue(parsingJSON: "25e-2") == .number(0.25))
        #expect(try SocketIOValue(parsingJSON: "-1.5E1") == .number(-15))
    }

    @Test func negativeZeroKeepsItsSign() throws {
        // JSON.parse("-0") is -0; it prints as 0 again.
        let value = try SocketIOValue(parsingJSON: "-0")
        #expect(value.doubleValue?.sign == .minus)
        #expect(value.jsonString == "0")
        #expect(try SocketIOValue(parsingJSON: "-0.0").doubleValue?.sign == .minus)
    }

    @Test func integersUpTo2To53AreExact() throws {
        // 2^53 and its neighbours below are exact; 2^53 + 1 rounds to even, as in JavaScript.
        #expect(try SocketIOValue(parsingJSON: "9007199254740991").intValue == 9_007_199_254_740_991)
        #expect(try SocketIOValue(parsingJSON: "9007199254740992").intValue == 9_007_199_254_740_992)
        #expect(try SocketIOValue(parsingJSON: "9007199254740993").intValue == 9_007_199_254_740_992)
        #expect(try SocketIOValue(parsingJSON: "-9007199254740991").intValue == -9_007_199_254_740_991)
    }

    @Test func longMantissasRoundCorrectly() throws {
        // Tokens past the fast path go through a correctly rounded conversion.
        #expect(try SocketIOValue(parsingJSON: "0.30000000000000004") == .number(0.1 + 0.2))
        #expect(try SocketIOValue(parsingJSON: "123456789012345678901234567890") == .number(1.2345678901234568e29))
        #expect(try SocketIOValue(parsingJSON: "2.2250738585072014e-308") == .number(2.2250738585072014e-308))
    }

    @Test func outOfRangeNumbersBecomeInfinityOrZero() throws {
        // As JSON.parse: 1e400 is Infinity (which prints null), 1e-400 is 0.
        #expect(try SocketIOValue(parsingJSON: "1e400") == .number(.infinity))
        #expect(try SocketIOValue(parsingJSON: "-1e400") == .number(-.infinity))
        #expect(try SocketIOValue(parsingJSON: "1e-400") == .number(0))
        #expect(try reserialized("[1e400]") == "[null]")
    }

    @Test(arguments: ["01", "-01", "1.", ".5", "+1", "-", "1e", "1e+", "1.e3", "0x10", "NaN", "Infinity", "-Infinity", "1_000", "- 1"])
    func malformedNumbersAreRejected(text: String) {
        // RFC 8259's number grammar: no leading zeros, plus signs, bare points, hex or named values.
        #expect(throws: SocketIOError.invalidJSON) { try SocketIOValue(parsingJSON: text) }
    }
}

@Suite("JSON parsing: strings")
struct SocketIOJSONStringParsingTests {
    @Test func simpleEscapesDecode() throws {
        // The eight two-character escapes of RFC 8259 §7.
        let value = try SocketIOValue(parsingJSON: #""\"\\\/\b\f\n\r\t""#)
        #expect(value == .string("\"\\/\u{08}\u{0C}\n\r\t"))
    }

    @Test func unicodeEscapesDecodeInEitherCase() throws {
        // \uXXXX with upper- or lowercase hex digits.
        #expect(try SocketIOValue(parsingJSON: #""\u0041\u00e9\u00E9\u20AC""#) == .string("Aéé€"))
        #expect(try SocketIOValue(parsingJSON: #""\u0000""#) == .string("\u{0}"))
    }

    @Test func surrogatePairsCombine() throws {
        // A high surrogate followed by a low one is one supplementary code point.
        #expect(try SocketIOValue(parsingJSON: #""\uD83D\uDE00""#) == .string("😀"))
        #expect(try SocketIOValue(parsingJSON: #""a\ud83d\ude00b""#) == .string("a😀b"))
    }

    @Test func loneSurrogatesBecomeReplacementCharacters() throws {
        // A String cannot hold a lone surrogate: it becomes U+FFFD, which is also what the JavaScript
        // string turns into once written as UTF-8. What follows it is read normally.
        #expect(try SocketIOValue(parsingJSON: #""\uD800""#) == .string("\u{FFFD}"))
        #expect(try SocketIOValue(parsingJSON: #""\uDC00""#) == .string("\u{FFFD}"))
        #expect(try SocketIOValue(parsingJSON: #""\uD800x""#) == .string("\u{FFFD}x"))
        #expect(try SocketIOValue(parsingJSON: #""\uD800\u0041""#) == .string("\u{FFFD}A"))
        #expect(try SocketIOValue(parsingJSON: #""\uD800\uD800""#) == .string("\u{FFFD}\u{FFFD}"))
        #expect(try SocketIOValue(parsingJSON: #""\uDE00\uD83D""#) == .string("\u{FFFD}\u{FFFD}"))
        #expect(try SocketIOValue(parsingJSON: #""\uD83D\uD83D\uDE00""#) == .string("\u{FFFD}😀"))
    }

    @Test func rawUTF8IsKept() throws {
        // Non-ASCII text needs no escaping in JSON and arrives as written.
        #expect(try SocketIOValue(parsingJSON: "\"héllo wörld 日本 😀\"") == .string("héllo wörld 日本 😀"))
        #expect(try SocketIOValue(parsingJSON: "\"é\\n😀\"") == .string("é\n😀"))
    }

    @Test(arguments: [
        [0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xE2, 0x82], [0xF4, 0x90, 0x80, 0x80], [0x80], [0xE0, 0x80, 0x80],
        [0xF0, 0x80, 0x80, 0x80], [0xC3, 0x41],
    ] as [[UInt8]])
    func invalidUTF8IsRejected(bytes: [UInt8]) {
        // Overlong forms, surrogates, stray continuation bytes and truncated sequences are refused.
        let document = ByteBuffer(bytes: [UInt8(ascii: "\"")] + bytes + [UInt8(ascii: "\"")])
        #expect(throws: SocketIOError.invalidUTF8) { try SocketIOValue(parsingJSON: document) }
    }

    @Test func validMultibyteBoundariesAreAccepted() throws {
        // The smallest and largest scalars of each UTF-8 length pass validation.
        let text = "\u{80}\u{7FF}\u{800}\u{D7FF}\u{E000}\u{FFFF}\u{10000}\u{10FFFF}"
        #expect(try SocketIOValue(parsingJSON: "\"" + text + "\"") == .string(text))
    }

    @Test(arguments: ["\"a\nb\"", "\"\t\"", "\"\u{1F}\"", "\"\u{0}\""])
    func rawControlCharactersAreRejected(text: String) {
        // Control characters must be escaped inside strings.
        #expect(throws: SocketIOError.invalidJSON) { try SocketIOValue(parsingJSON: text) }
    }

    @Test(arguments: [#""\x""#, #""\u12""#, #""\u12G4""#, #""\""#, #""abc"#, #""\"#, #""\'""#, #""\U0041""#])
    func badEscapesAndUnterminatedStringsAreRejected(text: String) {
        // Only the RFC escapes exist, \u takes four hex digits, and a string must be closed.
        #expect(throws: SocketIOError.invalidJSON) { try SocketIOValue(parsingJSON: text) }
    }
}

@Suite("JSON parsing: malformed documents and bounds")
struct SocketIOJSONMalformedTests {
    @Test(arguments: [
        "", " ", "[1,]", "[,1]", "{\"a\":1,}", "{,}", "[1 2]", "{\"a\" 1}", "{\"a\":}", "{a:1}", "{'a':1}", "'a'",
        "[", "{", "]", "}", "[1", "{\"a\":1", "tru", "nul", "fals", "True", "undefined", "{\"a\":1 \"b\":2}", "[1]]",
    ])
    func syntaxErrorsAreRejected(text: String) {
        // Anything outside RFC 8259's grammar is an error, never a partial value.
        #expect(throws: SocketIOError.invalidJSON) { try SocketIOValue(parsingJSON: text) }
    }

    @Test(arguments: ["[1] x", "1 2", "{}{}", "\"a\"b", "null,", "[]\u{0}", "truex"])
    func trailingGarbageIsRejected(text: String) {
        // After the value only whitespace may follow.
        #expect(throws: SocketIOError.invalidJSON) { try SocketIOValue(parsingJSON: text) }
    }

    @Test func nestingUpToTheBoundIsAccepted() throws {
        // 64 nested arrays (the default bound) parse; so do 64 mixed containers.
        let arrays = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(try SocketIOValue(parsingJSON: arrays).arrayValue != nil)
        let mixed = String(repeating: #"{"a":["#, count: 32) + String(repeating: "]}", count: 32)
        #expect(try SocketIOValue(parsingJSON: mixed).objectMembers != nil)
    }

    @Test func nestingPastTheBoundIsRejected() {
        // One more level than the bound throws, for arrays and objects alike.
        let arrays = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(throws: SocketIOError.jsonNestingTooDeep) { try SocketIOValue(parsingJSON: arrays) }
        let objects = String(repeating: #"{"a":"#, count: 65) + "1" + String(repeating: "}", count: 65)
        #expect(throws: SocketIOError.jsonNestingTooDeep) { try SocketIOValue(parsingJSON: objects) }
    }

    @Test func hugeNestingFailsWithoutExhaustingTheStack() {
        // A megabyte of `[` is refused at the bound, long before the stack could run out.
        let text = String(repeating: "[", count: 1 << 20)
        #expect(throws: SocketIOError.jsonNestingTooDeep) { try SocketIOValue(parsingJSON: text) }
    }

    @Test func nestingBoundIsConfigurable() throws {
        // maxNestingDepth counts containers: 2 allows [[1]] but not [[[1]]]; 0 allows scalars only.
        #expect(try SocketIOValue(parsingJSON: "[[1]]", maxNestingDepth: 2) == [[1]])
        #expect(throws: SocketIOError.jsonNestingTooDeep) { try SocketIOValue(parsingJSON: "[[[1]]]", maxNestingDepth: 2) }
        #expect(try SocketIOValue(parsingJSON: "7", maxNestingDepth: 0) == 7)
        #expect(throws: SocketIOError.jsonNestingTooDeep) { try SocketIOValue(parsingJSON: "[]", maxNestingDepth: 0) }
    }
}

@Suite("JSON writing: as JSON.stringify")
struct SocketIOJSONWritingTests {
    @Test func integersPrintWithoutDecimalPoint() {
        // Integral numbers print as integers: 1, not 1.0.
        #expect(json(1) == "1")
        #expect(json(1.0) == "1")
        #expect(json(-42) == "-42")
        #expect(json(0) == "0")
        #expect(json(100) == "100")
        #expect(json(.number(1e3)) == "1000")
    }

    @Test func integersUpTo2To53PrintExactly() {
        // Every integer a Double holds exactly up to 2^53 prints digit for digit.
        #expect(json(.number(9_007_199_254_740_991)) == "9007199254740991")
        #expect(json(.number(9_007_199_254_740_992)) == "9007199254740992")
        #expect(json(.number(-9_007_199_254_740_992)) == "-9007199254740992")
    }

    @Test func largerIntegersPrintShortestDigitsPaddedWithZeros() {
        // Past 2^53 JavaScript prints the shortest round-trip digits, then zeros, up to 1e21.
        #expect(json(.number(1_152_921_504_606_846_976)) == "1152921504606847000")  // 2^60
        #expect(json(.number(9_007_199_254_740_994)) == "9007199254740994")  // 2^53 + 2
        #expect(json(.number(1e16)) == "10000000000000000")
        #expect(json(.number(-1e16)) == "-10000000000000000")
        #expect(json(.number(1e20)) == "100000000000000000000")
        #expect(json(.number(1.2345678901234568e20)) == "123456789012345680000")
        #expect(json(.number(18_446_744_073_709_551_616)) == "18446744073709552000")  // 2^64
    }

    @Test func fractionsPrintShortestDigits() {
        // Fractions print with the fewest digits that read back to the same Double.
        #expect(json(1.5) == "1.5")
        #expect(json(0.1) == "0.1")
        #expect(json(-0.5) == "-0.5")
        #expect(json(.number(0.1 + 0.2)) == "0.30000000000000004")
        #expect(json(123.456) == "123.456")
        #expect(json(.number(1e15 + 0.5)) == "1000000000000000.5")
    }

    @Test func smallNumbersUseExponentBelowOneMillionth() {
        // 1e-6 still prints as a decimal; 1e-7 and below use the exponent form.
        #expect(json(.number(0.000001)) == "0.000001")
        #expect(json(.number(0.0000015)) == "0.0000015")
        #expect(json(.number(1e-7)) == "1e-7")
        #expect(json(.number(1.5e-7)) == "1.5e-7")
        #expect(json(.number(-2e-10)) == "-2e-10")
        #expect(json(.number(.leastNonzeroMagnitude)) == "5e-324")
    }

    @Test func largeNumbersUseExponentFrom1e21() {
        // From 1e21 on JavaScript writes d.ddde+N.
        #expect(json(.number(1e21)) == "1e+21")
        #expect(json(.number(1.5e21)) == "1.5e+21")
        #expect(json(.number(-1e100)) == "-1e+100")
        #expect(json(.number(1.7976931348623157e308)) == "1.7976931348623157e+308")
        #expect(json(.number(1.2345678901234568e29)) == "1.2345678901234568e+29")
    }

    @Test func negativeZeroPrintsZero() {
        // JSON.stringify(-0) is "0".
        #expect(json(.number(-0.0)) == "0")
    }

    @Test func nonFiniteNumbersPrintNull() {
        // NaN and ±Infinity have no JSON form; JSON.stringify writes null.
        #expect(json(.number(.nan)) == "null")
        #expect(json(.number(.infinity)) == "null")
        #expect(json([.number(-.infinity)]) == "[null]")
    }

    @Test func parsedNumbersPrintTheWayJavaScriptReprintsThem() throws {
        // JSON.stringify(JSON.parse(x)) for a range of inputs.
        let cases: [(String, String)] = [
            ("1e3", "1000"), ("-0", "0"), ("0.1", "0.1"), ("1.50", "1.5"), ("1E2", "100"), ("12.5e-1", "1.25"),
            ("0.0000001", "1e-7"), ("1e21", "1e+21"), ("100e-2", "1"), ("-1.0", "-1"), ("4.35", "4.35"),
        ]
        for (input, output) in cases {
            #expect(try reserialized(input) == output, "\(input)")
        }
    }

    @Test func namedEscapesAreUsed() {
        // Quote, backslash and \b \f \n \r \t use their short escapes.
        #expect(json("\"\\\u{08}\u{0C}\n\r\t") == #""\"\\\b\f\n\r\t""#)
    }

    @Test func otherControlCharactersUseLowercaseUnicodeEscapes() {
        // Every other code point below U+0020 is \u00xx with lowercase hex.
        for value in UInt32(0)..<0x20 where ![0x08, 0x09, 0x0A, 0x0C, 0x0D].contains(value) {
            let text = String(Character(Unicode.Scalar(value)!))
            let hex = String(value, radix: 16)
            #expect(json(.string(text)) == "\"\\u00" + (hex.count == 1 ? "0" : "") + hex + "\"")
        }
        #expect(json("\u{1F}\u{1B}") == #""\u001f\u001b""#)
    }

    @Test func everythingElseIsWrittenRaw() {
        // Slash, DEL, U+2028/2029 and all non-ASCII text are not escaped by JSON.stringify.
        #expect(json("a/b\u{7F}") == "\"a/b\u{7F}\"")
        #expect(json("\u{2028}\u{2029}") == "\"\u{2028}\u{2029}\"")
        #expect(json("héllo 日本 😀") == "\"héllo 日本 😀\"")
    }

    @Test func escapesBetweenPlainRunsKeepTheText() {
        // Plain runs around escapes are copied intact.
        #expect(json("ab\"cd\\ef\ngh") == #""ab\"cd\\ef\ngh""#)
        #expect(json("\n") == #""\n""#)
        #expect(json("") == #""""#)
    }

    @Test func containersAreCompact() {
        // No spaces after commas or colons, as JSON.stringify without indentation.
        #expect(json(["a": [1, 2], "b": ["c": nil], "d": true]) == #"{"a":[1,2],"b":{"c":null},"d":true}"#)
        #expect(json([]) == "[]")
        #expect(json(.object([])) == "{}")
    }

    @Test func objectKeysAreEscaped() {
        // Keys are strings and escape like values.
        #expect(json(["a\"b\n": 1]) == #"{"a\"b\n":1}"#)
    }

    @Test func binaryPrintsAsNodeBuffer() {
        // Outside a binary packet, a binary prints as Node's Buffer.toJSON() form.
        #expect(json(.binary(buffer([1, 2, 255]))) == #"{"type":"Buffer","data":[1,2,255]}"#)
        #expect(json(.binary(buffer([]))) == #"{"type":"Buffer","data":[]}"#)
    }

    @Test func writeJSONAppends() {
        // writeJSON appends after what the buffer holds.
        var out = ByteBuffer(string: "42")
        SocketIOValue.array(["hi"]).writeJSON(into: &out)
        #expect(String(buffer: out) == #"42["hi"]"#)
    }

    @Test func canonicalDocumentsRoundTrip() throws {
        // A document already in JSON.stringify form parses and prints back byte for byte.
        let documents = [
            #"["message",1,"2",{"3":[true]}]"#,
            #"{"sid":"oSO0OpakMV_3jnilAAAA","n":-1.5,"z":null,"e":[],"o":{}}"#,
            #"["é\n\"\\😀\u0001",1e-7,1e+21,0.30000000000000004]"#,
        ]
        for document in documents {
            #expect(try reserialized(document) == document)
        }
    }

    @Test func escapedInputPrintsCanonically() throws {
        // Needless escapes in the input are printed raw, as JSON.stringify(JSON.parse(x)) does.
        #expect(try reserialized(#""\u0041\/\u00e9\ud83d\ude00""#) == "\"A/é😀\"")
        #expect(try reserialized(#""\uD800""#) == "\"\u{FFFD}\"")
    }
}

@Suite("SocketIOValue conveniences")
struct SocketIOValueConvenienceTests {
    @Test func literalsBuildValues() {
        // Every literal kind has its case; dictionary literals keep their order.
        let value: SocketIOValue = ["s": "x", "i": 1, "d": 1.5, "b": false, "n": nil, "a": [1]]
        #expect(
            value
                == .object([
                    .init("s", .string("x")), .init("i", .number(1)), .init("d", .number(1.5)), .init("b", .bool(false)),
                    .init("n", .null), .init("a", .array([.number(1)])),
                ])
        )
    }

    @Test func accessorsReturnOnlyTheirCase() {
        // Each accessor answers for its own case and nil otherwise.
        let string: SocketIOValue = "x"
        #expect(string.stringValue == "x")
        #expect(string.doubleValue == nil)
        #expect(SocketIOValue.number(2).intValue == 2)
        #expect(SocketIOValue.number(2.5).intValue == nil)
        #expect(SocketIOValue.number(2.5).doubleValue == 2.5)
        #expect(SocketIOValue.bool(true).boolValue == true)
        #expect(SocketIOValue.null.isNull)
        #expect(!SocketIOValue.bool(false).isNull)
        #expect(SocketIOValue.array([1]).arrayValue == [1])
        #expect(SocketIOValue.binary(buffer([1])).binaryValue == buffer([1]))
        #expect(string.arrayValue == nil)
        #expect(string.objectMembers == nil)
        #expect(string.binaryValue == nil)
    }

    @Test func subscriptsAreSafe() {
        // Out-of-range indexes, missing keys and the wrong case give nil, never a trap.
        let value: SocketIOValue = ["a": [10, 20]]
        #expect(value["a"]?[1] == 20)
        #expect(value["a"]?[2] == nil)
        #expect(value["a"]?[-1] == nil)
        #expect(value["b"] == nil)
        #expect(value[0] == nil)
        #expect(SocketIOValue.string("a")["a"] == nil)
    }

    @Test func binaryIsFoundAndCountedDepthFirst() {
        // containsBinary and binaryCount look through arrays and objects.
        let value: SocketIOValue = ["x", ["k": .binary(buffer([1])), "l": [.binary(buffer([2]))]], .binary(buffer([3]))]
        #expect(value.containsBinary)
        #expect(value.binaryCount == 3)
        #expect(!SocketIOValue.array(["x", ["k": 1]]).containsBinary)
    }

    @Test func descriptionIsTheJSON() {
        // description is the JSON text.
        #expect(SocketIOValue.array(["a", 1]).description == #"["a",1]"#)
    }
}
