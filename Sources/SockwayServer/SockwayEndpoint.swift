import NIOCore
import SockwaySockJS

/// Callbacks of a session, run on the session's event loop: the face for echo, broadcast, bridging and
/// anything hot. Messages arrive in batches, as they came off the wire.
public protocol SockwaySessionDelegate: AnyObject {
    /// The session is open; ``SockwaySession/send(_:)`` works from now on.
    func sessionDidOpen(_ session: SockwaySession)
    /// Messages from the client, in order.
    func session(_ session: SockwaySession, didReceive messages: [String])
    /// The session is closed; nothing more will be delivered.
    func session(_ session: SockwaySession, didCloseWith reason: SockJSCloseReason)
    /// A binary message, which only the raw WebSocket URL and Engine.IO can carry. By default the session closes
    /// with 1003 "Binary messages are not supported".
    func session(_ session: SockwaySession, didReceiveBinary message: ByteBuffer)
}

extension SockwaySessionDelegate {
    public func sessionDidOpen(_ session: SockwaySession) {}
    public func session(_ session: SockwaySession, didReceiveBinary message: ByteBuffer) {
        session.close(code: 1003, reason: "Binary messages are not supported")
    }
    public func session(_ session: SockwaySession, didCloseWith reason: SockJSCloseReason) {}
}

/// A service under a URL prefix with its options and its session handler: SockJS (`/echo`), or
/// Engine.IO (``engineIO(_:options:engineIO:makeDelegate:)``, `/engine.io`).
public struct SockwayEndpoint: Sendable {
    enum Handler: Sendable {
        case eventLoop(@Sendable (SockwaySession) -> any SockwaySessionDelegate)
        case async(@Sendable (SockwaySession) async throws -> Void)
    }

    /// The prefix, without a trailing slash (`/echo`, `/a/b/chat`).
    public let prefix: String
    public let options: SockwayEndpointOptions
    let handler: Handler
    /// Set for an Engine.IO endpoint; `nil` for SockJS.
    let engineIO: EngineIOOptions?

    /// An endpoint whose sessions are driven by a delegate on their event loop.
    /// - Parameters:
    ///   - prefix: the URL prefix (`/echo`); a trailing slash is dropped.
    ///   - options: the endpoint's transports, timers and bounds.
    ///   - makeDelegate: called on the session's event loop when it opens.
    public static func eventLoop(
        _ prefix: String,
        options: SockwayEndpointOptions = .init(),
        makeDelegate: @escaping @Sendable (SockwaySession) -> any SockwaySessionDelegate
    ) -> SockwayEndpoint {
        SockwayEndpoint(prefix: prefix, options: options, handler: .eventLoop(makeDelegate))
    }

    /// An endpoint whose sessions are each served by a task running `body`. The session closes when
    /// `body` returns or throws, and ``SockwaySession/messages`` ends when the session closes.
    public static func async(
        _ prefix: String,
        options: SockwayEndpointOptions = .init(),
        body: @escaping @Sendable (SockwaySession) async throws -> Void
    ) -> SockwayEndpoint {
        SockwayEndpoint(prefix: prefix, options: options, handler: .async(body))
    }

    /// Bounds of the inbound queue behind ``SockwaySession/messages``; `nil` for delegate endpoints,
    /// whose sessions need none.
    var inboundLimit: (messages: Int, bytes: Int)? {
        if case .async = handler { return options.inboundLimit }
        return nil
    }

    init(prefix: String, options: SockwayEndpointOptions, handler: Handler, engineIO: EngineIOOptions? = nil) {
        var prefix = prefix
        while prefix.hasSuffix("/") { prefix.removeLast() }
        if !prefix.isEmpty && !prefix.hasPrefix("/") { prefix = "/" + prefix }
        self.prefix = prefix
        self.options = options
        self.handler = handler
        self.engineIO = engineIO
    }
}
