import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle
import SockwayCluster
import SockwayServer
import SockwayTestSupport
import Testing

/// A directory filled in by the test once the servers listen.
private final class TestDirectory: ClusterDirectory {
    let addresses = NIOLockedValueBox<[String: String]>([:])
    func address(of node: String) -> String? { addresses.withLockedValue { $0[node] } }
}

/// Nodes `a` and `b` (demo endpoints, one process each as far as they know), their directory.
private func withTwoNodes(_ body: @Sendable (_ a: Int, _ b: Int, _ directory: TestDirectory) async throws -> Void) async throws {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    let directory = TestDirectory()
    let servers = ["a", "b"].map { name in
        var configuration = SockwayConfiguration(host: "127.0.0.1", port: 0, eventLoopThreads: 1)
        configuration.nodeID = name
        configuration.directory = directory
        return SockwayServer(configuration: configuration, logger: logger, endpoints: SockwayDemoEndpoints.all())
    }
    try await withRunningServices(servers) {
        let a = try #require(await servers[0].localAddress?.port)
        let b = try #require(await servers[1].localAddress?.port)
        directory.addresses.withLockedValue { $0 = ["a": "http://127.0.0.1:\(a)", "b": "http://127.0.0.1:\(b)"] }
        try await body(a, b, directory)
    }
}

/// An Engine.IO long-polling handshake at `port`: the session id.
private func handshake(port: Int) throws -> String {
    let response = try RawConnection.exchange(port: port, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    let sid = try #require(response.split(separator: "\"sid\":\"").dropFirst().first?.prefix { $0 != "\"" })
    return String(sid)
}

/// Behind a load balancer without stickiness: a request that reaches the wrong node is forwarded to the
/// node its Engine.IO session id names, one hop at most.
@Suite struct ForwardingTests {
    // Polling: a POST and a GET of a's session sent to b are answered by a, through b.
    @Test func pollsOfAnotherNodesSessionAreForwarded() async throws {
        try await withTwoNodes { a, b, _ in
            let sid = try handshake(port: a)
            #expect(sid.hasPrefix("a~"))
            let post = try RawConnection.exchange(
                port: b,
                "POST /socket.io/?EIO=4&transport=polling&sid=\(sid) HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n40"
            )
            #expect(post.hasPrefix("HTTP/1.1 200") && post.hasSuffix("ok"))
            let poll = try RawConnection.exchange(port: b, "GET /socket.io/?EIO=4&transport=polling&sid=\(sid) HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(poll.hasPrefix("HTTP/1.1 200"))
            #expect(poll.contains(#"40{"sid":""#))
            #expect(poll.lowercased().contains("connection: close"))
        }
    }

    // WebSocket: the upgrade of a's session sent to b becomes a WebSocket to a, both ways.
    @Test func anUpgradeToAnotherNodesSessionIsForwarded() async throws {
        try await withTwoNodes { a, b, _ in
            let sid = try handshake(port: a)
            let connection = try RawConnection(port: b)
            connection.write(
                "GET /socket.io/?EIO=4&transport=websocket&sid=\(sid) HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                    + "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            let head = connection.read { String(decoding: $0, as: UTF8.self).contains("\r\n\r\n") }
            #expect(String(decoding: head, as: UTF8.self).hasPrefix("HTTP/1.1 101"))
            connection.write(RawConnection.clientTextFrame("2probe"))
            let frame = connection.read { $0.count >= 8 }
            #expect(frame == [0x81, 6] + Array("3probe".utf8))
        }
    }

    // One hop: a request already forwarded is not forwarded again; an owner that cannot be reached,
    // or a node the directory does not know, gets the unknown-session answer.
    @Test func aForwardedRequestIsNeverForwardedAgain() async throws {
        try await withTwoNodes { a, b, directory in
            let sid = try handshake(port: a)
            let again = try RawConnection.exchange(
                port: b,
                "GET /socket.io/?EIO=4&transport=polling&sid=\(sid) HTTP/1.1\r\nHost: x\r\nSockway-Forwarded: c\r\nConnection: close\r\n\r\n"
            )
            #expect(again.hasPrefix("HTTP/1.1 400") && again.contains("Session ID unknown"))
            let refusing = try RefusingPort()
            directory.addresses.withLockedValue { $0["c"] = "http://127.0.0.1:\(refusing.port)" }
            for node in ["c", "d"] {
                let gone = try RawConnection.exchange(
                    port: b,
                    "GET /socket.io/?EIO=4&transport=polling&sid=\(node)~xyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
                #expect(gone.hasPrefix("HTTP/1.1 400") && gone.contains("Session ID unknown"), "\(node)")
            }
            withExtendedLifetime(refusing) {}
        }
    }
}
