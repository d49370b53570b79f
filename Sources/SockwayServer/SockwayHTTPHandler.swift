#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import SockwayCluster
import SockwayEngineIO
import SockwayHTTP
import SockwaySockJS
import SockwayWebSocket

/// The endpoints of a server, matched by longest prefix.
final class ServerRuntime: Sendable {
    /// The SockJS endpoints, longest prefix first.
    let endpoints: [EndpointRuntime]
    let engineIOEndpoints: [EngineIORuntime]
    let configuration: SockwayConfiguration
    let maxMessageBytes: Int
    /// Refusals of hostile or broken clients: logged without flooding, counted.
    let refusals: RefusalLog
    /// The server-wide session bounds, shared by every endpoint.
    let budget: SessionBudget
    /// The local sockjs-client script (``SockwayConfiguration/localClientScriptFile``), if any.
    let localClientScript: String?
    /// What every loop counts, for metrics.
    let tallies: ServerTallies
    private let loopResources: [LoopResources]
    /// The server's event loops.
    var loops: [any EventLoop] { loopResources.map(\.eventLoop) }
    private let publisher = NIOLockedValueBox<MetricsPublisher?>(nil)

    /// What publishes the loops' counts; made on first use, because swift-metrics is read then (after
    /// the application has bootstrapped it). `nil` when metrics are off.
    var metricsPublisher: MetricsPublisher? {
        guard let factory = tallies.factory else { return nil }
        return publisher.withLockedValue { current in
            if let current { return current }
            let made = MetricsPublisher(tallies: tallies, refusals: refusals, factory: factory)
            current = made
            return made
        }
    }

    /// State shared by the connections of one event loop; touched only on that loop.
    final class LoopResources: @unchecked Sendable {
        let eventLoop: any EventLoop
        let deflate = PerMessageDeflateResources()
        init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }
    }

    init(configuration: SockwayConfiguration, endpoints: [SockwayEndpoint], loops: [any EventLoop], logger: Logger = Logger(label: "sockway")) {
        self.configuration = configuration
        let refusals = RefusalLog(logger: logger)
        let budget = SessionBudget(
            maxSessions: configuration.maxSessions,
            maxSessionsPerAddress: configuration.maxSessionsPerAddress,
            maxQueuedBytes: configuration.maxTotalQueuedBytes
        )
        self.refusals = refusals
        self.budget = budget
        self.localClientScript = configuration.localClientScriptFile.flatMap { path in
            FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
        }
        self.loopResources = loops.map { LoopResources(eventLoop: $0) }
        let sockJS = endpoints.filter { $0.engineIO == nil }.sorted { $0.prefix.utf8.count > $1.prefix.utf8.count }
        let engineIO = endpoints.filter { $0.engineIO != nil }
        let tallies = ServerTallies(endpointNames: (sockJS + engineIO).map(\.prefix), metrics: configuration.metrics)
        self.tallies = tallies
        self.endpoints = sockJS.enumerated().map { index, endpoint in
            EndpointRuntime(endpoint: endpoint, loops: loops, budget: budget, refusals: refusals, meter: EndpointMeter(tallies: tallies, index: index))
        }
        self.engineIOEndpoints = engineIO.enumerated().map { index, endpoint in
            EngineIORuntime(
                endpoint: endpoint,
                engineIO: endpoint.engineIO!,
                loops: loops,
                budget: budget,
                refusals: refusals,
                meter: EndpointMeter(tallies: tallies, index: sockJS.count + index),
                nodeID: configuration.nodeID
            )
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

    /// Sends `messages` to the session `id` of the endpoint at `prefix` (SockJS or Engine.IO), if this
    /// node holds it; on the session's loop.
    func sendHere(_ messages: [String], toSession id: String, at prefix: String) {
        if let runtime = runtime(forPrefix: prefix) {
            let store = runtime.store
            store.owner(of: id).execute { store.session(id: id)?.send(contentsOf: messages) }
        } else if let runtime = engineIOEndpoints.first(where: { $0.endpoint.prefix == prefix }) {
            let store = runtime.store
            store.owner(of: id).execute { store.session(id: id)?.send(contentsOf: messages) }
        }
    }
}

/// The answer to an Engine.IO handshake refused by the server's session bounds (`503`, `Retry-After`),
/// the same on Sockway's own connections and over a foreign front.
struct EngineIOBusyResponse {
    static let status = 503
    let headers: HTTPHeaders
    let body = ByteBuffer(string: #"{"code":5,"message":"Server busy"}"#)

    init(headers: HTTPHeaders, retryAfter: Int) {
        var headers = headers
        headers.add(name: "Retry-After", value: String(retryAfter))
        headers.add(name: "Content-Type", value: "application/json")
        self.headers = headers
    }
}

/// The plain answers to a SockJS request that a server bound or a session's binding refuses, the
/// same on Sockway's own connections and over a foreign front.
enum SockJSRefusalResponse {
    /// A receiving request for a session bound to another client: `404`, as for an unknown session.
    case ownerMismatch
    /// A server bound (sessions, queued bytes): `503` with `Retry-After`.
    case busy(retryAfterSeconds: Int)

    /// The answer to a receiving request that admission refused with `refusal`.
    init(receiving refusal: SockwayRefusal, retryAfterSeconds: Int) {
        self = refusal == .sessionOwnerMismatch ? .ownerMismatch : .busy(retryAfterSeconds: retryAfterSeconds)
    }

    /// The response, with `headers` after its content type.
    func response(headers: [SockJSHeader] = []) -> SockJSResponse {
        switch self {
        case .ownerMismatch:
            .error(404, SockJSResponse.notFound.body, headers: headers)
        case .busy(let seconds):
            .error(503, "Server busy, retry later.", headers: headers + [SockJSHeader("Retry-After", String(seconds))])
        }
    }

    /// The response to a receiving request that would have been answered with `head`: it keeps that
    /// head's headers (CORS, caching) but its content type.
    func response(replacing head: SockJSResponse) -> SockJSResponse {
        response(headers: head.headers.filter { $0.name != "Content-Type" })
    }
}

/// Serves one HTTP/1.x connection: reads requests with Sockway's strict parser, answers every route,
/// and switches the connection to WebSocket on an accepted upgrade.
///
/// Requests are read one at a time: the next pipelined request is parsed only once the current one is
/// answered and the connection is writable (its earlier responses are being read). Bytes sent ahead
/// are kept raw, up to ``SockwayConfiguration/maxPipelinedBytes``; then reading stops until they are
/// served, so a client that pipelines without reading holds a bounded amount of server memory.
final class SockwayHTTPHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
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
        /// A request's head is read; its body (bounded by `limit`) is being collected. Requests are
        /// acted on only once complete, so that nothing is answered for a request whose framing turns
        /// out to be broken (a smuggling attempt).
        case reading(HTTPRequestHead, limit: Int)
        /// A complete response is written (or being written); the rest of the request is ignored.
        case responded
        case collecting(SendContext)
        case delivering
        case receiving(HTTPReceiver, EndpointRuntime, sessionID: String)
        /// An Engine.IO POST body is complete and goes to its session.
        case engineIOCollecting(EngineIORuntime, EngineIOQuery, cors: HTTPHeaders)
        /// A WebSocket upgrade: its end is awaited, then the upgrade is decided.
        case awaitingUpgrade(HTTPRequestHead)
        /// The connection is switching to WebSocket; nothing more is read as HTTP.
        case upgrading
        /// An Engine.IO poll is attached to its session (or on its way there).
        case engineIOPolling(EngineIOPollReceiver, EngineIORuntime, sid: String, headers: HTTPHeaders)
        /// The request is for a session another node holds: the connection is being spliced to it.
        case forwarding
        /// The request could not be read (or timed out): answered, then the connection closes.
        case failed
    }

    private let server: ServerRuntime
    private var context: ChannelHandlerContext?
    /// This loop's counts (responses by status).
    private var tally: LoopTally?
    private var mode = Mode.idle
    private var body = ByteBuffer()
    /// What `body` adds to the server-wide meter of queued bytes (request bodies being read count
    /// with the sessions' outboxes).
    private var accountedBodyBytes = 0
    private var requestHead: HTTPRequestHead?
    private var keepAlive = true
    private var requestComplete = true
    private var responseComplete = true

    private var parser: HTTPRequestParser
    /// Bytes read and not parsed yet: the rest of the current request, and requests sent ahead.
    private var inbound = ByteBuffer()
    private var readsPaused = false
    private var readPending = false
    private var isParsing = false

    /// The connection's one timer: the head deadline, the body's idle timeout or the keep-alive timeout,
    /// whichever applies now (``currentDeadline``). It is re-armed lazily when it fires.
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?
    /// When the connection last started waiting for a request (opened, or a response completed).
    private var idleSince = NIODeadline.uptimeNanoseconds(0)
    /// When the first byte of the head being read arrived.
    private var headStartedAt: NIODeadline?
    /// When the body of the current request started (its head was complete).
    private var bodyStartedAt = NIODeadline.uptimeNanoseconds(0)

    /// Performs WebSocket upgrades; `nil` in tests without WebSocket.
    private let upgrader: SockwayWebSocketUpgrader?
    private var requestsSeen = 0
    /// The request being replayed as plain HTTP after its upgrade was declined.
    private var upgradeDeclined = false

    init(server: ServerRuntime, upgrader: SockwayWebSocketUpgrader? = nil) {
        self.server = server
        self.upgrader = upgrader
        self.parser = HTTPRequestParser(limits: server.configuration.requestLimits)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        tally = server.tallies.tally(for: context.eventLoop)
        idleSince = context.eventLoop.now
        if context.channel.isActive { updateTimer(context: context) }
    }

    /// Writes a response head, counted by status.
    private func writeHead(_ head: HTTPResponseHead, context: ChannelHandlerContext) {
        tally?.countResponse(status: Int(head.status.code))
        context.write(wrapOutboundOut(.head(head)), promise: nil)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        idleSince = context.eventLoop.now
        updateTimer(context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if case .failed = mode { return }
        switch mode {
        case .upgrading, .forwarding:
            inbound.writeBuffer(&bytes)
            return
        default:
            break
        }
        if inbound.readableBytes == 0 {
            inbound = bytes
        } else {
            inbound.writeBuffer(&bytes)
        }
        parseRequests(context: context)
    }

    /// Parses and handles request parts while the connection may take the next one.
    private func parseRequests(context: ChannelHandlerContext) {
        guard !isParsing else { return }
        isParsing = true
        defer { isParsing = false }
        while self.context != nil {
            switch mode {
            case .failed, .upgrading, .forwarding:
                return
            default:
                break
            }
            if requestComplete {
                // Between requests: the next one waits until this one is answered and the client reads.
                guard responseComplete, context.channel.isWritable, keepAlive else { break }
            }
            let part: HTTPRequestParser.Part?
            do {
                part = try parser.next(&inbound)
            } catch {
                refuseRequest(error, context: context)
                return
            }
            guard let part else { break }
            handlePart(part, context: context)
        }
        if case .reading(let head, let limit) = mode, body.readableBytes + parser.remainingChunkBytes > limit {
            // A chunk announced larger than the body's bound: refused before its bytes arrive.
            refuseBody(head, context: context)
        }
        if inbound.readableBytes == 0 {
            inbound.clear()
        } else if inbound.readerIndex > 4096 && inbound.readerIndex > inbound.readableBytes {
            inbound.discardReadBytes()
        }
        let shouldPause = inbound.readableBytes >= server.configuration.maxPipelinedBytes
        if shouldPause != readsPaused {
            readsPaused = shouldPause
            if !shouldPause && readPending {
                readPending = false
                context.read()
            }
        }
        updateTimer(context: context)
    }

    private func handlePart(_ part: HTTPRequestParser.Part, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            requestHead = head
            headStartedAt = nil
            keepAlive = head.isKeepAlive
            // A request that asks for a protocol upgrade and is answered as plain HTTP ends the
            // connection: the client may already be sending in the other protocol.
            if head.headers.contains(name: "upgrade") { keepAlive = false }
            requestComplete = false
            responseComplete = false
            requestsSeen += 1
            releaseBody()
            if let forwarded = forwardingTarget(head) {
                forward(head, to: forwarded, context: context)
                return
            }
            if !upgradeDeclined, upgrader != nil, head.method == .GET, parser.bodyFraming == .none,
                head.headers[canonicalForm: "upgrade"].contains(where: { $0.lowercased() == "websocket" })
            {
                mode = .awaitingUpgrade(head)
                return
            }
            upgradeDeclined = false
            let limit = bodyLimit(for: head)
            if case .contentLength(let length) = parser.bodyFraming, length > limit {
                refuseBody(head, context: context)
                return
            }
            if parser.bodyFraming != .none, head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
            bodyStartedAt = context.eventLoop.now
            mode = .reading(head, limit: limit)
        case .body(let part):
            guard case .reading(let head, let limit) = mode else { return }
            if body.readableBytes + part.readableBytes + parser.remainingChunkBytes > limit {
                refuseBody(head, context: context)
                return
            }
            if server.budget.queued.isOverLimit {
                server.refusals.log(.queuedBytesLimit, from: context.channel.remoteAddress)
                keepAlive = false
                respond(SockJSRefusalResponse.busy(retryAfterSeconds: server.configuration.retryAfterSeconds).response(), context: context)
                return
            }
            if body.readableBytes == 0 {
                body = part
            } else {
                var part = part
                body.writeBuffer(&part)
            }
            server.budget.queued.add(part.readableBytes)
            accountedBodyBytes += part.readableBytes
        case .end:
            requestComplete = true
            switch mode {
            case .awaitingUpgrade(let head):
                upgrade(head, context: context)
            case .reading(let head, _):
                mode = .idle
                handleHead(head, context: context)
                if case .collecting(let send) = mode {
                    finishSend(send, context: context)
                } else if case .engineIOCollecting(let runtime, let query, let cors) = mode {
                    finishEngineIOPost(runtime: runtime, query: query, cors: cors, context: context)
                } else {
                    releaseBody()
                }
            default:
                finishIfDone(context: context)
            }
        }
    }

    /// The largest body the request's URL takes: a send's or an Engine.IO POST's bound; a small
    /// one elsewhere (a body there is read and ignored).
    private func bodyLimit(for head: HTTPRequestHead) -> Int {
        let path = head.target.path
        if let engineIO = server.matchEngineIO(path: path) { return engineIO.engineIO.maxPayload }
        if let (runtime, relative) = server.match(path: path), case .session(_, let transport) = SockJSRoute.parse(relative),
            case .sender = transport.role
        {
            return runtime.rules.maxSendBodyBytes
        }
        return Self.maxIgnoredBodyBytes
    }

    /// The body a request that takes none may carry (read and dropped).
    static let maxIgnoredBodyBytes = 64 * 1024

    /// Drops the request body and what it counted on the server-wide meter.
    private func releaseBody() {
        if accountedBodyBytes > 0 {
            server.budget.queued.add(-accountedBodyBytes)
            accountedBodyBytes = 0
        }
        body.clear()
    }

    /// A body over its bound: `413` at once (with the endpoint's CORS headers, so a page can read it),
    /// and the connection closes.
    private func refuseBody(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        keepAlive = false
        server.refusals.log(.bodyTooLarge, from: context.channel.remoteAddress)
        let path = head.target.path
        if let engineIO = server.matchEngineIO(path: path) {
            respondEngineIO(.payloadTooLarge, headers: engineIO.corsHeaders(origin: head.headers.first(name: "origin")), body: nil, context: context)
            return
        }
        var headers: [SockJSHeader] = []
        if let (runtime, relativePath) = server.match(path: path) {
            let request = SockJSRequest(
                method: head.method.rawValue,
                path: String(relativePath),
                query: "",
                origin: head.headers.first(name: "origin"),
                accessControlRequestHeaders: nil,
                cookie: head.headers.first(name: "cookie"),
                ifNoneMatch: nil,
                contentType: nil
            )
            if case .send(_, _, _, let errorHeaders) = runtime.rules.decide(request, now: 0, entropy: 0) { headers = errorHeaders }
        }
        respond(.error(413, "Payload too large.", headers: headers), context: context)
    }

    /// A request that is not HTTP/1.1 as Sockway reads it: answered with the error's status and
    /// `Connection: close`; nothing after it on the connection is read.
    private func refuseRequest(_ error: HTTPRequestError, context: ChannelHandlerContext) {
        server.refusals.log(.malformedRequest(error), from: context.channel.remoteAddress)
        if case .responded = mode {
            // Already answered (a body over its bound) and closing.
            mode = .failed
            return
        }
        mode = .failed
        closeWithStatus(error.status, reason: error.description, context: context)
    }

    /// Writes a short plain-text error response and closes the connection once it is out.
    private func closeWithStatus(_ status: HTTPResponseStatus, reason: String, context: ChannelHandlerContext) {
        keepAlive = false
        readsPaused = true
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; charset=UTF-8")
        headers.add(name: "Content-Length", value: String(reason.utf8.count + 1))
        headers.add(name: "Connection", value: "close")
        writeHead(HTTPResponseHead(version: .http1_1, status: status, headers: headers), context: context)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: reason + "\n")))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        releaseBody()
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
        if context.channel.isWritable {
            if case .receiving(let receiver, let runtime, let sessionID) = mode {
                runtime.store.owner(of: sessionID).execute {
                    runtime.store.session(id: sessionID)?.receiverBecameWritable(receiver)
                }
            } else if requestComplete && responseComplete {
                // The client read its earlier responses: requests it sent ahead are served now.
                parseRequests(context: context)
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
        context.close(promise: nil)
    }

    // MARK: Timeouts

    /// When the connection must have made progress by, if it is waiting on its client now.
    private var currentDeadline: (deadline: NIODeadline, expiry: Expiry)? {
        let configuration = server.configuration
        switch mode {
        case .idle where requestComplete:
            if isHeadInProgress {
                return ((headStartedAt ?? idleSince) + configuration.requestHeadTimeout, .head)
            }
            if requestsSeen == 0 { return (idleSince + configuration.requestHeadTimeout, .head) }
            return (idleSince + configuration.keepAliveTimeout, .idle)
        case .reading:
            // A body has the timeout, and a second more per 16 KiB received: a large upload at a
            // reasonable rate never hits it; a body trickled a byte at a time does.
            let earned = TimeAmount.seconds(Int64(body.readableBytes >> 14))
            return (bodyStartedAt + configuration.requestBodyTimeout + earned, .body)
        default:
            return nil
        }
    }

    /// Bytes of a request head arrived (parsed or waiting), and the head is not complete.
    private var isHeadInProgress: Bool {
        !parser.isAwaitingRequest || inbound.readableBytes > 0
    }

    private enum Expiry {
        case head, body, idle
    }

    /// Arms the timer for the current deadline if it is earlier than the one armed.
    private func updateTimer(context: ChannelHandlerContext) {
        if case .idle = mode, requestComplete, headStartedAt == nil, isHeadInProgress {
            headStartedAt = context.eventLoop.now
        }
        guard let (deadline, _) = currentDeadline else { return }
        if let armed = timerDeadline, armed <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        let this = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) {
            this.value.timerFired()
        }
    }

    private func timerFired() {
        timer = nil
        timerDeadline = nil
        guard let context, let (deadline, expiry) = currentDeadline else { return }
        guard deadline <= context.eventLoop.now else {
            updateTimer(context: context)
            return
        }
        switch expiry {
        case .idle:
            context.close(promise: nil)
        case .head:
            server.refusals.log(.headTimeout, from: context.channel.remoteAddress)
            mode = .failed
            if requestsSeen == 0 && !isHeadInProgress {
                // Nothing was ever sent: there is nobody to answer.
                context.close(promise: nil)
            } else {
                closeWithStatus(.requestTimeout, reason: "Request head not received in time.", context: context)
            }
        case .body:
            server.refusals.log(.bodyTimeout, from: context.channel.remoteAddress)
            mode = .failed
            closeWithStatus(.requestTimeout, reason: "Request body not received in time.", context: context)
        }
    }

    // MARK: Requests

    private func handleHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let (path, query) = head.target

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
            } else if let script = server.localClientScript, path == server.configuration.localClientScriptPath[...],
                head.method == .GET || head.method == .HEAD
            {
                respond(
                    SockJSResponse(
                        status: 200,
                        headers: [SockJSHeader("Content-Type", "application/javascript; charset=UTF-8"), SockJSHeader("Cache-Control", "public, max-age=86400")],
                        body: script
                    ),
                    context: context
                )
            } else if let health = server.configuration.healthCheckPath, path == health[...], head.method == .GET || head.method == .HEAD {
                // For load balancers and orchestrators: the process serves requests; how many sessions.
                // While draining, 503: a balancer stops sending new clients here.
                let draining = server.budget.isDraining
                respond(
                    SockJSResponse(
                        status: draining ? 503 : 200,
                        headers: [SockJSHeader("Content-Type", "application/json"), SockJSHeader("Cache-Control", "no-store")],
                        body: "{\"status\":\"\(draining ? "draining" : "ok")\",\"sessions\":\(server.budget.sessions)}"
                    ),
                    context: context
                )
            } else {
                respond(.notFound, context: context)
            }
            return
        }

        let request = SockJSRequest(head, relativePath: relativePath, query: query)
        let now = Int(Self.epochSeconds())
        switch runtime.rules.decide(request, now: now, entropy: UInt32.random(in: .min ... .max)) {
        case .respond(let response):
            if response.status == 403 { server.refusals.log(.foreignOrigin, from: context.channel.remoteAddress) }
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
        let binding = runtime.bindingToken(cookieHeader: headers.first(name: "cookie"), remoteAddress: remoteAddress)
        let responseHead = self.responseHead(head, for: request, hasBody: true)
        let this = NIOLoopBound(self, eventLoop: context.eventLoop)
        // The session is found (or created) on its loop before anything is written: a request that
        // the session's binding or the server's bounds refuse gets a plain answer. The head goes to the
        // connection before the session's first frame (both in order through `run`).
        let attach: @Sendable () -> Void = {
            switch runtime.admitReceiver(toSession: sessionID, transport: transport, remoteAddress: remoteAddress, headers: headers, binding: binding) {
            case .success(let core):
                this.run { $0.beginReceiving(receiver, head: responseHead, prelude: prelude) }
                core.attach(receiver)
            case .failure(let refusal):
                this.run { $0.refuseReceiving(receiver, refusal, head: head) }
            }
        }
        if owner.inEventLoop { attach() } else { owner.execute(attach) }
    }

    private func beginReceiving(_ receiver: HTTPReceiver, head: HTTPResponseHead, prelude: String?) {
        guard let context, case .receiving(let current, _, _) = mode, current === receiver else { return }
        writeHead(head, context: context)
        if let prelude {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: prelude)))), promise: nil)
        }
        context.flush()
    }

    /// A receiving request its session's binding refuses (`404`, as an unknown session) or the
    /// server's session bounds refuse (`503` with `Retry-After`).
    private func refuseReceiving(_ receiver: HTTPReceiver, _ refusal: SockwayRefusal, head: SockJSResponse) {
        guard let context, case .receiving(let current, _, _) = mode, current === receiver else { return }
        mode = .idle
        let refused = SockJSRefusalResponse(receiving: refusal, retryAfterSeconds: server.configuration.retryAfterSeconds)
        respond(refused.response(replacing: head), context: context)
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
            releaseBody()
            respond(SockJSServiceRules.response(for: error, headers: send.errorHeaders), context: context)
            return
        }
        releaseBody()
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
        let remoteAddress = context.channel.remoteAddress
        let binding = runtime.bindingToken(cookieHeader: requestHead?.headers.first(name: "cookie"), remoteAddress: remoteAddress)
        if owner.inEventLoop {
            runtime.acceptSend(messages, toSession: sessionID, binding: binding, remoteAddress: remoteAddress, answer: answer)
        } else {
            owner.execute { runtime.acceptSend(messages, toSession: sessionID, binding: binding, remoteAddress: remoteAddress, answer: answer) }
        }
    }

    // MARK: WebSocket upgrade

    private func upgrade(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard let upgrader else { return }
        if !isOriginAllowed(head) {
            server.refusals.log(.foreignOrigin, from: context.channel.remoteAddress)
            mode = .idle
            respond(.error(403, "Origin not allowed."), context: context)
            return
        }
        mode = .upgrading
        let this = NIOLoopBound(self, eventLoop: context.eventLoop)
        let channel = context.channel
        upgrader.buildUpgradeResponse(channel: channel, upgradeRequest: head)
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
                    handler.handlePart(.end, context: context)
                }
            }
    }

    /// Whether the endpoint of `head`'s URL takes a request from its `Origin` (any, without an
    /// allow-list; a request without `Origin` is not from a browser page).
    private func isOriginAllowed(_ head: HTTPRequestHead) -> Bool {
        guard let origin = head.headers.first(name: "origin") else { return true }
        let path = head.target.path
        if let engineIO = server.matchEngineIO(path: path) {
            return engineIO.endpoint.options.allowedOrigins?.contains(origin) ?? true
        }
        if let (runtime, _) = server.match(path: path) { return runtime.rules.isOriginAllowed(origin) }
        return true
    }

    /// Answers `101`, takes the HTTP handlers out and puts the WebSocket handler in; bytes that came
    /// after the request (frames a client sent without waiting for the `101`) go to it.
    private func switchToWebSocket(_ head: HTTPRequestHead, headers: HTTPHeaders, upgrader: SockwayWebSocketUpgrader, context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        let response = HTTPResponseHead(version: head.version, status: .switchingProtocols, headers: headers)
        tally?.countResponse(status: 101)
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
                if self.inbound.readableBytes > 0 {
                    let leftover = self.inbound
                    self.inbound = ByteBuffer()
                    context.fireChannelRead(self.wrapInboundOut(leftover))
                }
                pipeline.removeHandler(context: context, promise: nil)
            } catch {
                context.close(promise: nil)
            }
        }
    }

    // MARK: Forwarding

    /// Where `head` goes if it is for a session another node of the cluster holds.
    private func forwardingTarget(_ head: HTTPRequestHead) -> ForwardedRequest? {
        guard let directory = server.configuration.directory, let nodeID = server.configuration.nodeID else { return nil }
        let (path, query) = head.target
        guard server.matchEngineIO(path: path) != nil, let sid = EngineIOQuery(parsing: query).sid else { return nil }
        return ForwardedRequest(head, sid: sid[...], nodeID: nodeID, directory: directory)
    }

    /// Connects to the owner and splices this connection to it: the head (marked as forwarded), then
    /// every byte both ways until either side closes. Reads pause until the splice is in place.
    private func forward(_ head: HTTPRequestHead, to target: ForwardedRequest, context: ChannelHandlerContext) {
        mode = .forwarding
        readsPaused = true
        timer?.cancel()
        timer = nil
        let client = context.channel
        let from = server.configuration.nodeID ?? ""
        let peerSplice = NIOLoopBound(SpliceHandler(), eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .connectTimeout(.seconds(2))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(peerSplice.value) }
            }
            .connect(host: target.host, port: target.port)
            .assumeIsolated()
            .whenComplete { [self] result in
                guard let context = self.context else {
                    if case .success(let peer) = result { peer.close(promise: nil) }
                    return
                }
                switch result {
                case .success(let peer):
                    var prelude = peer.allocator.buffer(capacity: 512 + inbound.readableBytes)
                    ForwardedRequest.encode(head, from: from, client: client.remoteAddress, into: &prelude)
                    prelude.writeBuffer(&inbound)
                    let clientSplice = SpliceHandler()
                    SpliceHandler.pair(clientSplice, peerSplice.value)
                    do {
                        let pipeline = context.pipeline.syncOperations
                        if let encoder = try? pipeline.handler(type: HTTPResponseEncoder.self) {
                            pipeline.removeHandler(encoder, promise: nil)
                        }
                        try pipeline.addHandler(clientSplice, position: .after(self))
                        pipeline.removeHandler(context: context, promise: nil)
                    } catch {
                        peer.close(promise: nil)
                        client.close(promise: nil)
                        return
                    }
                    peer.writeAndFlush(prelude, promise: nil)
                    client.read()
                case .failure:
                    // The owner cannot be reached: its sessions are gone; the client starts over.
                    server.refusals.log(.forwardFailed, from: client.remoteAddress)
                    keepAlive = false
                    let cors = server.matchEngineIO(path: head.target.path)?.corsHeaders(origin: head.headers.first(name: "origin")) ?? [:]
                    respondEngineIO(error: .unknownSessionID, headers: cors, context: context)
                }
            }
    }

    // MARK: Engine.IO

    private func handleEngineIO(_ head: HTTPRequestHead, runtime: EngineIORuntime, query: Substring, context: ChannelHandlerContext) {
        let origin = head.headers.first(name: "origin")
        let cors = runtime.corsHeaders(origin: origin)
        if let allowed = runtime.endpoint.options.allowedOrigins, let origin, !allowed.contains(origin) {
            server.refusals.log(.foreignOrigin, from: context.channel.remoteAddress)
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
        let this = NIOLoopBound(self, eventLoop: context.eventLoop)
        runtime.store.owner(of: sid).execute {
            switch runtime.makeSession(sid: sid, transport: .polling, remoteAddress: remoteAddress, headers: requestHeaders) {
            case .success(let core):
                core.attach(receiver)
            case .failure:
                this.run { $0.answerEngineIOPollOverloaded(receiver) }
            }
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
        releaseBody()
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
        writeHead(HTTPResponseHead(version: request.version, status: status, headers: headers), context: context)
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

    /// A handshake refused by the server's session bounds: `503` with `Retry-After`.
    func answerEngineIOPollOverloaded(_ receiver: EngineIOPollReceiver) {
        guard let context, case .engineIOPolling(let current, _, _, let headers) = mode, current === receiver else { return }
        let busy = EngineIOBusyResponse(headers: headers, retryAfter: server.configuration.retryAfterSeconds)
        respondEngineIO(.serviceUnavailable, headers: busy.headers, body: busy.body, context: context)
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
        writeHead(head, context: context)
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
        idleSince = context.eventLoop.now
        guard keepAlive else { return }
        // Inside the parsing loop the next request is taken by the loop itself (no recursion per
        // pipelined request); after an answer that came later, parsing starts again here.
        if !isParsing { parseRequests(context: context) }
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

extension HTTPRequestHead {
    /// The request target's path and query (without its `?`). Split on the byte: the parser lets only
    /// visible ASCII into a target, and a Character search could not see a `?` before a combining mark.
    var target: (path: Substring, query: Substring) {
        let uri = self.uri[...]
        guard let mark = uri.utf8.firstIndex(of: UInt8(ascii: "?")) else { return (uri, uri[uri.endIndex...]) }
        return (uri[..<mark], uri[uri.utf8.index(after: mark)...])
    }
}

extension SockJSRequest {
    /// The SockJS rules' view of an HTTP request under an endpoint: `relativePath` is the path after
    /// the endpoint's prefix.
    init(_ head: HTTPRequestHead, relativePath: Substring, query: Substring) {
        let headers = head.headers
        self.init(
            method: head.method.rawValue,
            path: String(relativePath),
            query: String(query),
            origin: headers.first(name: "origin"),
            accessControlRequestHeaders: headers.first(name: "access-control-request-headers"),
            cookie: headers.first(name: "cookie"),
            ifNoneMatch: headers.first(name: "if-none-match"),
            contentType: headers.first(name: "content-type")
        )
    }
}
