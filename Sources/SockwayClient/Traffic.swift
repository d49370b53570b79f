import NIOCore
import NIOPosix
import Synchronization

/// What a client session put on and took off the wire, counted at its sockets: HTTP heads and
/// bodies, WebSocket handshakes and frame headers included (TCP/IP headers are not).
public struct SockwayTraffic: Hashable, Sendable, Codable {
    /// Bytes written to the client's sockets.
    public var bytesSent: Int
    /// Bytes read from the client's sockets.
    public var bytesReceived: Int
    /// HTTP requests made, a WebSocket handshake counting as one.
    public var requests: Int
    /// TCP connections opened.
    public var connections: Int

    public init(bytesSent: Int = 0, bytesReceived: Int = 0, requests: Int = 0, connections: Int = 0) {
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
        self.requests = requests
        self.connections = connections
    }

    public static func - (lhs: SockwayTraffic, rhs: SockwayTraffic) -> SockwayTraffic {
        SockwayTraffic(
            bytesSent: lhs.bytesSent - rhs.bytesSent,
            bytesReceived: lhs.bytesReceived - rhs.bytesReceived,
            requests: lhs.requests - rhs.requests,
            connections: lhs.connections - rhs.connections
        )
    }

    public static func + (lhs: SockwayTraffic, rhs: SockwayTraffic) -> SockwayTraffic {
        SockwayTraffic(
            bytesSent: lhs.bytesSent + rhs.bytesSent,
            bytesReceived: lhs.bytesReceived + rhs.bytesReceived,
            requests: lhs.requests + rhs.requests,
            connections: lhs.connections + rhs.connections
        )
    }
}

/// Counters shared by a session's connections (several loops may count at once).
public final class TrafficMeter: Sendable {
    private let sent = Atomic<Int>(0)
    private let received = Atomic<Int>(0)
    private let requestCount = Atomic<Int>(0)
    private let connectionCount = Atomic<Int>(0)

    public init() {}

    public var snapshot: SockwayTraffic {
        SockwayTraffic(
            bytesSent: sent.load(ordering: .relaxed),
            bytesReceived: received.load(ordering: .relaxed),
            requests: requestCount.load(ordering: .relaxed),
            connections: connectionCount.load(ordering: .relaxed)
        )
    }

    func countSent(_ bytes: Int) { sent.add(bytes, ordering: .relaxed) }
    func countReceived(_ bytes: Int) { received.add(bytes, ordering: .relaxed) }
    func countRequest() { requestCount.add(1, ordering: .relaxed) }
    func countConnection() { connectionCount.add(1, ordering: .relaxed) }
}

/// First in the pipeline: counts every byte read from and written to the socket, and, when asked,
/// reads no faster than a given rate (the next read waits until the bytes read so far are due).
final class TrafficCountingHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let meter: TrafficMeter
    private let bytesPerSecond: Int?
    /// When the bytes read so far may have been read, at `bytesPerSecond` since the first read.
    private var readDue: NIODeadline?
    private var delayedRead: Scheduled<Void>?

    init(meter: TrafficMeter, receiveBytesPerSecond: Int? = nil) {
        self.meter = meter
        self.bytesPerSecond = receiveBytesPerSecond.map { max(1, $0) }
    }

    /// Channel options for a connection read at `bytesPerSecond`: a small socket buffer, so that the
    /// kernel does not take in at full speed what the application reads slowly.
    static func applyReceiveLimit(_ bytesPerSecond: Int?, to bootstrap: ClientBootstrap) -> ClientBootstrap {
        guard let bytesPerSecond else { return bootstrap }
        return bootstrap
            .channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(max(4096, min(bytesPerSecond / 4, 1 << 20))))
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: max(1024, min(bytesPerSecond / 10, 64 * 1024))))
    }

    func read(context: ChannelHandlerContext) {
        guard bytesPerSecond != nil, let due = readDue, due > context.eventLoop.now else {
            context.read()
            return
        }
        guard delayedRead == nil else { return }
        delayedRead = context.eventLoop.assumeIsolated().scheduleTask(deadline: due) { [self] in
            delayedRead = nil
            context.read()
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        delayedRead?.cancel()
    }

    func channelActive(context: ChannelHandlerContext) {
        meter.countConnection()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let count = unwrapInboundIn(data).readableBytes
        meter.countReceived(count)
        if let bytesPerSecond {
            let now = context.eventLoop.now
            let from = max(readDue ?? now, now)
            readDue = from + .nanoseconds(Int64(count) * 1_000_000_000 / Int64(bytesPerSecond))
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        meter.countSent(unwrapOutboundIn(data).readableBytes)
        context.write(data, promise: promise)
    }
}
