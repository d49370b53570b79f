import NIOCore
import NIOHTTP1
import NIOPosix
import SockwayCluster

/// A request for a session another node of the cluster holds: where to send it, and the head as it
/// is sent there (marked with this node's name, so that the owner never forwards it again).
struct ForwardedRequest {
    /// The header that marks a forwarded request: one hop at most.
    static let header = "Sockway-Forwarded"

    let host: String
    let port: Int
    let node: String

    /// The owner of `head`'s Engine.IO session (its sid starts with the node's name and `~`), when it is
    /// another node the directory knows and the request was not forwarded already.
    init?(_ head: HTTPRequestHead, sid: Substring, nodeID: String, directory: any ClusterDirectory) {
        guard let tilde = sid.firstIndex(of: "~"), sid[..<tilde] != nodeID[...],
            !head.headers.contains(name: Self.header),
            let address = directory.address(of: String(sid[..<tilde])),
            let (host, port) = Self.hostAndPort(address)
        else { return nil }
        self.host = host
        self.port = port
        self.node = String(sid[..<tilde])
    }

    /// `http://host:port` (an `https` node is not forwarded to: this node would speak plain HTTP to it).
    static func hostAndPort(_ address: String) -> (String, Int)? {
        guard address.hasPrefix("http://") else { return nil }
        let rest = address.dropFirst("http://".count).prefix { $0 != "/" }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else {
            return nil
        }
        var host = rest[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        return host.isEmpty ? nil : (String(host), port)
    }

    /// The head as the owner gets it: marked as forwarded by `from`, with the client's address, and
    /// `Connection: close` unless it is an upgrade (one request per forwarded connection).
    static func encode(_ head: HTTPRequestHead, from: String, client: SocketAddress?, into buffer: inout ByteBuffer) {
        let upgrade = head.headers.contains(name: "upgrade")
        buffer.writeString("\(head.method.rawValue) \(head.uri) HTTP/1.1\r\n")
        for (name, value) in head.headers {
            let lowered = name.lowercased()
            if lowered == "x-forwarded-for" || (!upgrade && (lowered == "connection" || lowered == "keep-alive")) { continue }
            buffer.writeString("\(name): \(value)\r\n")
        }
        var forwardedFor = head.headers[canonicalForm: "x-forwarded-for"].joined(separator: ", ")
        if let ip = client?.ipAddress { forwardedFor += forwardedFor.isEmpty ? ip : ", \(ip)" }
        if !forwardedFor.isEmpty { buffer.writeString("X-Forwarded-For: \(forwardedFor)\r\n") }
        if !upgrade { buffer.writeString("Connection: close\r\n") }
        buffer.writeString("\(header): \(from)\r\n\r\n")
    }
}

/// One side of two spliced connections: what one reads, the other writes. A side whose partner cannot
/// take more stops reading until it can, so nothing queues without bound.
final class SpliceHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: SpliceHandler?
    private var context: ChannelHandlerContext?
    private var readPending = false

    /// Pairs two handlers of channels on one event loop.
    static func pair(_ one: SpliceHandler, _ other: SpliceHandler) {
        one.partner = other
        other.partner = one
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.context?.write(NIOAny(unwrapInboundIn(data)), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.context?.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // What was written to the partner goes out before it closes.
        if let other = partner?.context {
            let channel = other.channel
            other.writeAndFlush(NIOAny(channel.allocator.buffer(capacity: 0))).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
        partner = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let other = partner, other.readPending {
            other.readPending = false
            other.context?.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if partner?.context?.channel.isWritable ?? true {
            context.read()
        } else {
            readPending = true
        }
    }
}
