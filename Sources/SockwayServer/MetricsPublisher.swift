import CoreMetrics
import NIOConcurrencyHelpers
import NIOCore

/// How a ``SockwayServer`` publishes what it counts through swift-metrics
/// (``SockwayConfiguration/metrics``).
///
/// Messages, bytes, sessions and responses are counted in plain integers on each event loop and handed
/// to the metrics backend every ``publishInterval`` (and by ``SockwayServer/publishMetrics()``, which a
/// scrape calls first), so the per-message path never touches a lock or an atomic for metrics.
public struct SockwayMetricsOptions: Sendable {
    /// Where the metrics go. `nil` (the default): swift-metrics' `MetricsSystem.factory`, read when the
    /// server first needs it (bootstrap it before the server starts).
    public var factory: (any MetricsFactory)?
    /// How often the loops' counts are handed to the factory. Default 1 s.
    public var publishInterval: TimeAmount
    /// How often each event loop is probed for lag (how late a task scheduled on it runs). Default 500 ms.
    public var eventLoopLagProbeInterval: TimeAmount

    public init(
        factory: (any MetricsFactory)? = nil,
        publishInterval: TimeAmount = .seconds(1),
        eventLoopLagProbeInterval: TimeAmount = .milliseconds(500)
    ) {
        self.factory = factory
        self.publishInterval = publishInterval
        self.eventLoopLagProbeInterval = eventLoopLagProbeInterval
    }
}

/// Reads every loop's tally on its loop and adds what is new to swift-metrics counters; sets the
/// gauges (sessions open, compression ratio) from the totals.
final class MetricsPublisher: Sendable {
    private let tallies: ServerTallies
    private let refusals: RefusalLog
    private let factory: any MetricsFactory
    private let state = NIOLockedValueBox(State())

    private struct State {
        /// The last snapshot published, by loop.
        var published: [ObjectIdentifier: LoopTally.Snapshot] = [:]
        var refusals: [String: Int] = [:]
        var counters: [MetricKey: CoreMetrics.Counter] = [:]
        var gauges: [MetricKey: Gauge] = [:]
    }

    private struct MetricKey: Hashable {
        var name: String
        var labels: [String]
    }

    init(tallies: ServerTallies, refusals: RefusalLog, factory: any MetricsFactory) {
        self.tallies = tallies
        self.refusals = refusals
        self.factory = factory
    }

    /// Publishes what the loops have counted since the last time; the future completes on `loop`.
    func publish(on loop: any EventLoop) -> EventLoopFuture<Void> {
        let reads = tallies.all.map { tally in
            tally.eventLoop.submit { (ObjectIdentifier(tally.eventLoop as AnyObject), tally.snapshot()) }
        }
        return EventLoopFuture.whenAllComplete(reads, on: loop).map { [self] results in
            let snapshots = results.compactMap { try? $0.get() }
            let refusalTotals = refusals.totals
            state.withLockedValue { state in
                for (loop, snapshot) in snapshots {
                    apply(snapshot, since: state.published[loop], state: &state)
                    state.published[loop] = snapshot
                }
                for (reason, total) in refusalTotals where total > state.refusals[reason, default: 0] {
                    add(MetricName.refusals, [("reason", reason)], total, since: state.refusals[reason], in: &state)
                    state.refusals[reason] = total
                }
                setGauges(&state)
            }
        }
    }

    private func apply(_ new: LoopTally.Snapshot, since old: LoopTally.Snapshot?, state: inout State) {
        let transports = MeteredTransport.allCases
        let counters: [(String, LoopTally.Column)] = [
            (MetricName.sessionsOpened, .sessionsOpened),
            (MetricName.messagesReceived, .messagesIn),
            (MetricName.messagesSent, .messagesOut),
            (MetricName.bytesReceived, .bytesIn),
            (MetricName.bytesSent, .bytesOut),
        ]
        for slot in 0..<tallies.slotCount {
            let labels = [("endpoint", tallies.endpointNames[slot / transports.count]), ("transport", transports[slot % transports.count].label)]
            for (name, column) in counters {
                add(name, labels, new.value(slot: slot, column), since: old?.value(slot: slot, column), in: &state)
            }
        }
        for (key, total) in new.closes {
            let code = key.code == 0 ? "none" : String(key.code)
            add(MetricName.sessionsClosed, [("endpoint", tallies.endpointNames[key.endpoint]), ("code", code)], total, since: old?.closes[key], in: &state)
        }
        for queue in MeteredQueue.allCases {
            add(MetricName.queueOverflows, [("queue", queue.label)], new.overflows[queue.rawValue], since: old?.overflows[queue.rawValue], in: &state)
        }
        for (status, total) in new.httpResponses {
            add(MetricName.httpResponses, [("status", String(status))], total, since: old?.httpResponses[status], in: &state)
        }
        let deflate: [(String, String, Int, Int?)] = [
            ("sent", "plain", new.deflate.sentPlain, old?.deflate.sentPlain),
            ("sent", "compressed", new.deflate.sentCompressed, old?.deflate.sentCompressed),
            ("received", "plain", new.deflate.receivedPlain, old?.deflate.receivedPlain),
            ("received", "compressed", new.deflate.receivedCompressed, old?.deflate.receivedCompressed),
        ]
        for (direction, stage, total, before) in deflate {
            add(MetricName.deflateBytes, [("direction", direction), ("stage", stage)], total, since: before, in: &state)
        }
    }

    /// Adds what counter `name` gained from `before` (`nil`: nothing published yet) to `total`.
    /// The labels are only made when there is something to add.
    private func add(_ name: String, _ labels: @autoclosure () -> [(String, String)], _ total: Int, since before: Int?, in state: inout State) {
        let delta = total - (before ?? 0)
        guard delta > 0 else { return }
        counter(name, labels(), in: &state).increment(by: Int64(delta))
    }

    private func setGauges(_ state: inout State) {
        let transports = MeteredTransport.allCases
        var open = [Int](repeating: 0, count: tallies.slotCount)
        var deflate = LoopTally.DeflateCounts()
        for snapshot in state.published.values {
            for slot in open.indices { open[slot] += snapshot.value(slot: slot, .sessionsOpened) - snapshot.value(slot: slot, .sessionsClosed) }
            deflate.sentPlain += snapshot.deflate.sentPlain
            deflate.sentCompressed += snapshot.deflate.sentCompressed
            deflate.receivedPlain += snapshot.deflate.receivedPlain
            deflate.receivedCompressed += snapshot.deflate.receivedCompressed
        }
        for slot in open.indices {
            // A series appears once its endpoint and transport have had a session.
            let key = MetricKey(name: MetricName.sessionsOpen, labels: [tallies.endpointNames[slot / transports.count], transports[slot % transports.count].label])
            guard open[slot] != 0 || state.gauges[key] != nil || state.published.values.contains(where: { $0.value(slot: slot, .sessionsOpened) > 0 }) else { continue }
            let labels = [("endpoint", key.labels[0]), ("transport", key.labels[1])]
            gauge(MetricName.sessionsOpen, labels, in: &state).record(max(0, open[slot]))
        }
        if deflate.sentCompressed > 0 {
            gauge(MetricName.compressionRatio, [("direction", "sent")], in: &state)
                .record(Double(deflate.sentPlain) / Double(deflate.sentCompressed))
        }
        if deflate.receivedCompressed > 0 {
            gauge(MetricName.compressionRatio, [("direction", "received")], in: &state)
                .record(Double(deflate.receivedPlain) / Double(deflate.receivedCompressed))
        }
    }

    private func counter(_ name: String, _ labels: [(String, String)], in state: inout State) -> CoreMetrics.Counter {
        let key = MetricKey(name: name, labels: labels.map(\.1))
        if let existing = state.counters[key] { return existing }
        let made = CoreMetrics.Counter(label: name, dimensions: labels, factory: factory)
        state.counters[key] = made
        return made
    }

    private func gauge(_ name: String, _ labels: [(String, String)], in state: inout State) -> Gauge {
        let key = MetricKey(name: name, labels: labels.map(\.1))
        if let existing = state.gauges[key] { return existing }
        let made = Gauge(label: name, dimensions: labels, factory: factory)
        state.gauges[key] = made
        return made
    }

    /// Probes each loop every `interval`: the lag is how much later than asked a scheduled task ran
    /// (a loop busy with a long callback, or starved of CPU, shows here first).
    static func probeLag(of loops: [any EventLoop], every interval: TimeAmount, factory: any MetricsFactory) -> [RepeatedTask] {
        loops.enumerated().map { index, loop in
            let timer = CoreMetrics.Timer(label: MetricName.eventLoopLag, dimensions: [("loop", String(index))], factory: factory)
            // The next run is due `interval` after this one ends (a fixed-delay task).
            let expected = NIOLockedValueBox(NIODeadline.now() + interval)
            return loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                let now = NIODeadline.now()
                expected.withLockedValue { due in
                    timer.recordNanoseconds(max(0, (now - due).nanoseconds))
                    due = NIODeadline.now() + interval
                }
            }
        }
    }
}

extension SockwayMetricsOptions {
    /// Histogram buckets that suit Sockway's timers, by metric name, for backends that take buckets
    /// per metric (swift-prometheus' `durationHistogramBuckets`): waits from 50 µs, loop lag from
    /// 100 µs, session lifetimes from a second to a day.
    public static let suggestedDurationBuckets: [String: [Duration]] = [
        MetricName.sendToWrite: [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .microseconds(2_500_000),
            .seconds(5), .seconds(10), .seconds(30),
        ],
        MetricName.eventLoopLag: [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(5),
            .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5),
        ],
        MetricName.sessionDuration: [
            .seconds(1), .seconds(5), .seconds(30), .seconds(60), .seconds(300), .seconds(900), .seconds(1800),
            .seconds(3600), .seconds(3 * 3600), .seconds(12 * 3600), .seconds(24 * 3600),
        ],
    ]
}
