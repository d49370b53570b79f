import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SockwayCore
import SockwayEngineIO
import SockwaySockJS

/// Sockway's endpoints served by an HTTP server that is not Sockway's own (Hummingbird's, in
/// SockwayHummingbird): the entry points such a front calls, in plain values.
///
/// Everything Sockway decides stays here: the endpoint a URL belongs to, the SockJS rules, admission
/// to a session under the server's bounds, the session's receivers and timers. The front only moves a
/// request in and the bytes out, and says when its client went away. Between the session's event loop
/// and the front's writing task sits a ``ForeignOutbound``, bounded like a channel's write buffer.
package final class ForeignFront: Sendable {
    let runtime: ServerRuntime
    private let loops: [any EventLoop]

    /// - Parameter eventLoopGroup: where sessions live, sharded by session id as in Sockway's own
    ///   server; `nil`: NIO's shared group (which is also Hummingbird's default).
    package init(configuration: SockwayConfiguration, endpoints: [SockwayEndpoint], eventLoopGroup: (any EventLoopGroup)?, logger: Logger) {
        let group = eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
        var loops: [any EventLoop] = []
        var iterator = group.makeIterator()
        while let loop = iterator.next() { loops.append(loop) }
        self.loops = loops
        self.runtime = ServerRuntime(configuration: configuration, endpoints: endpoints, loops: loops, logger: logger)
    }

    /// The URL prefixes of the SockJS endpoints, each without a trailing slash.
    package var sockJSPrefixes: [String] {
        runtime.endpoints.map(\.endpoint.prefix)
    }

    /// The URL prefixes of the Engine.IO endpoints, each without a trailing slash.
    package var engineIOPrefixes: [String] {
        runtime.engineIOEndpoints.map(\.endpoint.prefix)
    }

    /// Sessions alive now, over every endpoint.
    package var sessionCount: Int { runtime.budget.sessions }

    /// Clients refused so far, by reason (see ``SockwayRefusal/name``).
    package var refusalCounts: [String: Int] { runtime.refusals.totals }

    /// Hands what the loops have counted to swift-metrics (``SockwayConfiguration/metrics``); does
    /// nothing when metrics are off.
    package func publishMetrics() async {
        guard let publisher = runtime.metricsPublisher, let loop = loops.first else { return }
        try? await publisher.publish(on: loop).get()
    }

    /// Closes every open session of every endpoint with `code` and `reason`.
    package func closeAllSessions(code: Int, reason: String) async {
        let close = SockJSCloseReason(code: code, reason: reason)
        for endpoint in runtime.endpoints {
            try? await endpoint.store.closeAll(close).get()
        }
        for endpoint in runtime.engineIOEndpoints {
            try? await endpoint.store.closeAll(close).get()
        }
    }

    // MARK: SockJS over HTTP

    /// What to do with a plain HTTP request (not a WebSocket upgrade) under a SockJS endpoint.
    package func sockJS(_ request: ForeignRequest) -> ForeignSockJSDecision {
        let head = request.head
        let (path, query) = head.target
        guard let (endpoint, relativePath) = runtime.match(path: path) else { return .respond(.notFound) }
        let sockJSRequest = SockJSRequest(head, relativePath: relativePath, query: query)
        let now = Int(Date().timeIntervalSince1970)
        switch endpoint.rules.decide(sockJSRequest, now: now, entropy: UInt32.random(in: .min ... .max)) {
        case .respond(let response):
            if response.status == 403 { runtime.refusals.log(.foreignOrigin, from: request.remoteAddress) }
            return .respond(response)
        case .receive(let sessionID, let transport, let callback, let responseHead, let prelude):
            return .receive(
                ForeignReceive(
                    runtime: endpoint,
                    sessionID: sessionID,
                    transport: transport,
                    callback: callback,
                    head: responseHead,
                    prelude: prelude,
                    request: request,
                    retryAfterSeconds: runtime.configuration.retryAfterSeconds
                )
            )
        case .send(let sessionID, let transport, let success, let errorHeaders):
            return .send(
                ForeignSend(
                    runtime: endpoint,
                    sessionID: sessionID,
                    transport: transport,
                    success: success,
                    errorHeaders: errorHeaders,
                    request: request
                )
            )
        }
    }

    // MARK: WebSocket

    /// Whether a WebSocket upgrade request is for a session Sockway serves over a foreign front:
    /// SockJS framing (`/<server>/<session>/websocket`) or raw (`/websocket`), from an allowed origin,
    /// or Engine.IO (a WebSocket-only session, or the upgrade of a polling one; its rules check the
    /// origin).
    package func acceptsWebSocket(_ request: ForeignRequest) async -> Bool {
        switch await webSocketTarget(request) {
        case .sockJS(let endpoint, _, _):
            if let origin = request.origin, !endpoint.rules.isOriginAllowed(origin) {
                runtime.refusals.log(.foreignOrigin, from: request.remoteAddress)
                return false
            }
            return true
        case .engineIO:
            return true
        case nil:
            return false
        }
    }

    /// Opens the session of an accepted WebSocket upgrade (see ``acceptsWebSocket(_:)``) on one of
    /// the front's loops; `nil` if the URL takes none.
    package func openWebSocket(_ request: ForeignRequest) async -> ForeignWebSocket? {
        let outbound = ForeignOutbound<ForeignWebSocketFrame>()
        let headers = request.head.headers
        let remoteAddress = request.remoteAddress
        switch await webSocketTarget(request) {
        case .sockJS(let endpoint, let framing, let sessionID):
            if let origin = request.origin, !endpoint.rules.isOriginAllowed(origin) { return nil }
            let loop = loops[Int.random(in: 0..<loops.count)]
            let link = try? await loop.submit {
                let link = ForeignWebSocketLink(framing: framing, outbound: outbound)
                link.open(runtime: endpoint, sessionID: sessionID, headers: headers, remoteAddress: remoteAddress, on: loop)
                return NIOLoopBound(link, eventLoop: loop)
            }.get()
            guard let link else { return nil }
            return ForeignWebSocket(side: .sockJS(link), outbound: outbound, maxMessageBytes: endpoint.endpoint.options.maxMessageBytes)
        case .engineIO(let endpoint, let upgradeSID):
            // An upgrade's connection side runs on its session's loop: nothing hops between the two.
            let loop = upgradeSID.map { endpoint.store.owner(of: $0) } ?? loops[Int.random(in: 0..<loops.count)]
            let connection = try? await loop.submit {
                let link = EngineIOWebSocketLink(runtime: endpoint, upgradeSID: upgradeSID, requestHeaders: headers)
                let connection = ForeignEngineIOConnection(link: link, outbound: outbound, remoteAddress: remoteAddress, on: loop)
                connection.open()
                return NIOLoopBound(connection, eventLoop: loop)
            }.get()
            guard let connection else { return nil }
            return ForeignWebSocket(side: .engineIO(connection), outbound: outbound, maxMessageBytes: endpoint.webSocketOptions.maxMessageBytes)
        case nil:
            return nil
        }
    }

    private func webSocketTarget(_ request: ForeignRequest) async -> SockwayServer.WebSocketTarget? {
        let loop = loops[Int.random(in: 0..<loops.count)]
        return try? await SockwayServer.webSocketTarget(request.head, runtime: runtime, on: loop).get() ?? nil
    }
}

/// An HTTP request as a foreign front hands it over.
package struct ForeignRequest: Sendable {
    let head: HTTPRequestHead
    let remoteAddress: SocketAddress?

    /// - Parameters:
    ///   - uri: the request target: path and query.
    ///   - headers: in their order on the wire; repeated names repeated.
    package init(method: String, uri: String, headers: [(name: String, value: String)], remoteAddress: SocketAddress?) {
        self.head = HTTPRequestHead(
            version: .http1_1,
            method: HTTPMethod(rawValue: method),
            uri: uri,
            headers: HTTPHeaders(headers.map { ($0.name, $0.value) })
        )
        self.remoteAddress = remoteAddress
    }

    var origin: String? { head.headers.first(name: "origin") }
}

/// What a SockJS HTTP request gets.
package enum ForeignSockJSDecision: Sendable {
    /// A complete response (info, iframe, preflight, an error).
    case respond(SockJSResponse)
    /// A polling or streaming response whose body comes from a session.
    case receive(ForeignReceive)
    /// A send: read the body (at most ``ForeignSend/maxBodyBytes``) and hand it over.
    case send(ForeignSend)
}

/// A receiving request (xhr, xhr_streaming, eventsource, htmlfile, jsonp), before it reaches its
/// session.
package struct ForeignReceive: Sendable {
    let runtime: EndpointRuntime
    let sessionID: String
    let transport: SockJSTransport
    let callback: String?
    /// The response's status and headers; its body comes from ``ForeignReceiveStart/streaming(_:)``.
    package let head: SockJSResponse
    let prelude: String?
    let request: ForeignRequest
    let retryAfterSeconds: Int

    /// Finds or creates the session on its loop under its binding and the server's bounds, and
    /// attaches the response to it. A refused request gets a plain answer (`404` for a session bound
    /// to another client, `503` with `Retry-After` past the bounds).
    package func start() async -> ForeignReceiveStart {
        let runtime = self.runtime
        let sessionID = self.sessionID
        let transport = self.transport
        let callback = self.callback
        let prelude = self.prelude
        let headers = request.head.headers
        let remoteAddress = request.remoteAddress
        let head = self.head
        let retryAfterSeconds = self.retryAfterSeconds
        let binding = runtime.bindingToken(cookieHeader: headers.first(name: "cookie"), remoteAddress: remoteAddress)
        let owner = runtime.store.owner(of: sessionID)
        let started = owner.submit { () -> ForeignReceiveStart in
            switch runtime.admitReceiver(toSession: sessionID, transport: transport, remoteAddress: remoteAddress, headers: headers, binding: binding) {
            case .success(let core):
                let body = ForeignOutbound<ByteBuffer>()
                if let prelude { body.push(ByteBuffer(string: prelude), bytes: prelude.utf8.count) }
                let receiver = ForeignHTTPReceiver(transport: transport, callback: callback, responseLimit: runtime.endpoint.options.responseLimit, body: body)
                let pair = NIOLoopBound((core, receiver), eventLoop: owner)
                body.setHandlers(
                    onWritable: { owner.execute { pair.value.0.receiverBecameWritable(pair.value.1) } },
                    onGone: { owner.execute { pair.value.0.detach(pair.value.1, aborted: true) } }
                )
                core.attach(receiver)
                return .streaming(ForeignResponseBody(outbound: body))
            case .failure(let refusal):
                return .refused(SockJSRefusalResponse(receiving: refusal, retryAfterSeconds: retryAfterSeconds).response(replacing: head))
            }
        }
        do {
            return try await started.get()
        } catch {
            // The session's loop is shutting down.
            return .refused(SockJSRefusalResponse.busy(retryAfterSeconds: retryAfterSeconds).response(replacing: head))
        }
    }
}

/// A receiving request's outcome.
package enum ForeignReceiveStart: Sendable {
    /// Answer with this response instead.
    case refused(SockJSResponse)
    /// Write the head (``ForeignReceive/head``), then the body's chunks as they come.
    case streaming(ForeignResponseBody)
}

/// The body of a polling or streaming response, from its session.
package struct ForeignResponseBody: Sendable {
    private let owner: Owner
    var outbound: ForeignOutbound<ByteBuffer> { owner.outbound }

    /// Lets the session's receiver go when the last copy of the body is released: a response that
    /// is dropped unwritten (its connection failed before the body started) must not keep its
    /// session's receiver attached. After a complete response this does nothing.
    private final class Owner: Sendable {
        let outbound: ForeignOutbound<ByteBuffer>
        init(outbound: ForeignOutbound<ByteBuffer>) { self.outbound = outbound }
        deinit { outbound.clientGone() }
    }

    init(outbound: ForeignOutbound<ByteBuffer>) {
        self.owner = Owner(outbound: outbound)
    }

    /// The next chunks to write, in order; `nil` once the response is complete or the client is gone.
    /// A writer that takes them only as fast as its connection writes keeps the session paced.
    package func next() async -> [ByteBuffer]? {
        await outbound.next()
    }

    /// What is there without waiting: `.some(chunks)`, `.some(nil)` once the response is complete, or
    /// `nil` when the session has nothing yet (a held poll, an idle stream).
    package func ready() -> [ByteBuffer]?? {
        outbound.takeReady()
    }

    /// The client is gone (a write failed, or its connection closed): the session's receiver is
    /// detached as a cut connection. Cancelling the task waiting in ``next()`` does the same.
    package func clientGone() {
        outbound.clientGone()
    }
}

/// A send request (xhr_send, jsonp_send), before its body is read.
package struct ForeignSend: Sendable {
    let runtime: EndpointRuntime
    let sessionID: String
    let transport: SockJSTransport
    let success: SockJSResponse
    let errorHeaders: [SockJSHeader]
    let request: ForeignRequest

    /// The largest body the endpoint takes; a longer one gets ``bodyTooLarge``.
    package var maxBodyBytes: Int { runtime.rules.maxSendBodyBytes }

    /// `413` with the endpoint's CORS headers, so that a page can read it.
    package var bodyTooLarge: SockJSResponse {
        runtime.refusals.log(.bodyTooLarge, from: request.remoteAddress)
        return .error(413, "Payload too large.", headers: errorHeaders)
    }

    /// Parses `body` and hands its messages to the session; the answer says whether they were
    /// accepted (held while the session's outbox is backed up, as on Sockway's own server).
    package func deliver(_ body: ByteBuffer) async -> SockJSResponse {
        let messages: [String]
        do {
            messages = try SockJSServiceRules.parseSendBody(
                body,
                transport: transport,
                contentType: request.head.headers.first(name: "content-type"),
                maxMessageBytes: runtime.rules.maxMessageBytes
            )
        } catch {
            return SockJSServiceRules.response(for: error, headers: errorHeaders)
        }
        let runtime = self.runtime
        let sessionID = self.sessionID
        let remoteAddress = request.remoteAddress
        let binding = runtime.bindingToken(cookieHeader: request.head.headers.first(name: "cookie"), remoteAddress: remoteAddress)
        let answered = runtime.store.owner(of: sessionID).makePromise(of: SockJSSessionStateMachine.SendOutcome.self)
        answered.futureResult.eventLoop.execute {
            runtime.acceptSend(messages, toSession: sessionID, binding: binding, remoteAddress: remoteAddress) { answered.succeed($0) }
        }
        let outcome = (try? await answered.futureResult.get()) ?? .refused(.closed)
        return SockJSServiceRules.response(for: outcome, success: success, headers: errorHeaders)
    }
}


/// A polling or streaming response over a foreign front: the session's frames, wrapped for their
/// transport, go to the front through a ``ForeignOutbound``. Used on the session's loop.
final class ForeignHTTPReceiver: SessionReceiver {
    let kind: SessionReceiverKind
    private let transport: SockJSTransport
    private let callback: String?
    private let body: ForeignOutbound<ByteBuffer>
    private var remainingBytes: Int
    private var scratch = ByteBuffer()
    private var finished = false

    init(transport: SockJSTransport, callback: String?, responseLimit: Int, body: ForeignOutbound<ByteBuffer>) {
        self.transport = transport
        self.callback = callback
        self.body = body
        if case .receiver(.polling) = transport.role {
            kind = .polling
            remainingBytes = .max
        } else {
            kind = .streaming
            remainingBytes = responseLimit
        }
    }

    var isWritable: Bool { !finished && body.isWritable }

    func write(_ frame: SockJSFrame) -> Bool {
        guard !finished else { return true }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(frame.estimatedByteCount + 48 + (callback?.utf8.count ?? 0))
        transport.writeFrame(frame, callback: callback, into: &buffer, scratch: &scratch)
        remainingBytes -= buffer.readableBytes
        body.push(buffer, bytes: buffer.readableBytes)
        return remainingBytes <= 0
    }

    func finish() {
        guard !finished else { return }
        finished = true
        body.finish()
    }
}
