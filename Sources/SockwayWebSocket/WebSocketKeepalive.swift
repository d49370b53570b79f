import NIOCore

/// Server pings and the idle timeout of one connection, without I/O.
///
/// The adapter reports every frame it receives and calls ``tick(now:)`` at ``nextDeadline``; the
/// keepalive answers whether to ping or to give up on a peer that has been silent too long. Any frame
/// counts as life, pongs included, so a client that answers pings is never idle.
public struct WebSocketKeepalive: Sendable, Hashable {
    public enum Action: Sendable, Hashable {
        case none
        /// Send a ping.
        case ping
        /// Nothing came from the peer for the idle timeout: close the connection.
        case close
    }

    /// A ping after this long without one; `nil` for no pings.
    public let pingInterval: TimeAmount?
    /// Close after this long without a frame from the peer; `nil` for never.
    public let idleTimeout: TimeAmount?
    private var lastReceived: NIODeadline
    private var lastPing: NIODeadline

    /// `nil` when neither pings nor an idle timeout are configured (the connection needs no timer).
    public init?(pingInterval: TimeAmount?, idleTimeout: TimeAmount?, now: NIODeadline) {
        guard pingInterval != nil || idleTimeout != nil else { return nil }
        self.pingInterval = pingInterval
        self.idleTimeout = idleTimeout
        self.lastReceived = now
        self.lastPing = now
    }

    /// A frame (any frame) arrived.
    public mutating func received(now: NIODeadline) {
        lastReceived = now
    }

    /// When ``tick(now:)`` should next run.
    public var nextDeadline: NIODeadline {
        let ping = pingInterval.map { lastPing + $0 } ?? .distantFuture
        let idle = idleTimeout.map { lastReceived + $0 } ?? .distantFuture
        return min(ping, idle)
    }

    public mutating func tick(now: NIODeadline) -> Action {
        if let idleTimeout, now - lastReceived >= idleTimeout { return .close }
        if let pingInterval, now - lastPing >= pingInterval {
            lastPing = now
            return .ping
        }
        return .none
    }
}
