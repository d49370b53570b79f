import Dispatch
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// TLS for the listener: `https://` and `wss://` on the server's one port.
///
/// The certificate chain and the private key are PEM files, read at start and again by
/// ``SockwayServer/reloadTLS()`` (or on `SIGHUP` with ``reloadOnSIGHUP``). A reload applies to
/// connections accepted after it; open connections keep the certificate they were accepted with.
/// TLS 1.2 or later, ALPN `http/1.1`.
public struct SockwayTLSConfiguration: Sendable {
    /// PEM file with the server certificate first, then any intermediates.
    public var certificateChainFile: String
    /// PEM file with the certificate's private key.
    public var privateKeyFile: String
    /// Re-read both files when the process gets `SIGHUP`, while the server runs. The signal is then
    /// the server's: use it with one TLS server per process. Default `false`.
    public var reloadOnSIGHUP: Bool

    /// TLS from PEM files; they are read when the server starts (and on each reload).
    public init(certificateChainFile: String, privateKeyFile: String, reloadOnSIGHUP: Bool = false) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
        self.reloadOnSIGHUP = reloadOnSIGHUP
    }

    /// A server context from the files as they are now; throws if either cannot be read or parsed.
    func makeContext() throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMFile(certificateChainFile)
        guard !chain.isEmpty else { throw SockwayTLSError.noCertificate(file: certificateChainFile) }
        let key = try NIOSSLPrivateKey(file: privateKeyFile, format: .pem)
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(key)
        )
        tls.minimumTLSVersion = .tlsv12
        tls.applicationProtocols = ["http/1.1"]
        return try NIOSSLContext(configuration: tls)
    }
}

/// Why TLS could not be set up.
public enum SockwayTLSError: Error, CustomStringConvertible {
    /// The certificate file holds no PEM certificate.
    case noCertificate(file: String)
    /// ``SockwayServer/reloadTLS()`` on a server configured without TLS.
    case notConfigured

    public var description: String {
        switch self {
        case .noCertificate(let file): "no PEM certificate in \(file)"
        case .notConfigured: "the server was configured without TLS"
        }
    }
}

/// The context new connections get: read by the child channel initializer once per connection,
/// replaced whole by a reload (connections keep the context they were accepted with).
final class TLSContextBox: Sendable {
    let configuration: SockwayTLSConfiguration
    private let context = NIOLockedValueBox<NIOSSLContext?>(nil)

    init(configuration: SockwayTLSConfiguration) {
        self.configuration = configuration
    }

    /// The current context, loading it first if there is none yet.
    func current() throws -> NIOSSLContext {
        if let context = context.withLockedValue({ $0 }) { return context }
        try reload()
        return try current()
    }

    /// Reads the files into a new context and swaps it in; on failure the old one stays.
    func reload() throws {
        let fresh = try configuration.makeContext()
        context.withLockedValue { $0 = fresh }
    }
}

/// `SIGHUP` as a trigger for a reload, on a Dispatch queue (off every event loop).
final class SIGHUPReloader {
    private let source: any DispatchSourceSignal

    init(action: @escaping @Sendable () -> Void) {
        // The default action of SIGHUP ends the process: ignore it so that only the source sees it.
        signal(SIGHUP, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: DispatchQueue(label: "sockway.sighup"))
        source.setEventHandler(handler: action)
        source.resume()
    }

    func cancel() {
        source.cancel()
    }
}

extension SockwayServer {
    /// Re-reads the TLS certificate chain and private key (``SockwayConfiguration/tls``) and uses
    /// them for connections accepted from now on; open connections and their sessions are kept.
    /// If the files cannot be read or do not make a valid context, this throws and the current
    /// certificate stays in use.
    public func reloadTLS() throws {
        guard let tlsContext else { throw SockwayTLSError.notConfigured }
        do {
            try tlsContext.reload()
            logger.info("TLS certificate reloaded", metadata: ["certificate": "\(tlsContext.configuration.certificateChainFile)"])
        } catch {
            logger.error("TLS reload failed; keeping the current certificate", metadata: ["error": "\(error)"])
            throw error
        }
    }
}
