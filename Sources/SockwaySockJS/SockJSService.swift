import NIOCore

/// One HTTP header, in the order it is written.
public struct SockJSHeader: Hashable, Sendable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// A complete HTTP response, or the head of a streaming one (then `body` is empty).
public struct SockJSResponse: Hashable, Sendable {
    public var status: Int
    public var headers: [SockJSHeader]
    public var body: String

    public init(status: Int, headers: [SockJSHeader] = [], body: String = "") {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    static let plainText = SockJSHeader("Content-Type", "text/plain; charset=UTF-8")

    /// `404`, with a short text body.
    public static let notFound = SockJSResponse(status: 404, headers: [plainText], body: "404 Error: Page not found\n")

    /// `405` with the `Allow` header and no body or content type, as the SockJS suite expects.
    public static func methodNotAllowed(_ allowed: [String]) -> SockJSResponse {
        SockJSResponse(status: 405, headers: [SockJSHeader("Allow", allowed.joined(separator: ", "))])
    }

    /// A text error: `500 "Payload expected."` and friends.
    public static func error(_ status: Int, _ message: String, headers: [SockJSHeader] = []) -> SockJSResponse {
        SockJSResponse(status: status, headers: [plainText] + headers, body: message)
    }
}

/// What the request fields that the SockJS rules look at.
public struct SockJSRequest: Hashable, Sendable {
    public var method: String
    /// Path relative to the endpoint prefix, without the query string.
    public var path: String
    public var query: String
    public var origin: String?
    public var accessControlRequestHeaders: String?
    public var cookie: String?
    public var ifNoneMatch: String?
    public var contentType: String?

    public init(
        method: String,
        path: String,
        query: String = "",
        origin: String? = nil,
        accessControlRequestHeaders: String? = nil,
        cookie: String? = nil,
        ifNoneMatch: String? = nil,
        contentType: String? = nil
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.origin = origin
        self.accessControlRequestHeaders = accessControlRequestHeaders
        self.cookie = cookie
        self.ifNoneMatch = ifNoneMatch
        self.contentType = contentType
    }
}

/// What the server must do with a request, decided without any I/O.
public enum SockJSDecision: Hashable, Sendable {
    /// Send this complete response.
    case respond(SockJSResponse)
    /// Open a receiving response (`head`, then `prelude`), and attach it to the session, creating the
    /// session if it does not exist.
    case receive(sessionID: String, transport: SockJSTransport, callback: String?, head: SockJSResponse, prelude: String?)
    /// Read the body (at most ``SockJSServiceRules/maxSendBodyBytes``), parse it with
    /// ``SockJSServiceRules/parseSendBody(_:transport:contentType:maxMessageBytes:)`` and deliver it
    /// to the session; answer `success` once the session took it, `404` if there is no such open
    /// session.
    case send(sessionID: String, transport: SockJSTransport, success: SockJSResponse, errorHeaders: [SockJSHeader])
}

/// The SockJS HTTP rules of one endpoint: routing, CORS, caching, cookies, info and iframe pages.
///
/// Pure: time and randomness come in as parameters, so every rule is tested without sockets.
public struct SockJSServiceRules: Sendable {
    /// Whether the `websocket` transport and the raw `/websocket` endpoint are served.
    public var webSocketEnabled: Bool
    /// Whether session responses set a `JSESSIONID` cookie (for sticky load balancers).
    public var cookieNeeded: Bool
    /// The sockjs-client script URL the iframe page loads.
    public var clientScriptURL: String
    /// Origins allowed to use the endpoint from a browser; `nil` allows any. With a list, every route
    /// but the greeting answers a foreign `Origin` (including `null`, unless listed) with `403`, and
    /// CORS responses name the listed origin with credentials.
    public var allowedOrigins: Set<String>?
    /// Without ``allowedOrigins``: echo any page's origin with `Access-Control-Allow-Credentials: true`
    /// (sockjs-node's behaviour, which lets every site on the web make credentialed requests). Off by
    /// default: CORS then answers `*` without credentials, and cross-origin pages use WebSocket or the
    /// iframe transports (same-origin inside the iframe).
    public var allowAnyOriginWithCredentials: Bool
    /// Transports switched off, by name (`xhr-streaming`); their routes answer `404`.
    public var disabledTransports: Set<String>
    /// The largest `xhr_send` / `jsonp_send` body accepted, as it arrives (JSON, or a form); larger
    /// ones get `413`.
    public var maxSendBodyBytes: Int
    /// The largest message accepted, in decoded UTF-8 bytes; a send body holding a larger one gets `413`.
    public var maxMessageBytes: Int

    public init(
        webSocketEnabled: Bool = true,
        cookieNeeded: Bool = false,
        clientScriptURL: String = SockJSServiceRules.defaultClientScriptURL,
        allowedOrigins: Set<String>? = nil,
        allowAnyOriginWithCredentials: Bool = false,
        disabledTransports: Set<String> = [],
        maxSendBodyBytes: Int = 8 << 20,
        maxMessageBytes: Int = 1 << 20
    ) {
        self.webSocketEnabled = webSocketEnabled
        self.cookieNeeded = cookieNeeded
        self.clientScriptURL = clientScriptURL
        self.allowedOrigins = allowedOrigins
        self.allowAnyOriginWithCredentials = allowAnyOriginWithCredentials
        self.disabledTransports = disabledTransports
        self.maxSendBodyBytes = maxSendBodyBytes
        self.maxMessageBytes = maxMessageBytes
    }

    /// sockjs-client 1.x from a public CDN, what sockjs-node defaults to.
    public static let defaultClientScriptURL = "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js"

    static let noCache = SockJSHeader("Cache-Control", "no-store, no-cache, no-transform, must-revalidate, max-age=0")
    static let oneYear = 31_536_000

    /// Whether a transport is served by this endpoint.
    public func isEnabled(_ transport: SockJSTransport) -> Bool {
        if transport.isWebSocket && !webSocketEnabled { return false }
        return !disabledTransports.contains(transport.name)
    }

    /// Whether a browser from `origin` may use the endpoint. Requests without `Origin` are not from
    /// a browser page and are always allowed.
    public func isOriginAllowed(_ origin: String?) -> Bool {
        guard let allowedOrigins, let origin else { return true }
        return allowedOrigins.contains(origin)
    }

    /// Decides a request that has no body to read first (the send endpoints return
    /// ``SockJSDecision/send(sessionID:transport:success:errorHeaders:)``).
    /// - Parameters:
    ///   - request: the request's method, path, query and headers.
    ///   - now: seconds since 1970, for `Expires` headers.
    ///   - entropy: a fresh random number for `/info`.
    public func decide(_ request: SockJSRequest, now: Int, entropy: UInt32) -> SockJSDecision {
        let route = SockJSRoute.parse(request.path)
        if route != .greeting, route != .notFound, !isOriginAllowed(request.origin) {
            return .respond(.error(403, "Origin not allowed."))
        }
        switch route {
        case .notFound:
            return .respond(.notFound)
        case .greeting:
            guard request.method == "GET" || request.method == "HEAD" else { return .respond(.methodNotAllowed(["GET"])) }
            return .respond(SockJSResponse(status: 200, headers: [SockJSResponse.plainText], body: "Welcome to SockJS!\n"))
        case .info:
            return .respond(info(request, now: now, entropy: entropy))
        case .iframe:
            guard request.method == "GET" || request.method == "HEAD" else { return .respond(.methodNotAllowed(["GET"])) }
            return .respond(iframe(request, now: now))
        case .rawWebSocket:
            guard webSocketEnabled else { return .respond(.notFound) }
            return .respond(notAWebSocket(request))
        case .session(let id, let transport):
            guard isEnabled(transport) else { return .respond(.notFound) }
            return session(request, id: id, transport: transport, now: now)
        }
    }

    /// The answer to a request on a WebSocket route that was not upgraded.
    func notAWebSocket(_ request: SockJSRequest) -> SockJSResponse {
        guard request.method == "GET" else { return .methodNotAllowed(["GET"]) }
        return .error(400, "Can \"Upgrade\" only to \"WebSocket\".")
    }

    private func info(_ request: SockJSRequest, now: Int, entropy: UInt32) -> SockJSResponse {
        switch request.method {
        case "GET":
            var headers = [SockJSHeader("Content-Type", "application/json; charset=UTF-8"), Self.noCache]
            headers += cors(request)
            let origins = allowedOrigins.map { $0.sorted().map { SockJSJSON.quoted($0) }.joined(separator: ",") } ?? "\"*:*\""
            let body =
                "{\"websocket\":\(webSocketEnabled),\"origins\":[\(origins)],\"cookie_needed\":\(cookieNeeded),\"entropy\":\(entropy)}"
            return SockJSResponse(status: 200, headers: headers, body: body)
        case "OPTIONS":
            return preflight(request, methods: "OPTIONS, GET", now: now)
        default:
            return .methodNotAllowed(["GET", "OPTIONS"])
        }
    }

    /// The iframe page's HTML; constant per endpoint.
    public var iframePage: String {
        """
        <!DOCTYPE html>
        <html>
        <head>
          <meta http-equiv="X-UA-Compatible" content="IE=edge" />
          <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
          <script src="\(htmlAttributeEscaped(clientScriptURL))"></script>
          <script>
            document.domain = document.domain;
            SockJS.bootstrap_iframe();
          </script>
        </head>
        <body>
          <h2>Don't panic!</h2>
          <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
        </body>
        </html>
        """
    }

    /// A strong ETag of the iframe page: FNV-1a, 64 bits, of its bytes.
    public var iframeETag: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in iframePage.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        let hex = String(hash, radix: 16)
        return "\"" + String(repeating: "0", count: 16 - hex.count) + hex + "\""
    }

    private func iframe(_ request: SockJSRequest, now: Int) -> SockJSResponse {
        let etag = iframeETag
        if let candidate = request.ifNoneMatch, candidate == etag || candidate == "*" {
            return SockJSResponse(status: 304, headers: [SockJSHeader("ETag", etag)])
        }
        var headers = [SockJSHeader("Content-Type", "text/html; charset=UTF-8"), SockJSHeader("ETag", etag)]
        headers += Self.cacheForever(now: now)
        if let allowedOrigins {
            // A navigation sends no Origin: the browser itself keeps foreign pages from framing it.
            let ancestors = (["'self'"] + allowedOrigins.sorted().filter { $0 != "null" }).joined(separator: " ")
            headers.append(SockJSHeader("Content-Security-Policy", "frame-ancestors \(ancestors)"))
        }
        return SockJSResponse(status: 200, headers: headers, body: iframePage)
    }

    private func session(_ request: SockJSRequest, id: String, transport: SockJSTransport, now: Int) -> SockJSDecision {
        if request.method == "OPTIONS" && transport.answersPreflight {
            return .respond(preflight(request, methods: "OPTIONS, POST", now: now))
        }
        guard request.method == transport.method else {
            return .respond(.methodNotAllowed(transport.allowedMethods))
        }
        if transport.isWebSocket {
            return .respond(notAWebSocket(request))
        }
        guard isOriginAllowed(request.origin) else {
            return .respond(.error(403, "Origin not allowed."))
        }
        var headers: [SockJSHeader] = []
        if let contentType = transport.contentType { headers.append(SockJSHeader("Content-Type", contentType)) }
        headers.append(Self.noCache)
        headers += sessionCookie(request)
        if transport.cors { headers += cors(request, nullMeansAny: transport.wrapping == .eventSource) }
        if transport.wrapping == .jsonp { headers.append(SockJSHeader("X-Content-Type-Options", "nosniff")) }
        // nginx buffers proxied responses by default, which holds a stream's frames until its buffer
        // fills; this header turns that off for the one response (other proxies ignore it).
        if transport.role == .receiver(.streaming) { headers.append(SockJSHeader("X-Accel-Buffering", "no")) }

        switch transport.role {
        case .receiver:
            var callback: String?
            if transport.needsCallback {
                do {
                    callback = try SockJSQuery.callback(in: request.query)
                } catch .missing {
                    return .respond(.error(500, "\"callback\" parameter required"))
                } catch {
                    return .respond(.error(500, "invalid \"callback\" parameter"))
                }
            }
            return .receive(
                sessionID: id,
                transport: transport,
                callback: callback,
                head: SockJSResponse(status: 200, headers: headers),
                prelude: transport.prelude(callback: callback)
            )
        case .sender(let style):
            let errorHeaders = headers.filter { $0.name != "Content-Type" }
            switch style {
            case .xhr:
                return .send(sessionID: id, transport: transport, success: SockJSResponse(status: 204, headers: headers), errorHeaders: errorHeaders)
            case .jsonp:
                return .send(sessionID: id, transport: transport, success: SockJSResponse(status: 200, headers: headers, body: "ok"), errorHeaders: errorHeaders)
            }
        case .webSocket:
            return .respond(notAWebSocket(request))
        }
    }

    /// Parses the body of an `xhr_send` or `jsonp_send` request into messages. Nothing is altered:
    /// a body that is not valid UTF-8, or holds a lone surrogate escape, is refused whole, and so is
    /// one holding a message over `maxMessageBytes` (decoded UTF-8 bytes).
    public static func parseSendBody(
        _ body: ByteBuffer,
        transport: SockJSTransport,
        contentType: String?,
        maxMessageBytes: Int = .max
    ) throws(SockJSPayloadError) -> [String] {
        let messages = try parseSendBodyMessages(body, transport: transport, contentType: contentType)
        // `utf8.count` of a native String is stored, not counted.
        if messages.contains(where: { $0.utf8.count > maxMessageBytes }) { throw .messageTooLarge }
        return messages
    }

    private static func parseSendBodyMessages(
        _ body: ByteBuffer,
        transport: SockJSTransport,
        contentType: String?
    ) throws(SockJSPayloadError) -> [String] {
        if transport.role == .sender(.jsonp),
            let contentType, contentType.lowercased().hasPrefix("application/x-www-form-urlencoded")
        {
            let d = body.withUnsafeReadableBytes { SockJSQuery.formValue(named: "d", in: $0) }
            guard let d, !d.isEmpty else { throw .payloadExpected }
            let result: Result<[String], SockJSPayloadError> = d.withUnsafeBytes { bytes in
                do throws(SockJSPayloadError) { return .success(try SockJSPayload.parseArray(bytes)) } catch { return .failure(error) }
            }
            return try result.get()
        }
        return try SockJSPayload.parseArray(body)
    }

    /// The answer to a send request, from its outcome: `success`, `404` when the session is gone or
    /// closing (its messages were not taken), `503` with `Retry-After` when it was held too long or
    /// too many requests were held (the client sends faster than it receives).
    public static func response(
        for outcome: SockJSSessionStateMachine.SendOutcome,
        success: SockJSResponse,
        headers: [SockJSHeader]
    ) -> SockJSResponse {
        switch outcome {
        case .accepted: success
        case .refused(.closed): SockJSResponse(status: 404, headers: [SockJSResponse.plainText] + headers, body: SockJSResponse.notFound.body)
        case .refused(.busy): .error(503, "Session busy: sending faster than receiving.", headers: headers + [SockJSHeader("Retry-After", "1")])
        }
    }

    /// The response for a send body that failed to parse.
    public static func response(for error: SockJSPayloadError, headers: [SockJSHeader]) -> SockJSResponse {
        switch error {
        case .payloadExpected: return .error(500, "Payload expected.", headers: headers)
        case .brokenJSON: return .error(500, "Broken JSON encoding.", headers: headers)
        case .messageTooLarge: return .error(413, "Message too large.", headers: headers)
        }
    }

    private func preflight(_ request: SockJSRequest, methods: String, now: Int) -> SockJSResponse {
        var headers = Self.cacheForever(now: now)
        headers.append(SockJSHeader("Access-Control-Allow-Methods", methods))
        headers.append(SockJSHeader("Access-Control-Max-Age", String(Self.oneYear)))
        headers += sessionCookie(request)
        headers += cors(request)
        return SockJSResponse(status: 204, headers: headers)
    }

    /// CORS for XHR transports. A listed origin (or any, with ``allowAnyOriginWithCredentials``) is
    /// echoed with credentials, so that `JSESSIONID` flows; otherwise `*` without credentials: a page
    /// of any site may read the responses, never with the user's cookies. Browsers send `Origin: null`
    /// from `file:` pages and sandboxed frames; echoing `null` is what they accept.
    func cors(_ request: SockJSRequest, nullMeansAny: Bool = false) -> [SockJSHeader] {
        var headers: [SockJSHeader]
        if let origin = request.origin, !(nullMeansAny && origin == "null"),
            allowedOrigins?.contains(origin) ?? allowAnyOriginWithCredentials
        {
            headers = [SockJSHeader("Access-Control-Allow-Origin", origin), SockJSHeader("Access-Control-Allow-Credentials", "true")]
        } else if allowedOrigins == nil || request.origin == nil || nullMeansAny {
            headers = [SockJSHeader("Access-Control-Allow-Origin", "*")]
        } else {
            headers = []
        }
        headers.append(SockJSHeader("Vary", "Origin"))
        if let requested = request.accessControlRequestHeaders, !requested.isEmpty {
            headers.append(SockJSHeader("Access-Control-Allow-Headers", requested))
        }
        return headers
    }

    /// `JSESSIONID`, echoed if the client has one, `dummy` otherwise: the value only has to exist for
    /// load balancers that pin sessions on it.
    func sessionCookie(_ request: SockJSRequest) -> [SockJSHeader] {
        guard cookieNeeded else { return [] }
        return [SockJSHeader("Set-Cookie", "JSESSIONID=\(Self.sessionCookieValue(request.cookie)); path=/")]
    }

    /// The `JSESSIONID` value a request carries in its `Cookie` header, or `dummy`: what the server
    /// echoes, and what a session bound to its cookie compares.
    public static func sessionCookieValue(_ cookieHeader: String?) -> String {
        guard let cookieHeader else { return "dummy" }
        for pair in cookieHeader.split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts[0].trimmingSpaces == "JSESSIONID", parts.count == 2 {
                let candidate = parts[1].trimmingSpaces
                // Reflect only RFC 6265 cookie-octets: nothing that could split, extend or confuse the header.
                if !candidate.isEmpty, candidate.utf8.allSatisfy(Self.isCookieOctet) {
                    return String(candidate)
                }
                break
            }
        }
        return "dummy"
    }

    private static func isCookieOctet(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x21, 0x23...0x2B, 0x2D...0x3A, 0x3C...0x5B, 0x5D...0x7E: return true
        default: return false
        }
    }

    static func cacheForever(now: Int) -> [SockJSHeader] {
        [
            SockJSHeader("Cache-Control", "public, max-age=\(oneYear)"),
            SockJSHeader("Expires", HTTPDate.format(epochSeconds: now + oneYear)),
        ]
    }

    private func htmlAttributeEscaped(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var result = self
        while result.first == " " { result = result.dropFirst() }
        while result.last == " " { result = result.dropLast() }
        return result
    }
}

/// IMF-fixdate formatting (RFC 9110), without Foundation.
public enum HTTPDate {
    private static let days = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `Sun, 06 Nov 1994 08:49:37 GMT` for the given seconds since 1970.
    public static func format(epochSeconds: Int) -> String {
        let dayCount = epochSeconds >= 0 ? epochSeconds / 86_400 : (epochSeconds - 86_399) / 86_400
        let secondsOfDay = epochSeconds - dayCount * 86_400
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = dayCount + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        let weekday = days[((dayCount % 7) + 7) % 7]
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(weekday), \(two(day)) \(months[month - 1]) \(year) \(two(secondsOfDay / 3600)):\(two(secondsOfDay % 3600 / 60)):\(two(secondsOfDay % 60)) GMT"
    }
}
