/// The transports of Engine.IO v4, named as in the `transport` query parameter.
public enum EngineIOTransport: String, Hashable, Sendable, CaseIterable {
    /// HTTP long-polling: GET to receive, POST to send.
    case polling
    /// One WebSocket connection.
    case websocket
}

/// What an accepted Engine.IO request is for.
public enum EngineIORoute: Hashable, Sendable {
    /// An `OPTIONS` CORS preflight, to be answered before any Engine.IO check.
    case preflight
    /// A new session: a polling GET (answer with the open packet), or a WebSocket upgrade without
    /// `sid` (accept it, then send the open packet over the socket). `EIO=4` has been checked.
    case handshake(EngineIOTransport)
    /// A polling GET of an existing session: the long poll that receives packets.
    case poll(sid: String)
    /// A polling POST of an existing session: a payload of packets to decode.
    case post(sid: String)
    /// A WebSocket upgrade for an existing polling session (the `2probe` upgrade). The session must
    /// still refuse it when an upgrade is already under way, as the reference does by closing the
    /// socket.
    case webSocket(sid: String)
}

/// Decides what an Engine.IO request is, or refuses it with the reference server's error, as a pure
/// function of the request line, the query and the session store's answer.
///
/// The checks run in the reference's order (`verify`, then the handshake), the first failing one
/// deciding:
/// 1. `OPTIONS` is a ``EngineIORoute/preflight`` when ``answersPreflight`` (the reference's CORS
///    middleware answers it before the Engine.IO checks).
/// 2. `transport` missing or not exactly one of ``transports`` → ``EngineIOError/unknownTransport`` (0).
/// 3. An `Origin` header with a byte other than HTAB, 0x20–0x7E or 0x80–0xFF →
///    ``EngineIOError/BadRequestReason/invalidOrigin`` (3).
/// 4. With a non-empty `sid` (an empty `sid` counts as none, as in the reference):
///    - no such session → ``EngineIOError/unknownSessionID`` (1), also for a WebSocket upgrade;
///    - not an upgrade and `transport` is not the session's current transport →
///      ``EngineIOError/BadRequestReason/transportMismatch`` (3) (a POST with `transport=polling`
///      after the session moved to WebSocket, say);
///    - `EIO` is not looked at (the reference checks it on handshakes only);
///    - an upgrade: not GET → ``EngineIOError/BadRequestReason/unsupportedMethod``,
///      `transport=polling` → ``EngineIOError/BadRequestReason/transportDoesNotHandleUpgrades``,
///      a session already on WebSocket → ``EngineIOError/BadRequestReason/alreadyOnWebSocket``,
///      else ``EngineIORoute/webSocket(sid:)``;
///    - not an upgrade: `transport=websocket` →
///      ``EngineIOError/BadRequestReason/webSocketWithoutUpgrade``, GET → ``EngineIORoute/poll(sid:)``,
///      POST → ``EngineIORoute/post(sid:)``, any other method →
///      ``EngineIOError/BadRequestReason/unsupportedMethod``.
/// 5. Without `sid` (a handshake):
///    - not GET → ``EngineIOError/badHandshakeMethod`` (2), a POST included;
///    - `transport=websocket` without upgrade →
///      ``EngineIOError/BadRequestReason/transportHandshakeError`` (3);
///    - an upgrade with `transport=polling` →
///      ``EngineIOError/BadRequestReason/transportDoesNotHandleUpgrades`` (3);
///    - `EIO` not exactly `4` (missing, `3`, `04`, `abc`) → ``EngineIOError/unsupportedProtocolVersion`` (5);
///    - else ``EngineIORoute/handshake(_:)``.
///
/// The reference's admission hook (`allowRequest`, giving ``EngineIOError/forbidden`` (4)) runs after
/// the checks of step 5 but before its `EIO` check; a server with such a hook runs it on
/// ``EngineIORoute/handshake(_:)``, so a request that fails both sees 5 here rather than 4.
/// Where the reference accepts a WebSocket only to close it, or leaves a request unanswered, this
/// refuses the request with a 3; the reasons say which.
public struct EngineIORequestRules: Hashable, Sendable {
    /// The transports clients may use. Default: both, as the reference.
    public var transports: Set<EngineIOTransport>
    /// Whether `OPTIONS` requests are CORS preflights answered before any check. Default `true`, as
    /// the reference configured with `cors` (which the official test suite expects); with `false`
    /// an `OPTIONS` goes through the checks like any other method.
    public var answersPreflight: Bool

    /// Rules with every value defaulted.
    public init(transports: Set<EngineIOTransport> = Set(EngineIOTransport.allCases), answersPreflight: Bool = true) {
        self.transports = transports
        self.answersPreflight = answersPreflight
    }

    /// The route of a request, or the error the reference answers it with (see the type's rules).
    ///
    /// - Parameters:
    ///   - method: the HTTP method as sent (`"GET"`, `"POST"`, …; methods are case-sensitive).
    ///   - query: the request's query parameters.
    ///   - isUpgrade: whether the request asks for a WebSocket upgrade (`Upgrade: websocket`).
    ///   - origin: the `Origin` header, if any.
    ///   - sessionTransport: the current transport of the session with this id, or `nil` when there
    ///     is no such session; called at most once, and only for a non-empty `sid`.
    public func route(
        method: String,
        query: EngineIOQuery,
        isUpgrade: Bool,
        origin: String? = nil,
        sessionTransport: (String) -> EngineIOTransport?
    ) throws(EngineIOError) -> EngineIORoute {
        if answersPreflight, method == "OPTIONS" { return .preflight }
        guard let transportName = query.transport, let transport = EngineIOTransport(rawValue: transportName),
            transports.contains(transport)
        else { throw .unknownTransport }
        if let origin, !Self.isValidHeaderValue(origin) { throw .badRequest(.invalidOrigin) }

        if let sid = query.sid, !sid.isEmpty {
            guard let current = sessionTransport(sid) else { throw .unknownSessionID }
            if isUpgrade {
                guard method == "GET" else { throw .badRequest(.unsupportedMethod) }
                guard transport == .websocket else { throw .badRequest(.transportDoesNotHandleUpgrades) }
                guard current != .websocket else { throw .badRequest(.alreadyOnWebSocket) }
                return .webSocket(sid: sid)
            }
            guard current == transport else { throw .badRequest(.transportMismatch) }
            guard transport == .polling else { throw .badRequest(.webSocketWithoutUpgrade) }
            switch method {
            case "GET": return .poll(sid: sid)
            case "POST": return .post(sid: sid)
            default: throw .badRequest(.unsupportedMethod)
            }
        }

        guard method == "GET" else { throw .badHandshakeMethod }
        if transport == .websocket, !isUpgrade { throw .badRequest(.transportHandshakeError) }
        if transport == .polling, isUpgrade { throw .badRequest(.transportDoesNotHandleUpgrades) }
        guard query.protocolVersion == "4" else { throw .unsupportedProtocolVersion }
        return .handshake(transport)
    }

    /// ``route(method:query:isUpgrade:origin:sessionTransport:)`` for a raw query string
    /// (`EIO=4&transport=polling`, with or without a leading `?`).
    public func route(
        method: String,
        rawQuery: String,
        isUpgrade: Bool,
        origin: String? = nil,
        sessionTransport: (String) -> EngineIOTransport?
    ) throws(EngineIOError) -> EngineIORoute {
        try route(
            method: method,
            query: EngineIOQuery(parsing: rawQuery),
            isUpgrade: isUpgrade,
            origin: origin,
            sessionTransport: sessionTransport
        )
    }

    /// Whether every byte of `value` may appear in a header value as Node checks it: HTAB,
    /// 0x20–0x7E, or 0x80–0xFF (Node reads headers as Latin-1, so any non-ASCII byte passes).
    static func isValidHeaderValue(_ value: String) -> Bool {
        value.utf8.allSatisfy { byte in
            byte == 0x09 || (byte >= 0x20 && byte != 0x7F)
        }
    }
}
