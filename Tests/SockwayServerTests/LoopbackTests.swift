import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle
import SockwaySockJS
import Testing

@testable import SockwayServer

#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP client for loopback tests: plain bytes in and out, with a receive timeout.
final class LoopbackClient {
    private let fd: Int32
    private var buffer = [UInt8]()

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw LoopbackError.connectFailed }
    }

    deinit { Glibc.close(fd) }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    func request(_ method: String, _ path: String, body: String = "") {
        send("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
    }

    /// Reads until `done` holds for everything received so far (or the 5 s timeout), and consumes it.
    func read(until done: (String) -> Bool) -> String {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while !done(String(decoding: buffer, as: UTF8.self)) {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            buffer.append(contentsOf: chunk[0..<n])
        }
        defer { buffer.removeAll() }
        return String(decoding: buffer, as: UTF8.self)
    }

    /// Reads one complete (Content-Length or chunked-and-ended) response's body.
    func readBody() -> String {
        let text = readResponseText()
        guard let response = HTTPTestResponse(parsing: text) else { return text }
        return response.body
    }

    /// Reads one complete response's status.
    func readStatus() -> Int? {
        HTTPTestResponse(parsing: readResponseText())?.status
    }

    /// Whether nothing has arrived to be read (without waiting).
    func hasNothingToRead() -> Bool {
        var byte: UInt8 = 0
        return buffer.isEmpty && recv(fd, &byte, 1, Int32(MSG_DONTWAIT | MSG_PEEK)) < 0
    }

    private func readResponseText() -> String {
        read { text in
            guard let head = text.range(of: "\r\n\r\n") else { return false }
            if text.hasPrefix("HTTP/1.1 204") || text.hasPrefix("HTTP/1.1 304") { return true }
            if let length = text[..<head.lowerBound].lowercased().components(separatedBy: "\r\n")
                .first(where: { $0.hasPrefix("content-length:") })
                .flatMap({ Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) })
            {
                return text[head.upperBound...].utf8.count >= length
            }
            return text.hasSuffix("\r\n0\r\n\r\n")
        }
    }
}

enum LoopbackError: Error { case connectFailed }

/// Runs blocking socket work on a Dispatch thread, so that it never starves the cooperative pool that
/// the server's async sessions run on.
func blocking<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(returning: body()) }
    }
}

extension LoopbackClient: @unchecked Sendable {}

/// A real server on 127.0.0.1, port 0, run as a service for the duration of a test.
func withLoopbackServer(
    configuration: SockwayConfiguration = .init(host: "127.0.0.1", port: 0, eventLoopThreads: 2),
    endpoints: [SockwayEndpoint],
    _ body: @Sendable (SockwayServer, Int, ServiceGroup) async throws -> Void
) async throws {
    let server = SockwayServer(
        configuration: configuration,
        logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
        endpoints: endpoints
    )
    let group = ServiceGroup(
        configuration: .init(services: [server], logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    )
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        let port = try #require(await server.localAddress?.port)
        // Stop the server even when the body fails, or the test would wait for it forever.
        let result: Result<Void, any Error>
        do {
            try await body(server, port, group)
            result = .success(())
        } catch {
            result = .failure(error)
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        try result.get()
    }
}

@Suite struct LoopbackTests {
    // The async face: a task iterates the inbound messages and sends replies, over a real socket.
    @Test func asyncEndpointEchoes() async throws {
        let endpoint = SockwayEndpoint.async("/async") { session in
            for await message in session.messages {
                session.send("echo:" + message)
            }
        }
        try await withLoopbackServer(endpoints: [endpoint]) { _, port, _ in
            let poll = try LoopbackClient(port: port)
            let send = try LoopbackClient(port: port)
            poll.request("POST", "/async/000/a1/xhr")
            #expect(await blocking { poll.readBody() } == "o\n")
            send.request("POST", "/async/000/a1/xhr_send", body: #"["x","y"]"#)
            _ = await blocking { send.readBody() }
            var received: [String] = []
            while received.count < 2 {
                poll.request("POST", "/async/000/a1/xhr")
                let body = await blocking { poll.readBody() }
                let frame = try #require(body.hasPrefix("a") ? body : nil)
                received += try Array(frame.dropFirst().dropLast().utf8).withUnsafeBytes { try SockJSPayload.parseArray($0) }
            }
            #expect(received == ["echo:x", "echo:y"])
        }
    }

    // A session tells the application who opened it and how.
    @Test func sessionExposesTheOpeningRequest() async throws {
        let seen = NIOLockedValueBox<(id: String, transport: String, agent: String?, address: String?)?>(nil)
        let endpoint = SockwayEndpoint.eventLoop("/who") { session in
            seen.withLockedValue {
                $0 = (session.id, session.transport, session.headers.first(name: "user-agent"), session.remoteAddress?.ipAddress)
            }
            return EchoDelegate()
        }
        try await withLoopbackServer(endpoints: [endpoint]) { _, port, _ in
            let client = try LoopbackClient(port: port)
            client.send("POST /who/1/w1/xhr HTTP/1.1\r\nHost: x\r\nUser-Agent: probe/1\r\nContent-Length: 0\r\n\r\n")
            #expect(await blocking { client.readBody() } == "o\n")
        }
        let details = try #require(seen.withLockedValue { $0 })
        #expect(details.id == "w1")
        #expect(details.transport == "xhr-polling")
        #expect(details.agent == "probe/1")
        #expect(details.address == "127.0.0.1")
    }

    // On graceful shutdown every open session gets a close frame before the server stops.
    @Test func gracefulShutdownClosesSessions() async throws {
        try await withLoopbackServer(endpoints: SockwayDemoEndpoints.all()) { _, port, group in
            let stream = try LoopbackClient(port: port)
            stream.request("POST", "/echo/000/g1/xhr_streaming")
            _ = await blocking { stream.read { $0.contains("o\n") } }
            await group.triggerGracefulShutdown()
            let rest = await blocking { stream.read { $0.contains("c[") } }
            #expect(rest.contains(#"c[1001,"Server shutting down"]"#))
        }
    }

    // A drain window: new sessions and the health check are refused at once, and the open sessions
    // get their 1001 at moments spread over the window, not all together.
    @Test func aDrainClosesSessionsSpreadOverItsWindow() async throws {
        var configuration = SockwayConfiguration(host: "127.0.0.1", port: 0, eventLoopThreads: 2)
        configuration.drainWindow = .milliseconds(800)
        configuration.shutdownGracePeriod = .milliseconds(100)
        try await withLoopbackServer(configuration: configuration, endpoints: SockwayDemoEndpoints.all()) { _, port, group in
            var streams: [LoopbackClient] = []
            for index in 0..<12 {
                let stream = try LoopbackClient(port: port)
                stream.request("POST", "/echo/000/d\(index)/xhr_streaming")
                _ = await blocking { stream.read { $0.contains("o\n") } }
                streams.append(stream)
            }
            let started = ContinuousClock.now
            // A thread each: twelve blocking reads at once would wait in line for Dispatch's few threads.
            let readers = streams.map { stream in
                Task {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Duration?, Never>) in
                        Thread {
                            let rest = stream.read { $0.contains("c[") }
                            continuation.resume(returning: rest.contains(#"c[1001,"Server shutting down"]"#) ? ContinuousClock.now - started : nil)
                        }.start()
                    }
                }
            }
            await group.triggerGracefulShutdown()
            try await Task.sleep(for: .milliseconds(50))
            let health = try LoopbackClient(port: port)
            health.request("GET", "/healthz")
            let healthResponse = await blocking { health.read { $0.contains("}") } }
            #expect(healthResponse.hasPrefix("HTTP/1.1 503"))
            #expect(healthResponse.contains(#""status":"draining""#))
            let newcomer = try LoopbackClient(port: port)
            newcomer.request("POST", "/echo/000/late/xhr")
            #expect(await blocking { newcomer.read { $0.contains("\r\n\r\n") } }.hasPrefix("HTTP/1.1 503"))
            var closedAt: [Duration?] = []
            for reader in readers { closedAt.append(await reader.value) }
            let times = closedAt.compactMap { $0 }.sorted()
            #expect(times.count == 12)
            // Twelve uniform moments in 800 ms span less than 200 ms with a probability of about 1e-5.
            if let first = times.first, let last = times.last { #expect(last - first > .milliseconds(200)) }
        }
    }

    // Sends from another thread are batched into one hop and keep their order.
    @Test func offLoopSendsKeepOrder() async throws {
        let sessions = NIOLockedValueBox<[SockwaySession]>([])
        let endpoint = SockwayEndpoint.eventLoop("/push") { session in
            sessions.withLockedValue { $0.append(session) }
            return EchoDelegate()
        }
        try await withLoopbackServer(endpoints: [endpoint]) { _, port, _ in
            let stream = try LoopbackClient(port: port)
            stream.request("POST", "/push/000/p1/xhr_streaming")
            _ = await blocking { stream.read { $0.contains("o\n") } }
            // The open frame is flushed before the delegate factory runs, so the session may appear a moment
            // after the client has read "o".
            let session = try #require(await firstSession(in: sessions))
            await withTaskGroup(of: Void.self) { group in
                group.addTask { for index in 0..<200 { session.send(String(index)) } }
            }
            let text = await blocking { stream.read { $0.contains("\"199\"") } }
            var numbers: [Int] = []
            // Split on bytes: as Characters, "\r\n" is one grapheme and hides its "\n".
            for line in text.utf8.split(separator: UInt8(ascii: "\n")) where line.starts(with: "a[".utf8) {
                let messages = try Array(line.dropFirst()).withUnsafeBytes { try SockJSPayload.parseArray($0) }
                numbers += messages.compactMap(Int.init)
            }
            #expect(numbers == Array(0..<200))
        }
    }

    private func firstSession(in sessions: NIOLockedValueBox<[SockwaySession]>) async -> SockwaySession? {
        for _ in 0..<500 {
            if let session = sessions.withLockedValue({ $0.first }) { return session }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }
}
