import SockwaySockJS
import Testing

@Suite("Routes: static URLs")
struct SockJSStaticRouteTests {
    @Test func rootIsTheGreeting() {
        // The endpoint's top URL, with or without a slash, is the greeting.
        #expect(SockJSRoute.parse("") == .greeting)
        #expect(SockJSRoute.parse("/") == .greeting)
    }

    @Test func infoWithOrWithoutTrailingSlash() {
        // `/info` and `/info/` both reach the info route.
        #expect(SockJSRoute.parse("/info") == .info)
        #expect(SockJSRoute.parse("/info/") == .info)
    }

    @Test(arguments: ["/iframe.html", "/iframe-a.html", "/iframe-.html", "/iframe-0.1.2.html", "/iframe-0.1.2abc-dirty.2144.html"])
    func versionedIframePagesAreTheIframe(path: String) {
        // The suite: `/iframe.html` and any `/iframe-<version>.html` serve the iframe page.
        #expect(SockJSRoute.parse(path) == .iframe)
    }

    @Test(arguments: ["/iframe.htm", "/iframe", "/IFRAME.HTML", "/IFRAME", "/iframe.HTML", "/iframe.xml", "/iframe-/.html"])
    func malformedIframeNamesAreNotFound(path: String) {
        // The suite: wrong extension, wrong case or a slash in the version is a 404.
        #expect(SockJSRoute.parse(path) == .notFound)
    }

    @Test func rawWebSocketEndpoint() {
        // `/websocket` is the raw WebSocket endpoint, with no SockJS framing.
        #expect(SockJSRoute.parse("/websocket") == .rawWebSocket)
        #expect(SockJSRoute.parse("/websocket/") == .rawWebSocket)
    }

    @Test(arguments: ["/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/", "/infox", "/websockets", "/a/a/a/a/xhr"])
    func otherPathsAreNotFound(path: String) {
        // The suite's list of paths that must answer 404, and a few more that are near misses.
        #expect(SockJSRoute.parse(path) == .notFound)
    }
}

@Suite("Routes: session URLs")
struct SockJSSessionRouteTests {
    static let suffixes: [(String, SockJSTransport)] = [
        ("websocket", .webSocket), ("xhr", .xhrPolling), ("xhr_send", .xhrSend), ("xhr_streaming", .xhrStreaming),
        ("eventsource", .eventSource), ("htmlfile", .htmlFile), ("jsonp", .jsonpPolling), ("jsonp_send", .jsonpSend),
    ]

    @Test func everyTransportSuffixIsASessionRoute() {
        // `/<server>/<session>/<transport>` names the session and the transport.
        for (suffix, transport) in Self.suffixes {
            #expect(SockJSRoute.parse("/000/abc/" + suffix) == .session(id: "abc", transport: transport), "\(suffix)")
            #expect(SockJSRoute.parse("/000/abc/" + suffix + "/") == .session(id: "abc", transport: transport), "\(suffix)/")
        }
    }

    @Test func serverIDIsIgnored() {
        // Only the session id identifies a session; the server id is for load balancers.
        #expect(SockJSRoute.parse("/000/s1/xhr") == .session(id: "s1", transport: .xhrPolling))
        #expect(SockJSRoute.parse("/999/s1/xhr") == .session(id: "s1", transport: .xhrPolling))
    }

    @Test(arguments: ["/a/a123/xhr", "/_/_123/xhr", "/1/123/xhr", "/abcdefgh_i-j%20/abcdefg_i-j%20123/xhr"])
    func anyServerAndSessionValueIsAccepted(path: String) {
        // The suite: any non-empty server and session without dots is valid.
        guard case .session(_, let transport) = SockJSRoute.parse(path) else {
            Issue.record("\(path) is not a session route")
            return
        }
        #expect(transport == .xhrPolling)
    }

    @Test func sessionIDIsTheMiddleSegment() {
        // The session id is taken verbatim from the second segment.
        #expect(SockJSRoute.parse("/abcdefgh_i-j%20/abcdefg_i-j%20123/xhr") == .session(id: "abcdefg_i-j%20123", transport: .xhrPolling))
    }

    @Test(arguments: ["//", "/a./a", "/a/a.", "/./.", "/", "///"])
    func emptyDottedOrMisshapenSessionPathsAreNotFound(prefix: String) {
        // The suite: empty ids, ids with dots, and paths with too few or too many parts are 404.
        #expect(SockJSRoute.parse(prefix + "/xhr") == .notFound)
        #expect(SockJSRoute.parse(prefix + "/xhr_send") == .notFound)
    }

    @Test func slashBeforeACombiningMarkStillSeparatesSegments() {
        // Segments are split on the byte `/`, not on Characters: `/` followed by U+0301 is one
        // Character, which once made `ses/\u{301}x` a session id (found by FuzzSockJSRoute).
        #expect(SockJSRoute.parse("/srv/ses/\u{301}x/xhr_send") == .notFound)
        #expect(SockJSRoute.parse("/srv/\u{301}ses/xhr_send") == .session(id: "\u{301}ses", transport: .xhrSend))
        #expect(SockJSRoute.parse("/srv/ses/xhr_send/\u{301}") == .notFound)
    }

    @Test(arguments: ["xhr_poll", "XHR", "xhr-streaming", "xhr-polling", "jsonp-polling", "foo", "websocket2", "iframe.html", "info", ""])
    func unknownTransportNamesAreNotFound(suffix: String) {
        // Only the eight transport path suffixes exist; public transport names are not path suffixes.
        #expect(SockJSRoute.parse("/a/a/" + suffix) == .notFound)
    }
}

@Suite("Query strings and forms")
struct SockJSQueryValueTests {
    @Test func valueIsPercentDecoded() {
        // Percent escapes decode to UTF-8 bytes.
        #expect(SockJSQuery.value(named: "c", in: "c=%63allback") == "callback")
        #expect(SockJSQuery.value(named: "d", in: "d=%5B%22x%22%5D") == #"["x"]"#)
        #expect(SockJSQuery.value(named: "d", in: "d=%C3%A9%e2%80%a8") == "é\u{2028}")
    }

    @Test func plusIsASpaceOnlyInForms() {
        // application/x-www-form-urlencoded encodes a space as `+`; `%2B` is a literal plus.
        #expect(SockJSQuery.value(named: "d", in: "d=a+b%2Bc", form: true) == "a b+c")
        #expect(SockJSQuery.value(named: "d", in: "d=a+b", form: false) == "a+b")
    }

    @Test func valueIsFoundAmongOtherPairs() {
        // Pairs are separated by `&`; the first pair with the name wins.
        #expect(SockJSQuery.value(named: "c", in: "t=1&c=x&c=y") == "x")
        #expect(SockJSQuery.value(named: "c", in: "&&c=x&") == "x")
        #expect(SockJSQuery.value(named: "c", in: "t=1&cc=2&xc=3") == nil)
        #expect(SockJSQuery.value(named: "c", in: "") == nil)
    }

    @Test func emptyValueIsEmptyNotAbsent() {
        // `d=` is present with an empty value.
        #expect(SockJSQuery.value(named: "d", in: "d=") == "")
    }

    @Test func valueMayContainEqualsSigns() {
        // Only the first `=` separates the name from the value.
        #expect(SockJSQuery.value(named: "d", in: "d=a=b") == "a=b")
    }

    @Test func combiningMarkAfterSeparatorsDoesNotHideThem() {
        // `=` and `&` separate as bytes: followed by a combining mark (U+0741) each is one Character
        // with it, which once lost the value (found by FuzzSockJSRoute).
        #expect(SockJSQuery.value(named: "d", in: "d=\u{741}+\u{12}\u{FFFD}\u{FFFD}", form: true) == "\u{741} \u{12}\u{FFFD}\u{FFFD}")
        #expect(SockJSQuery.value(named: "c", in: "t=1&\u{301}&c=x") == "x")
        #expect(SockJSQuery.value(named: "c", in: "t=\u{301}&c=x") == "x")
    }

    @Test func encodedNamesMatch() {
        // Names are percent-decoded too.
        #expect(SockJSQuery.value(named: "c", in: "%63=x") == "x")
    }
}

@Suite("Query: callback parameter (htmlfile, jsonp)")
struct SockJSQueryCallbackTests {
    @Test func callbackIsReadFromC() {
        // The suite uses `c=%63allback` and expects `callback`.
        #expect(callback(in: "c=%63allback") == .success("callback"))
        #expect(callback(in: "t=1&c=x") == .success("x"))
    }

    @Test func callbackFallsBackToTheLongName() {
        // `callback=` is accepted when `c` is absent; `c` wins when both are present.
        #expect(callback(in: "callback=foo") == .success("foo"))
        #expect(callback(in: "callback=foo&c=bar") == .success("bar"))
    }

    @Test func missingCallbackIsMissing() {
        // No `c` and no `callback`: the request answers `"callback" parameter required`.
        #expect(callback(in: "") == .failure(.missing))
        #expect(callback(in: "t=1&cb=x") == .failure(.missing))
    }

    @Test(arguments: ["c=%20", "c=*", "c=abc(", "c=abc%28", "c=a;b", "c=a%22", "c=%3Cscript%3E", "c=a/b", "c=\u{E9}"])
    func callbacksOutsideTheSafeAlphabetAreInvalid(query: String) {
        // The suite: anything matching `[^a-zA-Z0-9-_.]` is refused with `invalid "callback" parameter`.
        #expect(callback(in: query) == .failure(.invalid))
    }

    @Test func callbackOfAllSafeCharactersIsAccepted() {
        // Letters, digits, `-`, `_` and `.` are the safe alphabet.
        #expect(callback(in: "c=aZ09-_.") == .success("aZ09-_."))
    }

    @Test func callbackLongerThan32CharactersIsInvalid() {
        // 32 characters is the limit; 33 is refused.
        let longest = String(repeating: "a", count: 32)
        #expect(callback(in: "c=" + longest) == .success(longest))
        #expect(callback(in: "c=" + longest + "a") == .failure(.invalid))
    }
}
