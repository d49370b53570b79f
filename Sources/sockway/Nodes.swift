import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SockwayPostgres

/// `sockway nodes --cluster URL`: the cluster's live nodes and their sessions, from the registry.
struct Nodes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the live nodes of a cluster (name, address, sessions, last heartbeat) from its PostgreSQL registry; with --rooms, its rooms and their members."
    )

    @Option(name: .customLong("cluster"), help: ArgumentHelp("The cluster's PostgreSQL, as for serve --cluster.", valueName: "url"))
    var cluster: String

    @Flag(help: "One JSON object per node (or room) instead of a table.")
    var json = false

    @Flag(help: "The rooms of every stream (Socket.IO namespace, SockJS group) and their members on the live nodes, as of the nodes' last heartbeats; room * is the whole namespace or group.")
    var rooms = false

    private struct RoomRow: Encodable {
        var stream: String
        var room: String
        var members: Int
    }

    func run() async throws {
        var configuration: PostgresBroadcastBus.Configuration
        do {
            configuration = try PostgresBroadcastBus.Configuration(url: cluster, nodeID: "sockway-nodes")
        } catch {
            throw ValidationError("--cluster: \(error)")
        }
        configuration.connection.options.connectTimeout = .seconds(5)
        let logger = Logger(label: "sockway.nodes", factory: { _ in SwiftLogNoOpLogHandler() })
        // Read-only: these queries do not register the tool as a node.
        if rooms {
            let listed = try await PostgresBroadcastBus.liveMembers(configuration, logger: logger)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                for room in listed {
                    let row = RoomRow(stream: room.stream, room: room.room.isEmpty ? "*" : room.room, members: room.members)
                    print(String(decoding: try encoder.encode(row), as: UTF8.self))
                }
                return
            }
            print("stream\troom\tmembers")
            for room in listed {
                print("\(room.stream)\t\(room.room.isEmpty ? "*" : room.room)\t\(room.members)")
            }
            return
        }
        let nodes = try await PostgresBroadcastBus.liveNodes(configuration, logger: logger)
        if json {
            for node in nodes {
                let address = node.address.map { "\"\($0)\"" } ?? "null"
                print("{\"node\":\"\(node.id)\",\"address\":\(address),\"sessions\":\(node.sessions),\"wire_version\":\(node.wireVersion),\"heartbeat_age_ms\":\(node.heartbeatAge.components.seconds * 1000 + node.heartbeatAge.components.attoseconds / 1_000_000_000_000_000)}")
            }
            return
        }
        print("node\taddress\tsessions\theartbeat")
        for node in nodes {
            print("\(node.id)\t\(node.address ?? "-")\t\(node.sessions)\t\(node.heartbeatAge.formatted(.units(allowed: [.seconds, .milliseconds], width: .narrow))) ago")
        }
        print("\(nodes.count) node(s), \(nodes.reduce(0) { $0 + $1.sessions }) session(s)")
    }
}
