import NIOCore
import NIOSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// TLS for `https://` and `wss://` URLs: one context per session, shared by its connections.
final class ClientTLS: Sendable, Hashable {
    let context: NIOSSLContext
    /// SNI and the name checked; `nil` for an IP address (checked against the certificate's IP SANs).
    let serverHostname: String?

    /// Trusts the certificates in `trustRootsFile`, else in `SSL_CERT_FILE` when set, else the system's.
    init(host: String, trustRootsFile: String?) throws {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let file = trustRootsFile ?? getenv("SSL_CERT_FILE").map({ String(cString: $0) }), !file.isEmpty {
            configuration.trustRoots = .file(file)
        }
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = ["http/1.1"]
        context = try NIOSSLContext(configuration: configuration)
        let isAddress = host.contains(":") || host.split(separator: ".").count == 4 && host.allSatisfy { $0.isNumber || $0 == "." }
        serverHostname = isAddress ? nil : host
    }

    /// The handler that goes first after the socket (after the traffic counter, which counts TLS bytes).
    func makeHandler() throws -> NIOSSLClientHandler {
        try NIOSSLClientHandler(context: context, serverHostname: serverHostname)
    }

    static func == (lhs: ClientTLS, rhs: ClientTLS) -> Bool { lhs === rhs }
    func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}
