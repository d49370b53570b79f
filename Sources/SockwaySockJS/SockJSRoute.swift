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
        let path = Substring(path)
        if path.isEmpty || path == "/" { return .greeting }
        guard path.first == "/" else { return .notFound }
        var rest = path.dropFirst()
        if rest.last == "/" { rest = rest.dropLast() }
        if rest.isEmpty { return .notFound }
        let segments = rest.split(separator: "/", omittingEmptySubsequences: false)
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
        guard name.hasPrefix("iframe"), name.hasSuffix(".html"), name.utf8.count >= 11 else { return false }
        let middle = name.utf8.dropFirst(6).dropLast(5)
        return middle.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
    }
}
