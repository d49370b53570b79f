import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Testing

@testable import SockwayServer

/// Where Debian's openssl is, if it is installed: the tests make their certificates with it.
private let opensslPath: String? = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/bin/openssl"].first {
    FileManager.default.isExecutableFile(atPath: $0)
}

/// A temporary directory with self-signed certificates for 127.0.0.1, made by openssl.
private struct CertificateDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("sockway-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// Writes `name.pem` and `name.key`: a P-256 self-signed certificate with subjectAltName IP:127.0.0.1.
    func make(_ name: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(opensslPath))
        process.arguments = [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=\(name)", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", path("\(name).key"), "-out", path("\(name).pem"),
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "openssl req failed")
    }

    /// Copies `name`'s certificate and key over the files the server reads.
    func install(_ name: String) throws {
        for ext in ["pem", "key"] {
            let target = path("server.\(ext)")
            try? FileManager.default.removeItem(atPath: target)
            try FileManager.default.copyItem(atPath: path("\(name).\(ext)"), toPath: target)
        }
    }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// One HTTPS connection: requests written whole, responses read with their Content-Length.
private struct HTTPSConnection {
    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>

    /// Connects to 127.0.0.1:`port`, trusting only the certificate in `trusting` (fully verified,
    /// the IP address included).
    static func connect(port: Int, trusting certificateFile: String, group: any EventLoopGroup) async throws -> HTTPSConnection {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificateFile))
        tls.applicationProtocols = ["http/1.1"]
        let context = try NIOSSLContext(configuration: tls)
        let channel = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
        return HTTPSConnection(channel: channel)
    }

    /// The certificate the server presented (after the first exchange).
    var peerCertificate: NIOSSLCertificate? {
        get async throws { try await channel.channel.nioSSL_peerCertificate().get() }
    }

    /// Sends a GET and reads one response: (status line, body).
    func get(_ path: String, inbound: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws -> (status: String, body: String) {
        try await outbound.write(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
        var received = ""
        while true {
            if let headEnd = received.range(of: "\r\n\r\n") {
                let head = received[..<headEnd.lowerBound]
                let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                let body = received[headEnd.upperBound...]
                if body.utf8.count >= length {
                    return (String(head.split(separator: "\r\n")[0]), String(body))
                }
            }
            guard let chunk = try await inbound.next() else { throw HTTPSTestError.closed(received) }
            received += String(buffer: chunk)
        }
    }
}

private enum HTTPSTestError: Error { case closed(String) }

@Suite(.enabled(if: opensslPath != nil, "openssl is not installed: the TLS tests make their certificates with it (apt-get install openssl)"))
struct TLSTests {
    private let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    private func withTLSServer(
        _ certificates: CertificateDirectory,
        _ body: @Sendable (SockwayServer, Int) async throws -> Void
    ) async throws {
        let tls = SockwayTLSConfiguration(certificateChainFile: certificates.path("server.pem"), privateKeyFile: certificates.path("server.key"))
        try await withLoopbackServer(
            configuration: .init(host: "127.0.0.1", port: 0, eventLoopThreads: 1, tls: tls),
            endpoints: SockwayDemoEndpoints.all()
        ) { server, port, _ in
            try await body(server, port)
        }
    }

    // https on the server's port; a reload serves the new certificate to new connections while an
    // open one keeps its session (and its certificate); a broken reload keeps the current one.
    @Test func httpsAndReload() async throws {
        let certificates = try CertificateDirectory()
        defer { certificates.remove() }
        try certificates.make("first")
        try certificates.make("second")
        try certificates.install("first")
        let first = try NIOSSLCertificate.fromPEMFile(certificates.path("first.pem"))[0]
        let second = try NIOSSLCertificate.fromPEMFile(certificates.path("second.pem"))[0]
        let clients = MultiThreadedEventLoopGroup.singleton

        try await withTLSServer(certificates) { server, port in
            let old = try await HTTPSConnection.connect(port: port, trusting: certificates.path("first.pem"), group: clients)
            try await old.channel.executeThenClose { oldInbound, oldOutbound in
                var oldIterator = oldInbound.makeAsyncIterator()
                let info = try await old.get("/echo/info", inbound: &oldIterator, outbound: oldOutbound)
                #expect(info.status == "HTTP/1.1 200 OK")
                #expect(info.body.contains(#""websocket":true"#))
                let oldCertificate = try await old.peerCertificate
                #expect(oldCertificate == first)
                let version = try await old.channel.channel.nioSSL_tlsVersion().get()
                #expect(version == .tlsv12 || version == .tlsv13)

                // Broken files: the reload throws and the first certificate stays.
                try "not a certificate".write(toFile: certificates.path("server.pem"), atomically: true, encoding: .utf8)
                #expect(throws: (any Error).self) { try server.reloadTLS() }
                let still = try await HTTPSConnection.connect(port: port, trusting: certificates.path("first.pem"), group: clients)
                try await still.channel.executeThenClose { inbound, outbound in
                    var iterator = inbound.makeAsyncIterator()
                    let response = try await still.get("/echo/info", inbound: &iterator, outbound: outbound)
                    #expect(response.status == "HTTP/1.1 200 OK")
                    let certificate = try await still.peerCertificate
                    #expect(certificate == first)
                }

                // The new certificate: new connections see it.
                try certificates.install("second")
                try server.reloadTLS()
                let fresh = try await HTTPSConnection.connect(port: port, trusting: certificates.path("second.pem"), group: clients)
                try await fresh.channel.executeThenClose { inbound, outbound in
                    var iterator = inbound.makeAsyncIterator()
                    let response = try await fresh.get("/echo/info", inbound: &iterator, outbound: outbound)
                    #expect(response.status == "HTTP/1.1 200 OK")
                    let certificate = try await fresh.peerCertificate
                    #expect(certificate == second)
                }

                // The connection opened before the reload still works, with the first certificate.
                let again = try await old.get("/healthz", inbound: &oldIterator, outbound: oldOutbound)
                #expect(again.status == "HTTP/1.1 200 OK")
                #expect(again.body.contains(#""status":"ok""#))
                let stillFirst = try await old.peerCertificate
                #expect(stillFirst == first)
            }
        }
    }

    // A client that trusts the old certificate only is refused after a reload.
    @Test func oldCertificateIsGoneForNewConnections() async throws {
        let certificates = try CertificateDirectory()
        defer { certificates.remove() }
        try certificates.make("first")
        try certificates.make("second")
        try certificates.install("first")
        let clients = MultiThreadedEventLoopGroup.singleton
        try await withTLSServer(certificates) { server, port in
            try certificates.install("second")
            try server.reloadTLS()
            let stale = try await HTTPSConnection.connect(port: port, trusting: certificates.path("first.pem"), group: clients)
            await #expect(throws: (any Error).self) {
                try await stale.channel.executeThenClose { inbound, outbound in
                    var iterator = inbound.makeAsyncIterator()
                    _ = try await stale.get("/echo/info", inbound: &iterator, outbound: outbound)
                }
            }
        }
    }

    // A server whose certificate cannot be read does not start; one without TLS cannot reload.
    @Test func unreadableCertificateStopsTheStart() async throws {
        let tls = SockwayTLSConfiguration(certificateChainFile: "/nonexistent/cert.pem", privateKeyFile: "/nonexistent/key.pem")
        let server = SockwayServer(configuration: .init(host: "127.0.0.1", port: 0, eventLoopThreads: 1, tls: tls), logger: logger, endpoints: [])
        await #expect(throws: (any Error).self) { try await server.run() }
        #expect(await server.localAddress == nil)
        let plain = SockwayServer(configuration: .init(host: "127.0.0.1", port: 0, eventLoopThreads: 1), logger: logger, endpoints: [])
        #expect(throws: SockwayTLSError.self) { try plain.reloadTLS() }
    }
}
