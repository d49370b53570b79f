import ArgumentParser
import Foundation
import SockwayBench

extension BenchTransport: ExpressibleByArgument {}
extension BenchScenario: ExpressibleByArgument {}

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure every transport side by side: latency, messages/s, bytes and requests per message, CPU.",
        discussion: """
            Without --target, starts `sockway serve` on a free loopback port and measures it. With --target, \
            measures any SockJS server on loopback that has an echo endpoint (--echo-path) and, for the push \
            scenario, an endpoint that broadcasts every message to all its sessions (--broadcast-path); \
            --server-pid lets the report include that server's CPU and memory. The engineio-polling and \
            engineio-websocket rows use the Engine.IO v4 echo endpoint (--engineio-path); a server without \
            one gets those rows listed as not measured. Engine.IO has no push row (no broadcast endpoint).
            """
    )

    @Option(help: "SockJS server root on loopback, e.g. http://127.0.0.1:8081 (default: start Sockway).")
    var target: String?

    @Option(name: .customLong("server-pid"), help: "PID of the --target server, for its CPU time and RSS.")
    var serverPID: Int32?

    @Option(name: .customLong("server-name"), help: "What the report calls the server.")
    var serverName: String?

    @Option(name: .customLong("server-cpus"), help: "Run the started server on these CPUs (taskset -c syntax, e.g. 0).")
    var serverCPUs: String?

    @Option(name: .customLong("server-threads"), help: "Event loop threads of the started server (default: one per core).")
    var serverThreads: Int?

    @Option(help: "Comma-separated transports (default: all nine, the SockJS ones and engineio-polling, engineio-websocket).")
    var transports: String?

    @Option(help: "Comma-separated scenarios: echo, push, throughput (default: all).")
    var scenarios: String?

    @Option(help: "Sessions per run.")
    var clients = 10

    @Option(help: "Messages per second per client in the echo scenario.")
    var rate = 50.0

    @Option(name: .customLong("throughput-start-rate"), help: "Messages per second per client in the first throughput step (each next step 4×).")
    var throughputStartRate = 1000.0

    @Option(name: .customLong("throughput-bisections"), help: "Throughput: bisections of the last 4× bracket (each halves it geometrically; 4 → within 9%).")
    var throughputBisections = 4

    @Option(name: .customLong("push-rate"), help: "Broadcasts per second in the push scenario.")
    var pushRate = 20.0

    @Option(name: .customLong("message-bytes"), help: "Message size in bytes.")
    var messageBytes = 64

    @Option(help: "Measured seconds per echo and push run.")
    var duration = 2.0

    @Option(name: .customLong("step-duration"), help: "Measured seconds per throughput step.")
    var stepDuration = 0.5

    @Option(name: .customLong("latency-limit"), help: "Throughput: p99 limit in milliseconds for a rate to count as sustained.")
    var latencyLimit = 100.0

    @Option(name: .customLong("echo-path"), help: "Echo endpoint prefix.")
    var echoPath = "/echo"

    @Option(name: .customLong("broadcast-path"), help: "Broadcast endpoint prefix (push).")
    var broadcastPath = "/chat"

    @Option(name: .customLong("engineio-path"), help: "Engine.IO v4 echo endpoint prefix (the engineio-* rows).")
    var engineIOPath = "/engine.io"

    @Flag(name: .customLong("browser-headers"), help: "Send the request headers a desktop Chrome sends (User-Agent, Accept, Origin, Referer, Sec-Fetch-*, …) on every request, to measure polling as browsers pay for it.")
    var browserHeaders = false

    @Option(name: .customLong("header"), help: "An extra request header, \"Name: value\" (repeatable).")
    var headers: [String] = []

    @Option(help: "Write the report as JSON to this file.")
    var json: String?

    @Option(help: "Write a self-contained HTML report with SVG charts to this file.")
    var html: String?

    func run() async throws {
        var options = BenchOptions()
        options.target = target.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        options.serverPID = serverPID
        options.serverName = serverName
        options.serverCPUs = serverCPUs
        options.serverThreads = serverThreads
        if let transports {
            options.transports = try transports.split(separator: ",").map { name in
                guard let transport = BenchTransport(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("unknown transport \(name); known: \(BenchTransport.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return transport
            }
        }
        if let scenarios {
            options.scenarios = try scenarios.split(separator: ",").map { name in
                guard let scenario = BenchScenario(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("unknown scenario \(name); known: echo, push, throughput")
                }
                return scenario
            }
        }
        guard clients > 0, clients <= 1000 else { throw ValidationError("--clients must be 1...1000") }
        guard rate > 0, pushRate > 0, duration > 0, duration <= 600, stepDuration > 0 else {
            throw ValidationError("rates and durations must be positive (duration at most 600 s)")
        }
        guard messageBytes >= 24, messageBytes <= 1 << 20 else { throw ValidationError("--message-bytes must be 24...1048576") }
        options.browserHeaders = browserHeaders
        options.requestHeaders = try parseHeaderOptions(headers)
        options.clients = clients
        options.rate = rate
        options.pushRate = pushRate
        options.messageBytes = messageBytes
        options.duration = duration
        options.stepDuration = stepDuration
        options.throughputStartRate = throughputStartRate
        options.throughputBisections = max(0, throughputBisections)
        options.latencyLimit = latencyLimit
        options.echoPath = echoPath
        options.broadcastPath = broadcastPath
        options.engineIOPath = engineIOPath.hasSuffix("/") ? String(engineIOPath.dropLast()) : engineIOPath

        let terminal = isatty(STDERR_FILENO) != 0
        let runner = BenchRunner(options: options) { line in
            // A progress line that rewrites itself on a terminal, one line per phase otherwise.
            let text = terminal ? "\r\u{1B}[K" + line : line + "\n"
            FileHandle.standardError.write(Data(text.utf8))
        }
        let started = Date()
        let report = try await runner.run()
        if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        print(report.table())
        print(String(format: "(%.0f s)", Date().timeIntervalSince(started)))
        if let json { try report.json().write(toFile: json, atomically: true, encoding: .utf8) }
        if let html { try report.html().write(toFile: html, atomically: true, encoding: .utf8) }
    }
}
