import NIOCore
import SockwaySockJS
import Testing

@Suite("JSON quoting: standard JSON escapes")
struct SockJSJSONStandardEscapeTests {
    @Test func plainTextIsQuotedVerbatim() {
        // Text without anything to escape is wrapped in double quotes and otherwise untouched.
        #expect(SockJSJSON.quoted("hello, world") == #""hello, world""#)
        #expect(SockJSJSON.quoted("") == #""""#)
    }

    @Test func quoteAndBackslashAreEscaped() {
        // RFC 8259 §7: quotation mark and reverse solidus must be escaped.
        #expect(SockJSJSON.quoted(#"a"b\c"#) == #""a\"b\\c""#)
    }

    @Test func namedControlEscapesAreUsed() {
        // \b \f \n \r \t have their two-character short forms.
        #expect(SockJSJSON.quoted("\u{08}\u{0C}\n\r\t") == #""\b\f\n\r\t""#)
    }

    @Test func otherControlCharactersBecomeLowercaseUnicodeEscapes() {
        // Every other code point below U+0020 is written as \u00xx with lowercase hex digits.
        for value in UInt32(0)..<0x20 where ![0x08, 0x09, 0x0A, 0x0C, 0x0D].contains(value) {
            let text = string(of: [Unicode.Scalar(value)!])
            #expect(SockJSJSON.quoted(text) == "\"\\u" + lowercaseHex4(value) + "\"")
        }
        #expect(SockJSJSON.quoted("\u{1F}\u{1B}") == #""\u001f\u001b""#)
    }

    @Test func writeQuotedAppendsToTheBuffer() {
        // writeQuoted appends after whatever the buffer already holds.
        var buffer = ByteBuffer(string: "a[")
        SockJSJSON.writeQuoted("x\"", into: &buffer)
        #expect(String(buffer: buffer) == #"a["x\"""#)
    }

    @Test func writeQuotedFromUTF8BytesMatchesStringForm() {
        // Quoting raw UTF-8 bytes gives the same text as quoting the String.
        let text = "é\u{2028}<\"\u{FFFF}😀\n"
        var buffer = ByteBuffer()
        Array(text.utf8).withUnsafeBytes { SockJSJSON.writeQuoted(utf8: $0, into: &buffer) }
        #expect(String(buffer: buffer) == SockJSJSON.quoted(text))
    }
}

@Suite("JSON quoting: the SockJS escape set")
struct SockJSJSONSockJSEscapeTests {
    @Test func serverKillerStringMatchesTheProtocolSuiteExactly() {
        // The suite's server_killer_string_esc: every U+00FF…U+FFFF in the SockJS set, escaped as lowercase \uxxxx.
        let input = string(of: serverEscapableScalars)
        #expect(serverEscapableScalars.count == 4 + 8 + 16 + 16)
        #expect(SockJSJSON.quoted(input) == serverKillerStringEscaped)
    }

    @Test func serverKillerStringSurvivesTheXHRFraming() {
        // The suite strips `a[` and `]\n` from an xhr response and expects server_killer_string_esc exactly.
        let input = string(of: serverEscapableScalars)
        let body = SockJSTransport.xhrPolling.wrappedFrame(.messages([input]))
        #expect(body == "a[" + serverKillerStringEscaped + "]\n")
    }

    @Test func eachRangeBoundaryIsEscaped() {
        // The first and last code point of every SockJS range is escaped on its own and among other text.
        let boundaries: [UInt32] = [0x200C, 0x200F, 0x2028, 0x202F, 0x2060, 0x206F, 0xFFF0, 0xFFFF]
        for value in boundaries {
            let scalar = string(of: [Unicode.Scalar(value)!])
            let escape = "\\u" + lowercaseHex4(value)
            #expect(SockJSJSON.quoted(scalar) == "\"" + escape + "\"")
            #expect(SockJSJSON.quoted("a" + scalar + "b") == "\"a" + escape + "b\"")
        }
    }

    @Test func lineAndParagraphSeparatorsNeverAppearRaw() {
        // U+2028 and U+2029 end a JavaScript string literal in older engines, so they are always escaped.
        let quoted = SockJSJSON.quoted("x\u{2028}y\u{2029}z")
        #expect(quoted == #""x\u2028y\u2029z""#)
        #expect(!quoted.unicodeScalars.contains("\u{2028}"))
        #expect(!quoted.unicodeScalars.contains("\u{2029}"))
    }

    @Test func neighboursOfTheEscapeSetPassThroughVerbatim() {
        // Only the SockJS set is escaped: the code points just outside each range are sent as UTF-8.
        let neighbours: [UInt32] = [0x00FF, 0x200B, 0x2010, 0x2027, 0x2030, 0x205F, 0x2070, 0xFFEF, 0x20AC, 0xE000]
        for value in neighbours {
            let text = string(of: [Unicode.Scalar(value)!])
            #expect(SockJSJSON.quoted(text) == "\"" + text + "\"")
        }
    }

    @Test func astralCharactersPassThroughVerbatim() {
        // Characters outside the BMP (emoji, U+10FFFF) are not in the escape set and stay as UTF-8.
        for text in ["😀", "𝄞", "\u{10FFFF}", "\u{1FFF0}", "a😀b🇺🇳"] {
            #expect(SockJSJSON.quoted(text) == "\"" + text + "\"")
        }
    }

    @Test func zeroWidthJoinerInsideAnEmojiSequenceIsEscaped() {
        // U+200D is in the escape set even between emoji; the astral parts stay as UTF-8.
        #expect(SockJSJSON.quoted("👩\u{200D}👧") == "\"👩\\u200d👧\"")
    }

    @Test func escapedCodePointAtTheVeryEndIsEscaped() {
        // A three-byte escapable code point that ends the string is still escaped.
        #expect(SockJSJSON.quoted("abc\u{2028}") == #""abc\u2028""#)
        #expect(SockJSJSON.quoted("abc\u{FFFF}") == #""abc\uffff""#)
        #expect(SockJSJSON.quoted("\u{200C}") == #""\u200c""#)
    }
}

@Suite("JSON quoting: HTML-safe mode")
struct SockJSJSONHTMLSafeTests {
    @Test func htmlSafeEscapesAngleBracketsAndAmpersand() {
        // In HTML-safe mode < > & become \u003c \u003e \u0026, so the value can sit inside <script>.
        #expect(SockJSJSON.quoted("<a&b>", htmlSafe: true) == #""\u003ca\u0026b\u003e""#)
    }

    @Test func htmlSafeOutputCannotEndAScriptOrOpenAComment() {
        // "</script>" and "<!--" never appear raw in HTML-safe output.
        let quoted = SockJSJSON.quoted("x</script><!--y-->", htmlSafe: true)
        #expect(!quoted.contains("</script>"))
        #expect(!quoted.contains("<!--"))
        #expect(!quoted.contains("<"))
        #expect(!quoted.contains(">"))
    }

    @Test func plainModeLeavesAngleBracketsAndAmpersandAlone() {
        // Outside HTML the characters are ordinary JSON text.
        #expect(SockJSJSON.quoted("</script><!--&") == #""</script><!--&""#)
    }

    @Test func htmlSafeModeStillAppliesTheSockJSAndStandardEscapes() {
        // HTML-safe adds to the escape set; it does not replace it.
        #expect(SockJSJSON.quoted("\"\n\u{2028}<", htmlSafe: true) == #""\"\n\u2028\u003c""#)
    }
}

@Suite("JSON quoting: the eight-byte fast path")
struct SockJSJSONFastPathTests {
    /// The rules one scalar at a time, with no fast path: the reference the quoting must match.
    static func reference(_ text: String, htmlSafe: Bool) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x08: out += "\\b"
            case 0x09: out += "\\t"
            case 0x0A: out += "\\n"
            case 0x0C: out += "\\f"
            case 0x0D: out += "\\r"
            case 0x3C where htmlSafe, 0x3E where htmlSafe, 0x26 where htmlSafe,
                0x00...0x1F, 0x200C...0x200F, 0x2028...0x202F, 0x2060...0x206F, 0xFFF0...0xFFFF:
                out += "\\u" + lowercaseHex4(scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    @Test(arguments: ["\"", "\\", "\n", "\u{01}", "<", ">", "&", "é", "\u{2028}", "\u{FFFF}", "😀", "\u{7F}"])
    func specialCharacterAtEveryOffsetOfAWord(_ special: String) {
        // Whatever the byte offset of a character that needs escaping, the fast path never skips it.
        for length in 0..<24 {
            for offset in 0...length {
                let text = String(repeating: "a", count: offset) + special + String(repeating: "b", count: length - offset)
                #expect(SockJSJSON.quoted(text) == Self.reference(text, htmlSafe: false))
                #expect(SockJSJSON.quoted(text, htmlSafe: true) == Self.reference(text, htmlSafe: true))
            }
        }
    }

    @Test func chunkBoundariesAndWorstCaseExpansion() {
        // The escaping path writes into the buffer's free memory and asks for more when it runs short:
        // escaped sequences wherever that happens, and text that is all control characters (six bytes
        // out per byte in, many rounds), quote exactly as the reference.
        for offset in 4088...4100 {
            let text = String(repeating: "\"", count: 1) + String(repeating: "a", count: offset - 1) + "\u{2028}" + String(repeating: "\u{1}", count: 5000) + "\u{FFFF}"
            #expect(SockJSJSON.quoted(text) == Self.reference(text, htmlSafe: false))
            #expect(SockJSJSON.quoted(text, htmlSafe: true) == Self.reference(text, htmlSafe: true))
        }
    }

    @Test func longMixedTextMatchesTheReference() {
        // A long text mixing plain runs, escapes and multibyte characters quotes exactly as the reference.
        var generator = SystemRandomNumberGenerator()
        let pieces = ["plain text ", "\"", "\\", "\n", "<tag>", "&amp;", "é", "\u{2028}", "\u{FFF0}", "😀", "12345678", "\u{7F}"]
        let text = (0..<2000).map { _ in pieces.randomElement(using: &generator)! }.joined()
        #expect(SockJSJSON.quoted(text) == Self.reference(text, htmlSafe: false))
        #expect(SockJSJSON.quoted(text, htmlSafe: true) == Self.reference(text, htmlSafe: true))
    }
}
