/// The SockJS URL grammar under an endpoint prefix.
///
/// `/`, `/info`, `/iframe[-version].html`, `/websocket` and `/<server>/<session>/<transport>`, each with
/// an optional trailing slash. Server and session ids are non-empty and contain neither `/` nor `.`.
public enum SockJSRoute: Hashable, Sendable {
    case greeting
    case info
    case iframe
    /// The raw WebSocket endpoint: no SockJS framing at all.
    case rawWebSocket
    /// A session URL. The server id is only for load balancers and is otherwise ignored.
    case session(id: String, transport: SockJSTransport)
    case notFound

    /// Parses a path relative to the endpoint prefix, without its query string.
    public static func parse<S: StringProtocol>(_ path: S) -> SockJSRoute where S.SubSequence == Substring {
        // Bytes, not Characters: `/` followed by a combining mark is one Character, and must still
        // end a segment (else a session id could hold a `/`).
        let slash = UInt8(ascii: "/")
        let path = Substring(path).utf8
        if path.isEmpty || path.elementsEqual(CollectionOfOne(slash)) { return .greeting }
        guard path.first == slash else { return .notFound }
        var rest = path.dropFirst()
        if rest.last == slash { rest = rest.dropLast() }
        if rest.isEmpty { return .notFound }
        let segments = rest.split(separator: slash, omittingEmptySubsequences: false).map { Substring($0) }
        switch segments.count {
        case 1:
            let name = segments[0]
            if name == "info" { return .info }
            if name == "websocket" { return .rawWebSocket }
            if isIframePage(name) { return .iframe }
            return .notFound
        case 3:
            let server = segments[0]
            let session = segments[1]
            guard isValidID(server), isValidID(session),
                let transport = SockJSTransport.forPathSuffix(segments[2])
            else { return .notFound }
            return .session(id: String(session), transport: transport)
        default:
            return .notFound
        }
    }

    private static func isValidID(_ segment: Substring) -> Bool {
        !segment.isEmpty && !segment.utf8.contains(UInt8(ascii: "."))
    }

    /// `iframe.html`, `iframe-<version>.html`: lowercase letters, digits, `-`, `_` and `.` in between.
    private static func isIframePage(_ name: Substring) -> Bool {
        let utf8 = name.utf8
        guard utf8.count >= 11, utf8.prefix(6).elementsEqual("iframe".utf8), utf8.suffix(5).elementsEqual(".html".utf8) else { return false }
        let middle = utf8.dropFirst(6).dropLast(5)
        return middle.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
    }
}
