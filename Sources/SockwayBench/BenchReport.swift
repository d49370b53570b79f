import Histogram
import SockwayClient

/// Latency percentiles of one run, in milliseconds.
public struct LatencySummary: Codable, Hashable, Sendable {
    public var count: Int
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var p999: Double
    public var max: Double
    public var mean: Double

    public init(count: Int, p50: Double, p90: Double, p99: Double, p999: Double, max: Double, mean: Double) {
        self.count = count
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.p999 = p999
        self.max = max
        self.mean = mean
    }

    /// The percentiles of a histogram of microseconds.
    public init(microseconds histogram: Histogram<UInt64>) {
        func ms(_ value: UInt64) -> Double { Double(value) / 1000 }
        let empty = histogram.totalCount == 0
        self.init(
            count: Int(histogram.totalCount),
            p50: empty ? 0 : ms(histogram.valueAtPercentile(50)),
            p90: empty ? 0 : ms(histogram.valueAtPercentile(90)),
            p99: empty ? 0 : ms(histogram.valueAtPercentile(99)),
            p999: empty ? 0 : ms(histogram.valueAtPercentile(99.9)),
            max: empty ? 0 : ms(histogram.max),
            mean: empty ? 0 : histogram.mean / 1000
        )
    }
}

/// A transport as the bench measures it: the client transports, WebSocket once without and once with
/// permessage-deflate, and Engine.IO's two (against the server's Engine.IO echo endpoint).
public enum BenchTransport: String, Codable, CaseIterable, Sendable {
    case rawWebSocket = "raw-websocket"
    case webSocket = "websocket"
    case webSocketDeflate = "websocket+deflate"
    case xhrStreaming = "xhr-streaming"
    case eventSource = "eventsource"
    case xhrPolling = "xhr-polling"
    case jsonpPolling = "jsonp-polling"
    case engineIOPolling = "engineio-polling"
    case engineIOWebSocket = "engineio-websocket"

    public var clientTransport: SockwayClientTransport {
        switch self {
        case .rawWebSocket: .rawWebSocket
        case .webSocket, .webSocketDeflate: .webSocket
        case .xhrStreaming: .xhrStreaming
        case .eventSource: .eventSource
        case .xhrPolling: .xhrPolling
        case .jsonpPolling: .jsonpPolling
        case .engineIOPolling: .engineIOPolling
        case .engineIOWebSocket: .engineIOWebSocket
        }
    }

    public var compression: Bool { self == .webSocketDeflate }

    /// Whether the row is Engine.IO's (its sessions open at ``BenchOptions/engineIOPath``).
    public var isEngineIO: Bool { clientTransport.isEngineIO }
}

/// A bench scenario.
public enum BenchScenario: String, Codable, CaseIterable, Sendable {
    /// Each client sends at a fixed rate; the server echoes; round-trip latency.
    case echo
    /// A publisher sends at a fixed rate to a broadcast endpoint; every client receives; delivery latency.
    case push
    /// Echo at rising rates: the highest rate sustained before latency degrades.
    case throughput
}

/// What one transport did in one scenario.
public struct TransportResult: Codable, Hashable, Sendable {
    public var transport: BenchTransport
    public var scenario: BenchScenario
    public var clients: Int
    /// Messages per second offered by the load (for throughput: the highest rate sustained).
    public var offeredRate: Double
    /// Messages received inside the measured window.
    public var messages: Int
    /// Messages sent in the window and never received (by the end of the drain period).
    public var lost: Int
    public var seconds: Double
    public var latency: LatencySummary
    /// Client → server bytes per message received, HTTP heads and framing included (at the client's sockets).
    public var bytesSentPerMessage: Double
    /// Server → client bytes per message received.
    public var bytesReceivedPerMessage: Double
    /// HTTP requests per message received (a WebSocket makes none after its handshake).
    public var requestsPerMessage: Double
    /// Server CPU time per 1,000 messages, in milliseconds (when the server's PID is known).
    public var serverCPUPer1000: Double?
    /// Server resident memory at the end of the run, MiB (when the server's PID is known).
    public var serverRSSMiB: Double?
    /// The bench process's CPU use during the window, percent of one core.
    public var clientCPUPercent: Double
    /// Connections or sessions that failed.
    public var errors: Int
    /// Everything the run's sessions sent and received over their whole life (connects, warmup and
    /// drain included): what a packet capture of the same run sees.
    public var sessionTraffic: SockwayTraffic?

    public var messagesPerSecond: Double { seconds > 0 ? Double(messages) / seconds : 0 }

    public init(
        transport: BenchTransport,
        scenario: BenchScenario,
        clients: Int,
        offeredRate: Double,
        messages: Int,
        lost: Int,
        seconds: Double,
        latency: LatencySummary,
        bytesSentPerMessage: Double,
        bytesReceivedPerMessage: Double,
        requestsPerMessage: Double,
        serverCPUPer1000: Double?,
        serverRSSMiB: Double?,
        clientCPUPercent: Double,
        errors: Int
    ) {
        self.transport = transport
        self.scenario = scenario
        self.clients = clients
        self.offeredRate = offeredRate
        self.messages = messages
        self.lost = lost
        self.seconds = seconds
        self.latency = latency
        self.bytesSentPerMessage = bytesSentPerMessage
        self.bytesReceivedPerMessage = bytesReceivedPerMessage
        self.requestsPerMessage = requestsPerMessage
        self.serverCPUPer1000 = serverCPUPer1000
        self.serverRSSMiB = serverRSSMiB
        self.clientCPUPercent = clientCPUPercent
        self.errors = errors
    }
}

/// A whole `sockway bench` run.
public struct BenchReport: Codable, Hashable, Sendable {
    public var version = 1
    public var date: String
    /// The service measured (`http://127.0.0.1:PORT`).
    public var target: String
    /// What served it: "Sockway (started by the bench)", or what `--server-name` says.
    public var server: String
    public var machine: String
    public var clients: Int
    public var rate: Double
    public var messageBytes: Int
    public var duration: Double
    /// The request headers beyond the protocol's own, when any were sent ("browser", "2 extra").
    public var requestHeaders: String?
    public var results: [TransportResult]
    /// Rows that were not measured, and why (a server without an Engine.IO endpoint; Engine.IO in the
    /// push scenario).
    public var skipped: [String]?

    public init(
        date: String,
        target: String,
        server: String,
        machine: String,
        clients: Int,
        rate: Double,
        messageBytes: Int,
        duration: Double,
        results: [TransportResult] = []
    ) {
        self.date = date
        self.target = target
        self.server = server
        self.machine = machine
        self.clients = clients
        self.rate = rate
        self.messageBytes = messageBytes
        self.duration = duration
        self.results = results
    }

    public func results(for scenario: BenchScenario) -> [TransportResult] {
        results.filter { $0.scenario == scenario }
    }
}

/// Traffic in a window, per message: the arithmetic behind the bytes and requests columns.
public struct TrafficPerMessage: Hashable, Sendable {
    public var bytesSent: Double
    public var bytesReceived: Double
    public var requests: Double

    public init(window: SockwayTraffic, messages: Int) {
        guard messages > 0 else {
            self.bytesSent = 0
            self.bytesReceived = 0
            self.requests = 0
            return
        }
        bytesSent = Double(window.bytesSent) / Double(messages)
        bytesReceived = Double(window.bytesReceived) / Double(messages)
        requests = Double(window.requests) / Double(messages)
    }
}
