import Foundation
import NIOCore
import SockwaySockJS
import Testing

private let now = 1_700_000_000
private let noCache = "no-store, no-cache, no-transform, must-revalidate, max-age=0"

private func decide(
    _ request: SockJSRequest,
    rules: SockJSServiceRules = SockJSServiceRules(),
    entropy: UInt32 = 42
) -> SockJSDecision {
    rules.decide(request, now: now, entropy: entropy)
}

/// The complete response of a decision, or an issue if the decision is something else.
/// sockjs-node's CORS (any origin echoed with credentials), which the sockjs-protocol suite checks:
/// Sockway's with `allowAnyOriginWithCredentials`.
private let suiteRules = SockJSServiceRules(allowAnyOriginWithCredentials: true)

private func respond(
    _ request: SockJSRequest,
    rules: SockJSServiceRules = SockJSServiceRules(),
    entropy: UInt32 = 42,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> SockJSResponse {
    guard case .respond(let response) = decide(request, rules: rules, entropy: entropy) else {
        Issue.record("expected a complete response for \(request.method) \(request.path)", sourceLocation: sourceLocation)
        throw DecisionMismatch()
    }
    return response
}

private struct Receive {
    var sessionID: String
    var transport: SockJSTransport
    var callback: String?
    var head: SockJSResponse
    var prelude: String?
}

private func receive(
    _ request: SockJSRequest,
    rules: SockJSServiceRules = SockJSServiceRules(),
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> Receive {
    guard case .receive(let id, let transport, let callback, let head, let prelude) = decide(request, rules: rules) else {
        Issue.record("expected a receive decision for \(request.method) \(request.path)", sourceLocation: sourceLocation)
        throw DecisionMismatch()
    }
    return Receive(sessionID: id, transport: transport, callback: callback, head: head, prelude: prelude)
}

private struct Send {
    var sessionID: String
    var transport: SockJSTransport
    var success: SockJSResponse
    var errorHeaders: [SockJSHeader]
}

private func send(
    _ request: SockJSRequest,
    rules: SockJSServiceRules = SockJSServiceRules(),
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> Send {
    guard case .send(let id, let transport, let success, let errorHeaders) = decide(request, rules: rules) else {
        Issue.record("expected a send decision for \(request.method) \(request.path)", sourceLocation: sourceLocation)
        throw DecisionMismatch()
    }
    return Send(sessionID: id, transport: transport, success: success, errorHeaders: errorHeaders)
}

private struct DecisionMismatch: Error {}

/// The suite compares content types with spaces removed.
private func contentType(_ response: SockJSResponse) -> String? {
    response.header("Content-Type")?.replacingOccurrences(of: " ", with: "")
}

private func headerValues(_ response: SockJSResponse, _ name: String) -> [String] {
    response.headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
}

/// The suite's `verify_cors`: an origin is echoed with credentials; without one, `*` and no credentials.
private func expectCORS(_ response: SockJSResponse, origin: String?, sourceLocation: SourceLocation = #_sourceLocation) {
    if let origin {
        #expect(response.header("Access-Control-Allow-Origin") == origin, sourceLocation: sourceLocation)
        #expect(response.header("Access-Control-Allow-Credentials") == "true", sourceLocation: sourceLocation)
    } else {
        #expect(response.header("Access-Control-Allow-Origin") == "*", sourceLocation: sourceLocation)
        #expect(response.header("Access-Control-Allow-Credentials") == nil, sourceLocation: sourceLocation)
    }
}

/// The suite's `verify_not_cached`.
private func expectNotCached(_ response: SockJSResponse, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(response.header("Cache-Control") == noCache, sourceLocation: sourceLocation)
    #expect(response.header("Expires") == nil, sourceLocation: sourceLocation)
    #expect(response.header("Last-Modified") == nil, sourceLocation: sourceLocation)
}

/// The suite's `verify_options`, for one origin.
private func expectPreflight(
    _ response: SockJSResponse,
    methods: [String],
    origin: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(response.status == 204 || response.status == 200, sourceLocation: sourceLocation)
    let cacheControl = response.header("Cache-Control") ?? ""
    #expect(cacheControl.contains("public"), sourceLocation: sourceLocation)
    #expect(cacheControl.contains("max-age=31536000"), sourceLocation: sourceLocation)
    let expires = response.header("Expires") ?? ""
    #expect(!expires.isEmpty && expires.hasSuffix(" GMT"), sourceLocation: sourceLocation)
    #expect((Int(response.header("Access-Control-Max-Age") ?? "") ?? 0) > 1_000_000, sourceLocation: sourceLocation)
    let allowed = response.header("Access-Control-Allow-Methods") ?? ""
    for method in methods {
        #expect(allowed.contains(method), "\(method) not in \(allowed)", sourceLocation: sourceLocation)
    }
    #expect(response.body.isEmpty, sourceLocation: sourceLocation)
    expectCORS(response, origin: origin, sourceLocation: sourceLocation)
}

private struct InfoBody: Decodable {
    var websocket: Bool
    var origins: [String]
    var cookie_needed: Bool
    var entropy: UInt32
}

private func infoBody(_ response: SockJSResponse) throws -> InfoBody {
    try JSONDecoder().decode(InfoBody.self, from: Data(response.body.utf8))
}

@Suite("Service: greeting and not-found")
struct SockJSServiceGreetingTests {
    @Test(arguments: ["", "/"])
    func greetingIsWelcomeText(path: String) throws {
        // The top URL answers 200 text/plain "Welcome to SockJS!\n", without a cookie.
        let rules = SockJSServiceRules(cookieNeeded: true)
        let response = try respond(SockJSRequest(method: "GET", path: path), rules: rules)
        #expect(response.status == 200)
        #expect(contentType(response) == "text/plain;charset=UTF-8")
        #expect(response.body == "Welcome to SockJS!\n")
        #expect(response.header("Set-Cookie") == nil)
    }

    @Test(arguments: ["/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/", "//xhr", "/a./a/xhr", "/a/a./xhr", "/././xhr", "////xhr", "/a/a/xhr_poll"])
    func unknownPathsAre404(path: String) throws {
        // The suite's not-found lists answer 404 for GET and POST.
        for method in ["GET", "POST"] {
            let response = try respond(SockJSRequest(method: method, path: path))
            #expect(response.status == 404)
        }
    }
}

@Suite("Service: /info")
struct SockJSServiceInfoTests {
    @Test func infoDescribesTheEndpoint() throws {
        // 200 application/json with websocket, origins ["*:*"], cookie_needed and the entropy given.
        let response = try respond(SockJSRequest(method: "GET", path: "/info", origin: "test"), entropy: 123_456)
        #expect(response.status == 200)
        #expect(contentType(response) == "application/json;charset=UTF-8")
        let body = try infoBody(response)
        #expect(body.websocket == true)
        #expect(body.origins == ["*:*"])
        #expect(body.cookie_needed == false)
        #expect(body.entropy == 123_456)
    }

    @Test(arguments: [UInt32(0), 1, UInt32.max])
    func entropyIsTheGivenNumber(entropy: UInt32) throws {
        // The entropy field is an integer in 0…2^32-1, the one the server drew.
        let response = try respond(SockJSRequest(method: "GET", path: "/info"), entropy: entropy)
        #expect(try infoBody(response).entropy == entropy)
    }

    @Test func websocketFlagFollowsTheOption() throws {
        // The suite's disabled_websocket_echo endpoint reports "websocket": false.
        let off = try respond(SockJSRequest(method: "GET", path: "/info"), rules: SockJSServiceRules(webSocketEnabled: false))
        #expect(try infoBody(off).websocket == false)
    }

    @Test func cookieNeededFollowsTheOptionButInfoSetsNoCookie() throws {
        // The suite's cookie_needed_echo: "cookie_needed": true, yet /info itself has no Set-Cookie.
        let rules = SockJSServiceRules(cookieNeeded: true)
        let response = try respond(SockJSRequest(method: "GET", path: "/info", cookie: "JSESSIONID=abc"), rules: rules)
        #expect(try infoBody(response).cookie_needed == true)
        #expect(response.header("Set-Cookie") == nil)
    }

    @Test func infoIsNeverCached() throws {
        // The exact no-cache Cache-Control value, and no Expires or Last-Modified.
        let response = try respond(SockJSRequest(method: "GET", path: "/info"))
        expectNotCached(response)
    }

    @Test func infoEchoesTheOriginWithCredentials() throws {
        // The suite's verify_cors(r, 'test'), with sockjs-node's CORS switched on.
        expectCORS(try respond(SockJSRequest(method: "GET", path: "/info", origin: "test"), rules: suiteRules), origin: "test")
    }

    @Test func infoWithoutOriginAllowsAnyOriginWithoutCredentials() throws {
        // No Origin: `*` and no Allow-Credentials.
        expectCORS(try respond(SockJSRequest(method: "GET", path: "/info")), origin: nil)
    }

    @Test(arguments: ["test", "null"])
    func infoPreflightIsCacheableAndAllowsGet(origin: String) throws {
        // The suite's verify_options(base_url + '/info', 'OPTIONS, GET'), including Origin: null echoed.
        let response = try respond(SockJSRequest(method: "OPTIONS", path: "/info", origin: origin), rules: suiteRules)
        expectPreflight(response, methods: ["OPTIONS", "GET"], origin: origin)
    }
}

@Suite("Service: CORS on xhr transports")
struct SockJSServiceCORSTests {
    @Test(arguments: ["/abc/abc/xhr", "/abc/abc/xhr_send", "/abc/abc/xhr_streaming"])
    func xhrPreflightIsCacheableAndAllowsPost(path: String) throws {
        // The suite's verify_options(url, 'OPTIONS, POST') for origins 'test' and 'null'.
        for origin in ["test", "null"] {
            let response = try respond(SockJSRequest(method: "OPTIONS", path: path, origin: origin), rules: suiteRules)
            expectPreflight(response, methods: ["OPTIONS", "POST"], origin: origin)
        }
    }

    @Test func requestedHeadersAreEchoedWhenNonEmpty() throws {
        // Access-Control-Request-Headers comes back as Access-Control-Allow-Headers, but only when non-empty.
        let echoed = try respond(
            SockJSRequest(method: "OPTIONS", path: "/000/s/xhr", origin: "test", accessControlRequestHeaders: "a, b, c"),
            rules: suiteRules
        )
        #expect(echoed.header("Access-Control-Allow-Headers") == "a, b, c")
        expectCORS(echoed, origin: "test")

        let empty = try respond(SockJSRequest(method: "OPTIONS", path: "/000/s/xhr", origin: "test", accessControlRequestHeaders: ""), rules: suiteRules)
        #expect(empty.header("Access-Control-Allow-Headers") == nil)
        expectCORS(empty, origin: "test")

        let absent = try respond(SockJSRequest(method: "OPTIONS", path: "/000/s/xhr", origin: "test"))
        #expect(absent.header("Access-Control-Allow-Headers") == nil)
    }

    @Test func xhrResponsesEchoTheOrigin() throws {
        // The suite: xhr and xhr_send with Origin 'test' carry verify_cors(r, 'test').
        let poll = try receive(SockJSRequest(method: "POST", path: "/000/s/xhr", origin: "test"), rules: suiteRules)
        expectCORS(poll.head, origin: "test")
        let streaming = try receive(SockJSRequest(method: "POST", path: "/000/s/xhr_streaming", origin: "test"), rules: suiteRules)
        expectCORS(streaming.head, origin: "test")
        let sent = try send(SockJSRequest(method: "POST", path: "/000/s/xhr_send", origin: "test"), rules: suiteRules)
        expectCORS(sent.success, origin: "test")
    }

    @Test func nullOriginIsEchoedForXHR() throws {
        // Browsers send Origin: null from file: pages; the suite expects it echoed.
        let poll = try receive(SockJSRequest(method: "POST", path: "/000/s/xhr", origin: "null"), rules: suiteRules)
        #expect(poll.head.header("Access-Control-Allow-Origin") == "null")
    }

    @Test func xhrWithoutOriginAllowsAnyOriginWithoutCredentials() throws {
        // No Origin: `*` and no Allow-Credentials.
        let poll = try receive(SockJSRequest(method: "POST", path: "/000/s/xhr"))
        expectCORS(poll.head, origin: nil)
    }
}

@Suite("Service: iframe page")
struct SockJSServiceIframeTests {
    @Test(arguments: ["/iframe.html", "/iframe-a.html", "/iframe-0.1.2.html", "/iframe-0.1.2abc-dirty.2144.html"])
    func iframeIsStronglyCacheableHTML(path: String) throws {
        // The suite: 200 text/html, Cache-Control public with a one-year max-age, Expires, ETag, no Last-Modified.
        let response = try respond(SockJSRequest(method: "GET", path: path), rules: SockJSServiceRules(cookieNeeded: true))
        #expect(response.status == 200)
        #expect(contentType(response) == "text/html;charset=UTF-8")
        let cacheControl = response.header("Cache-Control") ?? ""
        #expect(cacheControl.contains("public"))
        #expect(cacheControl.contains("max-age=31536000"))
        #expect(!(response.header("Expires") ?? "").isEmpty)
        #expect(!(response.header("ETag") ?? "").isEmpty)
        #expect(response.header("Last-Modified") == nil)
        #expect(response.header("Set-Cookie") == nil)
    }

    @Test(arguments: ["https://cdn.example.com/sockjs-1.6.1.min.js", "/static/sockjs.js"])
    func iframeLoadsTheConfiguredClientScript(url: String) throws {
        // The page bootstraps sockjs-client from the configured URL.
        let response = try respond(SockJSRequest(method: "GET", path: "/iframe.html"), rules: SockJSServiceRules(clientScriptURL: url))
        #expect(response.body.contains("<script src=\"\(url)\"></script>"))
        #expect(response.body.contains("SockJS.bootstrap_iframe();"))
        #expect(response.body.contains("document.domain = document.domain;"))
    }

    @Test func etagIsStableAcrossRequests() throws {
        // The same page has the same ETag every time.
        let first = try respond(SockJSRequest(method: "GET", path: "/iframe.html"))
        let second = try respond(SockJSRequest(method: "GET", path: "/iframe.html"))
        #expect(first.header("ETag") != nil)
        #expect(first.header("ETag") == second.header("ETag"))
    }

    @Test func etagChangesWithThePage() throws {
        // A different client script is a different page, so it gets a different ETag.
        let a = try respond(SockJSRequest(method: "GET", path: "/iframe.html"), rules: SockJSServiceRules(clientScriptURL: "/a.js"))
        let b = try respond(SockJSRequest(method: "GET", path: "/iframe.html"), rules: SockJSServiceRules(clientScriptURL: "/b.js"))
        #expect(a.header("ETag") != b.header("ETag"))
    }

    @Test func matchingIfNoneMatchIsNotModified() throws {
        // The suite: If-None-Match with the ETag answers 304 with no content type and no body.
        let etag = try #require(try respond(SockJSRequest(method: "GET", path: "/iframe.html")).header("ETag"))
        let response = try respond(SockJSRequest(method: "GET", path: "/iframe.html", ifNoneMatch: etag))
        #expect(response.status == 304)
        #expect(response.header("Content-Type") == nil)
        #expect(response.body.isEmpty)
    }

    @Test func staleIfNoneMatchGetsThePage() throws {
        // An ETag that does not match gets the full page.
        let response = try respond(SockJSRequest(method: "GET", path: "/iframe.html", ifNoneMatch: "\"stale\""))
        #expect(response.status == 200)
        #expect(!response.body.isEmpty)
    }
}

@Suite("Service: WebSocket routes over plain HTTP")
struct SockJSServiceWebSocketRouteTests {
    @Test func postToSessionWebSocketIs405() throws {
        // The suite's verify405: status 405, an Allow header, no content type, no body.
        let response = try respond(SockJSRequest(method: "POST", path: "/0/0/websocket"))
        #expect(response.status == 405)
        #expect((response.header("Allow") ?? "").contains("GET"))
        #expect(response.header("Content-Type") == nil)
        #expect(response.body.isEmpty)
    }

    @Test func getWithoutUpgradeIs400() throws {
        // The suite: a plain GET on a websocket URL is 400.
        let response = try respond(SockJSRequest(method: "GET", path: "/0/0/websocket"))
        #expect(response.status == 400)
    }

    @Test func webSocketRoutesAre404WhenDisabled() throws {
        // With WebSocket switched off, both the session and the raw endpoint do not exist.
        let rules = SockJSServiceRules(webSocketEnabled: false)
        #expect(try respond(SockJSRequest(method: "GET", path: "/0/0/websocket"), rules: rules).status == 404)
        #expect(try respond(SockJSRequest(method: "GET", path: "/websocket"), rules: rules).status == 404)
        #expect(try respond(SockJSRequest(method: "POST", path: "/0/0/websocket"), rules: rules).status == 404)
    }

    @Test func httpTransportsStayWhenWebSocketIsDisabled() throws {
        // Disabling WebSocket leaves the HTTP transports in place.
        let rules = SockJSServiceRules(webSocketEnabled: false)
        let poll = try receive(SockJSRequest(method: "POST", path: "/0/0/xhr"), rules: rules)
        #expect(poll.transport == .xhrPolling)
    }
}

@Suite("Service: receiving requests")
struct SockJSServiceReceiveTests {
    @Test func xhrPollingReceives() throws {
        // POST …/xhr: application/javascript, not cached, no prelude.
        let decision = try receive(SockJSRequest(method: "POST", path: "/000/sid/xhr"))
        #expect(decision.sessionID == "sid")
        #expect(decision.transport == .xhrPolling)
        #expect(decision.head.status == 200)
        #expect(contentType(decision.head) == "application/javascript;charset=UTF-8")
        expectNotCached(decision.head)
        #expect(decision.prelude == nil)
    }

    @Test func xhrStreamingReceivesAfterItsPrelude() throws {
        // POST …/xhr_streaming: application/javascript, not cached, 2048 `h` and a newline first.
        let decision = try receive(SockJSRequest(method: "POST", path: "/000/sid/xhr_streaming"))
        #expect(decision.transport == .xhrStreaming)
        #expect(decision.head.status == 200)
        #expect(contentType(decision.head) == "application/javascript;charset=UTF-8")
        expectNotCached(decision.head)
        #expect(decision.prelude == String(repeating: "h", count: 2048) + "\n")
    }

    @Test func eventSourceReceivesAfterAnEmptyLine() throws {
        // GET …/eventsource: text/event-stream, not cached, `\r\n` first.
        let decision = try receive(SockJSRequest(method: "GET", path: "/000/sid/eventsource"))
        #expect(decision.transport == .eventSource)
        #expect(decision.head.status == 200)
        #expect(contentType(decision.head) == "text/event-stream")
        expectNotCached(decision.head)
        #expect(decision.prelude == "\r\n")
    }

    @Test func htmlFileReceivesWithItsCallback() throws {
        // GET …/htmlfile?c=%63allback: text/html, not cached, the page naming `callback` first.
        let decision = try receive(SockJSRequest(method: "GET", path: "/000/sid/htmlfile", query: "c=%63allback"))
        #expect(decision.transport == .htmlFile)
        #expect(decision.callback == "callback")
        #expect(decision.head.status == 200)
        #expect(contentType(decision.head) == "text/html;charset=UTF-8")
        expectNotCached(decision.head)
        let prelude = decision.prelude ?? ""
        #expect(prelude.contains("var c = parent.callback;"))
        #expect(prelude.utf8.count > 1024)
    }

    @Test func jsonpReceivesWithItsCallback() throws {
        // GET …/jsonp?c=%63allback: application/javascript, not cached, no prelude.
        let decision = try receive(SockJSRequest(method: "GET", path: "/000/sid/jsonp", query: "c=%63allback"))
        #expect(decision.transport == .jsonpPolling)
        #expect(decision.callback == "callback")
        #expect(decision.head.status == 200)
        #expect(contentType(decision.head) == "application/javascript;charset=UTF-8")
        expectNotCached(decision.head)
        #expect(decision.prelude == nil)
    }

    @Test(arguments: ["/000/sid/htmlfile", "/000/sid/jsonp"])
    func missingCallbackIs500(path: String) throws {
        // The suite: no callback answers 500 with `"callback" parameter required`.
        let response = try respond(SockJSRequest(method: "GET", path: path))
        #expect(response.status == 500)
        #expect(response.body.contains("\"callback\" parameter required"))
    }

    @Test(arguments: ["/000/sid/htmlfile", "/000/sid/jsonp"])
    func invalidCallbackIs500(path: String) throws {
        // The suite: `%20`, `*`, `abc(`, `abc%28` answer 500 with `invalid "callback" parameter`.
        for query in ["c=%20", "c=*", "c=abc(", "c=abc%28"] {
            let response = try respond(SockJSRequest(method: "GET", path: path, query: query))
            #expect(response.status == 500)
            #expect(response.body.contains("invalid \"callback\" parameter"))
        }
    }

    @Test func wrongMethodOnATransportIs405() throws {
        // Each transport answers only its own method (GET for eventsource, POST for xhr).
        let getXHR = try respond(SockJSRequest(method: "GET", path: "/000/sid/xhr"))
        #expect(getXHR.status == 405)
        #expect(getXHR.header("Allow") != nil)
        let postEventSource = try respond(SockJSRequest(method: "POST", path: "/000/sid/eventsource"))
        #expect(postEventSource.status == 405)
    }

    @Test func disabledTransportIs404() throws {
        // A transport switched off for the endpoint has no route.
        let rules = SockJSServiceRules(disabledTransports: ["xhr-streaming"])
        #expect(try respond(SockJSRequest(method: "POST", path: "/000/sid/xhr_streaming"), rules: rules).status == 404)
        #expect(try receive(SockJSRequest(method: "POST", path: "/000/sid/xhr"), rules: rules).transport == .xhrPolling)
    }
}

@Suite("Service: JSESSIONID cookie")
struct SockJSServiceCookieTests {
    static let receivingRequests = [
        SockJSRequest(method: "POST", path: "/000/s/xhr"),
        SockJSRequest(method: "POST", path: "/000/s/xhr_streaming"),
        SockJSRequest(method: "GET", path: "/000/s/eventsource"),
        SockJSRequest(method: "GET", path: "/000/s/htmlfile", query: "c=%63allback"),
        SockJSRequest(method: "GET", path: "/000/s/jsonp", query: "c=%63allback"),
    ]

    @Test(arguments: receivingRequests)
    func cookieNeededSetsADummyCookie(request: SockJSRequest) throws {
        // The suite's verify_cookie: `JSESSIONID=dummy` and `path=/`.
        let decision = try receive(request, rules: SockJSServiceRules(cookieNeeded: true))
        #expect(decision.head.header("Set-Cookie") == "JSESSIONID=dummy; path=/")
    }

    @Test func sendResponsesCarryTheCookieToo() throws {
        // The suite checks the cookie on jsonp_send's `ok` as well.
        let rules = SockJSServiceRules(cookieNeeded: true)
        let jsonp = try send(SockJSRequest(method: "POST", path: "/000/s/jsonp_send"), rules: rules)
        #expect(jsonp.success.header("Set-Cookie") == "JSESSIONID=dummy; path=/")
        let xhr = try send(SockJSRequest(method: "POST", path: "/000/s/xhr_send"), rules: rules)
        #expect(xhr.success.header("Set-Cookie") == "JSESSIONID=dummy; path=/")
    }

    @Test func existingSessionCookieIsEchoed() throws {
        // The suite: a request with `JSESSIONID=abcdef` gets `JSESSIONID=abcdef; path=/` back.
        let rules = SockJSServiceRules(cookieNeeded: true)
        let plain = try receive(SockJSRequest(method: "POST", path: "/000/s/xhr", cookie: "JSESSIONID=abcdef"), rules: rules)
        #expect(plain.head.header("Set-Cookie") == "JSESSIONID=abcdef; path=/")
        let among = try receive(SockJSRequest(method: "POST", path: "/000/s/xhr", cookie: "a=1; JSESSIONID=abcdef; b=2"), rules: rules)
        #expect(among.head.header("Set-Cookie") == "JSESSIONID=abcdef; path=/")
    }

    @Test(arguments: ["JSESSIONID=abc def", "JSESSIONID=a\r\nSet-Cookie: evil=1", "JSESSIONID=\"a b\"", "JSESSIONID=a\tb", "JSESSIONID="])
    func unsafeSessionCookieIsNeverReflected(cookie: String) throws {
        // A value with spaces, control characters or `;` could split or extend the header: it is not echoed.
        let decision = try receive(SockJSRequest(method: "POST", path: "/000/s/xhr", cookie: cookie), rules: SockJSServiceRules(cookieNeeded: true))
        let setCookie = try #require(decision.head.header("Set-Cookie"))
        let parts = setCookie.split(separator: ";", omittingEmptySubsequences: false)
        #expect(parts.count == 2)
        #expect(parts.last == " path=/")
        let value = try #require(parts.first)
        #expect(value.hasPrefix("JSESSIONID="))
        #expect(value.count > "JSESSIONID=".count)
        #expect(!value.unicodeScalars.contains { $0.value <= 0x20 || $0.value == 0x7F || $0 == "\"" })
    }

    @Test(arguments: ["JSESSIONID=a,b", "JSESSIONID=a\\b", "JSESSIONID=a\"b"])
    func reflectedSessionCookieIsAValidCookieValue(cookie: String) throws {
        // RFC 6265 §4.1.1: a server should only send cookie-octets (no DQUOTE, comma, semicolon, backslash or space).
        let decision = try receive(SockJSRequest(method: "POST", path: "/000/s/xhr", cookie: cookie), rules: SockJSServiceRules(cookieNeeded: true))
        let setCookie = try #require(decision.head.header("Set-Cookie"))
        let value = try #require(setCookie.split(separator: ";").first).dropFirst("JSESSIONID=".count)
        let forbidden: Set<Unicode.Scalar> = ["\"", ",", ";", "\\", " "]
        #expect(!value.isEmpty)
        #expect(!value.unicodeScalars.contains { forbidden.contains($0) || $0.value < 0x21 || $0.value > 0x7E }, "\(setCookie)")
    }

    @Test func noCookieUnlessNeeded() throws {
        // Without cookieNeeded no response sets a cookie, even when the client has one.
        for request in Self.receivingRequests {
            var request = request
            request.cookie = "JSESSIONID=abcdef"
            #expect(try receive(request).head.header("Set-Cookie") == nil)
        }
    }
}

@Suite("Service: send endpoints")
struct SockJSServiceSendTests {
    @Test func xhrSendSucceedsWith204TextPlain() throws {
        // The suite: xhr_send answers 204, no body, text/plain content type (Firefox), not cached.
        let decision = try send(SockJSRequest(method: "POST", path: "/000/sid/xhr_send"))
        #expect(decision.sessionID == "sid")
        #expect(decision.transport == .xhrSend)
        #expect(decision.success.status == 204)
        #expect(decision.success.body.isEmpty)
        #expect(contentType(decision.success) == "text/plain;charset=UTF-8")
        expectNotCached(decision.success)
    }

    @Test func jsonpSendSucceedsWith200Ok() throws {
        // The suite: jsonp_send answers 200 with body `ok`.
        let decision = try send(SockJSRequest(method: "POST", path: "/000/sid/jsonp_send"))
        #expect(decision.transport == .jsonpSend)
        #expect(decision.success.status == 200)
        #expect(decision.success.body == "ok")
    }

    private func parse(_ body: String, _ transport: SockJSTransport, _ contentType: String?) -> Result<[String], SockJSPayloadError> {
        do throws(SockJSPayloadError) {
            return .success(try SockJSServiceRules.parseSendBody(ByteBuffer(string: body), transport: transport, contentType: contentType))
        } catch {
            return .failure(error)
        }
    }

    private let form = "application/x-www-form-urlencoded"

    @Test func jsonpFormBodyCarriesTheArrayInD() {
        // The suite posts `d=%5B%22x%22%5D` as a form.
        #expect(parse("d=%5B%22x%22%5D", .jsonpSend, form) == .success(["x"]))
        #expect(parse("d=%5B%22abc%22%5D", .jsonpSend, form + "; charset=UTF-8") == .success(["abc"]))
        #expect(parse("t=1&d=%5B%22a+b%22%5D", .jsonpSend, form) == .success(["a b"]))
        #expect(parse("d=%5B%5D", .jsonpSend, form) == .success([]))
    }

    @Test func jsonpFormWithoutAUsableDIsPayloadExpected() {
        // The suite: '', 'd=' and 'p=p' answer "Payload expected.".
        for body in ["", "d=", "p=p"] {
            #expect(parse(body, .jsonpSend, form) == .failure(.payloadExpected), "\(body)")
        }
    }

    @Test func jsonpFormWithTruncatedJSONIsBrokenJSON() {
        // The suite: `d=%5B%22x` answers "Broken JSON encoding.".
        #expect(parse("d=%5B%22x", .jsonpSend, form) == .failure(.brokenJSON))
    }

    @Test func jsonpPlainBodyIsTheArrayNotURLDecoded() {
        // The suite: a text/plain `["%61bc"]` arrives as `%61bc`, not `abc`.
        #expect(parse(#"["%61bc"]"#, .jsonpSend, "text/plain") == .success(["%61bc"]))
    }

    @Test func xhrSendTakesTheArrayWhateverTheContentType() {
        // The suite posts `["a"]` with eight content types (and none); each delivers "a".
        let types: [String?] = [
            "text/plain", "T", "application/json", "application/xml", "", "application/json; charset=utf-8",
            "text/xml; charset=utf-8", "text/xml", nil,
        ]
        for type in types {
            #expect(parse(#"["a"]"#, .xhrSend, type) == .success(["a"]), "\(type ?? "nil")")
        }
    }

    @Test func xhrSendRefusesEmptyAndBrokenBodies() {
        // The suite: '' is "Payload expected.", `["x` is "Broken JSON encoding.", `[]` is fine.
        #expect(parse("", .xhrSend, nil) == .failure(.payloadExpected))
        #expect(parse(#"["x"#, .xhrSend, nil) == .failure(.brokenJSON))
        #expect(parse("[]", .xhrSend, nil) == .success([]))
    }

    @Test func payloadErrorsAre500WithTheSuitesText() {
        // "Payload expected." and "Broken JSON encoding." with status 500.
        let expected = SockJSServiceRules.response(for: .payloadExpected, headers: [])
        #expect(expected.status == 500)
        #expect(expected.body.contains("Payload expected."))
        let broken = SockJSServiceRules.response(for: .brokenJSON, headers: [])
        #expect(broken.status == 500)
        #expect(broken.body.contains("Broken JSON encoding."))
    }
}

@Suite("HTTP dates")
struct HTTPDateTests {
    @Test func formatsIMFFixdate() {
        // RFC 9110 §5.6.7's example: 784111777 is Sun, 06 Nov 1994 08:49:37 GMT.
        #expect(HTTPDate.format(epochSeconds: 784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
    }

    @Test func formatsTheEpoch() {
        // Zero is Thursday, 1 January 1970.
        #expect(HTTPDate.format(epochSeconds: 0) == "Thu, 01 Jan 1970 00:00:00 GMT")
    }

    @Test func formatsALeapDayAndAYearEnd() {
        // Leap years and the last second of a year.
        #expect(HTTPDate.format(epochSeconds: 951_782_400) == "Tue, 29 Feb 2000 00:00:00 GMT")
        #expect(HTTPDate.format(epochSeconds: 1_704_067_199) == "Sun, 31 Dec 2023 23:59:59 GMT")
    }
}

@Suite("Service: origins (allow-list, credentials)")
struct SockJSServiceOriginTests {
    @Test func foreignOriginGetsStarWithoutCredentialsByDefault() throws {
        // No allow-list and no opt-in: any page may read, none with the user's cookies.
        let info = try respond(SockJSRequest(method: "GET", path: "/info", origin: "https://evil.example"))
        #expect(info.header("Access-Control-Allow-Origin") == "*")
        #expect(info.header("Access-Control-Allow-Credentials") == nil)
        let poll = try receive(SockJSRequest(method: "POST", path: "/000/s/xhr", origin: "https://evil.example"))
        #expect(poll.head.header("Access-Control-Allow-Origin") == "*")
        #expect(poll.head.header("Access-Control-Allow-Credentials") == nil)
    }

    @Test func listedOriginIsEchoedWithCredentials() throws {
        let rules = SockJSServiceRules(allowedOrigins: ["https://app.example"])
        let poll = try receive(SockJSRequest(method: "POST", path: "/000/s/xhr", origin: "https://app.example"), rules: rules)
        #expect(poll.head.header("Access-Control-Allow-Origin") == "https://app.example")
        #expect(poll.head.header("Access-Control-Allow-Credentials") == "true")
    }

    @Test(arguments: [("GET", "/info"), ("OPTIONS", "/info"), ("GET", "/iframe.html"), ("OPTIONS", "/000/s/xhr"), ("POST", "/000/s/xhr"), ("GET", "/websocket")])
    func foreignOriginIsRefusedEverywhereWithAList(method: String, path: String) throws {
        let rules = SockJSServiceRules(allowedOrigins: ["https://app.example"])
        for origin in ["https://evil.example", "null"] {
            let response = try respond(SockJSRequest(method: method, path: path, origin: origin), rules: rules)
            #expect(response.status == 403, "\(method) \(path) from \(origin)")
            #expect(response.header("Access-Control-Allow-Origin") == nil)
        }
    }

    @Test func nullIsAllowedWhenListed() throws {
        let rules = SockJSServiceRules(allowedOrigins: ["null"])
        let info = try respond(SockJSRequest(method: "GET", path: "/info", origin: "null"), rules: rules)
        #expect(info.status == 200)
        #expect(info.header("Access-Control-Allow-Origin") == "null")
    }

    @Test func iframeMayOnlyBeFramedByListedPages() throws {
        let rules = SockJSServiceRules(allowedOrigins: ["https://b.example", "https://a.example"])
        let page = try respond(SockJSRequest(method: "GET", path: "/iframe.html"), rules: rules)
        #expect(page.header("Content-Security-Policy") == "frame-ancestors 'self' https://a.example https://b.example")
        #expect(try respond(SockJSRequest(method: "GET", path: "/iframe.html")).header("Content-Security-Policy") == nil)
    }

    @Test func sessionCookieValueIsTheEchoedOne() {
        #expect(SockJSServiceRules.sessionCookieValue(nil) == "dummy")
        #expect(SockJSServiceRules.sessionCookieValue("a=b; JSESSIONID=xyz") == "xyz")
        #expect(SockJSServiceRules.sessionCookieValue("JSESSIONID=a;b") == "a")
        #expect(SockJSServiceRules.sessionCookieValue("JSESSIONID=\"q\"") == "dummy")
    }
}
