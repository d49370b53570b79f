import CoreMetrics
import NIOConcurrencyHelpers
import NIOCore

/// The transports a session can be on, as a metric label.
enum MeteredTransport: Int, CaseIterable, Sendable {
    case webSocket, rawWebSocket, xhrStreaming, xhrPolling, eventSource, htmlFile, jsonpPolling
    case engineIOPolling, engineIOWebSocket

    var label: String {
        switch self {
        case .webSocket: "websocket"
        case .rawWebSocket: "raw-websocket"
        case .xhrStreaming: "xhr-streaming"
        case .xhrPolling: "xhr-polling"
        case .eventSource: "eventsource"
        case .htmlFile: "htmlfile"
        case .jsonpPolling: "jsonp-polling"
        case .engineIOPolling: "engineio-polling"
        case .engineIOWebSocket: "engineio-websocket"
        }
    }

    /// The transport a session's public name (``SockwaySession/transport``) stands for.
    init(sessionTransport name: String) {
        self = Self.allCases.first { $0.label == name } ?? .xhrPolling
    }
}

/// Which outbound or inbound bound a session overflowed.
enum MeteredQueue: Int, CaseIterable, Sendable {
    /// The session's outbox (its client reads slower than the application sends): close 1013.
    case outbox
    /// The async application's inbound queue (it reads slower than the client sends): close 1013.
    case inbound
    /// The server-wide bound on queued bytes.
    case server

    var label: String {
        switch self {
        case .outbox: "outbox"
        case .inbound: "inbound"
        case .server: "server"
        }
    }
}

/// What one event loop has counted since the server started: plain integers, touched only on that
/// loop, so that counting a message costs two adds (no lock, no atomic, no reference count).
/// ``MetricsPublisher`` reads them on the loop and hands the differences to swift-metrics.
final class LoopTally: @unchecked Sendable {
    /// The counters of one endpoint × transport slot, side by side in its row.
    enum Column: Int, CaseIterable {
        case sessionsOpened, sessionsClosed, messagesIn, bytesIn, messagesOut, bytesOut
    }

    /// A copy of the counts, taken on the loop.
    struct Snapshot: Sendable {
        /// ``Column/allCases`` counters per slot, slot after slot.
        var rows: [Int]
        var closes: [CloseKey: Int]
        var overflows: [Int]
        var httpResponses: [Int: Int]
        var deflate: DeflateCounts

        func value(slot: Int, _ column: Column) -> Int {
            rows[slot * Column.allCases.count + column.rawValue]
        }
    }

    struct CloseKey: Hashable, Sendable {
        var endpoint: Int
        var code: Int
    }

    /// Bytes through permessage-deflate, both ways: the message's size and its size on the wire.
    struct DeflateCounts: Sendable, Equatable {
        var sentPlain = 0
        var sentCompressed = 0
        var receivedPlain = 0
        var receivedCompressed = 0
    }

    let eventLoop: any EventLoop
    /// The rows of every slot (``ServerTallies/slot(endpoint:transport:)``), allocated once: a session
    /// keeps a pointer to its row (``SessionMeter/row``) and adds to it on the message path.
    private let rows: UnsafeMutablePointer<Int>
    private let rowsCount: Int
    /// Closed sessions by endpoint and close code.
    var closes: [CloseKey: Int] = [:]
    /// Indexed by ``MeteredQueue``.
    var overflows = [Int](repeating: 0, count: MeteredQueue.allCases.count)
    /// Responses by HTTP status (WebSocket handshakes count as 101).
    var httpResponses: [Int: Int] = [:]
    var deflate = DeflateCounts()
    /// Where send-to-write waits go; `nil` when metrics are off, so that no clock is read for them.
    let sendToWrite: CoreMetrics.Timer?
    /// Session lifetimes by endpoint, made when an endpoint's first session ends.
    private var sessionDurations: [CoreMetrics.Timer?]
    private let endpointNames: [String]
    private let factory: (any MetricsFactory)?

    init(eventLoop: any EventLoop, slots: Int, endpointNames: [String], factory: (any MetricsFactory)?) {
        self.eventLoop = eventLoop
        rowsCount = slots * Column.allCases.count
        rows = .allocate(capacity: rowsCount)
        rows.initialize(repeating: 0, count: rowsCount)
        self.endpointNames = endpointNames
        self.factory = factory
        sendToWrite = factory.map { CoreMetrics.Timer(label: MetricName.sendToWrite, dimensions: [], factory: $0) }
        sessionDurations = Array(repeating: nil, count: endpointNames.count)
    }

    deinit {
        rows.deallocate()
    }

    /// The counters of `slot`; valid as long as this tally (the server's whole life).
    func row(_ slot: Int) -> UnsafeMutablePointer<Int> {
        rows + slot * Column.allCases.count
    }

    func countResponse(status: Int) {
        httpResponses[status, default: 0] += 1
    }

    /// A session of `endpoint` lived `nanoseconds`.
    func recordSessionDuration(endpoint: Int, nanoseconds: Int64) {
        guard let factory else { return }
        if sessionDurations[endpoint] == nil {
            sessionDurations[endpoint] = CoreMetrics.Timer(label: MetricName.sessionDuration, dimensions: [("endpoint", endpointNames[endpoint])], factory: factory)
        }
        sessionDurations[endpoint]?.recordNanoseconds(nanoseconds)
    }

    func snapshot() -> Snapshot {
        eventLoop.preconditionInEventLoop()
        return Snapshot(
            rows: Array(UnsafeBufferPointer(start: rows, count: rowsCount)),
            closes: closes,
            overflows: overflows,
            httpResponses: httpResponses,
            deflate: deflate
        )
    }
}

/// Every loop's tally of one server, found by loop. Also the names the counts are labelled with.
final class ServerTallies: Sendable {
    /// The endpoints' prefixes, in slot order.
    let endpointNames: [String]
    /// Whether waits and lifetimes are timed (metrics are on).
    let timing: Bool
    private let metrics: SockwayMetricsOptions?
    private let tallies = NIOLockedValueBox<[ObjectIdentifier: LoopTally]>([:])

    init(endpointNames: [String], metrics: SockwayMetricsOptions?) {
        self.endpointNames = endpointNames
        self.metrics = metrics
        self.timing = metrics != nil
    }

    /// The factory metrics go to, `nil` if they are off. Read late: the application bootstraps
    /// swift-metrics before it starts the server, not necessarily before it creates it.
    var factory: (any MetricsFactory)? {
        metrics.map { $0.factory ?? MetricsSystem.factory }
    }

    var slotCount: Int { endpointNames.count * MeteredTransport.allCases.count }

    func slot(endpoint: Int, transport: MeteredTransport) -> Int {
        endpoint * MeteredTransport.allCases.count + transport.rawValue
    }

    /// The tally of `loop` (made on first use: loops outside the server's group count too). Called
    /// once per connection or session, not per message.
    func tally(for loop: any EventLoop) -> LoopTally {
        let key = ObjectIdentifier(loop as AnyObject)
        return tallies.withLockedValue { tallies in
            if let tally = tallies[key] { return tally }
            let tally = LoopTally(eventLoop: loop, slots: slotCount, endpointNames: endpointNames, factory: self.factory)
            tallies[key] = tally
            return tally
        }
    }

    var all: [LoopTally] { tallies.withLockedValue { Array($0.values) } }
}

/// An endpoint's place in its server's tallies.
struct EndpointMeter: Sendable {
    let tallies: ServerTallies
    let index: Int

    func session(on loop: any EventLoop, transport: MeteredTransport) -> SessionMeter {
        SessionMeter(tallies: tallies, loop: loop, endpoint: index, transport: transport)
    }
}

/// One session's place in its loop's tally: a plain value, so that reading ``row`` on the message path
/// touches no reference count. The tally (which owns the row) is held unmanaged: retained when the
/// meter is made, released by ``release()``, which its session calls once, when it is reaped or freed.
struct SessionMeter {
    private let heldTally: Unmanaged<LoopTally>
    let endpoint: Int
    /// The session's counters: its slot's row in the tally.
    private(set) var row: UnsafeMutablePointer<Int>
    /// When the session was made; `nil` when metrics are off (then nothing is timed, and no clock is
    /// read for it).
    let createdAt: NIODeadline?

    init(tallies: ServerTallies, loop: any EventLoop, endpoint: Int, transport: MeteredTransport) {
        let tally = tallies.tally(for: loop)
        self.heldTally = .passRetained(tally)
        self.endpoint = endpoint
        self.row = tally.row(tallies.slot(endpoint: endpoint, transport: transport))
        self.createdAt = tally.sendToWrite == nil ? nil : .now()
    }

    var tally: LoopTally { heldTally.takeUnretainedValue() }

    /// Whether sends are timed to their write (metrics are on).
    var timesSends: Bool { createdAt != nil }

    /// The session moved to another transport (an Engine.IO upgrade): it counts as open there now.
    mutating func move(to transport: MeteredTransport) {
        let next = tally.row(endpoint * MeteredTransport.allCases.count + transport.rawValue)
        guard next != row else { return }
        row[LoopTally.Column.sessionsClosed.rawValue] += 1
        next[LoopTally.Column.sessionsOpened.rawValue] += 1
        row = next
    }

    /// Lets the tally go; the meter (and every copy of it) must not be used after.
    func release() {
        heldTally.release()
    }
}

/// The names Sockway's metrics are published under (Prometheus conventions: base units, `_total`).
enum MetricName {
    static let sessionsOpen = "sockway_sessions_open"
    static let sessionsOpened = "sockway_sessions_opened_total"
    static let sessionsClosed = "sockway_sessions_closed_total"
    static let messagesReceived = "sockway_messages_received_total"
    static let messagesSent = "sockway_messages_sent_total"
    static let bytesReceived = "sockway_message_bytes_received_total"
    static let bytesSent = "sockway_message_bytes_sent_total"
    static let queueOverflows = "sockway_queue_overflows_total"
    static let refusals = "sockway_refusals_total"
    static let httpResponses = "sockway_http_responses_total"
    static let deflateBytes = "sockway_websocket_deflate_bytes_total"
    static let compressionRatio = "sockway_websocket_compression_ratio"
    static let eventLoopLag = "sockway_event_loop_lag_seconds"
    static let sessionDuration = "sockway_session_duration_seconds"
    static let sendToWrite = "sockway_send_to_write_seconds"
}
