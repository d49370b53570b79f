import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PostgresNIO
import ServiceLifecycle
import SockwayClient
import SockwayCluster
import SockwayServer
import SockwayTestSupport
import Testing

@testable import SockwayPostgres

/// The PostgreSQL that scripts/test starts (scripts/postgres); these tests are skipped without it.
enum TestDatabase {
    static let url = ProcessInfo.processInfo.environment["SOCKWAY_POSTGRES_URL"]
    /// Its directory, for the tests that stop and start it.
    static let directory = ProcessInfo.processInfo.environment["SOCKWAY_POSTGRES_DIR"]
    static var available: Bool { url != nil }

    /// Runs scripts/postgres `command` on the test database (stop keeps its data; start reuses it).
    /// posix_spawn and waitpid rather than Foundation's Process, whose wait does not return here once
    /// the started postmaster (a grandchild that stays) has inherited its descriptors.
    static func control(_ command: String) throws {
        let script = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/postgres").path
        let line = "\(script) \(command) '\(try #require(directory))' >/dev/null 2>&1"
        var pid: pid_t = 0
        let arguments = ["/bin/sh", "-c", line]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let spawned = posix_spawn(&pid, "/bin/sh", nil, nil, &argv, environ)
        try #require(spawned == 0, "cannot start scripts/postgres")
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        try #require(status == 0, "scripts/postgres \(command) failed (\(status))")
    }
}

/// What one subscriber received, in order.
final class Received: Sendable {
    struct Entry: Sendable, Equatable {
        var text: String
        var position: BroadcastPosition?
        var origin: String
    }

    private let entries = NIOLockedValueBox<[Entry]>([])

    func record(_ delivery: BroadcastDelivery) {
        entries.withLockedValue {
            $0.append(Entry(text: String(buffer: delivery.payload.getSlice(at: delivery.payload.readerIndex + 2, length: delivery.payload.readableBytes - 2)!), position: delivery.position, origin: delivery.origin))
        }
    }

    var all: [Entry] { entries.withLockedValue { $0 } }
    var texts: [String] { all.map(\.text) }

    /// Waits until `count` entries came (or 20 s passed).
    func wait(for count: Int) async {
        for _ in 0..<2000 where entries.withLockedValue({ $0.count }) < count {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}

/// A publication's payload as the bus carries it: a version byte, a kind byte, then the text.
func publication(_ text: String) -> ByteBuffer {
    var buffer = ByteBuffer(bytes: [BroadcastWire.version, 9])
    buffer.writeString(text)
    return buffer
}

/// The ports `servers` listen on.
func listeningPorts(of servers: [SockwayServer]) async throws -> [Int] {
    var ports: [Int] = []
    for server in servers { ports.append(try #require(await server.localAddress?.port)) }
    return ports
}

/// Runs nodes (buses of one channel) for `body`, connected, and stops them after.
func withNodes(
    _ names: [String],
    configure: (inout PostgresBroadcastBus.Configuration) -> Void = { _ in },
    _ body: ([PostgresBroadcastBus]) async throws -> Void
) async throws {
    let url = try #require(TestDatabase.url)
    let channel = "test_" + UUID().uuidString.prefix(8).lowercased()
    // SOCKWAY_TEST_LOG=debug shows what the buses do.
    let level = ProcessInfo.processInfo.environment["SOCKWAY_TEST_LOG"].flatMap(Logger.Level.init(rawValue:))
    let logger = Logger(label: "test", factory: { label in
        guard let level else { return SwiftLogNoOpLogHandler() }
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    })
    let buses = try names.map { name in
        var configuration = try PostgresBroadcastBus.Configuration(url: url, nodeID: name)
        configuration.channel = channel
        configuration.checkInterval = .milliseconds(200)
        configuration.maxReconnectDelay = .milliseconds(500)
        configure(&configuration)
        return PostgresBroadcastBus(configuration: configuration, logger: logger)
    }
    try await withRunningServices(buses) {
        for bus in buses { await bus.waitUntilConnected() }
        try await body(buses)
    }
}

@Suite(.serialized, .enabled(if: TestDatabase.available, "needs SOCKWAY_POSTGRES_URL (scripts/test starts PostgreSQL)"))
struct PostgresBroadcastBusTests {
    private func uniqueStream() -> String { "stream-" + UUID().uuidString }

    // Three nodes publishing at once: every node delivers all 300 publications, in one and the same
    // order with dense offsets, each publisher's in the order it made them, none twice.
    @Test func publicationsOfEveryNodeReachEveryNodeInOneOrder() async throws {
        try await withNodes(["a", "b", "c"]) { nodes in
            let stream = uniqueStream()
            let received = nodes.map { _ in Received() }
            let subscriptions = zip(nodes, received).map { node, into in node.subscribe(to: stream) { into.record($0) } }
            try await Task.sleep(for: .milliseconds(300))  // the subscriptions' cursors start at the top
            await withTaskGroup(of: Void.self) { group in
                for node in nodes {
                    group.addTask {
                        for index in 0..<100 {
                            node.publish(publication("\(node.nodeID)-\(index)"), on: stream)
                            if index % 10 == 0 { try? await Task.sleep(for: .milliseconds(2)) }
                        }
                    }
                }
            }
            for into in received { await into.wait(for: 300) }
            let reference = received[0].all
            #expect(reference.count == 300)
            #expect(reference.map { $0.position?.offset } == (1...300).map { UInt64($0) })
            for other in received.dropFirst() { #expect(other.all == reference) }
            for node in nodes {
                let own = reference.filter { $0.origin == node.nodeID }.map(\.text)
                #expect(own == (0..<100).map { "\(node.nodeID)-\($0)" })
            }
            #expect(Set(reference.map(\.text)).count == 300)
            withExtendedLifetime(subscriptions) {}
        }
    }

    // A subscriber receives what is published after it subscribed, not the stream's older history.
    @Test func aNewSubscriberStartsFromNow() async throws {
        try await withNodes(["a", "b"]) { nodes in
            let stream = uniqueStream()
            for index in 0..<5 { nodes[0].publish(publication("old-\(index)"), on: stream) }
            try await Task.sleep(for: .milliseconds(500))
            let received = Received()
            let subscription = nodes[1].subscribe(to: stream) { received.record($0) }
            try await Task.sleep(for: .milliseconds(500))
            nodes[0].publish(publication("new"), on: stream)
            await received.wait(for: 1)
            try await Task.sleep(for: .milliseconds(300))
            #expect(received.texts == ["new"])
            #expect(received.all.first?.position?.offset == 6)
            withExtendedLifetime(subscription) {}
        }
    }

    // The outbox keeps at most `retainedPerStream` rows of a stream.
    @Test func theOutboxKeepsABoundedNumberOfRowsPerStream() async throws {
        try await withNodes(["a"], configure: { $0.retainedPerStream = 5 }) { nodes in
            let stream = uniqueStream()
            let received = Received()
            let subscription = nodes[0].subscribe(to: stream) { received.record($0) }
            try await Task.sleep(for: .milliseconds(300))
            for index in 0..<20 { nodes[0].publish(publication("\(index)"), on: stream) }
            await received.wait(for: 20)
            #expect(received.texts == (0..<20).map { "\($0)" })
            let count = try await rowCount(of: stream)
            #expect(count == 5)
            withExtendedLifetime(subscription) {}
        }
    }

    // A notification or a row written by a newer release is ignored (and counted); what comes
    // after it is delivered as usual.
    @Test func whatANewerReleaseWroteIsIgnored() async throws {
        try await withNodes(["a"]) { nodes in
            let node = nodes[0]
            let stream = uniqueStream()
            let received = Received()
            let subscription = node.subscribe(to: stream) { received.record($0) }
            try await Task.sleep(for: .milliseconds(300))
            try await withConnection { connection in
                let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
                let channel = node.configuration.channel
                try await connection.query("SELECT pg_notify(\(channel), \("9 abc 7 future " + stream))", logger: logger)
                let future = ByteBuffer(bytes: [BroadcastWire.version + 1, 1, 2, 3])
                try await connection.query(
                    "SELECT * FROM sockway_publish(\(stream), 'future', \([future]), 100, \(channel))",
                    logger: logger
                )
            }
            node.publish(publication("after"), on: stream)
            await received.wait(for: 1)
            try await Task.sleep(for: .milliseconds(300))
            #expect(received.texts == ["after"])
            #expect(node.statistics.ignoredNewerVersion == 2)
            withExtendedLifetime(subscription) {}
        }
    }

    // PostgreSQL stops for a while: each node goes on delivering its own publications at once, and
    // once the database is back every node has every publication exactly once (its own from the
    // time it made them, the others' from the outbox).
    @Test func nodesCutOffFromPostgreSQLGoOnLocallyAndCatchUpAfter() async throws {
        try #require(TestDatabase.directory != nil)
        try await withNodes(["a", "b"]) { nodes in
            let stream = uniqueStream()
            let received = nodes.map { _ in Received() }
            let subscriptions = zip(nodes, received).map { node, into in node.subscribe(to: stream) { into.record($0) } }
            try await Task.sleep(for: .milliseconds(300))
            for node in nodes { node.publish(publication("\(node.nodeID)-before"), on: stream) }
            for into in received { await into.wait(for: 2) }

            try TestDatabase.control("stop")
            for index in 0..<5 {
                for node in nodes { node.publish(publication("\(node.nodeID)-away-\(index)"), on: stream) }
            }
            // Each node has its own five at once, without positions.
            for (node, into) in zip(nodes, received) {
                await into.wait(for: 7)
                let own = into.all.filter { $0.text.hasPrefix("\(node.nodeID)-away") }
                #expect(own.count == 5)
                #expect(own.allSatisfy { $0.position == nil })
            }
            try TestDatabase.control("start")
            for node in nodes { await node.waitUntilConnected() }
            for into in received { await into.wait(for: 12) }
            try await Task.sleep(for: .milliseconds(500))
            for (node, into) in zip(nodes, received) {
                let texts = into.texts
                #expect(texts.count == 12, "\(node.nodeID): \(texts)")
                #expect(Set(texts).count == texts.count)
                for origin in ["a", "b"] {
                    #expect(texts.filter { $0.hasPrefix("\(origin)-away") } == (0..<5).map { "\(origin)-away-\($0)" })
                }
                #expect(node.statistics.deliveredLocallyOnly == 5)
                #expect(node.statistics.connections >= 2)
            }
            withExtendedLifetime(subscriptions) {}
        }
    }

    // The registry: each node's row (address, session count) refreshed by its heartbeat, readable from
    // any node and by a tool; a node that leaves is gone from it at once.
    @Test func theRegistryListsTheLiveNodesWithTheirSessions() async throws {
        let prefix = "reg-" + UUID().uuidString.prefix(8).lowercased()
        try await withNodes(["\(prefix)-1", "\(prefix)-2"], configure: {
            $0.heartbeatInterval = .milliseconds(200)
            $0.checkInterval = .milliseconds(100)
            $0.advertisedAddress = "http://127.0.0.1:1/" + $0.nodeID
        }) { nodes in
            nodes[0].reportSessions { 3 }
            nodes[1].reportSessions { 5 }
            try await Task.sleep(for: .milliseconds(600))
            let seen = try await nodes[1].nodes().filter { $0.id.hasPrefix(prefix) }
            #expect(seen.map(\.id) == ["\(prefix)-1", "\(prefix)-2"])
            #expect(seen.map(\.sessions) == [3, 5])
            #expect(seen.first?.address == "http://127.0.0.1:1/\(prefix)-1")
            #expect(seen.allSatisfy { $0.heartbeatAge < .seconds(1) && $0.wireVersion == Int(BroadcastWire.version) })
            let configuration = nodes[0].configuration
            let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
            let fromTool = try await PostgresBroadcastBus.liveNodes(configuration, logger: logger).filter { $0.id.hasPrefix(prefix) }
            #expect(fromTool.map(\.sessions) == [3, 5])
        }
        let configuration = try PostgresBroadcastBus.Configuration(url: try #require(TestDatabase.url), nodeID: "tool")
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let after = try await PostgresBroadcastBus.liveNodes(configuration, logger: logger).filter { $0.id.hasPrefix(prefix) }
        #expect(after.isEmpty)
    }

    // Unreachable at start-up: the check fails with the connection error.
    @Test func theStartUpCheckFailsWhenPostgreSQLCannotBeReached() async throws {
        let refusing = try RefusingPort()
        var configuration = try PostgresBroadcastBus.Configuration(url: "postgres://nobody@127.0.0.1:\(refusing.port)/none", nodeID: "a")
        configuration.connection.options.connectTimeout = .seconds(2)
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        await #expect(throws: (any Error).self) { try await PostgresBroadcastBus.check(configuration, logger: logger) }
        withExtendedLifetime(refusing) {}
    }

    private func rowCount(of stream: String) async throws -> Int {
        try await withConnection { connection in
            let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
            let rows = try await connection.query("SELECT count(*) FROM sockway_publications WHERE stream = \(stream)", logger: logger)
            var count = 0
            for try await (value) in rows.decode(Int.self) { count = value }
            return count
        }
    }

    private func withConnection<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let configuration = try PostgresBroadcastBus.Configuration(url: try #require(TestDatabase.url), nodeID: "test")
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let connection = try await PostgresConnection.connect(configuration: configuration.connection, id: 99, logger: logger)
        do {
            let result = try await body(connection)
            try await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }
}

/// Configuration checks that need no database.
@Suite struct PostgresConfigurationTests {
    @Test func urlsAreReadWithTheirDefaults() throws {
        let configuration = try PostgresBroadcastBus.Configuration(url: "postgres://user:p%40ss@127.0.0.1:6543/db", nodeID: "node-1")
        #expect(configuration.connection.host == "127.0.0.1")
        #expect(configuration.connection.port == 6543)
        #expect(configuration.connection.username == "user")
        #expect(configuration.connection.password == "p@ss")
        #expect(configuration.connection.database == "db")
        let plain = try PostgresBroadcastBus.Configuration(url: "postgresql://me@localhost/x", nodeID: "n")
        #expect(plain.connection.port == 5432)
    }

    @Test func badURLsAndNodeIDsAreRefused() {
        for url in ["http://u@h/d", "postgres://h/d", "postgres://u@h:99999/d", "postgres://u@/d", "postgres://u@h/d?sslmode=sometimes"] {
            #expect(throws: PostgresClusterError.self) { try PostgresBroadcastBus.Configuration(url: url, nodeID: "n") }
        }
        for id in ["", "has space", String(repeating: "x", count: 65), "é"] {
            #expect(throws: PostgresClusterError.invalidNodeID(id)) { try PostgresBroadcastBus.Configuration(url: "postgres://u@h/d", nodeID: id) }
        }
    }

    @Test func notificationsAreReadAndNewerVersionsTold() {
        #expect(OutboxNotification("1 e1 42 node-a sio:/socket.io#/ chat") == .wake(epoch: "e1", top: 42, origin: "node-a", stream: "sio:/socket.io#/ chat"))
        #expect(OutboxNotification("2 e1 42 node-a s") == .newerVersion(2))
        #expect(OutboxNotification("1 e1 x node-a s") == .unreadable)
        #expect(OutboxNotification("garbage") == .unreadable)
    }
}

/// Two `SockwayServer`s, each a node with its own bus: the demo `/chat` room spans both.
@Suite(.serialized, .enabled(if: TestDatabase.available, "needs SOCKWAY_POSTGRES_URL (scripts/test starts PostgreSQL)"))
struct ClusteredServerTests {
    @Test func aChatRoomSpansTwoNodesOverWebSocketAndPolling() async throws {
        try await withNodes(["one", "two"]) { buses in
            let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
            let servers = buses.map { bus in
                SockwayServer(
                    configuration: .init(host: "127.0.0.1", port: 0, eventLoopThreads: 1),
                    logger: logger,
                    endpoints: SockwayDemoEndpoints.all(bus: bus)
                )
            }
            try await withRunningServices(servers) {
                let ports = try await listeningPorts(of: servers)
                try await Task.sleep(for: .milliseconds(300))  // the rooms' subscriptions start at the top
                let first = try await SockwayClient.connect(
                    to: "http://127.0.0.1:\(ports[0])/chat",
                    configuration: .init(transports: [.webSocket])
                )
                let second = try await SockwayClient.connect(
                    to: "http://127.0.0.1:\(ports[1])/chat",
                    configuration: .init(transports: [.xhrPolling])
                )
                first.send("from one")
                second.send("from two")
                for session in [first, second] {
                    var iterator = session.messages.makeAsyncIterator()
                    var received: [String] = []
                    while received.count < 2, let next = await iterator.next() { received.append(next) }
                    #expect(Set(received) == ["from one", "from two"])
                }
                first.close()
                second.close()
            }
        }
    }
}
