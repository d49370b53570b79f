import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SockwayClient
import SockwaySockJS

/// What `sockway probe` runs.
public struct ProbeOptions: Sendable {
    /// The echo endpoint: a SockJS prefix (`http://host:port/echo`) or an Engine.IO endpoint.
    public var url: String
    /// Probe Engine.IO's transports instead of SockJS's (also implied by a URL whose path ends in `/engine.io`).
    public var engineIO = false
    /// Messages sent per transport, one at a time, each after the previous echo.
    public var messages = 30
    /// What each step of a transport (opening, then each echo) may take before the transport is given up.
    public var timeout: TimeAmount = .seconds(5)
    /// Extra headers on every request.
    public var extraHeaders: [(String, String)] = []
    /// Where the sessions run; `nil` for NIO's shared group.
    public var eventLoopGroup: (any EventLoopGroup)?

    public init(url: String) {
        self.url = url
    }

    /// Whether the run probes Engine.IO: `--engine-io`, or a URL path ending in `/engine.io`.
    public var probesEngineIO: Bool {
        if engineIO { return true }
        var path = url
        while path.hasSuffix("/") { path.removeLast() }
        return path.hasSuffix("/engine.io")
    }

    /// The transports tried, in order.
    public var transports: [SockwayClientTransport] {
        probesEngineIO ? [.engineIOWebSocket, .engineIOPolling] : SockwayClientTransport.sockJS
    }
}

/// Why a transport did not deliver every echo.
public enum ProbeFailure: Hashable, Sendable {
    /// The session did not open within the timeout.
    case openTimedOut
    /// An echo did not come back within the timeout (after the echoes counted in the measurement).
    case echoTimedOut
    /// The session closed before every echo came back.
    case closed(code: Int, reason: String)
    /// An echo differed from what was sent.
    case mismatch
    /// Connecting failed (refused, an HTTP error status, a protocol error…).
    case error(String)
}

/// What one transport did: the raw measurement, before any verdict.
public struct ProbeMeasurement: Hashable, Sendable {
    public var transport: SockwayClientTransport
    /// From the start of connecting until the session opened; `nil` if it did not.
    public var openMs: Double?
    /// From the start of connecting until the first echo arrived; `nil` if none did.
    public var firstMessageMs: Double?
    /// Round trip of each echo that came back, in order.
    public var roundTripsMs: [Double]
    /// Messages the probe meant to send.
    public var messages: Int
    public var failure: ProbeFailure?

    public init(
        transport: SockwayClientTransport,
        openMs: Double?,
        firstMessageMs: Double?,
        roundTripsMs: [Double],
        messages: Int,
        failure: ProbeFailure?
    ) {
        self.transport = transport
        self.openMs = openMs
        self.firstMessageMs = firstMessageMs
        self.roundTripsMs = roundTripsMs
        self.messages = messages
        self.failure = failure
    }
}

/// Whether a transport's frames arrive as the server sends them.
public enum ProbeStreaming: String, Codable, Hashable, Sendable {
    /// Frames arrive as sent (a WebSocket, or a streaming response that really streams).
    case yes
    /// A streaming response held its frames past the timeout: a proxy buffers it. Not working.
    case buffered
    /// A streaming response delivered its echoes, but much later than polling did (a proxy that
    /// flushes now and then). Working, not recommended.
    case delayed
    /// A polling transport: one response per frame, nothing to buffer.
    case notApplicable = "n/a"
    /// The transport failed for another reason.
    case unknown = "-"
}

/// One row of a ``ProbeReport``.
public struct ProbeResult: Codable, Hashable, Sendable {
    public var transport: SockwayClientTransport
    /// Opened and echoed every message, in time.
    public var works: Bool
    public var openMs: Double?
    public var firstMessageMs: Double?
    public var rttP50Ms: Double?
    public var rttP99Ms: Double?
    /// Echoes that came back.
    public var echoes: Int
    public var streams: ProbeStreaming
    /// Why it failed, or what else the probe noticed; `nil` when there is nothing to say.
    public var note: String?

    public init(
        transport: SockwayClientTransport,
        works: Bool,
        openMs: Double?,
        firstMessageMs: Double?,
        rttP50Ms: Double?,
        rttP99Ms: Double?,
        echoes: Int,
        streams: ProbeStreaming,
        note: String?
    ) {
        self.transport = transport
        self.works = works
        self.openMs = openMs
        self.firstMessageMs = firstMessageMs
        self.rttP50Ms = rttP50Ms
        self.rttP99Ms = rttP99Ms
        self.echoes = echoes
        self.streams = streams
        self.note = note
    }

    enum CodingKeys: String, CodingKey {
        case transport, works, openMs, firstMessageMs, rttP50Ms, rttP99Ms, echoes, streams, note
    }

    // Every key always present (`null` when unknown): scripts read the same shape for every row.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(transport, forKey: .transport)
        try container.encode(works, forKey: .works)
        try container.encode(openMs.map(rounded), forKey: .openMs)
        try container.encode(firstMessageMs.map(rounded), forKey: .firstMessageMs)
        try container.encode(rttP50Ms.map(rounded), forKey: .rttP50Ms)
        try container.encode(rttP99Ms.map(rounded), forKey: .rttP99Ms)
        try container.encode(echoes, forKey: .echoes)
        try container.encode(streams, forKey: .streams)
        try container.encode(note, forKey: .note)
    }
}

/// Milliseconds to the microsecond: JSON without float noise.
private func rounded(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }

/// A whole `sockway probe` run.
public struct ProbeReport: Codable, Hashable, Sendable {
    public var version = 1
    public var url: String
    /// `sockjs` or `engine.io`.
    public var `protocol`: String
    public var messages: Int
    public var timeoutSeconds: Double
    public var results: [ProbeResult]
    /// The first transport in the client's order of preference that works and streams (or polls).
    public var recommended: SockwayClientTransport?

    /// Whether any transport worked: the command's exit status.
    public var anyWorked: Bool { results.contains(where: \.works) }

    public init(url: String, protocol: String, messages: Int, timeoutSeconds: Double, results: [ProbeResult], recommended: SockwayClientTransport?) {
        self.url = url
        self.protocol = `protocol`
        self.messages = messages
        self.timeoutSeconds = timeoutSeconds
        self.results = results
        self.recommended = recommended
    }

    enum CodingKeys: String, CodingKey {
        case version, url, `protocol`, messages, timeoutSeconds, results, recommended, anyWorked
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        version = try container.decode(Int.self, forKey: .version)
        url = try container.decode(String.self, forKey: .url)
        self.protocol = try container.decode(String.self, forKey: .protocol)
        messages = try container.decode(Int.self, forKey: .messages)
        timeoutSeconds = try container.decode(Double.self, forKey: .timeoutSeconds)
        results = try container.decode([ProbeResult].self, forKey: .results)
        recommended = try container.decodeIfPresent(SockwayClientTransport.self, forKey: .recommended)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(version, forKey: .version)
        try container.encode(url, forKey: .url)
        try container.encode(self.protocol, forKey: .protocol)
        try container.encode(messages, forKey: .messages)
        try container.encode(timeoutSeconds, forKey: .timeoutSeconds)
        try container.encode(results, forKey: .results)
        try container.encode(recommended, forKey: .recommended)
        try container.encode(anyWorked, forKey: .anyWorked)
    }

    /// The verdicts on a run's measurements.
    public init(options: ProbeOptions, measurements: [ProbeMeasurement]) {
        let timeout = Double(options.timeout.nanoseconds) / 1e9
        let results = Self.results(measurements, timeoutSeconds: timeout)
        self.init(
            url: options.url,
            protocol: options.probesEngineIO ? "engine.io" : "sockjs",
            messages: options.messages,
            timeoutSeconds: timeout,
            results: results,
            recommended: Self.recommendation(results)
        )
    }

    /// A streaming response whose echoes take this much longer than polling's (p50) counts as delayed.
    static func delayThreshold(pollingP50: Double) -> Double { 250 + 4 * pollingP50 }

    /// The verdict on each measurement. A streaming transport compares itself with the polling ones,
    /// which no proxy can buffer (each response ends after its frame).
    public static func results(_ measurements: [ProbeMeasurement], timeoutSeconds: Double) -> [ProbeResult] {
        let pollingP50 = measurements
            .filter { $0.transport.isPolling && $0.failure == nil && !$0.roundTripsMs.isEmpty }
            .map { percentile(50, of: $0.roundTripsMs) }
            .min()
        // Another transport opened: the server and the way to it answer, so a streaming open that
        // times out is its response being held.
        let somethingOpened = measurements.contains { $0.openMs != nil }
        let seconds = format(timeoutSeconds, digits: timeoutSeconds < 10 ? 1 : 0)
        return measurements.map { m in
            let complete = m.failure == nil && m.roundTripsMs.count == m.messages
            var streams: ProbeStreaming
            var note: String?
            switch m.failure {
            case nil: note = complete ? nil : "\(m.roundTripsMs.count) of \(m.messages) echoes"
            case .openTimedOut: note = "did not open within \(seconds) s"
            case .echoTimedOut:
                note = m.roundTripsMs.isEmpty
                    ? "no echo within \(seconds) s of sending"
                    : "echo \(m.roundTripsMs.count + 1) of \(m.messages) not back within \(seconds) s"
            case .closed(let code, let reason): note = "closed \(code) \"\(reason)\" after \(m.roundTripsMs.count) echoes"
            case .mismatch: note = "echo \(m.roundTripsMs.count + 1) differs from what was sent"
            case .error(let text): note = text
            }
            if m.transport.isStreamingHTTP {
                switch m.failure {
                case nil where complete:
                    let p50 = percentile(50, of: m.roundTripsMs)
                    if let pollingP50, p50 > delayThreshold(pollingP50: pollingP50) {
                        streams = .delayed
                        note = "echoes take \(format(p50)) ms, polling \(format(pollingP50)) ms: a proxy holds frames"
                    } else {
                        streams = .yes
                    }
                case .echoTimedOut:
                    streams = .buffered
                    note = (note ?? "") + ": a proxy buffers the response"
                case .openTimedOut where somethingOpened:
                    streams = .buffered
                    note = "no open frame within \(seconds) s: a proxy buffers the response"
                default:
                    streams = .unknown
                }
            } else if m.transport.isPolling {
                streams = .notApplicable
            } else {
                streams = complete ? .yes : .unknown
                if case .error(let text) = m.failure, text.hasPrefix("HTTP "), measurements.contains(where: { $0.openMs != nil && !$0.transport.usesWebSocketUpgrade }) {
                    note = text + " to the WebSocket handshake: a proxy does not forward Upgrade?"
                }
            }
            return ProbeResult(
                transport: m.transport,
                works: complete,
                openMs: m.openMs,
                firstMessageMs: m.firstMessageMs,
                rttP50Ms: m.roundTripsMs.isEmpty ? nil : percentile(50, of: m.roundTripsMs),
                rttP99Ms: m.roundTripsMs.isEmpty ? nil : percentile(99, of: m.roundTripsMs),
                echoes: m.roundTripsMs.count,
                streams: streams,
                note: note
            )
        }
    }

    /// sockjs-client's order of preference (Engine.IO: WebSocket, then polling): the first transport that
    /// works and whose frames are not held; failing that, the first that works at all.
    public static func recommendation(_ results: [ProbeResult]) -> SockwayClientTransport? {
        let order: [SockwayClientTransport] = SockwayClientTransport.fallbackOrder + [.engineIOWebSocket, .engineIOPolling]
        let ranked = order.compactMap { transport in results.first { $0.transport == transport } }
        return (ranked.first { $0.works && ($0.streams == .yes || $0.streams == .notApplicable) } ?? ranked.first(where: \.works))?.transport
    }

    /// Nearest-rank percentile (`p` in 0...100) of a non-empty sample.
    public static func percentile(_ p: Double, of values: [Double]) -> Double {
        let sorted = values.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }

    /// The report as pretty-printed JSON.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// An aligned table, then the recommendation.
    public func table() -> String {
        let what = self.protocol == "engine.io" ? "Engine.IO" : "SockJS"
        var out = "\(url) (\(what)): \(messages) messages per transport, \(format(timeoutSeconds, digits: 1)) s timeout per step\n\n"
        let header = ["transport", "works", "open ms", "first msg ms", "rtt p50 ms", "rtt p99 ms", "streams", "note"]
        let rows = results.map { row in
            [
                row.transport.rawValue, row.works ? "yes" : "no",
                row.openMs.map { format($0) } ?? "-", row.firstMessageMs.map { format($0) } ?? "-",
                row.rttP50Ms.map { format($0) } ?? "-", row.rttP99Ms.map { format($0) } ?? "-",
                row.streams.rawValue, row.note ?? "",
            ]
        }
        let numeric: Set<Int> = [2, 3, 4, 5]
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        for cells in [header] + rows {
            let padded = cells.indices.map { column -> String in
                let cell = cells[column]
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                if column == cells.count - 1 { return cell }
                return numeric.contains(column) ? pad + cell : cell + pad
            }
            var line = padded.joined(separator: "  ")
            while line.hasSuffix(" ") { line.removeLast() }
            out += line + "\n"
        }
        out += "\nrecommended: \(recommended?.rawValue ?? "none (no transport works)")"
        return out
    }
}

extension SockwayClientTransport {
    /// A transport that receives on one long HTTP response: what a buffering proxy breaks.
    var isStreamingHTTP: Bool { self == .xhrStreaming || self == .eventSource }

    /// One response per frame.
    var isPolling: Bool { self == .xhrPolling || self == .jsonpPolling || self == .engineIOPolling }

    var usesWebSocketUpgrade: Bool { self == .rawWebSocket || self == .webSocket || self == .engineIOWebSocket }
}

/// Tries every transport of a SockJS (or Engine.IO) echo endpoint in turn and judges each.
public struct ProbeRunner: Sendable {
    public let options: ProbeOptions
    private let progress: @Sendable (String) -> Void

    public init(options: ProbeOptions, progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.options = options
        self.progress = progress
    }

    public func run() async -> ProbeReport {
        var measurements: [ProbeMeasurement] = []
        for transport in options.transports {
            progress("\(transport.rawValue)…")
            measurements.append(await measure(transport))
        }
        return ProbeReport(options: options, measurements: measurements)
    }

    /// Opens a session on `transport`, then sends the messages one at a time, each after the echo of the last.
    public func measure(_ transport: SockwayClientTransport) async -> ProbeMeasurement {
        let configuration = SockwayClientConfiguration(
            transports: [transport],
            connectTimeout: options.timeout,
            extraHeaders: options.extraHeaders,
            eventLoopGroup: options.eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
        )
        var measurement = ProbeMeasurement(transport: transport, openMs: nil, firstMessageMs: nil, roundTripsMs: [], messages: options.messages, failure: nil)
        let clock = ContinuousClock()
        let start = clock.now
        let session: SockwayClientSession
        do {
            session = try await SockwayClient.connect(to: options.url, configuration: configuration)
        } catch SockwayClientError.timedOut {
            measurement.failure = .openTimedOut
            return measurement
        } catch {
            measurement.failure = .error(Self.describe(error))
            return measurement
        }
        measurement.openMs = milliseconds(clock.now - start)
        let inbox = ProbeInbox(loop: session.eventLoop)
        session.onEvent { event in
            switch event {
            case .messages(let messages): inbox.deliver(messages)
            case .closed(let reason): inbox.close(reason)
            }
        }
        defer { session.close() }
        for index in 0..<options.messages {
            let message = "sockway probe \(index) " + String(repeating: "x", count: 16)
            let sent = clock.now
            session.send(message)
            switch await inbox.next(timeout: options.timeout) {
            case .message(let echo):
                let now = clock.now
                guard echo == message else {
                    measurement.failure = .mismatch
                    return measurement
                }
                if index == 0 { measurement.firstMessageMs = milliseconds(now - start) }
                measurement.roundTripsMs.append(milliseconds(now - sent))
            case .timedOut:
                measurement.failure = .echoTimedOut
                return measurement
            case .closed(let reason):
                measurement.failure = .closed(code: reason.code, reason: reason.reason)
                return measurement
            }
        }
        return measurement
    }

    private func milliseconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }

    /// A connect error in a few words.
    static func describe(_ error: any Error) -> String {
        switch error {
        case SockwayClientError.unexpectedStatus(let status): return "HTTP \(status)"
        case SockwayClientError.closedBeforeOpen(let reason): return "closed before open: \(reason.code) \"\(reason.reason)\""
        case SockwayClientError.protocolError(let text): return "protocol error: \(text)"
        case SockwayClientError.connectionClosed: return "connection closed"
        case SockwayClientError.invalidURL(let url): return "invalid URL \(url)"
        case let error as IOError where error.errnoCode == ECONNREFUSED: return "connection refused"
        default:
            let text = String(describing: error)
            if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
            return text.count > 100 ? String(text.prefix(97)) + "..." : text
        }
    }
}

/// The messages of one probe session, awaited one at a time with a timeout.
final class ProbeInbox: Sendable {
    enum Next: Sendable {
        case message(String)
        case timedOut
        case closed(SockJSCloseReason)
    }

    private struct State {
        var queue: [String] = []
        var closed: SockJSCloseReason?
        var waiter: CheckedContinuation<Next, Never>?
        var timer: Scheduled<Void>?
        var generation = 0
    }

    private let loop: any EventLoop
    private let state = NIOLockedValueBox(State())

    init(loop: any EventLoop) {
        self.loop = loop
    }

    func deliver(_ messages: [String]) {
        let (waiter, first, timer): (CheckedContinuation<Next, Never>?, String?, Scheduled<Void>?) = state.withLockedValue { state in
            var messages = messages[...]
            guard let waiter = state.waiter, let first = messages.popFirst() else {
                state.queue += messages
                return (nil, nil, nil)
            }
            state.queue += messages
            state.waiter = nil
            defer { state.timer = nil }
            return (waiter, first, state.timer)
        }
        timer?.cancel()
        if let waiter, let first { waiter.resume(returning: .message(first)) }
    }

    func close(_ reason: SockJSCloseReason) {
        let (waiter, timer) = state.withLockedValue { state in
            state.closed = reason
            defer { state.waiter = nil; state.timer = nil }
            return (state.waiter, state.timer)
        }
        timer?.cancel()
        waiter?.resume(returning: .closed(reason))
    }

    func next(timeout: TimeAmount) async -> Next {
        await withCheckedContinuation { continuation in
            let immediate: Next? = state.withLockedValue { state in
                if !state.queue.isEmpty { return .message(state.queue.removeFirst()) }
                if let closed = state.closed { return .closed(closed) }
                state.generation += 1
                let generation = state.generation
                state.waiter = continuation
                state.timer = loop.scheduleTask(in: timeout) { [state = self.state] in
                    let waiter = state.withLockedValue { state -> CheckedContinuation<Next, Never>? in
                        guard state.generation == generation, let waiter = state.waiter else { return nil }
                        state.waiter = nil
                        state.timer = nil
                        return waiter
                    }
                    waiter?.resume(returning: .timedOut)
                }
                return nil
            }
            if let immediate { continuation.resume(returning: immediate) }
        }
    }
}
