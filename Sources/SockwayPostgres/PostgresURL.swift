import NIOSSL
import PostgresNIO

/// `postgres://user[:password]@host[:port]/database[?sslmode=…]` as a connection configuration.
enum PostgresURL {
    static func parse(_ url: String) throws(PostgresClusterError) -> PostgresConnection.Configuration {
        var rest = Substring(url)
        guard let schemeEnd = rest.range(of: "://") else { throw .invalidURL("expected postgres://user@host/database") }
        let scheme = rest[..<schemeEnd.lowerBound]
        guard scheme == "postgres" || scheme == "postgresql" else { throw .invalidURL("the scheme must be postgres://") }
        rest = rest[schemeEnd.upperBound...]

        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var database: String?
        if let slash = rest.firstIndex(of: "/") {
            let name = rest[rest.index(after: slash)...]
            database = name.isEmpty ? nil : decode(name)
            rest = rest[..<slash]
        }
        guard let at = rest.lastIndex(of: "@") else { throw .invalidURL("a user name is needed: postgres://user@host/database") }
        let credentials = rest[..<at]
        let hostPort = rest[rest.index(after: at)...]
        let user: String
        var password: String?
        if let colon = credentials.firstIndex(of: ":") {
            user = decode(credentials[..<colon])
            password = decode(credentials[credentials.index(after: colon)...])
        } else {
            user = decode(credentials)
        }
        guard !user.isEmpty else { throw .invalidURL("a user name is needed: postgres://user@host/database") }

        var host = String(hostPort)
        var port = 5432
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw .invalidURL("unclosed [ in the host") }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") {
                guard let number = Int(after.dropFirst()), (1...65535).contains(number) else { throw .invalidURL("bad port") }
                port = number
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            guard let number = Int(hostPort[hostPort.index(after: colon)...]), (1...65535).contains(number) else {
                throw .invalidURL("bad port")
            }
            port = number
            host = String(hostPort[..<colon])
        }
        guard !host.isEmpty else { throw .invalidURL("a host is needed") }

        var sslMode = isLoopback(host) ? "disable" : "prefer"
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0] == "sslmode" { sslMode = String(parts[1]) }
        }
        let tls: PostgresConnection.Configuration.TLS
        do {
            switch sslMode {
            case "disable": tls = .disable
            case "prefer", "allow": tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            case "require", "verify-ca", "verify-full": tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            default: throw PostgresClusterError.invalidURL("sslmode must be disable, prefer or require")
            }
        } catch let error as PostgresClusterError {
            throw error
        } catch {
            throw .invalidURL("TLS: \(error)")
        }
        return PostgresConnection.Configuration(host: host, port: port, username: user, password: password, database: database, tls: tls)
    }

    private static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host.hasPrefix("127.") || host == "::1"
    }

    /// Percent-decoding, for passwords with reserved characters.
    private static func decode(_ text: Substring) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
               let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
