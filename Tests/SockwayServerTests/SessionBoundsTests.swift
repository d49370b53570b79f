import NIOCore
import NIOHTTP1
import SockwaySockJS
import Testing

@testable import SockwayServer

private func boundedServer(maxSessions: Int? = 100_000, perAddress: Int? = 1_000, options: SockwayEndpointOptions = .init()) -> InMemoryServer {
    InMemoryServer(
        endpoints: SockwayDemoEndpoints.all(options: options),
        configuration: .init(maxSessions: maxSessions, maxSessionsPerAddress: perAddress)
    )
}

@Suite("Server-wide session bounds")
struct SessionBudgetTests {
    @Test("past the per-address bound a new session gets 503 with Retry-After; other addresses and open sessions go on")
    func perAddressBound() throws {
        let server = boundedServer(perAddress: 3)
        let connection = try server.connect(from: "10.0.0.1")
        for index in 0..<3 {
            try connection.request("POST", "/echo/000/a\(index)/xhr")
            #expect(try connection.readResponse().body == "o\n")
        }
        try connection.request("POST", "/echo/000/a3/xhr")
        let refused = try connection.readResponse()
        #expect(refused.status == 503)
        #expect(refused.header("Retry-After") == "5")
        #expect(connection.isActive, "a refusal keeps the connection")

        // An open session of that address is still served.
        try connection.request("POST", "/echo/000/a0/xhr_send", body: "[\"still\"]")
        #expect(try connection.readResponse().status == 204)
        try connection.request("POST", "/echo/000/a0/xhr")
        #expect(try connection.readResponse().body == "a[\"still\"]\n")

        let other = try server.connect(from: "10.0.0.2")
        try other.request("POST", "/echo/000/b0/xhr")
        #expect(try other.readResponse().body == "o\n")
        #expect(server.runtime.refusals.totals["address_session_limit"] == 1)
    }

    @Test("the places of reaped sessions are given back")
    func placesComeBack() throws {
        let server = boundedServer(perAddress: 2)
        let connection = try server.connect()
        for index in 0..<2 {
            try connection.request("POST", "/echo/000/r\(index)/xhr")
            _ = try connection.readResponse()
        }
        try connection.request("POST", "/echo/000/r2/xhr")
        #expect(try connection.readResponse().status == 503)
        server.advance(by: .seconds(5))
        #expect(server.runtime.budget.sessions == 0)
        try connection.request("POST", "/echo/000/r2/xhr")
        #expect(try connection.readResponse().body == "o\n")
    }

    @Test("the server-wide bound counts every endpoint and address; WebSocket sessions past it close with 1013")
    func serverWideBound() throws {
        let server = boundedServer(maxSessions: 2, perAddress: nil)
        let first = try server.connect(from: "10.0.0.1")
        try first.request("POST", "/echo/000/s0/xhr")
        _ = try first.readResponse()
        let second = try server.connect(from: "10.0.0.2")
        _ = try second.upgrade("/echo/websocket")
        let third = try server.connect(from: "10.0.0.3")
        try third.request("POST", "/close/000/s1/xhr")
        #expect(try third.readResponse().status == 503)
        let socket = try server.connect(from: "10.0.0.4")
        _ = try socket.upgrade("/echo/websocket")
        #expect(try socket.readFrames().first?.closeCode == 1013)
        #expect(server.runtime.refusals.totals["session_limit"] == 2)
    }

    @Test("an Engine.IO handshake past a bound gets 503 with Retry-After")
    func engineIOHandshakeBound() throws {
        let server = InMemoryServer(
            endpoints: SockwayDemoEndpoints.all(options: .init()),
            configuration: .init(maxSessions: 1)
        )
        let connection = try server.connect()
        try connection.request("GET", "/engine.io/?EIO=4&transport=polling")
        #expect(try connection.readResponse().status == 200)
        try connection.request("GET", "/engine.io/?EIO=4&transport=polling")
        let refused = try connection.readResponse()
        #expect(refused.status == 503)
        #expect(refused.header("Retry-After") == "5")
    }

    @Test("past the server-wide queued-bytes bound, new sessions get 503 and a session holding messages closes with 1013")
    func queuedBytesBound() throws {
        let server = InMemoryServer(
            endpoints: SockwayDemoEndpoints.all(options: .init()),
            configuration: .init(maxTotalQueuedBytes: 1000)
        )
        let slow = try server.connect()
        try slow.request("POST", "/chat/000/slow/xhr")
        #expect(try slow.readResponse().body == "o\n")
        let talker = try server.connect(from: "10.0.0.8")
        _ = try talker.upgrade("/chat/websocket")
        try talker.sendFrame(opcode: 0x1, Array(String(repeating: "x", count: 2000).utf8))
        #expect(server.runtime.budget.queued.bytes > 1000, "the broadcast waits in the slow session's outbox")

        let newcomer = try server.connect(from: "10.0.0.9")
        try newcomer.request("POST", "/echo/000/new/xhr")
        #expect(try newcomer.readResponse().status == 503)

        // More for the session that holds messages: it closes; the talker's own copy went straight out.
        try talker.sendFrame(opcode: 0x1, Array("more".utf8))
        #expect(try talker.readFrames().filter { $0.opcode == 0x1 }.map(\.text).last == "more")
        try slow.request("POST", "/chat/000/slow/xhr")
        #expect(try slow.readResponse().body.hasPrefix("a[\"xxx"), "what was queued before is still delivered")
        try slow.request("POST", "/chat/000/slow/xhr")
        #expect(try slow.readResponse().body == "c[1013,\"Server queues full\"]\n")
        #expect(server.runtime.budget.queued.bytes == 0)

        try newcomer.request("POST", "/echo/000/new/xhr")
        #expect(try newcomer.readResponse().body == "o\n")
    }

    @Test("IPv6 clients are counted by their /64; IPv4-mapped addresses as their IPv4 client")
    func addressKeys() throws {
        let a = try SessionBudget.key(for: SocketAddress(ipAddress: "2001:db8:1:2::1", port: 1))
        let b = try SessionBudget.key(for: SocketAddress(ipAddress: "2001:db8:1:2:ffff::9", port: 1))
        let c = try SessionBudget.key(for: SocketAddress(ipAddress: "2001:db8:1:3::1", port: 1))
        #expect(a == b)
        #expect(a != c)
        let mapped = try SessionBudget.key(for: SocketAddress(ipAddress: "::ffff:10.1.2.3", port: 1))
        #expect(mapped == (try SessionBudget.key(for: SocketAddress(ipAddress: "10.1.2.3", port: 1))))
        #expect(try SessionBudget.key(for: SocketAddress(ipAddress: "::1", port: 1)) != SessionBudget.key(for: SocketAddress(ipAddress: "0.0.0.0", port: 1)))
    }
}

@Suite("Sessions bound to their owner")
struct SessionBindingTests {
    @Test("with JSESSIONID on, a request for a session with another cookie is 404, as for an unknown one")
    func cookieBinding() throws {
        let server = boundedServer()
        let owner = try server.connect()
        try owner.request("POST", "/cookie_needed_echo/000/c1/xhr", headers: [("Cookie", "JSESSIONID=owner")])
        #expect(try owner.readResponse().body == "o\n")

        let stranger = try server.connect()
        try stranger.request("POST", "/cookie_needed_echo/000/c1/xhr_send", body: "[\"x\"]", headers: [("Cookie", "JSESSIONID=other")])
        #expect(try stranger.readResponse().status == 404)
        try stranger.request("POST", "/cookie_needed_echo/000/c1/xhr", headers: [("Cookie", "JSESSIONID=other")])
        #expect(try stranger.readResponse().status == 404)
        try stranger.request("POST", "/cookie_needed_echo/000/c1/xhr")
        #expect(try stranger.readResponse().status == 404)

        try owner.request("POST", "/cookie_needed_echo/000/c1/xhr_send", body: "[\"mine\"]", headers: [("Cookie", "JSESSIONID=owner")])
        #expect(try owner.readResponse().status == 204)
        try owner.request("POST", "/cookie_needed_echo/000/c1/xhr", headers: [("Cookie", "JSESSIONID=owner")])
        #expect(try owner.readResponse().body == "a[\"mine\"]\n")
        #expect(server.runtime.refusals.totals["session_owner_mismatch"] == 3)
    }

    @Test("without JSESSIONID the id alone opens the session (SockJS's bearer-token model)")
    func noBindingByDefault() throws {
        let server = boundedServer()
        let owner = try server.connect(from: "10.0.0.1")
        try owner.request("POST", "/echo/000/n1/xhr")
        _ = try owner.readResponse()
        let other = try server.connect(from: "10.0.0.2")
        try other.request("POST", "/echo/000/n1/xhr_send", body: "[\"x\"]", headers: [("Cookie", "JSESSIONID=other")])
        #expect(try other.readResponse().status == 204)
    }

    @Test("bound to the client address, a request from another address is 404")
    func addressBinding() throws {
        let server = boundedServer(options: .init(sessionBinding: .clientAddress))
        let owner = try server.connect(from: "10.0.0.1")
        try owner.request("POST", "/echo/000/ad/xhr")
        _ = try owner.readResponse()
        let other = try server.connect(from: "10.0.0.2")
        try other.request("POST", "/echo/000/ad/xhr_send", body: "[\"x\"]")
        #expect(try other.readResponse().status == 404)
        let again = try server.connect(from: "10.0.0.1")
        try again.request("POST", "/echo/000/ad/xhr_send", body: "[\"x\"]")
        #expect(try again.readResponse().status == 204)
    }
}

@Suite("Origins over the wire")
struct OriginPipelineTests {
    @Test("with an allow-list, WebSocket upgrades and the iframe page from a foreign origin get 403")
    func foreignOriginRefused() throws {
        let server = boundedServer(options: .init(allowedOrigins: ["https://app.example"]))
        for path in ["/echo/websocket", "/echo/000/ws/websocket"] {
            let connection = try server.connect()
            let head = try connection.upgrade(path, headers: [("Origin", "https://evil.example")])
            #expect(head.hasPrefix("HTTP/1.1 403"), "\(path): \(head)")
        }
        let page = try server.connect()
        try page.request("GET", "/echo/iframe.html", headers: [("Origin", "null")])
        #expect(try page.readResponse().status == 403)
        let listed = try server.connect()
        let head = try listed.upgrade("/echo/websocket", headers: [("Origin", "https://app.example")])
        #expect(head.hasPrefix("HTTP/1.1 101"))
    }
}
