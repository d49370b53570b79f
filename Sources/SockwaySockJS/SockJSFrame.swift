import SockwayCore
import NIOCore

/// Why a SockJS session ended: the code and reason of its `c[code,"reason"]` frame.
public typealias SockJSCloseReason = SockwayCloseReason

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
