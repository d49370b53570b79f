import Testing

@testable import SockwayEngineIO

/// Request validation in the reference server's order (`verify`, then `handshake`), and its errors.
@Suite("Engine.IO request rules")
struct EngineIORequestRulesTests {
    /// A store with a polling session `poll1` and a WebSocket session `ws1`.
    static let sessions: [String: EngineIOTransport] = ["poll1": .polling, "ws1": .websocket]

    func route(
        _ method: String,
        _ query: String,
        upgrade: Bool = false,
        origin: String? = nil,
        rules: EngineIORequestRules = EngineIORequestRules()
    ) -> Result<EngineIORoute, EngineIOError> {
        do throws(EngineIOError) {
            return .success(try rules.route(method: method, rawQuery: query, isUpgrade: upgrade, origin: origin) { Self.sessions[$0] })
        } catch {
            return .failure(error)
        }
    }

    // MARK: Accepted requests

    @Test("A polling GET without sid is a polling handshake")
    func pollingHandshake() {
        #expect(route("GET", "EIO=4&transport=polling") == .success(.handshake(.polling)))
        #expect(route("GET", "?EIO=4&transport=polling&t=OXn8ZaK") == .success(.handshake(.polling)))
    }

    @Test("A WebSocket upgrade without sid is a WebSocket handshake")
    func webSocketHandshake() {
        #expect(route("GET", "EIO=4&transport=websocket", upgrade: true) == .success(.handshake(.websocket)))
    }

    @Test("An empty sid counts as no sid, as `if (sid)` in the reference")
    func emptySidIsHandshake() {
        #expect(route("GET", "EIO=4&transport=polling&sid=") == .success(.handshake(.polling)))
        #expect(route("POST", "EIO=4&transport=polling&sid=") == .failure(.badHandshakeMethod))
    }

    @Test("GET and POST of a polling session are poll and post")
    func pollAndPost() {
        #expect(route("GET", "EIO=4&transport=polling&sid=poll1") == .success(.poll(sid: "poll1")))
        #expect(route("POST", "EIO=4&transport=polling&sid=poll1") == .success(.post(sid: "poll1")))
    }

    @Test("A WebSocket upgrade with the sid of a polling session is an upgrade of that session")
    func upgradeExisting() {
        #expect(route("GET", "EIO=4&transport=websocket&sid=poll1", upgrade: true) == .success(.webSocket(sid: "poll1")))
    }

    @Test("EIO is not checked once the session exists, as in the reference")
    func eioIgnoredWithSid() {
        #expect(route("GET", "transport=polling&sid=poll1") == .success(.poll(sid: "poll1")))
        #expect(route("POST", "EIO=3&transport=polling&sid=poll1") == .success(.post(sid: "poll1")))
        #expect(route("GET", "EIO=abc&transport=websocket&sid=poll1", upgrade: true) == .success(.webSocket(sid: "poll1")))
    }

    @Test("The sid is percent-decoded before the lookup")
    func sidDecoded() {
        #expect(route("GET", "EIO=4&transport=polling&sid=poll%31") == .success(.poll(sid: "poll1")))
    }

    @Test("OPTIONS is a preflight before any check when preflights are answered")
    func preflight() {
        #expect(route("OPTIONS", "") == .success(.preflight))
        #expect(route("OPTIONS", "EIO=4&transport=abc&sid=nope") == .success(.preflight))
    }

    @Test("Without preflight answering, OPTIONS goes through the checks like any method")
    func noPreflight() {
        let rules = EngineIORequestRules(answersPreflight: false)
        #expect(route("OPTIONS", "EIO=4&transport=polling", rules: rules) == .failure(.badHandshakeMethod))
        #expect(route("OPTIONS", "EIO=4&transport=polling&sid=poll1", rules: rules) == .failure(.badRequest(.unsupportedMethod)))
        #expect(route("OPTIONS", "EIO=4", rules: rules) == .failure(.unknownTransport))
    }

    // MARK: 0 Transport unknown

    @Test("A missing or unknown transport is code 0, whatever else is wrong", arguments: [
        "EIO=4", "EIO=4&transport=abc", "EIO=4&transport=Polling", "EIO=4&transport=webtransport", "transport=", "sid=nope", "",
        "EIO=4&transport=polling%20",
    ])
    func unknownTransport(query: String) {
        #expect(route("GET", query) == .failure(.unknownTransport))
        #expect(route("POST", query) == .failure(.unknownTransport))
        #expect(route("GET", query, upgrade: true) == .failure(.unknownTransport))
    }

    @Test("A transport that is not enabled is unknown")
    func disabledTransport() {
        let pollingOnly = EngineIORequestRules(transports: [.polling])
        #expect(route("GET", "EIO=4&transport=websocket", upgrade: true, rules: pollingOnly) == .failure(.unknownTransport))
        #expect(route("GET", "EIO=4&transport=polling", rules: pollingOnly) == .success(.handshake(.polling)))
        let webSocketOnly = EngineIORequestRules(transports: [.websocket])
        #expect(route("GET", "EIO=4&transport=polling&sid=poll1", rules: webSocketOnly) == .failure(.unknownTransport))
    }

    // MARK: 3 Bad request: origin

    @Test("An Origin with a control byte or DEL is a bad request, checked before the sid")
    func invalidOrigin() {
        for origin in ["http://a\u{0}", "http://a\r\nX: y", "\u{7F}", "a\u{1}b"] {
            #expect(route("GET", "EIO=4&transport=polling&sid=nope", origin: origin) == .failure(.badRequest(.invalidOrigin)))
        }
    }

    @Test("An Origin with tabs, spaces or non-ASCII passes, as Node reads headers as Latin-1")
    func validOrigin() {
        for origin in ["http://example.com", "", "null", "a\tb c", "http://bücher.example", "\u{FFFD}"] {
            #expect(route("GET", "EIO=4&transport=polling", origin: origin) == .success(.handshake(.polling)))
        }
    }

    // MARK: 1 Session ID unknown

    @Test("An unknown sid is code 1 for GET, POST and WebSocket upgrades alike")
    func unknownSid() {
        #expect(route("GET", "EIO=4&transport=polling&sid=nope") == .failure(.unknownSessionID))
        #expect(route("POST", "EIO=4&transport=polling&sid=nope") == .failure(.unknownSessionID))
        #expect(route("GET", "EIO=4&transport=websocket&sid=nope", upgrade: true) == .failure(.unknownSessionID))
        #expect(route("PUT", "transport=polling&sid=nope") == .failure(.unknownSessionID))
    }

    @Test("The session store is asked once, with the decoded sid, and only when there is one")
    func lookupOnce() throws {
        var asked: [String] = []
        let rules = EngineIORequestRules()
        _ = try rules.route(method: "GET", rawQuery: "transport=polling&sid=a%20b", isUpgrade: false) { sid in
            asked.append(sid)
            return .polling
        }
        #expect(asked == ["a b"])
        _ = try rules.route(method: "GET", rawQuery: "EIO=4&transport=polling", isUpgrade: false) { sid in
            asked.append(sid)
            return .polling
        }
        #expect(asked == ["a b"])
    }

    // MARK: 3 Bad request: transports of an existing session

    @Test("A transport other than the session's, without upgrade, is a transport mismatch")
    func transportMismatch() {
        #expect(route("GET", "EIO=4&transport=websocket&sid=poll1") == .failure(.badRequest(.transportMismatch)))
        #expect(route("GET", "EIO=4&transport=polling&sid=ws1") == .failure(.badRequest(.transportMismatch)))
        #expect(route("POST", "EIO=4&transport=polling&sid=ws1") == .failure(.badRequest(.transportMismatch)))
    }

    @Test("A plain request to a WebSocket session naming websocket is refused (the reference leaves it hanging)")
    func webSocketWithoutUpgrade() {
        #expect(route("GET", "EIO=4&transport=websocket&sid=ws1") == .failure(.badRequest(.webSocketWithoutUpgrade)))
    }

    @Test("A second WebSocket for a session already on WebSocket is refused")
    func secondWebSocket() {
        #expect(route("GET", "EIO=4&transport=websocket&sid=ws1", upgrade: true) == .failure(.badRequest(.alreadyOnWebSocket)))
    }

    @Test("An upgrade request naming polling is refused, with or without sid")
    func upgradeNamingPolling() {
        #expect(route("GET", "EIO=4&transport=polling&sid=poll1", upgrade: true) == .failure(.badRequest(.transportDoesNotHandleUpgrades)))
        #expect(route("GET", "EIO=4&transport=polling", upgrade: true) == .failure(.badRequest(.transportDoesNotHandleUpgrades)))
    }

    @Test("Methods a session's transport does not serve are refused")
    func unsupportedMethods() {
        #expect(route("PUT", "EIO=4&transport=polling&sid=poll1") == .failure(.badRequest(.unsupportedMethod)))
        #expect(route("DELETE", "EIO=4&transport=polling&sid=poll1") == .failure(.badRequest(.unsupportedMethod)))
        #expect(route("get", "EIO=4&transport=polling&sid=poll1") == .failure(.badRequest(.unsupportedMethod)))
        #expect(route("POST", "EIO=4&transport=websocket&sid=poll1", upgrade: true) == .failure(.badRequest(.unsupportedMethod)))
    }

    // MARK: Handshake errors

    @Test("A handshake by any method but GET is code 2", arguments: ["POST", "PUT", "DELETE", "HEAD", "PATCH", "get"])
    func badHandshakeMethod(method: String) {
        #expect(route(method, "EIO=4&transport=polling") == .failure(.badHandshakeMethod))
    }

    @Test("The handshake method is checked before EIO and before the upgrade rules")
    func handshakeMethodFirst() {
        #expect(route("POST", "transport=polling") == .failure(.badHandshakeMethod))
        #expect(route("POST", "EIO=4&transport=websocket", upgrade: true) == .failure(.badHandshakeMethod))
    }

    @Test("A WebSocket handshake without upgrade is a bad request, checked before EIO")
    func webSocketHandshakeWithoutUpgrade() {
        #expect(route("GET", "EIO=4&transport=websocket") == .failure(.badRequest(.transportHandshakeError)))
        #expect(route("GET", "transport=websocket") == .failure(.badRequest(.transportHandshakeError)))
    }

    @Test("A handshake whose EIO is not exactly 4 is code 5, a missing EIO included", arguments: [
        "transport=polling", "EIO=3&transport=polling", "EIO=abc&transport=polling", "EIO=04&transport=polling",
        "EIO=&transport=polling", "EIO=4%20&transport=polling", "EIO=5&transport=polling", "eio=4&transport=polling",
    ])
    func unsupportedVersion(query: String) {
        #expect(route("GET", query) == .failure(.unsupportedProtocolVersion))
    }

    @Test("A WebSocket handshake with a bad EIO is code 5 too")
    func unsupportedVersionWebSocket() {
        #expect(route("GET", "transport=websocket", upgrade: true) == .failure(.unsupportedProtocolVersion))
        #expect(route("GET", "EIO=abc&transport=websocket", upgrade: true) == .failure(.unsupportedProtocolVersion))
    }

    @Test("The last of repeated parameters decides")
    func repeatedParameters() {
        #expect(route("GET", "EIO=3&EIO=4&transport=polling") == .success(.handshake(.polling)))
        #expect(route("GET", "EIO=4&transport=abc&transport=polling") == .success(.handshake(.polling)))
        #expect(route("GET", "EIO=4&transport=polling&sid=poll1&sid=") == .success(.handshake(.polling)))
    }

    @Test("Queries given as decoded pairs route as parsed ones do")
    func pairQuery() throws {
        let route = try EngineIORequestRules().route(
            method: "POST",
            query: EngineIOQuery([(name: "EIO", value: "4"), (name: "transport", value: "polling"), (name: "sid", value: "poll1")]),
            isUpgrade: false
        ) { Self.sessions[$0] }
        #expect(route == .post(sid: "poll1"))
    }
}

/// How each refusal goes on the wire, as the reference's `abortRequest` and `abortUpgrade` write it.
@Suite("Engine.IO error responses")
struct EngineIOErrorTests {
    @Test("Codes, messages and statuses are the reference's", arguments: [
        (EngineIOError.unknownTransport, 0, "Transport unknown", 400),
        (.unknownSessionID, 1, "Session ID unknown", 400),
        (.badHandshakeMethod, 2, "Bad handshake method", 400),
        (.badRequest, 3, "Bad request", 400),
        (.badRequest(.transportMismatch), 3, "Bad request", 400),
        (.forbidden, 4, "Forbidden", 403),
        (.unsupportedProtocolVersion, 5, "Unsupported protocol version", 400),
    ])
    func table(error: EngineIOError, code: Int, message: String, status: Int) {
        #expect(error.code == code)
        #expect(error.message == message)
        #expect(error.httpStatus == status)
        #expect(error.jsonBody == "{\"code\":\(code),\"message\":\"\(message)\"}")
    }

    @Test("A plain request gets the status and a JSON body")
    func plainResponse() {
        let response = EngineIOError.unknownSessionID.response(toUpgrade: false)
        #expect(response.status == 400)
        #expect(response.contentType == "application/json")
        #expect(response.body == #"{"code":1,"message":"Session ID unknown"}"#)
        #expect(!response.closesConnection)
        #expect(EngineIOError.forbidden.response(toUpgrade: false).status == 403)
    }

    @Test("An upgrade request gets 400 text/html with the bare message, even for Forbidden, and is closed")
    func upgradeResponse() {
        let response = EngineIOError.forbidden.response(toUpgrade: true)
        #expect(response == EngineIOError.Response(status: 400, contentType: "text/html", body: "Forbidden", closesConnection: true))
        #expect(EngineIOError.unsupportedProtocolVersion.response(toUpgrade: true).body == "Unsupported protocol version")
    }

    @Test("A custom Forbidden message replaces the default and is JSON-escaped")
    func customForbidden() {
        let error = EngineIOError.forbidden(message: "no \"guests\"")
        #expect(error.code == 4)
        #expect(error.httpStatus == 403)
        #expect(error.jsonBody == #"{"code":4,"message":"no \"guests\""}"#)
        #expect(error != .forbidden)
        #expect(EngineIOError.forbidden(message: "").message == "Forbidden")
    }

    @Test("Bad-request reasons are kept for logs but never sent")
    func reasons() {
        let error = EngineIOError.badRequest(.invalidOrigin)
        #expect(error.badRequestReason == .invalidOrigin)
        #expect(!error.jsonBody.contains("ORIGIN"))
        #expect(error.description == "3 Bad request (INVALID_ORIGIN)")
        #expect(EngineIOError.badRequest.badRequestReason == nil)
        #expect(EngineIOError.unknownSessionID.badRequestReason == nil)
        #expect(EngineIOError.unknownSessionID.description == "1 Session ID unknown")
        #expect(EngineIOError.badRequest(.transportMismatch) != .badRequest(.invalidOrigin))
    }
}
