import Testing

@testable import SockwayEngineIO

/// Query strings decoded as `URLSearchParams` does (WHATWG urlencoded parsing), last value winning.
@Suite("Engine.IO query parameters")
struct EngineIOQueryTests {
    @Test("A plain query gives EIO, transport and sid")
    func plain() {
        let query = EngineIOQuery(parsing: "EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC")
        #expect(query.protocolVersion == "4")
        #expect(query.transport == "polling")
        #expect(query.sid == "lv_VI97HAXpY6yYWAAAC")
        #expect(query["t"] == nil)
        #expect(query.parameters.count == 3)
    }

    @Test("One leading `?` is skipped")
    func leadingQuestionMark() {
        #expect(EngineIOQuery(parsing: "?EIO=4").protocolVersion == "4")
        #expect(EngineIOQuery(parsing: "??EIO=4")["?EIO"] == "4")
    }

    @Test("Percent escapes are bytes and `+` is a space; UTF-8 is decoded")
    func percentDecoding() {
        let query = EngineIOQuery(parsing: "sid=a%2Bb%20c+d&n%61me=%E2%82%AC&x=%e2%82%ac")
        #expect(query.sid == "a+b c d")
        #expect(query["name"] == "€")
        #expect(query["x"] == "€")
    }

    @Test("A malformed escape stays as it is", arguments: [("a=%", "%"), ("a=%4", "%4"), ("a=%zz", "%zz"), ("a=%%41", "%A"), ("a=100%", "100%")])
    func malformedEscapes(raw: String, value: String) {
        #expect(EngineIOQuery(parsing: raw)["a"] == value)
    }

    @Test("Decoded bytes that are not UTF-8 become U+FFFD")
    func invalidUTF8() {
        #expect(EngineIOQuery(parsing: "sid=%FF%C3")["sid"] == "\u{FFFD}\u{FFFD}")
    }

    @Test("Empty pairs are skipped; a name without `=` has an empty value; only the first `=` splits")
    func pairShapes() {
        let query = EngineIOQuery(parsing: "&&a&b=&c=1=2&=v&")
        #expect(query.parameters == [
            .init(name: "a", value: ""), .init(name: "b", value: ""), .init(name: "c", value: "1=2"), .init(name: "", value: "v"),
        ])
    }

    @Test("The last value of a repeated name wins, as with Object.fromEntries")
    func lastWins() {
        let query = EngineIOQuery(parsing: "transport=websocket&transport=polling")
        #expect(query.transport == "polling")
        let literal: EngineIOQuery = ["sid": "a", "sid": "b"]
        #expect(literal.sid == "b")
    }

    @Test("A request target: the query is after the first `?` and before `#`")
    func uri() {
        #expect(EngineIOQuery(uri: "/engine.io/?EIO=4&transport=polling").transport == "polling")
        #expect(EngineIOQuery(uri: "/engine.io/?sid=a?b#frag").sid == "a?b")
        #expect(EngineIOQuery(uri: "/engine.io/").parameters.isEmpty)
        #expect(EngineIOQuery(uri: "/engine.io/?").parameters.isEmpty)
    }

    @Test("Pairs can be given already decoded")
    func givenPairs() {
        let query = EngineIOQuery([(name: "EIO", value: "4"), (name: "transport", value: "websocket")])
        #expect(query.protocolVersion == "4")
        #expect(query.transport == "websocket")
        #expect(query == ["EIO": "4", "transport": "websocket"])
    }

    @Test("An empty query has no parameters")
    func empty() {
        #expect(EngineIOQuery(parsing: "").parameters.isEmpty)
        #expect(EngineIOQuery(parsing: "?").parameters.isEmpty)
    }
}
