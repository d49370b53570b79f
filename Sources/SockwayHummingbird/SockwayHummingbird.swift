import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import SockwayServer
import SockwaySockJS

/// A request context that carries its connection's channel.
///
/// With it Sockway paces what it writes by the channel itself: after each batch it waits until the
/// channel's event loop has taken the batch, so the channel's writability (which Hummingbird's writers
/// wait on) is up to date before more is written, and a client that stops reading holds at most one
/// batch beyond the channel's write buffer. Without it, pacing rests on Hummingbird's async writers
/// alone, which see a full channel only once the writes queued for its loop have run: the bound holds,
/// but loosely (several MiB more for a client that reads nothing). A context that conforms also gives
/// sessions their client's address.
public protocol SockwayConnectionContext: RequestContext {
    /// The connection the request arrived on.
    var channel: any Channel { get }
}

/// Sockway's endpoints mounted in a Hummingbird 2 application, served by its own server and port:
/// every SockJS HTTP transport as routes of its router, SockJS WebSocket (SockJS framing and raw) as
/// routes of the WebSocket router that its `.http1WebSocketUpgrade` server takes, and Engine.IO
/// (Socket.IO) endpoints over HTTP long-polling and WebSocket (with the upgrade from polling).
///
/// ```swift
/// let sockway = SockwayRoutes(endpoints: [
///     .async("/echo") { session in
///         for await message in session.messages { session.send(message) }
///     }
/// ])
/// let router = Router()
/// sockway.addRoutes(to: router)
/// let webSocketRouter = Router(context: BasicWebSocketRequestContext.self)
/// sockway.addWebSocketRoutes(to: webSocketRouter)
/// let app = Application(
///     router: router,
///     server: .http1WebSocketUpgrade(webSocketRouter: webSocketRouter),
///     configuration: .init(address: .hostname("127.0.0.1", port: 8080))
/// )
/// ```
///
/// Sessions, their bounds, timers and backpressure are Sockway's own; they live on the loops of
/// `eventLoopGroup`. A request context that conforms to ``SockwayConnectionContext`` (or to
/// Hummingbird's `RemoteAddressRequestContext`) gives sessions their client's address (for
/// `SockwayConfiguration.maxSessionsPerAddress` and address binding); with the former, writes to a
/// slow client are paced tightly by its channel.
public final class SockwayRoutes: Sendable {
    private let front: ForeignFront

    /// Sockway's runtime for `endpoints`, ready to be added to an application's routers.
    ///
    /// - Parameters:
    ///   - configuration: the server-wide session bounds (`maxSessions`, `maxSessionsPerAddress`,
    ///     `maxTotalQueuedBytes`, `retryAfterSeconds`); the listener's settings are Hummingbird's.
    ///   - eventLoopGroup: where sessions live; `nil` (the default): NIO's shared group, which is also
    ///     Hummingbird's default, so sessions share the application's threads.
    ///   - logger: where refusals of hostile or broken clients are logged.
    ///   - endpoints: SockJS and Engine.IO endpoints (Socket.IO: `SocketIOServer.endpoint`), each under
    ///     its own URL prefix.
    public init(
        configuration: SockwayConfiguration = .init(),
        eventLoopGroup: (any EventLoopGroup)? = nil,
        logger: Logger = Logger(label: "sockway"),
        endpoints: [SockwayEndpoint]
    ) {
        self.front = ForeignFront(configuration: configuration, endpoints: endpoints, eventLoopGroup: eventLoopGroup, logger: logger)
    }

    /// Sessions alive now, over every endpoint.
    public var sessionCount: Int { front.sessionCount }

    /// Clients refused so far, by reason (see `SockwayRefusal.name`), for metrics.
    public var refusalCounts: [String: Int] { front.refusalCounts }

    /// Hands what the sessions have counted to swift-metrics now, when `configuration.metrics` is set
    /// (Hummingbird publishes nothing on a timer for Sockway: call it before a scrape, or on one).
    public func publishMetrics() async {
        await front.publishMetrics()
    }

    /// Closes every open session with `code` and `reason`: call it when the application shuts down,
    /// so that clients are told rather than cut.
    public func closeAllSessions(code: Int = 1001, reason: String = "Server shutting down") async {
        await front.closeAllSessions(code: code, reason: reason)
    }

    /// Adds the HTTP routes of every endpoint to `router`: for SockJS info, iframe, the polling and
    /// streaming transports, the send URLs, and the answer to a WebSocket URL requested without an
    /// upgrade; for Engine.IO its long-polling (handshake, GET, POST, preflight).
    public func addRoutes<Context: RequestContext>(to router: some RouterMethods<Context>) {
        let methods: [HTTPRequest.Method] = [.get, .post, .options]
        for prefix in front.sockJSPrefixes {
            for path in [prefix, prefix + "/**"] {
                for method in methods {
                    router.on(RouterPath(path), method: method) { request, context in
                        await self.respond(to: request, context: context)
                    }
                }
            }
        }
        for prefix in front.engineIOPrefixes {
            for method in methods {
                router.on(RouterPath(prefix), method: method) { request, context in
                    await self.respondEngineIO(to: request, context: context)
                }
            }
        }
    }

    /// Adds the WebSocket routes of every endpoint (`/<server>/<session>/websocket` with SockJS framing,
    /// `/websocket` raw, and Engine.IO's `transport=websocket`) to `router`, the WebSocket router of the application's
    /// `.http1WebSocketUpgrade(webSocketRouter:configuration:)` server. Set that configuration's
    /// `maxFrameSize` to at least the endpoints' `maxMessageBytes` (Hummingbird's default is 16 KiB).
    public func addWebSocketRoutes<Context: WebSocketRequestContext>(to router: some RouterMethods<Context>) {
        let front = self.front
        let paths = front.sockJSPrefixes.flatMap { [$0, $0 + "/**"] } + front.engineIOPrefixes
        for path in paths {
            router.ws(
                RouterPath(path),
                shouldUpgrade: { request, context in
                    await front.acceptsWebSocket(Self.foreignRequest(request, context: context)) ? .upgrade([:]) : .dontUpgrade
                },
                onUpgrade: { inbound, outbound, context in
                    let request = Self.foreignRequest(context.request, context: context.requestContext)
                    guard let socket = await front.openWebSocket(request) else {
                        try await outbound.close(.policyViolation, reason: nil)
                        return
                    }
                    let channel = (context.requestContext as? any SockwayConnectionContext)?.channel
                    await Self.serve(socket, inbound: inbound, outbound: outbound, pacedBy: channel)
                }
            )
        }
    }

    // MARK: HTTP

    private func respond(to request: Request, context: some RequestContext) async -> Response {
        let channel = (context as? any SockwayConnectionContext)?.channel
        switch front.sockJS(Self.foreignRequest(request, context: context)) {
        case .respond(let response):
            return Self.response(response)
        case .send(let send):
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: send.maxBodyBytes)
            } catch {
                // Over the bound (or the client left while sending, when no one reads the answer).
                return Self.response(send.bodyTooLarge)
            }
            return Self.response(await send.deliver(body))
        case .receive(let receive):
            switch await receive.start() {
            case .refused(let response):
                return Self.response(response)
            case .streaming(let body):
                // What the session has at once goes out at once: a poll that finds messages waiting
                // is answered here as a plain response, and its connection stays open.
                var early: [ByteBuffer] = []
                while case .some(let ready) = body.ready() {
                    guard let chunks = ready else {
                        return Response(
                            status: HTTPResponse.Status(code: receive.head.status),
                            headers: Self.fields(receive.head.headers),
                            body: ResponseBody(contentsOf: early)
                        )
                    }
                    early += chunks
                }
                // The response waits for the session (a held poll, a stream), maybe for a whole
                // heartbeat: a client that leaves meanwhile is noticed by its connection closing, not
                // only by a later write failing. Hummingbird closes the connection after such a
                // response, so the client is told not to reuse it.
                var headers = Self.fields(receive.head.headers)
                headers[.connection] = "close"
                let first = early
                return Response(
                    status: HTTPResponse.Status(code: receive.head.status),
                    headers: headers,
                    body: ResponseBody { writer in
                        if !first.isEmpty {
                            try await Self.write(first, of: body, into: &writer, pacedBy: channel)
                        }
                        try await request.body.consumeWithInboundCloseHandler { _ in
                            while let chunks = await body.next() {
                                try await Self.write(chunks, of: body, into: &writer, pacedBy: channel)
                            }
                        } onInboundClosed: {
                            body.clientGone()
                        }
                        try await writer.finish(nil)
                    }
                )
            }
        }
    }

    private func respondEngineIO(to request: Request, context: some RequestContext) async -> Response {
        switch front.engineIO(Self.foreignRequest(request, context: context)) {
        case .respond(let response):
            return Self.response(response)
        case .poll(let poll):
            return Self.response(await poll.answer())
        case .post(let post):
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: post.maxBodyBytes)
            } catch {
                return Self.response(post.bodyTooLarge)
            }
            return Self.response(await post.deliver(body))
        }
    }

    /// Writes chunks of the session's response; the write waits for the connection to take them, so
    /// a slow client holds the session back rather than piling bytes up here.
    private static func write(
        _ chunks: [ByteBuffer],
        of body: ForeignResponseBody,
        into writer: inout any ResponseBodyWriter,
        pacedBy channel: (any Channel)?
    ) async throws {
        do {
            try await writer.write(contentsOf: chunks)
            try await catchUp(channel)
        } catch {
            body.clientGone()
            throw error
        }
    }

    /// Waits until `channel`'s event loop has run the writes handed to it so far: Hummingbird's writers
    /// pass each write to the loop and check the channel's writability before the next, so without
    /// this they would take writes faster than a loaded loop can tell them the channel is full.
    private static func catchUp(_ channel: (any Channel)?) async throws {
        guard let channel else { return }
        try await channel.eventLoop.submit {}.get()
    }

    // MARK: WebSocket

    /// Runs one WebSocket connection: the session's frames out, the client's messages in. A message is
    /// read only once the session took the one before, so a client that sends faster than the session
    /// drains is paced by its connection's read backpressure.
    private static func serve(
        _ socket: ForeignWebSocket,
        inbound: WebSocketInboundStream,
        outbound: WebSocketOutboundWriter,
        pacedBy channel: (any Channel)?
    ) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    writing: while let frames = await socket.next() {
                        for frame in frames {
                            switch frame {
                            case .text(let text):
                                try await outbound.write(.text(text))
                            case .binary(let data):
                                try await outbound.write(.binary(data))
                            case .close(let code, let reason):
                                try await outbound.close(.init(codeNumber: Int(code)), reason: reason)
                                break writing
                            }
                        }
                        try await Self.catchUp(channel)
                    }
                } catch {
                    socket.connectionEnded(aborted: true)
                }
            }
            do {
                for try await message in inbound.messages(maxSize: socket.maxMessageBytes) {
                    switch message {
                    case .text(let text): await socket.received(text: text)
                    case .binary(let data): await socket.received(binary: data)
                    }
                }
                socket.connectionEnded(aborted: false)
            } catch {
                socket.connectionEnded(aborted: true)
            }
        }
    }

    // MARK: Conversions

    private static func foreignRequest(_ request: Request, context: some RequestContext) -> ForeignRequest {
        var uri = request.uri.path
        if let query = request.uri.query { uri += "?" + query }
        return ForeignRequest(
            method: request.method.rawValue,
            uri: uri,
            headers: request.headers.map { (name: $0.name.rawName, value: $0.value) },
            remoteAddress: (context as? any RemoteAddressRequestContext)?.remoteAddress
                ?? (context as? any SockwayConnectionContext)?.channel.remoteAddress
        )
    }

    private static func response(_ response: SockJSResponse) -> Response {
        Response(
            status: HTTPResponse.Status(code: response.status),
            headers: fields(response.headers),
            body: response.body.isEmpty ? ResponseBody() : ResponseBody(byteBuffer: ByteBuffer(string: response.body))
        )
    }

    private static func response(_ response: ForeignResponse) -> Response {
        Response(
            status: HTTPResponse.Status(code: response.status),
            headers: fields(response.headers),
            body: response.body.readableBytes == 0 ? ResponseBody() : ResponseBody(byteBuffer: response.body)
        )
    }

    private static func fields(_ headers: [SockJSHeader]) -> HTTPFields {
        fields(headers.map { (name: $0.name, value: $0.value) })
    }

    private static func fields(_ headers: [(name: String, value: String)]) -> HTTPFields {
        var fields = HTTPFields()
        for header in headers {
            guard let name = HTTPFields.Element.Name(header.name) else { continue }
            fields.append(HTTPFields.Element(name: name, value: header.value))
        }
        return fields
    }
}
