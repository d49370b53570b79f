import NIOCore

/// The code and reason a SockJS session was closed with, as carried by a `c[code,"reason"]` frame.
public struct SockJSCloseReason: Hashable, Sendable, CustomStringConvertible {
    public var code: Int
    public var reason: String

    public init(code: Int, reason: String) {
        self.code = code
        self.reason = reason
    }

    /// `3000 "Go away!"`: the application closed the session (SockJS's conventional reply).
    public static let goAway = SockJSCloseReason(code: 3000, reason: "Go away!")
    /// `2010`: a second receiving request arrived while one is attached. Sent to the newcomer only.
    public static let anotherConnectionStillOpen = SockJSCloseReason(code: 2010, reason: "Another connection still open")
    /// `1002`: the receiving request was cut by the network, so messages may have been lost.
    public static let connectionInterrupted = SockJSCloseReason(code: 1002, reason: "Connection interrupted")
    /// `1000`: the client stopped polling and the disconnect delay ran out.
    public static let sessionTimedOut = SockJSCloseReason(code: 1000, reason: "Session timed out")
    /// `1001`: the server is shutting down.
    public static let serverShuttingDown = SockJSCloseReason(code: 1001, reason: "Server shutting down")
    /// `1013`: the outbound queue of a session whose client does not keep up is full.
    public static let sendQueueFull = SockJSCloseReason(code: 1013, reason: "Send queue full")
    /// `1013`: the application does not consume inbound messages fast enough.
    public static let receiveQueueFull = SockJSCloseReason(code: 1013, reason: "Receive queue full")
    /// `1009`: an inbound message or payload is over the configured limit.
    public static let messageTooBig = SockJSCloseReason(code: 1009, reason: "Message too big")
    /// `1000`: a normal closure initiated by the client.
    public static let normalClosure = SockJSCloseReason(code: 1000, reason: "Normal closure")

    public var description: String { "\(code) \"\(reason)\"" }
}

/// A SockJS frame as sent by the server.
public enum SockJSFrame: Hashable, Sendable {
    /// `o`: the session is open.
    case open
    /// `h`: keeps proxies from timing out an idle receiver.
    case heartbeat
    /// `a[...]`: one or more messages, JSON-quoted.
    case messages([String])
    /// `c[code,"reason"]`: the session is closed.
    case close(SockJSCloseReason)

    /// Writes the frame's text (without any transport wrapping).
    public func write(into buffer: inout ByteBuffer) {
        switch self {
        case .open:
            buffer.writeInteger(UInt8(ascii: "o"))
        case .heartbeat:
            buffer.writeInteger(UInt8(ascii: "h"))
        case .messages(let messages):
            buffer.writeInteger(UInt8(ascii: "a"))
            SockJSMessageArray.writeArray(messages, into: &buffer)
        case .close(let close):
            buffer.writeStaticString("c[")
            buffer.writeString(String(close.code))
            buffer.writeInteger(UInt8(ascii: ","))
            SockJSJSON.writeQuoted(close.reason, into: &buffer)
            buffer.writeInteger(UInt8(ascii: "]"))
        }
    }

    /// A capacity guess for the frame's text: exact for ASCII without escapes, so buffers are sized once.
    public var estimatedByteCount: Int {
        switch self {
        case .open, .heartbeat: return 1
        case .messages(let messages): return messages.reduce(2) { $0 + $1.utf8.count + 3 }
        case .close(let close): return close.reason.utf8.count + 12
        }
    }

    /// The frame's text, for tests and logs.
    public var text: String {
        var buffer = ByteBuffer()
        write(into: &buffer)
        return String(buffer: buffer)
    }
}
