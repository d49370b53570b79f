#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOHTTP1
import NIOWebSocket
import SockwayEngineIO
import SockwaySockJS
import SockwayWebSocket

/// The endpoints of a server, matched by longest prefix.
final class ServerRuntime: Sendable {
    /// The SockJS endpoints, longest prefix first.
    let endpoints: [EndpointRuntime]
    let engineIOEndpoints: [EngineIORuntime]
    let configuration: SockwayConfiguration
    let maxMessageBytes: Int
    private let loopResources: [LoopResources]

    /// State shared by the connections of one event loop; touched only on that loop.
    final class LoopResources: @unchecked Sendable {
        let eventLoop: any EventLoop
        let deflate = PerMessageDeflateResources()
        init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }
    }

    init(configuration: SockwayConfiguration, endpoints: [SockwayEndpoint], loops: [any EventLoop]) {
        self.configuration = configuration
        self.loopResources = loops.map { LoopResources(eventLoop: $0) }
        self.endpoints = endpoints
            .filter { $0.engineIO == nil }
            .sorted { $0.prefix.utf8.count > $1.prefix.utf8.count }
            .map { EndpointRuntime(endpoint: $0, loops: loops) }
        self.engineIOEndpoints = endpoints.compactMap { endpoint in
            endpoint.engineIO.map { EngineIORuntime(endpoint: endpoint, engineIO: $0, loops: loops) }
        }
        self.maxMessageBytes = endpoints.map(\.options.maxMessageBytes).max() ?? (1 << 20)
    }

    /// The Engine.IO endpoint at `path` (its prefix, with or without the trailing slash).
    func matchEngineIO(path: Substring) -> EngineIORuntime? {
        for runtime in engineIOEndpoints {
            let prefix = runtime.endpoint.prefix
            if path == prefix || (path.hasPrefix(prefix) && path.dropFirst(prefix.count) == "/") { return runtime }
        }
        return nil
    }

    /// The endpoint serving `path`, and the path relative to its prefix.
    func match(path: Substring) -> (EndpointRuntime, Substring)? {
        for runtime in endpoints {
            let prefix = runtime.endpoint.prefix
            guard path.hasPrefix(prefix) else { continue }
            let rest = path.dropFirst(prefix.count)
            if rest.isEmpty || rest.first == "/" { return (runtime, rest) }
        }
        return nil
    }

    /// The permessage-deflate state of `loop`; call on `loop`.
    func deflateResources(on loop: any EventLoop) -> PerMessageDeflateResources {
        loop.assertInEventLoop()
        if let match = loopResources.first(where: { $0.eventLoop === loop }) { return match.deflate }
        // A loop outside the group (tests): give the connection resources of its own.
        return PerMessageDeflateResources()
    }

    func runtime(forPrefix prefix: String) -> EndpointRuntime? {
        endpoints.first { $0.endpoint.prefix == prefix }
    }
}

/// Serves one HTTP/1.x connection: every SockJS route but the WebSocket upgrade, which the upgrader
/// takes before this handler sees the request.
final class SockwayHTTPHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private struct SendContext {
        var runtime: EndpointRuntime
        var sessionID: String
        var transport: SockJSTransport
        var contentType: String?
        var success: SockJSResponse
        var errorHeaders: [SockJSHeader]
    }

    private enum Mode {
        case idle
        /// A complete response is written (or being written); the rest of the request is ignored.
        case responded
        case collecting(SendContext)
        case delivering
        case receiving(HTTPReceiver, EndpointRuntime, sessionID: String)
        /// An Engine.IO POST body is being read.
        case engineIOCollecting(EngineIORuntime, EngineIOQuery, cors: HTTPHeaders)
        /// A WebSocket upgrade on a connection that served requests before (NIO's upgrader only looks
        /// at the first): its end is awaited, then the upgrade is decided.
        case awaitingUpgrade(HTTPRequestHead)
        /// The connection is switching to WebSocket; nothing more is read as HTTP.
        case upgrading
        /// An Engine.IO poll is attached to its session (or on its way there).
        case engineIOPolling(EngineIOPollReceiver, EngineIORuntime, sid: String, headers: HTTPHeaders)
    }

    private let server: ServerRuntime
    private var context: ChannelHandlerContext?
    private var mode = Mode.idle
    private var body = ByteBuffer()
    private var requestHead: HTTPRequestHead?
    private var keepAlive = true
    private var requestComplete = false
    private var responseComplete = true
    /// Parts of pipelined requests that arrived while a response was still going. We keep reading
    /// (unlike NIO's pipelining helper, which stops at once) so that a client closing a long poll is
    /// noticed, up to ``maxPipelinedParts``; then reading pauses until they are served. Every
    /// pipelined request gets its answer: none is dropped by closing the connection.
    private var pipelined = CircularBuffer<HTTPServerRequestPart>()
    static let maxPipelinedParts = 64
    private var readsPaused = false
    private var readPending = false

    /// Performs upgrades on requests after the first (clients with a connection pool, such as
    /// aiohttp, open a WebSocket on a kept-alive connection); `nil` in tests without WebSocket.
    private let lateUpgrader: SockwayWebSocketUpgrader?
    private var requestsSeen = 0
    /// The request being replayed as plain HTTP after its upgrade was declined.
    private var upgradeDeclined = false

    init(server: ServerRuntime, lateUpgrader: SockwayWebSocketUpgrader? = nil) {
        self.server = server
        self.lateUpgrader = lateUpgrader
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if requestComplete && !responseComplete || !pipelined.isEmpty {
            // What one read decoded is kept whole (at most a read's bytes past the bound).
            pipelined.append(part)
            if pipelined.count >= Self.maxPipelinedParts { readsPaused = true }
            return
        }
        handlePart(part, context: context)
    }

    private func handlePart(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            requestHead = head
            keepAlive = head.isKeepAlive
            // NIO's decoder parses nothing after a request that asks for a protocol upgrade: one that
            // is answered as plain HTTP ends the connection, or the next request would hang.
            if head.headers.contains(name: "upgrade") { keepAlive = false }
            requestComplete = false
            responseComplete = false
            requestsSeen += 1
            if requestsSeen > 1, !upgradeDeclined, lateUpgrader != nil, head.method == .GET,
                head.headers[canonicalForm: "upgrade"].contains(where: { $0.lowercased() == "websocket" })
            {
                mode = .awaitingUpgrade(head)
                return
            }
            upgradeDeclined = false
            handleHead(head, context: context)
        case .body(var part):
            if case .engineIOCollecting(let runtime, _, let cors) = mode {
                if body.readableBytes + part.readableBytes > runtime.engineIO.maxPayload {
                    keepAlive = false
                    respondEngineIO(.payloadTooLarge, headers: cors, body: nil, context: context)
                } else {
                    body.writeBuffer(&part)
                }
                return
            }
            guard case .collecting(let send) = mode else { return }
            if body.readableBytes + part.readableBytes > send.runtime.rules.maxSendBodyBytes {
                keepAlive = false
                respond(.error(413, "Payload too large.", headers: send.errorHeaders), context: context)
                return
            }
            body.writeBuffer(&part)
        case .end:
            requestComplete = true
            if case .awaitingUpgrade(let head) = mode {
                upgradeLate(head, context: context)
            } else if case .upgrading = mode {
                return
            } else if case .collecting(let send) = mode {
                finishSend(send, context: context)
            } else if case .engineIOCollecting(let runtime, let query, let cors) = mode {
                finishEngineIOPost(runtime: runtime, query: query, cors: cors, context: context)
            } else {
                finishIfDone(context: context)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .receiving(let receiver, let runtime, let sessionID) = mode {
            mode = .idle
            runtime.store.owner(of: sessionID).execute {
                runtime.store.session(id: sessionID)?.detach(receiver, aborted: true)
            }
        } else if case .engineIOPolling(let receiver, let runtime, let sid, _) = mode {
            mode = .idle
            runtime.store.owner(of: sid).execute {
                runtime.store.session(id: sid)?.detach(receiver, aborted: true)
            }
        }
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .receiving(let receiver, let runtime, let sessionID) = mode {
            runtime.store.owner(of: sessionID).execute {
                runtime.store.session(id: sessionID)?.receiverBecameWritable(receiver)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if readsPaused {
            readPending = true
        } else {
            context.read()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A refused WebSocket upgrade is reported here, then the request arrives as plain HTTP.
        if error is NIOWebSocketUpgradeError { return }
        context.close(promise: nil)
    }

    // MARK: Requests

    private func handleHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let uri = head.uri[...]
        let queryStart = uri.firstIndex(of: "?")
        let path = queryStart.map { uri[..<$0] } ?? uri
        let query = queryStart.map { uri[uri.index(after: $0)...] } ?? ""

        if let engineIO = server.matchEngineIO(path: path) {
            handleEngineIO(head, runtime: engineIO, query: query, context: context)
            return
        }
        guard let (runtime, relativePath) = server.match(path: path) else {
            if path == "/" && server.configuration.demoPage && (head.method == .GET || head.method == .HEAD) {
                respond(
                    SockJSResponse(
                        status: 200,
                        headers: [SockJSHeader("Content-Type", "text/html; charset=UTF-8")],
                        body: DemoPage.html(clientScriptURL: server.configuration.clientScriptURL, endpoints: server.endpoints.map(\.endpoint.prefix))
                    ),
                    context: context
                )
            } else {
                respond(.notFound, context: context)
            }
            return
        }

        let headers = head.headers
        let request = SockJSRequest(
            method: head.method.rawValue,
            path: String(relativePath),
            query: String(query),
            origin: headers.first(name: "origin"),
            accessControlRequestHeaders: headers.first(name: "access-control-request-headers"),
            cookie: headers.first(name: "cookie"),
            ifNoneMatch: headers.first(name: "if-none-match"),
            contentType: headers.first(name: "content-type")
        )
        let now = Int(Self.epochSeconds())
        switch runtime.rules.decide(request, now: now, entropy: UInt32.random(in: .min ... .max)) {
        case .respond(let response):
            respond(response, context: context)
        case .receive(let sessionID, let transport, let callback, let responseHead, let prelude):
            startReceiving(
                runtime: runtime,
                sessionID: sessionID,
                transport: transport,
                callback: callback,
                head: responseHead,
                prelude: prelude,
                request: head,
                context: context
            )
        case .send(let sessionID, let transport, let success, let errorHeaders):
            body.clear()
            mode = .collecting(
                SendContext(
                    runtime: runtime,
                    sessionID: sessionID,
                    transport: transport,
                    contentType: request.contentType,
                    success: success,
                    errorHeaders: errorHeaders
                )
            )
        }
    }

    private func startReceiving(
        runtime: EndpointRuntime,
        sessionID: String,
        transport: SockJSTransport,
        callback: String?,
        head: SockJSResponse,
        prelude: String?,
        request: HTTPRequestHead,
        context: ChannelHandlerContext
    ) {
        // HTTP/1.0 has no chunking: the response is delimited by closing the connection.
        if request.version.major == 1 && request.version.minor == 0 { keepAlive = false }
        context.write(wrapOutboundOut(.head(responseHead(head, for: request, hasBody: true))), promise: nil)
        if let prelude {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: prelude)))), promise: nil)
        }
        context.flush()
        let receiver = HTTPReceiver(
            transport: transport,
            callback: callback,
            responseLimit: runtime.endpoint.options.responseLimit,
            connection: NIOLoopBound(self, eventLoop: context.eventLoop),
            channel: context.channel
        )
        mode = .receiving(receiver, runtime, sessionID: sessionID)
        let owner = runtime.store.owner(of: sessionID)
        let remoteAddress = context.channel.remoteAddress
        let headers = request.headers
        let attach: @Sendable () -> Void = {
            runtime.attach(receiver, toSession: sessionID, transport: transport, remoteAddress: remoteAddress, headers: headers)
        }
        if owner.inEventLoop { attach() } else { owner.execute(attach) }
    }

    private func finishSend(_ send: SendContext, context: ChannelHandlerContext) {
        let messages: [String]
        do {
            messages = try SockJSServiceRules.parseSendBody(
                body,
                transport: send.transport,
                contentType: send.contentType,
                maxMessageBytes: send.runtime.rules.maxMessageBytes
            )
        } catch {
            respond(SockJSServiceRules.response(for: error, headers: send.errorHeaders), context: context)
            return
        }
        body.clear()
        mode = .delivering
        let runtime = send.runtime
        let sessionID = send.sessionID
        let owner = runtime.store.owner(of: sessionID)
        let success = send.success
        let errorHeaders = send.errorHeaders
        // Acknowledged means handed to the application while the session was open. While the outbox
        // is backed up the request is held, undelivered, so a client that sends faster than it
        // receives is slowed down rather than closed with 1013; past the hold bounds it is refused.
        let this = NIOLoopBound(self, eventLoop: context.eventLoop)
        let loop = context.eventLoop
        let answer: @Sendable (SockJSSessionStateMachine.SendOutcome) -> Void = { outcome in
            let respond: @Sendable () -> Void = {
                let handler = this.value
                guard let context = handler.context, case .delivering = handler.mode else { return }
                handler.respond(SockJSServiceRules.response(for: outcome, success: success, headers: errorHeaders), context: context)
            }
            if loop.inEventLoop { respond() } else { loop.execute(respond) }
        }
        if owner.inEventLoop {
            runtime.acceptSend(messages, toSession: sessionID, answer: answer)
        } else {
            owner.execute { runtime.acceptSend(messages, toSession: sessionID, answer: answer) }
        }
    }

    // MARK: WebSocket upgrade after the first request

    private func upgradeLate(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard let upgrader = lateUpgrader else { return }
        mode = .upgrading
        let this = NIOLoopBound(self, eventLoop: context.eventLoop)
        let channel = context.channel
        upgrader.buildUpgradeResponse(channel: channel, upgradeRequest: head, initialResponseHeaders: [:])
            .hop(to: context.eventLoop)
            .assumeIsolated()
            .whenComplete { result in
                let handler = this.value
                guard let context = handler.context else { return }
                switch result {
                case .success(let headers):
                    handler.switchToWebSocket(head, headers: headers, upgrader: upgrader, context: context)
                case .failure:
                    // Not a WebSocket URL (or a bad handshake): the request is answered as plain HTTP.
                    handler.mode = .idle
                    handler.upgradeDeclined = true
                    handler.requestsSeen -= 1
                    handler.handlePart(.head(head), context: context)
                    handler.handlePart(.end(nil), context: context)
                }
            }
    }

    /// Answers `101`, takes the HTTP handlers out and puts the WebSocket handler in. The client sends
    /// no frame before it has the `101`, so nothing is left in the HTTP decoder.
    private func switchToWebSocket(_ head: HTTPRequestHead, headers: HTTPHeaders, upgrader: SockwayWebSocketUpgrader, context: ChannelHandlerContext) {
        let pipeline = context.pipeline.syncOperations
        if let errors = try? pipeline.handler(type: HTTPServerProtocolErrorHandler.self) {
            pipeline.removeHandler(errors, promise: nil)
        }
        if let validator = try? pipeline.handler(type: NIOHTTPResponseHeadersValidator.self) {
            pipeline.removeHandler(validator, promise: nil)
        }
        if let decoder = try? pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self) {
            pipeline.removeHandler(decoder, promise: nil)
        }
        let response = HTTPResponseHead(version: head.version, status: .switchingProtocols, headers: headers)
        context.writeAndFlush(wrapOutboundOut(.head(response))).assumeIsolated().whenComplete { [self] result in
            guard case .success = result, let context = self.context else {
                context.close(promise: nil)
                return
            }
            do {
                let pipeline = context.pipeline.syncOperations
                if let encoder = try? pipeline.handler(type: HTTPResponseEncoder.self) {
                    pipeline.removeHandler(encoder, promise: nil)
                }
                try upgrader.installHandler(context.channel, head)
                pipeline.removeHandler(context: context, promise: nil)
            } catch {
                context.close(promise: nil)
            }
        }
    }

    // MARK: Engine.IO

    private func handleEngineIO(_ head: HTTPRequestHead, runtime: EngineIORuntime, query: Substring, context: ChannelHandlerContext) {
        let origin = head.headers.first(name: "origin")
        let cors = EngineIORuntime.corsHeaders(origin: origin)
        if let allowed = runtime.endpoint.options.allowedOrigins, let origin, !allowed.contains(origin) {
            respondEngineIO(error: .forbidden, headers: [:], context: context)
            return
        }
        let parsed = EngineIOQuery(parsing: query)
        let method = head.method.rawValue
        let sid = parsed.sid ?? ""
        if sid.isEmpty {
            let route: EngineIORoute
            do {
                route = try runtime.rules.route(method: method, query: parsed, isUpgrade: false, origin: origin) { _ in nil }
            } catch {
                respondEngineIO(error: error, headers: cors, context: context)
                return
            }
            switch route {
            case .preflight:
                respondToEngineIOPreflight(head, cors: cors, context: context)
            case .handshake:
                startEngineIOPoll(runtime: runtime, sid: runtime.newSessionID(), handshake: true, cors: cors, request: head, context: context)
            case .poll, .post, .webSocket:
                respondEngineIO(error: .badRequest, headers: cors, context: context)
            }
            return
        }
        switch head.method {
        case .OPTIONS:
            respondToEngineIOPreflight(head, cors: cors, context: context)
        case .POST:
            body.clear()
            mode = .engineIOCollecting(runtime, parsed, cors: cors)
        default:
            // The session's transport decides (on its loop) whether this poll is one.
            let this = NIOLoopBound(self, eventLoop: context.eventLoop)
            let loop = context.eventLoop
            let owner = runtime.store.owner(of: sid)
            let receiver = EngineIOPollReceiver(connection: this, channel: context.channel)
            mode = .engineIOPolling(receiver, runtime, sid: sid, headers: cors)
            owner.execute {
                do {
                    let route = try runtime.rules.route(method: method, query: parsed, isUpgrade: false, origin: origin) {
                        runtime.transport(ofSession: $0)
                    }
                    guard case .poll = route, let core = runtime.store.session(id: sid) else { throw EngineIOError.badRequest }
                    core.attach(receiver)
                } catch {
                    loop.execute { this.value.answerEngineIOPoll(receiver, error: error) }
                }
            }
        }
    }

    /// A handshake (`handshake`, a new session `sid`) or a poll: the response is written when the
    /// session hands the receiver its frame.
    private func startEngineIOPoll(
        runtime: EngineIORuntime,
        sid: String,
        handshake: Bool,
        cors: HTTPHeaders,
        request: HTTPRequestHead,
        context: ChannelHandlerContext
    ) {
        var headers = cors
        if handshake, let cookie = runtime.engineIO.cookie {
            headers.add(name: "Set-Cookie", value: "\(cookie)=\(sid); Path=/; HttpOnly; SameSite=Lax")
        }
        let receiver = EngineIOPollReceiver(connection: NIOLoopBound(self, eventLoop: context.eventLoop), channel: context.channel)
        mode = .engineIOPolling(receiver, runtime, sid: sid, headers: headers)
        let remoteAddress = context.channel.remoteAddress
        let requestHeaders = request.headers
        runtime.store.owner(of: sid).execute {
            let core = runtime.makeSession(sid: sid, transport: .polling, remoteAddress: remoteAddress, headers: requestHeaders)
            core.attach(receiver)
        }
    }

    private func respondToEngineIOPreflight(_ head: HTTPRequestHead, cors: HTTPHeaders, context: ChannelHandlerContext) {
        var headers = cors
        headers.add(name: "Access-Control-Allow-Methods", value: "GET, POST, OPTIONS")
        if let requested = head.headers.first(name: "access-control-request-headers") {
            headers.add(name: "Access-Control-Allow-Headers", value: requested)
        }
        headers.add(name: "Access-Control-Max-Age", value: "86400")
        respondEngineIO(.noContent, headers: headers, body: nil, context: context)
    }

    private func finishEngineIOPost(runtime: EngineIORuntime, query: EngineIOQuery, cors: HTTPHeaders, context: ChannelHandlerContext) {
        guard let head = requestHead else { return }
        let payload = body
        body = ByteBuffer()
        mode = .delivering
        let sid = query.sid ?? ""
        let origin = head.headers.first(name: "origin")
        let binaryBody = head.headers.first(name: "content-type")?.lowercased().hasPrefix("application/octet-stream") == true
        let this = NIOLoopBound(self, eventLoop: context.eventLoop)
        let loop = context.eventLoop
        let answer: @Sendable (Result<Void, EngineIOError>) -> Void = { result in
            let respond: @Sendable () -> Void = {
                let handler = this.value
                guard let context = handler.context, case .delivering = handler.mode else { return }
                switch result {
                case .success:
                    var headers = cors
                    headers.add(name: "Content-Type", value: "text/html")
                    handler.respondEngineIO(.ok, headers: headers, body: context.channel.allocator.buffer(staticString: "ok"), context: context)
                case .failure(let error):
                    handler.respondEngineIO(error: error, headers: cors, context: context)
                }
            }
            if loop.inEventLoop { respond() } else { loop.execute(respond) }
        }
        runtime.store.owner(of: sid).execute {
            let core: EngineIOSessionCore
            do {
                let route = try runtime.rules.route(method: "POST", query: query, isUpgrade: false, origin: origin) {
                    runtime.transport(ofSession: $0)
                }
                guard case .post = route, let session = runtime.store.session(id: sid) else { throw EngineIOError.badRequest }
                core = session
            } catch {
                return answer(.failure(error as? EngineIOError ?? .badRequest))
            }
            core.receivePost(payload, binaryBody: binaryBody, maxPayload: runtime.engineIO.maxPayload, answer: answer)
        }
    }

    private func respondEngineIO(error: EngineIOError, headers: HTTPHeaders, context: ChannelHandlerContext) {
        var headers = headers
        headers.add(name: "Content-Type", value: "application/json")
        var body = context.channel.allocator.buffer(capacity: 64)
        error.writeJSONBody(into: &body)
        respondEngineIO(HTTPResponseStatus(statusCode: error.httpStatus), headers: headers, body: body, context: context)
    }

    private func respondEngineIO(_ status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer?, context: ChannelHandlerContext) {
        guard let request = requestHead else { return }
        mode = .responded
        var headers = headers
        if status != .noContent { headers.replaceOrAdd(name: "Content-Length", value: String(body?.readableBytes ?? 0)) }
        if !keepAlive {
            headers.replaceOrAdd(name: "Connection", value: "close")
        } else if request.version.major == 1 && request.version.minor == 0 {
            headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        if let body, body.readableBytes > 0, request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        endResponse(context: context)
    }

    /// The session's answer to an Engine.IO poll: its packets, or a refusal.
    func answerEngineIOPoll(_ receiver: EngineIOPollReceiver, status: HTTPResponseStatus, body: ByteBuffer?) {
        guard let context, case .engineIOPolling(let current, _, _, let pollHeaders) = mode, current === receiver else { return }
        var headers = pollHeaders
        if body != nil { headers.add(name: "Content-Type", value: "text/plain; charset=UTF-8") }
        respondEngineIO(status, headers: headers, body: body, context: context)
    }

    /// A poll refused before it reached its session.
    func answerEngineIOPoll(_ receiver: EngineIOPollReceiver, error: any Error) {
        guard let context, case .engineIOPolling(let current, _, _, let headers) = mode, current === receiver else { return }
        respondEngineIO(error: error as? EngineIOError ?? .badRequest, headers: headers, context: context)
    }

    // MARK: Responses

    private func respond(_ response: SockJSResponse, context: ChannelHandlerContext) {
        guard let request = requestHead else { return }
        mode = .responded
        let isHead = request.method == .HEAD
        let mayHaveBody = response.status != 204 && response.status != 304 && !(100..<200).contains(response.status)
        var head = responseHead(response, for: request, hasBody: false)
        if mayHaveBody {
            head.headers.replaceOrAdd(name: "Content-Length", value: String(response.body.utf8.count))
        }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if mayHaveBody && !isHead && !response.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: response.body)))), promise: nil)
        }
        endResponse(context: context)
    }

    private func responseHead(_ response: SockJSResponse, for request: HTTPRequestHead, hasBody: Bool) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(response.headers.count + 1)
        for header in response.headers { headers.add(name: header.name, value: header.value) }
        if !keepAlive {
            headers.replaceOrAdd(name: "Connection", value: "close")
        } else if request.version.major == 1 && request.version.minor == 0 {
            headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
        return HTTPResponseHead(
            version: request.version,
            status: HTTPResponseStatus(statusCode: response.status),
            headers: headers
        )
    }

    /// Ends the response; `written` runs once it is out of the channel (not if the connection fails).
    private func endResponse(context: ChannelHandlerContext, written: (@Sendable () -> Void)? = nil) {
        responseComplete = true
        if keepAlive && written == nil {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let keepAlive = self.keepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { result in
                if case .success = result { written?() }
                if !keepAlive { context.close(promise: nil) }
            }
        }
        finishIfDone(context: context)
    }

    private func finishIfDone(context: ChannelHandlerContext) {
        guard requestComplete && responseComplete else { return }
        mode = .idle
        requestHead = nil
        guard keepAlive else { return }
        while let next = pipelined.popFirst() {
            handlePart(next, context: context)
            if requestComplete && !responseComplete { break }
        }
        if readsPaused && pipelined.count < Self.maxPipelinedParts / 2 {
            readsPaused = false
            if readPending {
                readPending = false
                context.read()
            }
        }
    }

    // MARK: Called by the attached receiver, on this loop

    func writeReceiverBody(_ bytes: ByteBuffer) {
        guard let context, case .receiving = mode else { return }
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
    }

    func endReceiver(_ receiver: HTTPReceiver) {
        guard let context, case .receiving(let current, let runtime, let sessionID) = mode, current === receiver else { return }
        mode = .responded
        let channel = context.channel
        endResponse(context: context) {
            // The client has everything only now: its session's disconnect delay starts again.
            runtime.store.owner(of: sessionID).execute {
                runtime.store.session(id: sessionID)?.responseDrained(on: channel)
            }
        }
    }

    private static func epochSeconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec)
    }
}
