import NIOCore

/// Why an Engine.IO request was refused, with the code, message and HTTP answer of the reference
/// server.
///
/// | code | message | HTTP status |
/// |---|---|---|
/// | 0 | `Transport unknown` | 400 |
/// | 1 | `Session ID unknown` | 400 |
/// | 2 | `Bad handshake method` | 400 |
/// | 3 | `Bad request` | 400 |
/// | 4 | `Forbidden` | 403 |
/// | 5 | `Unsupported protocol version` | 400 |
///
/// A plain request gets that status with `Content-Type: application/json` and the body
/// `{"code":N,"message":"…"}`; a WebSocket upgrade request gets `400 Bad Request` whatever the code,
/// with `Content-Type: text/html` and the bare message as body, and the connection closed. Both come
/// from ``response(toUpgrade:)``, the one place that maps an error to the wire.
public struct EngineIOError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The detail behind a ``badRequest(_:)``, for logs and tests; it is never sent.
    public enum BadRequestReason: String, Hashable, Sendable, CaseIterable {
        /// The `Origin` header holds a byte no header value may hold (reference: `INVALID_ORIGIN`).
        case invalidOrigin = "INVALID_ORIGIN"
        /// A request without upgrade names another transport than the session's (reference:
        /// `TRANSPORT_MISMATCH`).
        case transportMismatch = "TRANSPORT_MISMATCH"
        /// A new session over `transport=websocket` without an upgrade (reference:
        /// `TRANSPORT_HANDSHAKE_ERROR`).
        case transportHandshakeError = "TRANSPORT_HANDSHAKE_ERROR"
        /// An upgrade request with `transport=polling`. The reference completes the WebSocket
        /// handshake and closes the socket at once; this refuses it before.
        case transportDoesNotHandleUpgrades = "TRANSPORT_DOES_NOT_HANDLE_UPGRADES"
        /// A WebSocket request for a session that is already on WebSocket. The reference accepts
        /// the WebSocket and closes it at once ("transport had already been upgraded"); this refuses
        /// it before.
        case alreadyOnWebSocket = "ALREADY_ON_WEBSOCKET"
        /// A plain HTTP request for a session on WebSocket with `transport=websocket`. The reference
        /// leaves such a request unanswered; this refuses it.
        case webSocketWithoutUpgrade = "WEBSOCKET_WITHOUT_UPGRADE"
        /// A method the session's transport does not serve: not GET or POST for polling (the
        /// reference answers 500 without body), not GET for a WebSocket upgrade (its WebSocket
        /// library answers 405).
        case unsupportedMethod = "UNSUPPORTED_METHOD"
        /// The server could not generate a session id (reference: `ID_GENERATION_ERROR`).
        case idGenerationError = "ID_GENERATION_ERROR"
        /// A middleware refused the request (reference: `MIDDLEWARE_FAILURE`).
        case middlewareFailure = "MIDDLEWARE_FAILURE"
    }

    private enum Kind: Hashable, Sendable {
        case unknownTransport
        case unknownSessionID
        case badHandshakeMethod
        case badRequest(BadRequestReason?)
        case forbidden(message: String?)
        case unsupportedProtocolVersion
    }

    private let kind: Kind

    private init(_ kind: Kind) {
        self.kind = kind
    }

    /// 0 `Transport unknown`: `transport` is missing or not an enabled transport.
    public static let unknownTransport = EngineIOError(.unknownTransport)
    /// 1 `Session ID unknown`: no session has the request's `sid`.
    public static let unknownSessionID = EngineIOError(.unknownSessionID)
    /// 2 `Bad handshake method`: a request without `sid` (a handshake) that is not a GET.
    public static let badHandshakeMethod = EngineIOError(.badHandshakeMethod)
    /// 3 `Bad request`, without detail.
    public static let badRequest = EngineIOError(.badRequest(nil))
    /// 4 `Forbidden`: the server's admission check refused a handshake (HTTP 403).
    public static let forbidden = EngineIOError(.forbidden(message: nil))
    /// 5 `Unsupported protocol version`: a handshake whose `EIO` is not exactly `4` (a missing `EIO`
    /// included: the reference takes that as version 3, which it refuses by default).
    public static let unsupportedProtocolVersion = EngineIOError(.unsupportedProtocolVersion)

    /// 3 `Bad request`, for `reason`.
    public static func badRequest(_ reason: BadRequestReason) -> EngineIOError {
        EngineIOError(.badRequest(reason))
    }

    /// 4 with the admission check's own message in place of `Forbidden`, as the reference sends it.
    public static func forbidden(message: String) -> EngineIOError {
        EngineIOError(.forbidden(message: message))
    }

    /// The reference's numeric code, 0…5.
    public var code: Int {
        switch kind {
        case .unknownTransport: return 0
        case .unknownSessionID: return 1
        case .badHandshakeMethod: return 2
        case .badRequest: return 3
        case .forbidden: return 4
        case .unsupportedProtocolVersion: return 5
        }
    }

    /// The message sent to the client: the reference's text for the code, or a custom Forbidden message.
    public var message: String {
        switch kind {
        case .unknownTransport: return "Transport unknown"
        case .unknownSessionID: return "Session ID unknown"
        case .badHandshakeMethod: return "Bad handshake method"
        case .badRequest: return "Bad request"
        case .forbidden(let message): return message.flatMap { $0.isEmpty ? nil : $0 } ?? "Forbidden"
        case .unsupportedProtocolVersion: return "Unsupported protocol version"
        }
    }

    /// The detail of a Bad request, if any.
    public var badRequestReason: BadRequestReason? {
        if case .badRequest(let reason) = kind { return reason }
        return nil
    }

    /// The status of a plain HTTP answer: 403 for Forbidden, 400 for every other code.
    public var httpStatus: Int {
        if case .forbidden = kind { return 403 }
        return 400
    }

    /// The JSON body of a plain HTTP answer: `{"code":N,"message":"…"}`.
    public var jsonBody: String {
        var buffer = ByteBuffer()
        writeJSONBody(into: &buffer)
        return String(buffer: buffer)
    }

    /// Writes ``jsonBody`` into `buffer`.
    public func writeJSONBody(into buffer: inout ByteBuffer) {
        buffer.writeStaticString("{\"code\":")
        buffer.writeString(String(code))
        buffer.writeStaticString(",\"message\":")
        EngineIOJSON.writeQuoted(message, into: &buffer)
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    /// An HTTP answer to a refused request.
    public struct Response: Hashable, Sendable {
        /// The status code.
        public var status: Int
        /// The `Content-Type` header.
        public var contentType: String
        /// The body (send it with a matching `Content-Length`).
        public var body: String
        /// Whether the connection must be closed after the answer (always for an upgrade request).
        public var closesConnection: Bool
    }

    /// The HTTP answer the reference gives: for a plain request ``httpStatus`` with the JSON body;
    /// for a WebSocket upgrade request (`toUpgrade`) `400 Bad Request`, `text/html`, the bare
    /// ``message``, and the connection closed.
    public func response(toUpgrade: Bool) -> Response {
        if toUpgrade {
            return Response(status: 400, contentType: "text/html", body: message, closesConnection: true)
        }
        return Response(status: httpStatus, contentType: "application/json", body: jsonBody, closesConnection: false)
    }

    /// A short text for logs.
    public var description: String {
        if let reason = badRequestReason { return "\(code) \(message) (\(reason.rawValue))" }
        return "\(code) \(message)"
    }
}
