#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// The handshake's checks are NIO's (`Sec-WebSocket-Key` and `-Accept`); after the 101 the connection
/// gets Sockway's own frame reading and writing instead of NIO's frame decoder and encoder.
public struct WebSocketClientUpgrader: NIOHTTPClientProtocolUpgrader, Sendable {
    let handshake: NIOWebSocketClientUpgrader
    let install: @Sendable (any Channel, HTTPResponseHead) throws -> Void

    /// - Parameters:
    ///   - handshake: NIO's upgrader, for its request headers and its check of the response; its own
    ///     `upgradePipelineHandler` is never called.
    ///   - install: adds the connection's WebSocket handler, on the channel's loop, after the 101.
    public init(handshake: NIOWebSocketClientUpgrader, install: @escaping @Sendable (any Channel, HTTPResponseHead) throws -> Void) {
        self.handshake = handshake
        self.install = install
    }

    public var supportedProtocol: String { handshake.supportedProtocol }
    public var requiredUpgradeHeaders: [String] { handshake.requiredUpgradeHeaders }

    public func addCustom(upgradeRequestHeaders: inout HTTPHeaders) {
        handshake.addCustom(upgradeRequestHeaders: &upgradeRequestHeaders)
    }

    public func shouldAllowUpgrade(upgradeResponse: HTTPResponseHead) -> Bool {
        handshake.shouldAllowUpgrade(upgradeResponse: upgradeResponse)
    }

    public func upgrade(context: ChannelHandlerContext, upgradeResponse: HTTPResponseHead) -> EventLoopFuture<Void> {
        let channel = context.channel
        return context.eventLoop.makeCompletedFuture { try install(channel, upgradeResponse) }
    }
}

/// Masking keys from the kernel's CSPRNG (RFC 6455 §5.3 asks for strong entropy), drawn 4 KiB at a
/// time from `/dev/urandom`: one read per 1,024 frames instead of a `getrandom` per frame.
public struct WebSocketMaskKeySource {
    public init() {}

    private var pool = [UInt8](repeating: 0, count: 4096)
    private var index = 4096

    public mutating func next() -> WebSocketMaskingKey {
        if index + 4 > pool.count {
            let descriptor = open("/dev/urandom", O_RDONLY)
            let filled = descriptor < 0 ? -1 : pool.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if descriptor >= 0 { close(descriptor) }
            if filled != pool.count {
                var generator = SystemRandomNumberGenerator()
                for offset in stride(from: 0, to: pool.count, by: 8) {
                    withUnsafeBytes(of: generator.next() as UInt64) { pool.replaceSubrange(offset..<offset + 8, with: $0) }
                }
            }
            index = 0
        }
        defer { index += 4 }
        // NIO's only public initialiser is generic over a collection (unspecialised, it allocates);
        // the key is four plain bytes.
        if MemoryLayout<WebSocketMaskingKey>.size == 4 {
            return pool.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: index, as: WebSocketMaskingKey.self) }
        }
        return WebSocketMaskingKey(pool[index..<index + 4])!
    }
}

