import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import SockwayCluster
import SockwayServer
import SockwayTestSupport
import Testing

@testable import SockwayPostgres

/// What the outbox gives a client that comes back: the history after a position, and the records of
/// sessions to resume, on any node.
/// Returns once what `bus` was asked to write before is written: a session write waits for the
/// worker's next turn (a node resuming a session elsewhere reads only what is written), and a request to
/// the worker is handled after it.
func written(by bus: PostgresBroadcastBus) async {
    _ = await bus.history(of: "nothing", after: BroadcastPosition(epoch: "none", offset: 0), limit: 1)
}

@Suite(.serialized, .enabled(if: TestDatabase.available, "needs SOCKWAY_POSTGRES_URL (scripts/test starts PostgreSQL)"))
struct PostgresRecoveryTests {
    private func texts(_ history: BroadcastHistory) -> [String]? {
        guard case .publications(let deliveries) = history else { return nil }
        return deliveries.map { String(buffer: $0.payload.getSlice(at: $0.payload.readerIndex + 2, length: $0.payload.readableBytes - 2)!) }
    }

    // Every publication after a position, from any node; nothing when none follows; unavailable for
    // another epoch, a position past the top, more than the limit, or rows trimmed away.
    @Test func theHistoryAfterAPositionIsWholeOrUnavailable() async throws {
        try await withNodes(["a", "b"], configure: { $0.retainedPerStream = 6 }) { nodes in
            let stream = "history-" + UUID().uuidString
            let received = Received()
            let subscription = nodes[1].subscribe(to: stream) { received.record($0) }
            try await Task.sleep(for: .milliseconds(300))
            for index in 1...4 { nodes[0].publish(publication("p\(index)"), on: stream) }
            await received.wait(for: 4)
            let epoch = try #require(received.all.first?.position?.epoch)
            let history = await nodes[1].history(of: stream, after: BroadcastPosition(epoch: epoch, offset: 1), limit: 100)
            #expect(texts(history) == ["p2", "p3", "p4"])
            if case .publications(let deliveries) = history {
                #expect(deliveries.map { $0.position?.offset } == [2, 3, 4])
                #expect(deliveries.allSatisfy { $0.origin == "a" })
            }
            #expect(texts(await nodes[0].history(of: stream, after: BroadcastPosition(epoch: epoch, offset: 4), limit: 100)) == [])
            #expect(texts(await nodes[0].history(of: stream, after: BroadcastPosition(epoch: "other", offset: 1), limit: 100)) == nil)
            #expect(texts(await nodes[0].history(of: stream, after: BroadcastPosition(epoch: epoch, offset: 9), limit: 100)) == nil)
            #expect(texts(await nodes[0].history(of: stream, after: BroadcastPosition(epoch: epoch, offset: 0), limit: 3)) == nil)
            // 10 published, 6 kept (5…10): after 4 is whole, after 3 is not.
            for index in 5...10 { nodes[0].publish(publication("p\(index)"), on: stream) }
            await received.wait(for: 10)
            #expect(texts(await nodes[1].history(of: stream, after: BroadcastPosition(epoch: epoch, offset: 4), limit: 100)) == (5...10).map { "p\($0)" })
            #expect(texts(await nodes[1].history(of: stream, after: BroadcastPosition(epoch: epoch, offset: 3), limit: 100)) == nil)
            withExtendedLifetime(subscription) {}
        }
    }

    // A parked record is taken once, by any node; a forgotten one, or one past its window, never.
    @Test func aParkedSessionIsTakenOnceByAnyNode() async throws {
        try await withNodes(["a", "b"]) { nodes in
            let key = "pid-" + UUID().uuidString
            nodes[0].keepSession(ByteBuffer(string: "state"), key: key, window: .seconds(30))
            // Open on a live node: not to be taken.
            #expect(await nodes[1].takeSession(key: key) == nil)
            nodes[0].parkSession(key: key)
            await written(by: nodes[0])
            #expect(await nodes[1].takeSession(key: key) == ByteBuffer(string: "state"))
            #expect(await nodes[0].takeSession(key: key) == nil)

            let forgotten = "pid-" + UUID().uuidString
            nodes[0].keepSession(ByteBuffer(string: "state"), key: forgotten, window: .seconds(30))
            nodes[0].parkSession(key: forgotten)
            nodes[0].forgetSession(key: forgotten)
            await written(by: nodes[0])
            #expect(await nodes[1].takeSession(key: forgotten) == nil)

            let brief = "pid-" + UUID().uuidString
            nodes[0].keepSession(ByteBuffer(string: "state"), key: brief, window: .milliseconds(200))
            nodes[0].parkSession(key: brief)
            await written(by: nodes[0])
            try await Task.sleep(for: .milliseconds(400))
            #expect(await nodes[1].takeSession(key: brief) == nil)
        }
    }

    // A node that stops without parking its sessions (as a killed one would): they can be taken
    // once its connection to PostgreSQL is gone, within their window of its last sign of life.
    @Test func theOpenSessionsOfAGoneNodeCanBeTaken() async throws {
        let key = "pid-" + UUID().uuidString
        let stale = "pid-" + UUID().uuidString
        try await withNodes(["survivor"]) { survivors in
            try await withNodes(["doomed"]) { doomed in
                doomed[0].keepSession(ByteBuffer(string: "open"), key: key, window: .seconds(30))
                doomed[0].keepSession(ByteBuffer(string: "old"), key: stale, window: .milliseconds(300))
                await written(by: doomed[0])
                #expect(await survivors[0].takeSession(key: key) == nil)
            }
            try await Task.sleep(for: .milliseconds(500))
            #expect(await survivors[0].takeSession(key: key) == ByteBuffer(string: "open"))
            #expect(await survivors[0].takeSession(key: stale) == nil)
        }
    }
}

/// Socket.IO's connection state recovery across two nodes sharing PostgreSQL.
@Suite(.serialized, .enabled(if: TestDatabase.available, "needs SOCKWAY_POSTGRES_URL (scripts/test starts PostgreSQL)"))
struct ClusteredRecoveryTests {
    // A client that lost its connection to node one comes back on node two with its socket id and
    // room, and gets the room messages sent (from either node) while it was away, once, in order.
    @Test func aClientRecoversOnAnotherNode() async throws {
        try await withNodes(["one", "two"]) { buses in
            let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
            let servers = buses.map { bus in
                SockwayServer(
                    configuration: .init(host: "127.0.0.1", port: 0, eventLoopThreads: 1),
                    logger: logger,
                    endpoints: SockwayDemoEndpoints.all(socketIORecovery: SocketIORecovery(), bus: bus)
                )
            }
            try await withRunningServices(servers) {
                let ports = try await listeningPorts(of: servers)
                try await Task.sleep(for: .milliseconds(300))
                let room = "room-" + UUID().uuidString.prefix(8)
                let senders = try await [SocketIOTestClient(port: ports[0]), SocketIOTestClient(port: ports[1])]
                for sender in senders {
                    sender.send("40")
                    await sender.waitFor(1)
                }
                let first = try await SocketIOTestClient(port: ports[0])
                first.send("40")
                let reply = try #require(await first.waitFor(1).first.flatMap(SocketIOTestClient.connectReply))
                first.send(#"421["join","\#(room)"]"#)
                await first.waitUntil { $0.contains(#"431["\#(room)"]"#) }
                senders[1].send(#"42["to-room","\#(room)","m1"]"#)
                let seen = await first.waitUntil { $0.contains { $0.hasPrefix(#"42["room-message","m1","#) } }
                let offset = try #require(seen.last.flatMap(SocketIOTestClient.event)?.last as? String)
                first.send(#"42["disconnect-me"]"#)
                for _ in 0..<300 where first.session.closeReason == nil { try await Task.sleep(for: .milliseconds(10)) }
                try await Task.sleep(for: .milliseconds(200))
                senders[0].send(#"42["to-room","\#(room)","m2"]"#)
                senders[1].send(#"42["to-room","\#(room)","m3"]"#)
                try await Task.sleep(for: .milliseconds(300))

                let second = try await SocketIOTestClient(port: ports[1])
                second.send(#"40{"pid":"\#(reply.pid ?? "")","offset":"\#(offset)"}"#)
                let back = try #require(await second.waitFor(1).first.flatMap(SocketIOTestClient.connectReply))
                #expect(back.sid == reply.sid)
                #expect(back.pid == reply.pid)
                func roomTexts() -> [String] {
                    second.packets.compactMap { packet in
                        guard let event = SocketIOTestClient.event(packet), event.first as? String == "room-message" else { return nil }
                        return event[1] as? String
                    }
                }
                await second.waitUntil { _ in roomTexts().count >= 2 }
                senders[0].send(#"42["to-room","\#(room)","m4"]"#)
                await second.waitUntil { _ in roomTexts().count >= 3 }
                try await Task.sleep(for: .milliseconds(300))
                #expect(Set(roomTexts().prefix(2)) == ["m2", "m3"])
                #expect(roomTexts().count == 3 && roomTexts().last == "m4")
                for client in senders + [second] { client.close() }
            }
        }
    }
}

/// Cluster-wide queries: room sizes from every node's reports, and an emit to one socket from any node.
@Suite(.serialized, .enabled(if: TestDatabase.available, "needs SOCKWAY_POSTGRES_URL (scripts/test starts PostgreSQL)"))
struct ClusterQueryTests {
    @Test func roomSizesAddUpOverTheNodesAndASocketIsReachedFromAnyNode() async throws {
        try await withNodes(["one", "two"], configure: { $0.heartbeatInterval = .milliseconds(200) }) { buses in
            let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
            let ios = buses.map { SockwayDemoEndpoints.socketIO(bus: $0) }
            let servers = ios.map { io in
                SockwayServer(configuration: .init(host: "127.0.0.1", port: 0, eventLoopThreads: 1), logger: logger, endpoints: [io.endpoint])
            }
            try await withRunningServices(servers) {
                let ports = try await listeningPorts(of: servers)
                try await Task.sleep(for: .milliseconds(300))
                let room = "sizes-" + UUID().uuidString.prefix(8)
                var clients: [SocketIOTestClient] = []
                var ids: [String] = []
                for (index, port) in [ports[0], ports[0], ports[0], ports[1], ports[1]].enumerated() {
                    let client = try await SocketIOTestClient(port: port)
                    client.send("40")
                    let reply = try #require(await client.waitFor(1).first.flatMap(SocketIOTestClient.connectReply))
                    ids.append(reply.sid)
                    if index < 4 {
                        client.send(#"421["join","\#(room)"]"#)
                        await client.waitUntil { $0.contains(#"431["\#(room)"]"#) }
                    }
                    clients.append(client)
                }
                var counts: (sockets: Int, rooms: [String: Int]) = (0, [:])
                for _ in 0..<50 {
                    counts = try await ios[1].sockets.counts()
                    if counts.rooms[room] == 4 && counts.sockets >= 5 { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(counts.rooms[room] == 4)
                #expect(counts.sockets >= 5)
                #expect(counts.rooms.keys.allSatisfy { !ids.contains($0) })
                // From node two to a socket of node one, by its id.
                ios[1].sockets.to(ids[0]).emit("direct", ["hello"])
                let got = await clients[0].waitUntil { $0.contains(#"42["direct","hello"]"#) }
                #expect(got.contains(#"42["direct","hello"]"#))
                #expect(!clients[1].packets.contains(#"42["direct","hello"]"#))
                for client in clients { client.close() }
            }
        }
    }
}

/// `SockwayServer.send(_:toSession:at:)` from any node of the cluster.
@Suite(.serialized, .enabled(if: TestDatabase.available, "needs SOCKWAY_POSTGRES_URL (scripts/test starts PostgreSQL)"))
struct ClusterDirectSendTests {
    @Test func aSockJSSessionIsReachedFromAnotherNode() async throws {
        try await withNodes(["one", "two"]) { buses in
            let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
            let servers = buses.map { bus in
                var configuration = SockwayConfiguration(host: "127.0.0.1", port: 0, eventLoopThreads: 1)
                configuration.bus = bus
                return SockwayServer(configuration: configuration, logger: logger, endpoints: SockwayDemoEndpoints.all(bus: bus))
            }
            try await withRunningServices(servers) {
                let port = try #require(await servers[0].localAddress?.port)
                try await Task.sleep(for: .milliseconds(300))
                let id = "direct" + UUID().uuidString.prefix(8).lowercased()
                let poll = "POST /echo/000/\(id)/xhr HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                // (Chunked bodies: the frames are checked inside them.)
                #expect(try RawConnection.exchange(port: port, poll).contains("\r\no\n"))
                servers[1].send(["from two", "\"quoted\""], toSession: id, at: "/echo")
                servers[1].send(["nobody"], toSession: "no-such-session", at: "/echo")
                var answer = ""
                for _ in 0..<20 where !answer.contains("a[") {
                    answer = try RawConnection.exchange(port: port, poll)
                }
                #expect(answer.contains("\r\n" + #"a["from two","\"quoted\""]"# + "\n"))
                #expect(!answer.contains("nobody"))
            }
        }
    }
}
