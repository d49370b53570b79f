/// Where a bridged endpoint's sessions are carried to: a WebSocket server (`ws://host:port/path`) or a
/// TCP service (`tcp://host:port`), each session over a connection of its own.
public struct SockwayUpstream: Sendable, Hashable, CustomStringConvertible {
    public enum Scheme: String, Sendable, Hashable {
        /// A WebSocket server (RFC 6455): messages keep their kind, text or binary.
        case webSocket = "ws"
        /// A byte stream cut into messages by a ``SockwayTCPFraming``.
        case tcp
    }

    public let scheme: Scheme
    /// The host name or address, IPv6 without brackets.
    public let host: String
    public let port: Int
    /// The request target of the WebSocket handshake (path and query, `/` at least); empty for TCP.
    public let target: String

    /// Parses `ws://host[:port][/path][?query]` (port 80 by default) or `tcp://host:port`.
    public init(_ url: String) throws(SockwayUpstreamError) {
        guard let schemeEnd = url.utf8.firstIndex(of: UInt8(ascii: ":")),
            url[schemeEnd...].hasPrefix("://")
        else { throw SockwayUpstreamError("\(url): not a URL (ws://host:port/path or tcp://host:port)") }
        let schemeName = url[..<schemeEnd].lowercased()
        switch schemeName {
        case "ws": scheme = .webSocket
        case "tcp": scheme = .tcp
        case "wss": throw SockwayUpstreamError("\(url): wss:// upstreams are not supported yet (use ws:// on a trusted network)")
        default: throw SockwayUpstreamError("\(url): unknown scheme \"\(schemeName)\" (ws:// or tcp://)")
        }
        let rest = url[url.index(schemeEnd, offsetBy: 3)...]
        let authorityEnd = rest.utf8.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var target = String(rest[authorityEnd...])
        if target.contains("#") { throw SockwayUpstreamError("\(url): a fragment has no meaning for an upstream") }
        if authority.contains("@") { throw SockwayUpstreamError("\(url): credentials in the URL are not supported") }
        var hostPart = Substring(authority)
        var portPart: Substring?
        if hostPart.hasPrefix("[") {
            guard let close = hostPart.firstIndex(of: "]") else { throw SockwayUpstreamError("\(url): unclosed [ in the host") }
            let after = hostPart[hostPart.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw SockwayUpstreamError("\(url): junk after the IPv6 address") }
                portPart = after.dropFirst()
            }
            hostPart = hostPart[hostPart.index(after: hostPart.startIndex)..<close]
        } else if let colon = hostPart.lastIndex(of: ":") {
            portPart = hostPart[hostPart.index(after: colon)...]
            hostPart = hostPart[..<colon]
        }
        guard !hostPart.isEmpty, hostPart.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw SockwayUpstreamError("\(url): no host, or a host with spaces or control characters")
        }
        if let portPart {
            guard let value = Int(portPart), (1...65535).contains(value) else { throw SockwayUpstreamError("\(url): port must be 1...65535") }
            port = value
        } else if scheme == .webSocket {
            port = 80
        } else {
            throw SockwayUpstreamError("\(url): tcp:// needs a port")
        }
        host = String(hostPart)
        switch scheme {
        case .webSocket:
            if target.isEmpty { target = "/" } else if target.hasPrefix("?") { target = "/" + target }
            guard target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw SockwayUpstreamError("\(url): the path must be ASCII without spaces (percent-encode the rest)")
            }
        case .tcp:
            guard target.isEmpty || target == "/" else { throw SockwayUpstreamError("\(url): tcp:// takes no path") }
            target = ""
        }
        self.target = target
    }

    /// The `Host` header of the WebSocket handshake.
    var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == 80 ? name : "\(name):\(port)"
    }

    public var description: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return "\(scheme.rawValue)://\(name):\(port)\(target)"
    }
}

/// An upstream URL that cannot be used, and why.
public struct SockwayUpstreamError: Error, Hashable, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
