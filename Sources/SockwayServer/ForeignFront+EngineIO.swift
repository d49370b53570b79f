import NIOCore
import NIOHTTP1
import SockwayCore
import SockwayEngineIO

/// A complete HTTP response, as a foreign front writes it.
package struct ForeignResponse: Sendable {
    package var status: Int
    package var headers: [(name: String, value: String)]
    package var body: ByteBuffer

    init(status: Int, headers: HTTPHeaders, body: ByteBuffer? = nil) {
        self.status = status
        self.headers = headers.map { ($0.name, $0.value) }
        self.body = body ?? ByteBuffer()
    }

    /// The reference server's error answer: its status and `{"code":…,"message":…}`.
    init(error: EngineIOError, headers: HTTPHeaders) {
        var headers = headers
        headers.add(name: "Content-Type", value: "application/json")
        var body = ByteBuffer()
        error.writeJSONBody(into: &body)
        self.init(status: error.httpStatus, headers: headers, body: body)
    }
}

/// What an Engine.IO polling request gets.
package enum ForeignEngineIODecision: Sendable {
    /// A complete response (a preflight, an error).
    case respond(ForeignResponse)
    /// A handshake or a long poll: its answer comes when the session has a payload for it.
    case poll(ForeignEngineIOPoll)
    /// A POST: read the body (at most ``ForeignEngineIOPost/maxBodyBytes``) and hand it over.
    case post(ForeignEngineIOPost)
}

extension ForeignFront {
    /// What to do with an Engine.IO HTTP request (not a WebSocket upgrade), as Sockway's own server
    /// decides it.
    package func engineIO(_ request: ForeignRequest) -> ForeignEngineIODecision {
        let head = request.head
        let (path, queryString) = head.target
        guard let endpoint = runtime.matchEngineIO(path: path) else {
            return .respond(ForeignResponse(error: .badRequest, headers: [:]))
        }
        let origin = request.origin
        let cors = endpoint.corsHeaders(origin: origin)
        if let allowed = endpoint.endpoint.options.allowedOrigins, let origin, !allowed.contains(origin) {
            runtime.refusals.log(.foreignOrigin, from: request.remoteAddress)
            return .respond(ForeignResponse(error: .forbidden, headers: [:]))
        }
        let query = EngineIOQuery(parsing: queryString)
        let method = head.method.rawValue
        let sid = query.sid ?? ""
        let poll = ForeignEngineIOPoll(
            runtime: endpoint,
            query: query,
            origin: origin,
            cors: cors,
            request: request,
            retryAfterSeconds: runtime.configuration.retryAfterSeconds
        )
        if sid.isEmpty {
            do {
                switch try endpoint.rules.route(method: method, query: query, isUpgrade: false, origin: origin, sessionTransport: { _ in nil }) {
                case .preflight: return .respond(Self.engineIOPreflight(head, cors: cors))
                case .handshake: return .poll(poll)
                case .poll, .post, .webSocket: return .respond(ForeignResponse(error: .badRequest, headers: cors))
                }
            } catch {
                return .respond(ForeignResponse(error: error, headers: cors))
            }
        }
        switch head.method {
        case .OPTIONS: return .respond(Self.engineIOPreflight(head, cors: cors))
        case .POST: return .post(ForeignEngineIOPost(runtime: endpoint, query: query, origin: origin, cors: cors, request: request))
        default: return .poll(poll)
        }
    }

    private static func engineIOPreflight(_ head: HTTPRequestHead, cors: HTTPHeaders) -> ForeignResponse {
        var headers = cors
        headers.add(name: "Access-Control-Allow-Methods", value: "GET, POST, OPTIONS")
        if let requested = head.headers.first(name: "access-control-request-headers") {
            headers.add(name: "Access-Control-Allow-Headers", value: requested)
        }
        headers.add(name: "Access-Control-Max-Age", value: "86400")
        return ForeignResponse(status: 204, headers: headers)
    }
}

/// An Engine.IO handshake (no `sid`) or long poll, before it reaches its session.
package struct ForeignEngineIOPoll: Sendable {
    let runtime: EngineIORuntime
    let query: EngineIOQuery
    let origin: String?
    let cors: HTTPHeaders
    let request: ForeignRequest
    let retryAfterSeconds: Int

    /// Creates the session (a handshake) or finds it, on its loop, and waits for its answer: the open
    /// packet, the packets queued for the client (or `noop`, `6`… when the session ends the poll),
    /// or a refusal.
    package func answer() async -> ForeignResponse {
        let runtime = self.runtime
        let query = self.query
        let origin = self.origin
        let cors = self.cors
        let remoteAddress = request.remoteAddress
        let requestHeaders = request.head.headers
        let handshake = (query.sid ?? "").isEmpty
        let sid = handshake ? runtime.newSessionID() : query.sid ?? ""
        var pollHeaders = cors
        if handshake, let cookie = runtime.engineIO.cookie {
            pollHeaders.add(name: "Set-Cookie", value: "\(cookie)=\(sid); Path=/; HttpOnly; SameSite=Lax")
        }
        let headers = pollHeaders
        let owner = runtime.store.owner(of: sid)
        let answered = owner.makePromise(of: ForeignResponse.self)
        let receiver = ForeignEngineIOPollReceiver(headers: headers, answer: answered)
        let retryAfter = retryAfterSeconds
        owner.execute {
            if handshake {
                switch runtime.makeSession(sid: sid, transport: .polling, remoteAddress: remoteAddress, headers: requestHeaders) {
                case .success(let core):
                    core.attach(receiver)
                case .failure:
                    let busy = EngineIOBusyResponse(headers: headers, retryAfter: retryAfter)
                    answered.succeed(ForeignResponse(status: EngineIOBusyResponse.status, headers: busy.headers, body: busy.body))
                }
                return
            }
            do {
                let route = try runtime.rules.route(method: "GET", query: query, isUpgrade: false, origin: origin) {
                    runtime.transport(ofSession: $0)
                }
                guard case .poll = route, let core = runtime.store.session(id: sid) else { throw EngineIOError.badRequest }
                core.attach(receiver)
            } catch {
                answered.succeed(ForeignResponse(error: error as? EngineIOError ?? .badRequest, headers: cors))
            }
        }
        do {
            return try await answered.futureResult.get()
        } catch {
            return ForeignResponse(error: .badRequest, headers: cors)
        }
    }
}

/// A long poll of an Engine.IO session over a foreign front: takes one frame and completes the
/// request's answer with it. Created off the session's loop, then used only on it.
final class ForeignEngineIOPollReceiver: SessionReceiver, @unchecked Sendable {
    let kind = SessionReceiverKind.polling
    private let headers: HTTPHeaders
    private let answer: EventLoopPromise<ForeignResponse>
    private var answered = false

    init(headers: HTTPHeaders, answer: EventLoopPromise<ForeignResponse>) {
        self.headers = headers
        self.answer = answer
    }

    /// A poll takes one frame, whole.
    var isWritable: Bool { !answered }

    func write(_ frame: EngineIOFrame) -> Bool {
        guard !answered else { return true }
        answered = true
        switch frame {
        case .packets(let packets):
            var body = ByteBuffer()
            body.reserveCapacity(EngineIOPayload.encodedByteCount(of: packets))
            EngineIOPayload.encode(packets, into: &body)
            var headers = self.headers
            headers.add(name: "Content-Type", value: "text/plain; charset=UTF-8")
            answer.succeed(ForeignResponse(status: 200, headers: headers, body: body))
        case .refused:
            answer.succeed(ForeignResponse(status: 400, headers: headers))
        }
        return true
    }

    func finish() {
        // A poll always ends with its one frame; one ended without any gets `noop`.
        if !answered { _ = write(.packets([.noop])) }
    }
}

/// An Engine.IO POST, before its body is read.
package struct ForeignEngineIOPost: Sendable {
    let runtime: EngineIORuntime
    let query: EngineIOQuery
    let origin: String?
    let cors: HTTPHeaders
    let request: ForeignRequest

    /// The largest body the endpoint takes (its `maxPayload`); a longer one gets ``bodyTooLarge``.
    package var maxBodyBytes: Int { runtime.engineIO.maxPayload }

    /// `413`, with the endpoint's CORS headers.
    package var bodyTooLarge: ForeignResponse {
        runtime.refusals.log(.bodyTooLarge, from: request.remoteAddress)
        return ForeignResponse(status: 413, headers: cors)
    }

    /// Hands the payload to its session; `200 ok` once it was taken, else the reference's error.
    package func deliver(_ payload: ByteBuffer) async -> ForeignResponse {
        let runtime = self.runtime
        let query = self.query
        let origin = self.origin
        let sid = query.sid ?? ""
        let binaryBody = request.head.headers.first(name: "content-type")?.lowercased().hasPrefix("application/octet-stream") == true
        let owner = runtime.store.owner(of: sid)
        let answered = owner.makePromise(of: Result<Void, EngineIOError>.self)
        owner.execute {
            let core: EngineIOSessionCore
            do {
                let route = try runtime.rules.route(method: "POST", query: query, isUpgrade: false, origin: origin) {
                    runtime.transport(ofSession: $0)
                }
                guard case .post = route, let session = runtime.store.session(id: sid) else { throw EngineIOError.badRequest }
                core = session
            } catch {
                return answered.succeed(.failure(error as? EngineIOError ?? .badRequest))
            }
            core.receivePost(payload, binaryBody: binaryBody, maxPayload: runtime.engineIO.maxPayload) { answered.succeed($0) }
        }
        switch try? await answered.futureResult.get() {
        case .success:
            var headers = cors
            headers.add(name: "Content-Type", value: "text/html")
            return ForeignResponse(status: 200, headers: headers, body: ByteBuffer(string: "ok"))
        case .failure(let error):
            return ForeignResponse(error: error, headers: cors)
        case nil:
            return ForeignResponse(error: .badRequest, headers: cors)
        }
    }
}
