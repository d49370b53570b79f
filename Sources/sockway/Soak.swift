import ArgumentParser
import Foundation
import SockwayBench
import SockwayClient

struct Soak: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Soak a SockJS server: thousands of numbered-message sessions on every transport; counts loss, duplicates, reorders.",
        discussion: """
            The client half of scripts/soak, which also starts the server, runs sockjs-client in Node beside this, \
            watches the server's memory and descriptors, and judges. Against --target's echo endpoint (--echo-path) \
            and broadcast endpoint (--chat-path).
            """
    )

    @Option(help: "SockJS server root on loopback, e.g. http://127.0.0.1:8080.")
    var target: String

    @Option(help: "Seconds of load; then every session drains and closes.")
    var duration = 60.0

    @Option(help: "Concurrent echo sessions per transport.")
    var sessions = 100

    @Option(name: .customLong("chat-members"), help: "Chat members per transport (they stay for the whole run).")
    var chatMembers = 3

    @Option(help: "Comma-separated transports (default: all six).")
    var transports: String?

    @Option(name: .customLong("echo-path"), help: "Path of the echo endpoint.")
    var echoPath = "/echo"

    @Option(name: .customLong("chat-path"), help: "Path of the endpoint that broadcasts every message to all its sessions.")
    var chatPath = "/chat"

    @Option(help: "Write the rows as JSON to this file.")
    var json: String?

    func run() async throws {
        var options = SoakRunner.Options(target: target)
        options.duration = duration
        options.sessionsPerTransport = sessions
        options.chatMembersPerTransport = chatMembers
        options.echoPath = echoPath
        options.chatPath = chatPath
        if let transports {
            options.transports = try transports.split(separator: ",").map { name in
                guard let transport = SockwayClientTransport(rawValue: String(name)) else {
                    throw ValidationError("unknown transport \(name); known: \(SockwayClientTransport.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return transport
            }
        }
        let report = await SoakRunner(options: options).run { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        for row in report.rows {
            print(
                "\(row.client) \(row.transport): sessions \(row.sessions), open failures \(row.openFailures), closed by server \(row.closedByServer), aborted \(row.aborted); sent \(row.sent), delivered \(row.delivered), lost \(row.lost), duplicated \(row.duplicated), reordered \(row.reordered), altered \(row.altered)"
            )
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        }
    }
}
