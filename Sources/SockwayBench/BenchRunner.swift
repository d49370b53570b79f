import Foundation
import Histogram
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SockwayClient
import SockwaySockJS

/// What `sockway bench` runs.
public struct BenchOptions: Sendable {
    /// The SockJS service root (`http://127.0.0.1:PORT`); `nil` starts a Sockway server for the run.
    public var target: String?
    /// The server's PID, for its CPU and memory (known when the bench starts the server).
    public var serverPID: Int32?
    /// What the report calls the server.
    public var serverName: String?
    /// The `sockway` executable that serves when no target is given (default: this process's own).
    public var serverExecutable: String?
    /// CPUs the started server may run on (`taskset -c` syntax, e.g. `0`); `nil` for any.
    public var serverCPUs: String?
    /// Event loop threads of the started server; `nil` for its default (one per core).
    public var serverThreads: Int?
    public var transports: [BenchTransport] = BenchTransport.allCases
    public var scenarios: [BenchScenario] = BenchScenario.allCases
    /// Sessions per run.
    public var clients = 10
    /// Messages per second each client sends (echo).
    public var rate = 50.0
    /// Messages per second each client sends in the first throughput step; each next step sends 4×.
    public var throughputStartRate = 1000.0
    /// Throughput: bisections of the bracket between the last passing and the first failing step.
    public var throughputBisections = 4
    /// Broadcasts per second (push).
    public var pushRate = 20.0
    /// Bytes per message (a timestamp, then padding).
    public var messageBytes = 64
    /// Measured seconds per echo and push run.
    public var duration = 2.0
    /// Seconds before the measured window.
    public var warmup = 0.5
    /// Throughput: a step passes while its p99 stays under this (milliseconds) and 95% of messages arrive.
    public var latencyLimit = 100.0
    /// Throughput: measured seconds per step.
    public var stepDuration = 0.5
    public var echoPath = "/echo"
    public var broadcastPath = "/chat"
    /// The Engine.IO echo endpoint (the `engineio-*` rows; every message echoed).
    public var engineIOPath = "/engine.io"
    /// Send a desktop browser's request headers (``browserHeaders(origin:)``) on every request.
    public var browserHeaders = false
    /// Extra headers on every request (after the browser's, when both are on).
    public var requestHeaders: [(String, String)] = []
    /// Where the bench's client sessions run; `nil` for one event loop per CPU this process may use.
    public var eventLoopGroup: (any EventLoopGroup)?

    public init() {}

    /// What Chrome 131 on Linux sends with a cross-document `fetch`/XHR to `origin`, minus `Connection`
    /// and cookies. A WebSocket handshake gets them too (browsers send most of them there as well).
    public static func browserHeaders(origin: String) -> [(String, String)] {
        [
            ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
            ("sec-ch-ua", #""Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24""#),
            ("sec-ch-ua-mobile", "?0"),
            ("sec-ch-ua-platform", #""Linux""#),
            ("Accept", "*/*"),
            ("Origin", origin),
            ("Sec-Fetch-Site", "same-origin"),
            ("Sec-Fetch-Mode", "cors"),
            ("Sec-Fetch-Dest", "empty"),
            ("Referer", origin + "/"),
            ("Accept-Encoding", "gzip, deflate, br, zstd"),
            ("Accept-Language", "en-US,en;q=0.9"),
        ]
    }

    /// The headers every request of the run carries.
    var extraHeaders: [(String, String)] {
        guard browserHeaders, let target else { return requestHeaders }
        // The page's origin: scheme, host and port of the service.
        let rest = target.drop { $0 != "/" }.drop { $0 == "/" }
        let authority = rest.prefix { $0 != "/" }
        return Self.browserHeaders(origin: "http://" + authority) + requestHeaders
    }
}

/// Runs the scenarios against each transport and gathers a ``BenchReport``.
public struct BenchRunner: Sendable {
    public let options: BenchOptions
    private let progress: @Sendable (String) -> Void

    public init(options: BenchOptions, progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.options = options
        self.progress = progress
    }

    public func run() async throws -> BenchReport {
        var options = self.options
        var server: Process?
        if options.target == nil {
            let (process, url) = try await Self.startServer(executable: options.serverExecutable, cpus: options.serverCPUs, threads: options.serverThreads)
            server = process
            options.target = url
            options.serverPID = process.processIdentifier
            options.serverName = options.serverName ?? "Sockway (started by the bench)"
        }
        defer {
            if let server {
                server.terminate()
                server.waitUntilExit()
            }
        }
        let target = options.target!
        try Self.requireLoopback(target)
        var ownGroup: MultiThreadedEventLoopGroup?
        if options.eventLoopGroup == nil {
            // One loop per CPU the bench may use (a `taskset` counts), not per core of the machine.
            let group = MultiThreadedEventLoopGroup(numberOfThreads: ProcessStats.usableCPUs())
            ownGroup = group
            options.eventLoopGroup = group
        }

        var report = BenchReport(
            date: ISO8601DateFormatter().string(from: Date()),
            target: target,
            server: options.serverName ?? target,
            machine: Self.machineDescription(),
            clients: options.clients,
            rate: options.rate,
            messageBytes: options.messageBytes,
            duration: options.duration
        )
        if options.browserHeaders || !options.requestHeaders.isEmpty {
            let parts = (options.browserHeaders ? ["browser (Chrome 131 on Linux)"] : []) + (options.requestHeaders.isEmpty ? [] : ["\(options.requestHeaders.count) extra"])
            report.requestHeaders = parts.joined(separator: " + ")
        }
        let run = Run(options: options, progress: progress)
        var skipped: [String] = []
        do {
            for transport in options.transports {
                for scenario in options.scenarios {
                    if transport.isEngineIO, scenario == .push {
                        // The push scenario's publisher and room are a SockJS broadcast endpoint.
                        skipped.append("push · \(transport.rawValue): no Engine.IO broadcast endpoint to push through")
                        continue
                    }
                    do {
                        report.results.append(try await run.measure(transport, scenario))
                    } catch BenchError.noSessions(let failed, let reason) where failed.isEngineIO {
                        // A SockJS server without Engine.IO: the SockJS rows still count.
                        let note = "\(transport.rawValue): no Engine.IO session at \(options.target!)\(options.engineIOPath)/ (\(reason))"
                        progress(note)
                        skipped.append(note)
                        break
                    }
                }
            }
        } catch {
            try? await ownGroup?.shutdownGracefully()
            throw error
        }
        try? await ownGroup?.shutdownGracefully()
        if !skipped.isEmpty { report.skipped = skipped }
        return report
    }

    /// Loads go to loopback only.
    static func requireLoopback(_ url: String) throws {
        let rest = url.drop { $0 != "/" }.drop { $0 == "/" }
        let host = rest.prefix { $0 != "/" && $0 != ":" }
        let bracketed = rest.hasPrefix("[::1]")
        guard bracketed || host == "127.0.0.1" || host == "localhost" || host.hasPrefix("127.") else {
            throw BenchError.notLoopback(url)
        }
    }

    static func machineDescription() -> String {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return "\(ProcessInfo.processInfo.activeProcessorCount) cores, Linux \(release)"
    }

    /// Starts `sockway serve` on a free loopback port; returns once it accepts connections.
    static func startServer(executable: String?, cpus: String?, threads: Int?) async throws -> (Process, String) {
        let port = try freePort()
        let process = Process()
        // Resolved now: under taskset, /proc/self/exe would name taskset.
        let binary = executable ?? (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        // Every bench client comes from 127.0.0.1: the per-address session bound is for the internet.
        var arguments = ["serve", "--host", "127.0.0.1", "--port", String(port), "--max-sessions-per-address", "0"]
        if let threads { arguments += ["--threads", String(threads)] }
        if let cpus {
            // taskset execs the server, so the PID is the server's.
            process.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
            process.arguments = ["-c", cpus, binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
        }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<200 {
            if canConnect(port: port) { return (process, "http://127.0.0.1:\(port)") }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.terminate()
        throw BenchError.serverDidNotStart
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw BenchError.serverDidNotStart }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

public enum BenchError: Error, CustomStringConvertible {
    case notLoopback(String)
    case serverDidNotStart
    case noSessions(BenchTransport, String)

    public var description: String {
        switch self {
        case .notLoopback(let url): "\(url): the bench loads loopback addresses only (127.0.0.1, localhost, [::1])"
        case .serverDidNotStart: "the Sockway server did not start"
        case .noSessions(let transport, let reason): "\(transport.rawValue): no session opened (\(reason))"
        }
    }
}

/// Latency of messages whose intended send time fell in a window.
struct Window: Sendable {
    var start: NIODeadline
    var end: NIODeadline

    func contains(_ time: NIODeadline) -> Bool { time >= start && time < end }
    var seconds: Double { Double((end - start).nanoseconds) / 1e9 }
}

/// A message: its intended send time (uptime nanoseconds), then padding to the message size.
enum BenchMessage {
    static let endMarker = "end"

    /// Built in place, one allocation: the load generator makes hundreds of thousands a second.
    static func make(intended: NIODeadline, bytes: Int) -> String {
        withDigits(of: intended) { digits in
            String(unsafeUninitializedCapacity: max(bytes, digits.count + 1)) { out in
                fill(UnsafeMutableRawBufferPointer(out), digits: digits)
            }
        }
    }

    /// Appends the message to `batch` without making a `String` of it.
    static func append(intended: NIODeadline, bytes: Int, to batch: inout SockwayOutgoingBatch) {
        withDigits(of: intended) { digits in
            let length = max(bytes, digits.count + 1)
            batch.append(capacity: length) { out in fill(UnsafeMutableRawBufferPointer(rebasing: out[0..<length]), digits: digits) }
        }
    }

    /// The decimal digits of the time, two at a time from a table (the generator writes millions a second).
    private static func withDigits<Result>(of intended: NIODeadline, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)
        return withUnsafeMutableBytes(of: &scratch) { scratch in
            var rest = intended.uptimeNanoseconds
            var start = scratch.count
            pairs.withUnsafeBufferPointer { pairs in
                while rest >= 100 {
                    let pair = Int(rest % 100) * 2
                    rest /= 100
                    start -= 2
                    scratch[start] = pairs[pair]
                    scratch[start + 1] = pairs[pair + 1]
                }
                if rest >= 10 {
                    start -= 2
                    scratch[start] = pairs[Int(rest) * 2]
                    scratch[start + 1] = pairs[Int(rest) * 2 + 1]
                } else {
                    start -= 1
                    scratch[start] = UInt8(ascii: "0") + UInt8(rest)
                }
            }
            return body(UnsafeRawBufferPointer(rebasing: scratch[start...]))
        }
    }

    private static let pairs: [UInt8] = (0..<100).flatMap { [UInt8(ascii: "0") + UInt8($0 / 10), UInt8(ascii: "0") + UInt8($0 % 10)] }

    /// Writes the message into all of `out`: the digits, a space, `x`s to the end.
    private static func fill(_ out: UnsafeMutableRawBufferPointer, digits: UnsafeRawBufferPointer) -> Int {
        out.copyMemory(from: digits)
        out[digits.count] = UInt8(ascii: " ")
        if out.count > digits.count + 1 {
            UnsafeMutableRawBufferPointer(rebasing: out[(digits.count + 1)...]).initializeMemory(as: UInt8.self, repeating: UInt8(ascii: "x"))
        }
        return out.count
    }

    /// The intended send time, or `nil` for the end marker and anything foreign.
    static func intended(_ message: String) -> NIODeadline? {
        var message = message
        return message.withUTF8 { intended(UnsafeRawBufferPointer($0)) }
    }

    /// The intended send time from a message's bytes: eight digits at a time while they last (the
    /// receivers read millions a second), then one at a time, with overflow checked.
    static func intended(_ bytes: UnsafeRawBufferPointer) -> NIODeadline? {
        var nanos: UInt64 = 0
        var index = 0
        while index + 8 <= bytes.count, index < 16,
            let eight = eightDigits(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)))
        {
            nanos = nanos * 100_000_000 + eight
            index += 8
        }
        while index < bytes.count, index <= 20 {
            let byte = bytes[index]
            if byte == UInt8(ascii: " ") { return index > 0 ? .uptimeNanoseconds(nanos) : nil }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (times10, overflow1) = nanos.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            nanos = sum
            index += 1
        }
        return nil
    }

    /// Eight ASCII digits (first in the lowest byte) as a number, or `nil` if any byte is not a digit.
    static func eightDigits(_ word: UInt64) -> UInt64? {
        let highNibbles: UInt64 = 0xF0F0_F0F0_F0F0_F0F0
        let threes: UInt64 = 0x3030_3030_3030_3030
        guard word & highNibbles == threes, (word &+ 0x0606_0606_0606_0606) & highNibbles == threes else { return nil }
        var value = word &- threes
        value = value &* 10 &+ (value >> 8)  // pairs of digits
        value = ((value & 0x0000_00FF_0000_00FF) &* 0x000F_4240_0000_0064 &+ ((value >> 16) & 0x0000_00FF_0000_00FF) &* 0x0000_2710_0000_0001) >> 32
        return value
    }

    /// Whether a message is the end marker.
    static func isEndMarker(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.starts(with: endMarker.utf8)
    }
}

/// What the receivers of one window saw.
struct Received: Sendable {
    var histogram = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
    var count = 0
    /// Why sessions closed during the run (an overloaded step can close them).
    var closes: [SockJSCloseReason] = []
}

/// CPU and traffic at one instant.
struct Snapshot {
    var traffic: SockwayTraffic
    var serverCPU: Double?
    var clientCPU: Double
    var time: NIODeadline

    init(sessions: [SockwayClientSession], serverPID: Int32?) {
        traffic = sessions.reduce(SockwayTraffic()) { $0 + $1.traffic }
        serverCPU = serverPID.flatMap { ProcessStats.of(pid: $0)?.cpuSeconds }
        clientCPU = ProcessStats.selfCPUSeconds()
        time = .now()
    }
}

/// One transport in one scenario.
struct Run: Sendable {
    let options: BenchOptions
    let progress: @Sendable (String) -> Void
    private let receivers = ReceiverRegistry()

    func measure(_ transport: BenchTransport, _ scenario: BenchScenario) async throws -> TransportResult {
        var (result, sessions) = try await measureKeepingSessions(transport, scenario)
        result.sessionTraffic = sessions.reduce(SockwayTraffic()) { $0 + $1.traffic }
        for session in sessions { session.close() }
        return result
    }

    private func measureKeepingSessions(_ transport: BenchTransport, _ scenario: BenchScenario) async throws -> (TransportResult, [SockwayClientSession]) {
        // Every measurement starts on an idle server (the last one may have overloaded it).
        try await settle()
        progress("\(scenario.rawValue) · \(transport.rawValue): connecting \(options.clients) sessions")
        let path = transport.isEngineIO ? options.engineIOPath : scenario == .push ? options.broadcastPath : options.echoPath
        var (sessions, errors) = await connect(transport, path: path, count: options.clients)
        guard !sessions.isEmpty else { throw BenchError.noSessions(transport, errors.first ?? "?") }
        switch scenario {
        case .echo:
            let outcome = await openLoop(transport, scenario, receivers: sessions, senders: sessions, rate: options.rate, warmup: options.warmup, duration: options.duration)
            return (outcome.result(transport: transport, scenario: scenario, clients: sessions.count, offered: options.rate * Double(sessions.count), errors: errors.count, options: options), sessions)
        case .push:
            let publisher = try await SockwayClient.connect(
                to: options.target! + options.broadcastPath,
                configuration: .init(
                    transports: [.rawWebSocket],
                    connectTimeout: .seconds(10),
                    eventLoopGroup: options.eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
                )
            )
            // The room sends everything back to the publisher too: drop it as it comes.
            publisher.onEvent { _ in }
            defer { publisher.close() }
            let outcome = await openLoop(transport, scenario, receivers: sessions, senders: [publisher], rate: options.pushRate, warmup: options.warmup, duration: options.duration)
            return (outcome.result(transport: transport, scenario: scenario, clients: sessions.count, offered: options.pushRate * Double(sessions.count), errors: errors.count, options: options), sessions)
        case .throughput:
            // Rates rise 4× per step until one fails (under 95% delivered, or p99 over the limit);
            // then geometric bisections of the last bracket (four: a resolution of 4^(1/16) ≈ 1.09×).
            var best: TransportResult?
            var firstFailure: TransportResult?
            var passedRate = 0.0
            var failedRate = 0.0
            var rate = options.throughputStartRate
            for _ in 0..<8 {
                let (result, passed) = await throughputStep(transport, sessions: sessions, rate: rate, errors: errors.count)
                if passed {
                    best = result
                    passedRate = rate
                    rate *= 4
                    continue
                }
                firstFailure = firstFailure ?? result
                failedRate = rate
                break
            }
            if best != nil, failedRate > 0 {
                for _ in 0..<options.throughputBisections {
                    // An overloaded step can leave sessions backlogged or closed (a full queue closes
                    // with 1013): each step after a failure starts on fresh sessions.
                    for session in sessions { session.close() }
                    try await settle()
                    (sessions, errors) = await connect(transport, path: path, count: options.clients)
                    guard !sessions.isEmpty else { break }
                    let middle = (passedRate * failedRate).squareRoot()
                    let (result, passed) = await throughputStep(transport, sessions: sessions, rate: middle, errors: errors.count)
                    if passed {
                        best = result
                        passedRate = middle
                    } else {
                        failedRate = middle
                    }
                }
            }
            guard var best else {
                var failed = firstFailure!
                failed.offeredRate = failed.messagesPerSecond
                return (failed, sessions)
            }
            best.offeredRate = best.messagesPerSecond
            return (best, sessions)
        }
    }

    /// Waits until the server has worked off any backlog (its CPU use under 10% over 100 ms, for at
    /// most 5 s), so that the next run measures the server rather than the last one's leftovers.
    private func settle() async throws {
        try await Task.sleep(for: .milliseconds(300))
        guard let pid = options.serverPID else { return }
        for _ in 0..<47 {
            guard let before = ProcessStats.of(pid: pid)?.cpuSeconds else { return }
            try await Task.sleep(for: .milliseconds(100))
            guard let after = ProcessStats.of(pid: pid)?.cpuSeconds else { return }
            if after - before < 0.01 { return }
        }
    }

    private func throughputStep(_ transport: BenchTransport, sessions: [SockwayClientSession], rate: Double, errors: Int) async -> (TransportResult, Bool) {
        let outcome = await openLoop(transport, .throughput, receivers: sessions, senders: sessions, rate: rate, warmup: 0.2, duration: options.stepDuration)
        let offered = rate * Double(sessions.count)
        let result = outcome.result(transport: transport, scenario: .throughput, clients: sessions.count, offered: offered, errors: errors, options: options)
        let expected = Double(outcome.sentInWindow)
        let delivered = expected > 0 ? Double(outcome.received.count) / expected : 0
        let passed = delivered >= 0.95 && result.latency.p99 <= options.latencyLimit
        let closes = Dictionary(grouping: outcome.received.closes, by: { "\($0.code) \($0.reason)" })
            .map { "\($0.value.count) closed (\($0.key))" }.sorted().joined(separator: ", ")
        progress(String(
            format: "throughput · %@: %.0f msgs/s offered, %.1f%% delivered, p99 %.2f ms, client CPU %.0f%%: %@%@",
            transport.rawValue, offered, delivered * 100, result.latency.p99, result.clientCPUPercent, passed ? "sustained" : "not sustained",
            closes.isEmpty ? "" : "; " + closes
        ))
        return (result, passed)
    }

    private func connect(_ transport: BenchTransport, path: String, count: Int) async -> ([SockwayClientSession], [String]) {
        let configuration = SockwayClientConfiguration(
            transports: [transport.clientTransport],
            webSocketCompression: transport.compression,
            connectTimeout: .seconds(10),
            extraHeaders: options.extraHeaders,
            eventLoopGroup: options.eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
        )
        let url = options.target! + path
        return await withTaskGroup(of: Result<SockwayClientSession, any Error>.self) { group in
            for _ in 0..<count {
                group.addTask {
                    do { return .success(try await SockwayClient.connect(to: url, configuration: configuration)) } catch { return .failure(error) }
                }
            }
            var sessions: [SockwayClientSession] = []
            var errors: [String] = []
            for await result in group {
                switch result {
                case .success(let session):
                    sessions.append(session)
                    receivers.attach(to: session)
                case .failure(let error): errors.append("\(error)")
                }
            }
            return (sessions, errors)
        }
    }

    struct Outcome {
        var window: Window
        var received: Received
        var sentInWindow: Int
        var fanOut: Int
        var before: Snapshot
        var after: Snapshot
        var serverRSS: Int?

        func result(transport: BenchTransport, scenario: BenchScenario, clients: Int, offered: Double, errors: Int, options: BenchOptions) -> TransportResult {
            let messages = received.count
            let perMessage = TrafficPerMessage(window: after.traffic - before.traffic, messages: messages)
            let elapsed = Double((after.time - before.time).nanoseconds) / 1e9
            var serverCPU: Double?
            if let start = before.serverCPU, let end = after.serverCPU, messages > 0 {
                serverCPU = (end - start) * 1000 / (Double(messages) / 1000)
            }
            return TransportResult(
                transport: transport,
                scenario: scenario,
                clients: clients,
                offeredRate: offered,
                messages: messages,
                lost: max(0, sentInWindow * fanOut - messages),
                seconds: window.seconds,
                latency: LatencySummary(microseconds: received.histogram),
                bytesSentPerMessage: perMessage.bytesSent,
                bytesReceivedPerMessage: perMessage.bytesReceived,
                requestsPerMessage: perMessage.requests,
                serverCPUPer1000: serverCPU,
                serverRSSMiB: serverRSS.map { Double($0) / 1_048_576 },
                clientCPUPercent: elapsed > 0 ? (after.clientCPU - before.clientCPU) / elapsed * 100 : 0,
                errors: errors
            )
        }
    }

    /// Open-loop load: every sender sends `rate` messages per second at fixed intended times (so a
    /// slow server cannot slow the load down and hide its latency); the receivers time each message
    /// against its intended send time. Only messages meant for the window count. Generators and
    /// receivers run on the sessions' event loops (the client's event-loop face): no task hop per batch.
    private func openLoop(
        _ transport: BenchTransport,
        _ scenario: BenchScenario,
        receivers: [SockwayClientSession],
        senders: [SockwayClientSession],
        rate: Double,
        warmup: Double,
        duration: Double
    ) async -> Outcome {
        let start = NIODeadline.now() + .milliseconds(20)
        let window = Window(start: start + .nanoseconds(Int64(warmup * 1e9)), end: start + .nanoseconds(Int64((warmup + duration) * 1e9)))
        let drainLimit = NIODeadline.now() + .nanoseconds(Int64((warmup + duration + 5) * 1e9))
        let serverPID = options.serverPID
        let timings = receivers.map { self.receivers.receiver(for: $0).start(window: window, drainLimit: drainLimit) }
        let interval = 1e9 / rate
        var byLoop: [ObjectIdentifier: [(SockwayClientSession, Double)]] = [:]
        for (index, sender) in senders.enumerated() {
            byLoop[ObjectIdentifier(sender.eventLoop), default: []].append((sender, interval * Double(index) / Double(senders.count)))
        }
        let generators = byLoop.values.map { group in
            Generator(senders: group, start: start, window: window, interval: interval, messageBytes: options.messageBytes).run()
        }
        var before: Snapshot?
        while true {
            let now = NIODeadline.now()
            if before == nil, now >= window.start { before = Snapshot(sessions: receivers, serverPID: serverPID) }
            if now >= window.end { break }
            let phase = now < window.start ? "warming up" : String(format: "%.1f/%.1f s", Double((now - window.start).nanoseconds) / 1e9, window.seconds)
            progress("\(scenario.rawValue) · \(transport.rawValue): \(phase), \(Int(rate * Double(senders.count))) msgs/s offered")
            let wake = before == nil ? min(window.start, now + .milliseconds(500)) : min(window.end, now + .milliseconds(500))
            try? await Task.sleep(for: .nanoseconds(max(0, (wake - now).nanoseconds)))
        }
        let after = Snapshot(sessions: receivers, serverPID: serverPID)
        let serverRSS = serverPID.flatMap { ProcessStats.of(pid: $0)?.residentBytes }
        var sentInWindow = 0
        for generator in generators { sentInWindow += (try? await generator.get()) ?? 0 }
        // Let the last messages arrive, then tell every receiver the run is over (after them, in order).
        for sender in senders { sender.send(BenchMessage.endMarker + " ") }
        // A receiver whose session died would wait for ever: end it after a grace period.
        let watchdog = Task {
            try await Task.sleep(for: .seconds(5))
            for session in receivers { session.close() }
        }
        var total = Received()
        for timing in timings {
            guard let part = try? await timing.get() else { continue }
            total.histogram.add(part.histogram)
            total.count += part.count
            total.closes += part.closes
        }
        watchdog.cancel()
        return Outcome(
            window: window,
            received: total,
            sentInWindow: sentInWindow,
            fanOut: scenario == .push ? receivers.count : 1,
            before: before ?? after,
            after: after,
            serverRSS: serverRSS
        )
    }
}

/// The ``Receiver`` of each session the bench opened.
final class ReceiverRegistry: Sendable {
    private let receivers = NIOLockedValueBox<[ObjectIdentifier: Receiver]>([:])

    func attach(to session: SockwayClientSession) {
        let receiver = Receiver(session: session)
        receivers.withLockedValue { $0[ObjectIdentifier(session)] = receiver }
    }

    func receiver(for session: SockwayClientSession) -> Receiver {
        receivers.withLockedValue { $0[ObjectIdentifier(session)]! }
    }
}

/// Times what one session receives, on its event loop. Messages outside a run (stragglers of an
/// overloaded step) are ignored.
final class Receiver: Sendable {
    private struct Timing {
        var window: Window
        var drainLimit: NIODeadline
        var received = Received()
        var done: EventLoopPromise<Received>
    }

    private struct State {
        var timing: Timing?
        var closed = false
    }

    private let loop: any EventLoop
    private let state: NIOLoopBoundBox<State>

    init(session: SockwayClientSession) {
        loop = session.eventLoop
        let state = NIOLoopBoundBox.makeBoxSendingValue(State(), eventLoop: session.eventLoop)
        self.state = state
        session.onBatchEvent { event in
            switch event {
            case .messages(let batch): Self.record(batch, in: state)
            case .closed(let reason):
                if state.value.timing != nil { state.value.timing!.received.closes.append(reason) }
                Self.finish(state, closing: true)
            }
        }
    }

    /// Starts timing a run; the future gives what arrived once the end marker (or the close) came.
    func start(window: Window, drainLimit: NIODeadline) -> EventLoopFuture<Received> {
        let done = loop.makePromise(of: Received.self)
        let state = self.state
        loop.execute {
            if state.value.closed {
                done.succeed(Received())
            } else {
                state.value.timing = Timing(window: window, drainLimit: drainLimit, done: done)
            }
        }
        return done.futureResult
    }

    private static func record(_ batch: SockJSMessageBatch, in state: NIOLoopBoundBox<State>) {
        // One access to the loop-bound state per batch, not one per message.
        if record(batch, into: &state.value.timing, now: .now()) { finish(state, closing: false) }
    }

    /// Records a batch; `true` once the run is over for this session (its end marker, or the drain limit).
    private static func record(_ batch: SockJSMessageBatch, into timing: inout Timing?, now: NIODeadline) -> Bool {
        guard timing != nil else { return false }
        let window = timing!.window
        var ended = false
        batch.forEach { message in
            guard let intended = BenchMessage.intended(message) else {
                if BenchMessage.isEndMarker(message) { ended = true }
                return
            }
            if window.contains(intended) {
                _ = timing!.received.histogram.record(UInt64(max(0, (now - intended).nanoseconds / 1000)))
                timing!.received.count += 1
            }
        }
        return ended || now > timing!.drainLimit
    }

    private static func finish(_ state: NIOLoopBoundBox<State>, closing: Bool) {
        if closing { state.value.closed = true }
        guard let timing = state.value.timing else { return }
        state.value.timing = nil
        timing.done.succeed(timing.received)
    }
}

/// Sends the open-loop load of the senders that share one event loop, on that loop: each tick sends
/// every message that has come due, then sleeps until the next is due (at least 1 ms at high rates,
/// as a busy application coalesces what it sends in one turn of its event loop).
final class Generator: Sendable {
    private struct State {
        var sent: [Int]
        var sentInWindow = 0
    }

    private let senders: [(session: SockwayClientSession, offset: Double)]
    private let loop: any EventLoop
    private let start: NIODeadline
    private let window: Window
    private let interval: Double
    private let messageBytes: Int
    private let state: NIOLoopBoundBox<State>
    private let done: EventLoopPromise<Int>

    init(senders: [(SockwayClientSession, Double)], start: NIODeadline, window: Window, interval: Double, messageBytes: Int) {
        self.senders = senders.map { (session: $0.0, offset: $0.1) }
        self.loop = senders[0].0.eventLoop
        self.start = start
        self.window = window
        self.interval = interval
        self.messageBytes = messageBytes
        self.state = NIOLoopBoundBox.makeBoxSendingValue(State(sent: Array(repeating: 0, count: senders.count)), eventLoop: loop)
        self.done = loop.makePromise(of: Int.self)
    }

    /// Runs until the window ends; the future gives how many messages were meant for the window.
    func run() -> EventLoopFuture<Int> {
        loop.scheduleTask(deadline: start) { self.tick() }
        return done.futureResult
    }

    private func tick() {
        let now = NIODeadline.now()
        if now >= window.end {
            done.succeed(state.value.sentInWindow)
            return
        }
        var next = now + .milliseconds(2)
        for (index, sender) in senders.enumerated() {
            let elapsed = Double((now - start).nanoseconds) - sender.offset
            let due = elapsed < 0 ? 0 : Int(elapsed / interval) + 1
            let sent = state.value.sent[index]
            if due > sent {
                var batch = SockwayOutgoingBatch(capacity: (due - sent) * (max(messageBytes, 21) + 4))
                var inWindow = 0
                for k in sent..<due {
                    let intended = start + .nanoseconds(Int64(sender.offset + Double(k) * interval))
                    if window.contains(intended) { inWindow += 1 }
                    BenchMessage.append(intended: intended, bytes: messageBytes, to: &batch)
                }
                state.value.sentInWindow += inWindow
                state.value.sent[index] = due
                sender.session.send(batch)
            }
            let upcoming = start + .nanoseconds(Int64(sender.offset + Double(state.value.sent[index]) * interval))
            if upcoming < next { next = upcoming }
        }
        loop.scheduleTask(deadline: max(next, NIODeadline.now() + .milliseconds(1))) { self.tick() }
    }
}
