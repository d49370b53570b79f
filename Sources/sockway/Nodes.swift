import ArgumentParser
import Logging
import ServiceLifecycle
import SockwayPostgres

/// `sockway nodes --cluster URL`: the cluster's live nodes and their sessions, from the registry.
struct Nodes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the live nodes of a cluster (name, address, sessions, last heartbeat) from its PostgreSQL registry."
    )

    @Option(name: .customLong("cluster"), help: ArgumentHelp("The cluster's PostgreSQL, as for serve --cluster.", valueName: "url"))
    var cluster: String

    @Flag(help: "One JSON object per node instead of a table.")
    var json = false

    func run() async throws {
        var configuration: PostgresBroadcastBus.Configuration
        do {
            configuration = try PostgresBroadcastBus.Configuration(url: cluster, nodeID: "sockway-nodes")
        } catch {
            throw ValidationError("--cluster: \(error)")
        }
        configuration.connection.options.connectTimeout = .seconds(5)
        let logger = Logger(label: "sockway.nodes", factory: { _ in SwiftLogNoOpLogHandler() })
        // Read-only: this query does not register the tool as a node.
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
