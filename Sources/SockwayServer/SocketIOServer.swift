import NIOConcurrencyHelpers
import NIOCore
import SockwayCluster
import SockwayCore
import SockwayEngineIO
import SockwaySocketIO

/// A Socket.IO v5 server: namespaces, events with and without acknowledgements, rooms and
/// middleware, over the Engine.IO endpoint at ``path`` (`/socket.io/` by default). Put its
/// ``endpoint`` in a ``SockwayServer``'s endpoints.
///
/// ```swift
/// let io = SocketIOServer()
/// io.of("/chat").onConnection { socket in
///     socket.on("chat") { event in socket.namespace.emit("chat", event.arguments) }
/// }
/// let server = SockwayServer(endpoints: [io.endpoint])
/// ```
///
/// Handlers run on the event loop of the client's Engine.IO session; every method may be called from
/// any thread.
public final class SocketIOServer: Sendable {
    /// The path of the Engine.IO endpoint (`/socket.io`).
    public let path: String
    public let options: SockwayEndpointOptions
    public let engineIO: EngineIOOptions
    /// How long a client may take to connect to a namespace after its Engine.IO handshake before the
    /// connection is closed. Default 45 s, as the reference.
    public let connectTimeout: TimeAmount
    /// Bounds of the packet decoder (binary attachments per packet and their bytes).
    public let decoderConfiguration: SocketIOPacketDecoder.Configuration
    /// What broadcasts go through: this process only (the default) or every node of a cluster.
    public let bus: any BroadcastBus
    private let namespaces = NIOLockedValueBox<[String: SocketIONamespace]>([:])

    /// `bus` carries the broadcasts and rooms: pass a cluster's bus (`SockwayPostgres`) so that an emit
    /// to a room reaches its members on every node. Default: this process only.
    public init(
        path: String = "/socket.io",
        options: SockwayEndpointOptions = .init(),
        engineIO: EngineIOOptions = .init(),
        connectTimeout: TimeAmount = .seconds(45),
        decoderConfiguration: SocketIOPacketDecoder.Configuration = .init(),
        bus: any BroadcastBus = InProcessBroadcastBus()
    ) {
        self.path = path
        self.options = options
        self.engineIO = engineIO
        self.connectTimeout = connectTimeout
        self.decoderConfiguration = decoderConfiguration
        self.bus = bus
        _ = of(SocketIOPacket.mainNamespace)
    }

    /// The namespace `name` (`/`, `/admin`), created on first use. Clients can connect only to
    /// namespaces that exist.
    public func of(_ name: String) -> SocketIONamespace {
        let name = name.hasPrefix("/") ? name : "/" + name
        return namespaces.withLockedValue { namespaces in
            if let existing = namespaces[name] { return existing }
            let created = SocketIONamespace(name: name, stream: "sio:\(path)#\(name)", bus: bus)
            namespaces[name] = created
            return created
        }
    }

    /// The main namespace, `/`.
    public var sockets: SocketIONamespace { of(SocketIOPacket.mainNamespace) }

    func namespace(named name: String) -> SocketIONamespace? {
        namespaces.withLockedValue { $0[name] }
    }

    /// The Engine.IO endpoint that carries this server's connections.
    public var endpoint: SockwayEndpoint {
        .engineIO(path, options: options, engineIO: engineIO) { [self] session in
            SocketIOConnection(server: self, session: session)
        }
    }
}

/// Thrown by a namespace middleware to refuse a connection: the client gets CONNECT_ERROR with
/// `{"message": message, "data": data}`.
public struct SocketIOConnectError: Error, Sendable, Hashable {
    public var message: String
    public var data: SocketIOValue?

    public init(_ message: String, data: SocketIOValue? = nil) {
        self.message = message
        self.data = data
    }
}

/// A Socket.IO namespace: its middleware, its connection handlers, its sockets and their rooms.
public final class SocketIONamespace: Sendable {
    /// A middleware that may wait (look up a token in a database).
    public typealias Middleware = @Sendable (SocketIOSocket) async throws -> Void
    /// A middleware that decides at once, on the session's event loop.
    public typealias ImmediateMiddleware = @Sendable (SocketIOSocket) throws -> Void

    enum AnyMiddleware: Sendable {
        case immediate(ImmediateMiddleware)
        case async(Middleware)
    }

    public let name: String
    /// The bus stream this namespace's broadcasts go through.
    let stream: String
    let bus: any BroadcastBus
    private let state = NIOLockedValueBox(State())
    private let subscription = NIOLockedValueBox<BroadcastSubscription?>(nil)

    struct State {
        var middlewares: [AnyMiddleware] = []
        var connectionHandlers: [@Sendable (SocketIOSocket) -> Void] = []
        var sockets: [String: SocketIOSocket] = [:]
        var rooms: [String: Set<String>] = [:]
    }

    init(name: String, stream: String, bus: any BroadcastBus) {
        self.name = name
        self.stream = stream
        self.bus = bus
        let subscription = bus.subscribe(to: stream) { [weak self] delivery in self?.deliver(delivery) }
        self.subscription.withLockedValue { $0 = subscription }
    }

    /// A broadcast from the bus (made here or on another node): to the local sockets it targets,
    /// encoded once.
    private func deliver(_ delivery: BroadcastDelivery) {
        guard let broadcast = try? SocketIOBusBroadcast(decoding: delivery.payload) else { return }
        let targets = targets(rooms: broadcast.rooms, except: broadcast.except)
        guard !targets.isEmpty else { return }
        let wire = SocketIOWirePacket(text: broadcast.text, attachments: broadcast.attachments)
        for socket in targets { socket.send(wire) }
    }

    /// Adds a middleware, run in order for each connecting client before it is connected; one that
    /// throws refuses the connection (with the ``SocketIOConnectError``'s message, or the error's
    /// description).
    public func use(_ middleware: @escaping Middleware) {
        state.withLockedValue { $0.middlewares.append(.async(middleware)) }
    }

    /// Adds a middleware that decides at once, on the session's event loop, without a task (unless
    /// an async middleware comes before it: from that one on, the rest run in its task).
    public func use(_ middleware: @escaping ImmediateMiddleware) {
        state.withLockedValue { $0.middlewares.append(.immediate(middleware)) }
    }

    /// Calls `handler` with each socket that connects, on its event loop, after the client has its
    /// CONNECT reply: register the socket's event handlers there.
    public func onConnection(_ handler: @escaping @Sendable (SocketIOSocket) -> Void) {
        state.withLockedValue { $0.connectionHandlers.append(handler) }
    }

    /// The connected sockets.
    public var sockets: [SocketIOSocket] {
        state.withLockedValue { Array($0.sockets.values) }
    }

    /// Sends an event to every socket of the namespace.
    public func emit(_ event: String, _ arguments: [SocketIOValue] = []) {
        SocketIOBroadcast(namespace: self).emit(event, arguments)
    }

    /// A broadcast to the sockets in `rooms`.
    public func to(_ rooms: String...) -> SocketIOBroadcast {
        SocketIOBroadcast(namespace: self, rooms: Set(rooms))
    }

    var middlewares: [AnyMiddleware] { state.withLockedValue { $0.middlewares } }
    var connectionHandlers: [@Sendable (SocketIOSocket) -> Void] { state.withLockedValue { $0.connectionHandlers } }

    func add(_ socket: SocketIOSocket) {
        state.withLockedValue { $0.sockets[socket.id] = socket }
    }

    func remove(_ socket: SocketIOSocket, rooms: Set<String>) {
        state.withLockedValue { state in
            state.sockets[socket.id] = nil
            for room in rooms {
                state.rooms[room]?.remove(socket.id)
                if state.rooms[room]?.isEmpty == true { state.rooms[room] = nil }
            }
        }
    }

    func join(_ socket: SocketIOSocket, room: String) {
        _ = state.withLockedValue { $0.rooms[room, default: []].insert(socket.id) }
    }

    func leave(_ socket: SocketIOSocket, room: String) {
        state.withLockedValue { state in
            state.rooms[room]?.remove(socket.id)
            if state.rooms[room]?.isEmpty == true { state.rooms[room] = nil }
        }
    }

    /// The sockets in any of `rooms` (all when empty), but none whose id is in `except`.
    func targets(rooms: Set<String>, except: Set<String>) -> [SocketIOSocket] {
        state.withLockedValue { state in
            if rooms.isEmpty {
                return state.sockets.values.filter { !except.contains($0.id) }
            }
            var ids = Set<String>()
            for room in rooms { ids.formUnion(state.rooms[room] ?? []) }
            return ids.subtracting(except).compactMap { state.sockets[$0] }
        }
    }
}

/// An event to some sockets of a namespace: in given rooms, but not some sockets. The packet is
/// encoded once for all of them.
public struct SocketIOBroadcast: Sendable {
    let namespace: SocketIONamespace
    var rooms: Set<String> = []
    var except: Set<String> = []

    /// Also the sockets in `rooms`.
    public func to(_ rooms: String...) -> SocketIOBroadcast {
        var copy = self
        copy.rooms.formUnion(rooms)
        return copy
    }

    /// Not the socket `socket`.
    public func except(_ socket: SocketIOSocket) -> SocketIOBroadcast {
        var copy = self
        copy.except.insert(socket.id)
        return copy
    }

    /// Sends the event to the targeted sockets on every node of the bus. Rooms whose names no socket
    /// can join (see ``SocketIOSocket/join(_:)``) have no members.
    public func emit(_ event: String, _ arguments: [SocketIOValue] = []) {
        let rooms = self.rooms.filter(BroadcastWire.isValidName)
        guard rooms.count == self.rooms.count || !rooms.isEmpty else { return }
        let wire = SocketIOWirePacket(.event(event, arguments, namespace: namespace.name))
        let broadcast = SocketIOBusBroadcast(rooms: rooms, except: except, text: wire.text, attachments: wire.attachments)
        namespace.bus.publish(broadcast.encoded(), on: namespace.stream)
    }
}

/// A Socket.IO broadcast as it travels on the bus: its targets and its packet, already encoded.
struct SocketIOBusBroadcast: Equatable {
    static let kind: UInt8 = 1
    /// Bounds on what a publication may carry, checked before anything is allocated for it.
    static let maxNames = 65_536
    static let maxAttachments = 1024

    var rooms: Set<String>
    var except: Set<String>
    var text: String
    var attachments: [ByteBuffer]

    init(rooms: Set<String>, except: Set<String>, text: String, attachments: [ByteBuffer]) {
        self.rooms = rooms
        self.except = except
        self.text = text
        self.attachments = attachments
    }

    func encoded() -> ByteBuffer {
        var writer = BroadcastWriter(kind: Self.kind, capacity: 32 + text.utf8.count)
        writer.write(count: rooms.count)
        for room in rooms { writer.write(room) }
        writer.write(count: except.count)
        for id in except { writer.write(id) }
        writer.write(text)
        writer.write(count: attachments.count)
        for attachment in attachments { writer.write(bytes: attachment) }
        return writer.buffer
    }

    init(decoding payload: ByteBuffer) throws(BroadcastDecodingError) {
        var reader = try BroadcastReader(payload)
        guard reader.kind == Self.kind else { throw .malformed }
        rooms = []
        for _ in 0..<(try reader.readCount(limit: Self.maxNames)) { rooms.insert(try reader.readName()) }
        except = []
        for _ in 0..<(try reader.readCount(limit: Self.maxNames)) { except.insert(try reader.readString()) }
        text = try reader.readString()
        attachments = []
        for _ in 0..<(try reader.readCount(limit: Self.maxAttachments)) { attachments.append(try reader.readBytes()) }
        try reader.finish()
    }
}

/// A packet encoded for the wire: the Engine.IO text message and its binary attachments.
struct SocketIOWirePacket: Sendable {
    let text: String
    let attachments: [ByteBuffer]

    init(_ packet: SocketIOPacket) {
        let encoded = packet.encoded()
        text = String(buffer: encoded.text)
        attachments = encoded.attachments
    }

    init(text: String, attachments: [ByteBuffer]) {
        self.text = text
        self.attachments = attachments
    }
}

/// An event from a client.
public struct SocketIOEvent: Sendable {
    public let name: String
    public let arguments: [SocketIOValue]
    public let socket: SocketIOSocket
    let ackID: UInt64?
    private let acked = NIOLockedValueBox(false)

    init(name: String, arguments: [SocketIOValue], socket: SocketIOSocket, ackID: UInt64?) {
        self.name = name
        self.arguments = arguments
        self.socket = socket
        self.ackID = ackID
    }

    /// Whether the client asked for an acknowledgement.
    public var wantsAck: Bool { ackID != nil }

    /// Acknowledges the event with `arguments` (once; later calls and events without an ack id do
    /// nothing).
    public func ack(_ arguments: [SocketIOValue] = []) {
        guard let ackID, socket.isConnected, !acked.withLockedValue({ done in defer { done = true }; return done }) else { return }
        socket.send(SocketIOWirePacket(.ack(ackID, arguments, namespace: socket.namespace.name)))
    }
}

/// Why an acknowledgement did not come.
public enum SocketIOAckError: Error, Sendable, Hashable {
    case timedOut
    case disconnected
}

/// One client's connection to one namespace.
public final class SocketIOSocket: Sendable {
    /// The socket's id, sent to the client in the CONNECT reply (not the Engine.IO session id).
    public let id: String
    public let namespace: SocketIONamespace
    /// The Engine.IO session that carries the socket.
    public let session: SockwaySession
    /// The CONNECT packet's payload (the client's `auth`); an empty object when it sent none.
    public let auth: SocketIOValue
    private let state = NIOLockedValueBox(State())

    struct PendingAck {
        var continuation: CheckedContinuation<[SocketIOValue], any Error>
        var timeout: Scheduled<Void>?
    }

    struct State {
        var handlers: [String: [@Sendable (SocketIOEvent) -> Void]] = [:]
        var anyHandlers: [@Sendable (SocketIOEvent) -> Void] = []
        var disconnectHandlers: [@Sendable (String) -> Void] = []
        var rooms: Set<String> = []
        /// From the CONNECT reply until the socket is gone: while middleware runs it is not yet.
        var connected = false
        var gone = false
        var nextAckID: UInt64 = 0
        var pendingAcks: [UInt64: PendingAck] = [:]
    }

    init(id: String, namespace: SocketIONamespace, session: SockwaySession, auth: SocketIOValue) {
        self.id = id
        self.namespace = namespace
        self.session = session
        self.auth = auth
        _ = state.withLockedValue { $0.rooms.insert(id) }
    }

    public var isConnected: Bool { state.withLockedValue { $0.connected } }

    /// Calls `handler` for each `event` from the client, on the session's event loop.
    public func on(_ event: String, _ handler: @escaping @Sendable (SocketIOEvent) -> Void) {
        state.withLockedValue { $0.handlers[event, default: []].append(handler) }
    }

    /// Calls `handler` for every event from the client, before the handlers of its name.
    public func onAny(_ handler: @escaping @Sendable (SocketIOEvent) -> Void) {
        state.withLockedValue { $0.anyHandlers.append(handler) }
    }

    /// Calls `handler` with the reason once the socket is disconnected (`client namespace
    /// disconnect`, `server namespace disconnect`, `transport close`, `ping timeout`, …).
    public func onDisconnect(_ handler: @escaping @Sendable (String) -> Void) {
        state.withLockedValue { $0.disconnectHandlers.append(handler) }
    }

    /// Sends an event to the client.
    public func emit(_ event: String, _ arguments: [SocketIOValue] = []) {
        send(SocketIOWirePacket(.event(event, arguments, namespace: namespace.name)))
    }

    /// Sends an event and waits for the client's acknowledgement; throws ``SocketIOAckError`` when it
    /// does not come within `timeout` or the socket disconnects first.
    public func emitWithAck(_ event: String, _ arguments: [SocketIOValue] = [], timeout: TimeAmount = .seconds(10)) async throws -> [SocketIOValue] {
        let loop = session.eventLoop
        return try await withCheckedThrowingContinuation { continuation in
            let id: UInt64? = state.withLockedValue { state in
                guard state.connected else { return nil }
                let id = state.nextAckID
                state.nextAckID += 1
                state.pendingAcks[id] = PendingAck(continuation: continuation)
                return id
            }
            guard let id else { return continuation.resume(throwing: SocketIOAckError.disconnected) }
            send(SocketIOWirePacket(.event(event, arguments, namespace: namespace.name, ackID: id)))
            let timer = loop.scheduleTask(in: timeout) { [self] () -> Void in
                let expired = state.withLockedValue { $0.pendingAcks.removeValue(forKey: id) }
                expired?.continuation.resume(throwing: SocketIOAckError.timedOut)
            }
            let answered = state.withLockedValue { state -> Bool in
                guard state.pendingAcks[id] != nil else { return true }
                state.pendingAcks[id]?.timeout = timer
                return false
            }
            if answered { timer.cancel() }
        }
    }

    /// Puts the socket in `room`. Returns `false`, and does nothing, when the name is empty or longer
    /// than `BroadcastWire.maxNameBytes` (256) UTF-8 bytes.
    @discardableResult
    public func join(_ room: String) -> Bool {
        guard BroadcastWire.isValidName(room) else { return false }
        // Before the socket is connected (in a middleware) the room is only remembered; the
        // namespace learns of it at the CONNECT reply.
        // The namespace is told under the socket's lock, so that a join racing the socket's close
        // cannot leave the id behind in the room (the namespace's lock is only ever taken inside).
        state.withLockedValue { state in
            if state.rooms.insert(room).inserted && state.connected { namespace.join(self, room: room) }
        }
        return true
    }

    /// Takes the socket out of `room`.
    public func leave(_ room: String) {
        state.withLockedValue { state in
            if state.rooms.remove(room) != nil && state.connected { namespace.leave(self, room: room) }
        }
    }

    /// The rooms the socket is in (its own id among them).
    public var rooms: Set<String> { state.withLockedValue { $0.rooms } }

    /// A broadcast to every other socket of the namespace.
    public var broadcast: SocketIOBroadcast { SocketIOBroadcast(namespace: namespace).except(self) }

    /// A broadcast to the sockets in `rooms`, this one excepted.
    public func to(_ rooms: String...) -> SocketIOBroadcast {
        SocketIOBroadcast(namespace: namespace, rooms: Set(rooms)).except(self)
    }

    /// Disconnects the socket from its namespace (the client gets DISCONNECT and does not reconnect
    /// by itself); with `close`, the whole connection closes too.
    public func disconnect(close: Bool = false) {
        let loop = session.eventLoop
        let body: @Sendable () -> Void = { [self] in
            guard let connection = SocketIOConnection.of(session) else { return }
            connection.serverDisconnected(self, closeConnection: close)
        }
        if loop.inEventLoop { body() } else { loop.execute(body) }
    }

    /// Ends the client's whole connection without a word to it, as a network failure would: no
    /// DISCONNECT, no Engine.IO `close` (the client reconnects by itself, where after
    /// ``disconnect(close:)`` it does not).
    public func dropConnection() {
        let loop = session.eventLoop
        let body: @Sendable () -> Void = { [self] in SocketIOConnection.of(session)?.drop() }
        if loop.inEventLoop { body() } else { loop.execute(body) }
    }

    // MARK: Internals

    /// Sends a packet on the session's loop, its attachments right behind its text.
    func send(_ packet: SocketIOWirePacket) {
        guard isConnected else { return }
        let session = self.session
        if session.eventLoop.inEventLoop || packet.attachments.isEmpty {
            // Off the loop, text goes through the session's bounded batch of off-loop sends.
            session.send(packet.text)
            for attachment in packet.attachments { session.sendBinary(attachment) }
        } else {
            session.eventLoop.execute {
                session.send(packet.text)
                for attachment in packet.attachments { session.sendBinary(attachment) }
            }
        }
    }

    func dispatch(_ packet: SocketIOPacket) {
        guard let name = packet.eventName else { return }
        let event = SocketIOEvent(name: name, arguments: packet.arguments, socket: self, ackID: packet.ackID)
        let (any, handlers) = state.withLockedValue { ($0.anyHandlers, $0.handlers[name] ?? []) }
        for handler in any { handler(event) }
        for handler in handlers { handler(event) }
    }

    func ackReceived(_ packet: SocketIOPacket) {
        guard let id = packet.ackID, let pending = state.withLockedValue({ $0.pendingAcks.removeValue(forKey: id) }) else { return }
        pending.timeout?.cancel()
        pending.continuation.resume(returning: packet.arguments)
    }

    /// The client has its CONNECT reply: the socket and its rooms (its own id among them) join the
    /// namespace.
    func markConnected() {
        state.withLockedValue { state in
            guard !state.gone else { return }
            state.connected = true
            namespace.add(self)
            for room in state.rooms { namespace.join(self, room: room) }
        }
    }

    /// The socket is gone: it leaves its rooms, pending acknowledgements fail, handlers learn why.
    func closed(reason: String) {
        let (wasConnected, rooms, acks, handlers) = state.withLockedValue { state in
            defer {
                state.connected = false
                state.gone = true
                state.pendingAcks = [:]
                state.handlers = [:]
                state.anyHandlers = []
                state.disconnectHandlers = []
            }
            return (state.connected, state.rooms, Array(state.pendingAcks.values), state.disconnectHandlers)
        }
        guard wasConnected else { return }
        // After the lock above no join or leave reaches the namespace any more.
        namespace.remove(self, rooms: rooms)
        for ack in acks {
            ack.timeout?.cancel()
            ack.continuation.resume(throwing: SocketIOAckError.disconnected)
        }
        for handler in handlers { handler(reason) }
    }
}

/// The Socket.IO side of one Engine.IO session: decodes its packets, connects it to namespaces and
/// routes events to sockets. Lives on the session's event loop.
final class SocketIOConnection: SockwaySessionDelegate {
    private let server: SocketIOServer
    private unowned let session: SockwaySession
    private var decoder: SocketIOPacketDecoder
    private var sockets: [String: SocketIOSocket] = [:]
    private var connecting: Set<String> = []
    private var connectTimer: Scheduled<Void>?
    private var closed = false

    init(server: SocketIOServer, session: SockwaySession) {
        self.server = server
        self.session = session
        self.decoder = SocketIOPacketDecoder(configuration: server.decoderConfiguration)
    }

    /// The connection of a session of a ``SocketIOServer``; call on the session's loop.
    static func of(_ session: SockwaySession) -> SocketIOConnection? {
        session.core.value.delegateObject as? SocketIOConnection
    }

    func sessionDidOpen(_ session: SockwaySession) {
        connectTimer = session.eventLoop.assumeIsolated().scheduleTask(in: server.connectTimeout) { [self] in
            if sockets.isEmpty { self.session.close(code: 1000, reason: "connect timeout") }
        }
    }

    func session(_ session: SockwaySession, didReceive messages: [String]) {
        for message in messages {
            guard !closed else { return }
            do {
                if let packet = try decoder.textMessageReceived(message) { handle(packet) }
            } catch {
                fail()
            }
        }
    }

    func session(_ session: SockwaySession, didReceiveBinary message: ByteBuffer) {
        guard !closed else { return }
        do {
            if let packet = try decoder.binaryMessageReceived(message) { handle(packet) }
        } catch {
            fail()
        }
    }

    func session(_ session: SockwaySession, didCloseWith reason: SockwayCloseReason) {
        closed = true
        connectTimer?.cancel()
        let all = sockets.values
        sockets = [:]
        for socket in all { socket.closed(reason: reason.reason) }
    }

    /// A packet that breaks the protocol closes the connection, as the reference does.
    private func fail() {
        closed = true
        session.close(code: 1007, reason: "parse error")
    }

    private func handle(_ packet: SocketIOPacket) {
        let nsp = packet.namespace
        switch packet.type {
        case .connect:
            // A second CONNECT for a namespace breaks the protocol, as the reference sees it.
            guard sockets[nsp] == nil else { return fail() }
            connect(nsp, auth: packet.data)
        case .disconnect:
            guard let socket = sockets.removeValue(forKey: nsp) else { return fail() }
            socket.closed(reason: "client namespace disconnect")
        case .event, .binaryEvent:
            guard let socket = sockets[nsp] else { return fail() }
            socket.dispatch(packet)
        case .ack, .binaryAck:
            guard let socket = sockets[nsp] else { return fail() }
            socket.ackReceived(packet)
        case .connectError:
            fail()
        }
    }

    private func connect(_ nsp: String, auth: SocketIOValue?) {
        guard sockets[nsp] == nil, !connecting.contains(nsp) else { return }
        guard let namespace = server.namespace(named: nsp) else {
            return send(SocketIOPacket(type: .connectError, namespace: nsp, data: .object([.init("message", "Invalid namespace")])))
        }
        let socket = SocketIOSocket(id: RandomID.make(), namespace: namespace, session: session, auth: auth ?? .object([]))
        var middlewares = namespace.middlewares[...]
        // Those that decide at once run here; from the first that may wait on, a task runs the rest.
        while case .immediate(let middleware) = middlewares.first {
            middlewares.removeFirst()
            do {
                try middleware(socket)
            } catch {
                return refuse(nsp, error)
            }
        }
        if middlewares.isEmpty {
            return connected(socket)
        }
        connecting.insert(nsp)
        let loop = session.eventLoop
        let this = NIOLoopBound(self, eventLoop: loop)
        let remaining = Array(middlewares)
        Task {
            var refusal: (any Error)?
            do {
                for middleware in remaining {
                    switch middleware {
                    case .immediate(let body): try body(socket)
                    case .async(let body): try await body(socket)
                    }
                }
            } catch {
                refusal = error
            }
            let outcome = refusal.map { $0 as? SocketIOConnectError ?? SocketIOConnectError(String(describing: $0)) }
            loop.execute {
                let connection = this.value
                connection.connecting.remove(nsp)
                guard !connection.closed else { return }
                if let outcome {
                    connection.refuse(nsp, outcome)
                } else {
                    connection.connected(socket)
                }
            }
        }
    }

    private func refuse(_ nsp: String, _ error: any Error) {
        let refusal = error as? SocketIOConnectError ?? SocketIOConnectError(String(describing: error))
        var data: [SocketIOValue.Member] = [.init("message", .string(refusal.message))]
        if let extra = refusal.data { data.append(.init("data", extra)) }
        send(SocketIOPacket(type: .connectError, namespace: nsp, data: .object(data)))
    }

    private func connected(_ socket: SocketIOSocket) {
        connectTimer?.cancel()
        connectTimer = nil
        sockets[socket.namespace.name] = socket
        socket.markConnected()
        send(SocketIOPacket(type: .connect, namespace: socket.namespace.name, data: .object([.init("sid", .string(socket.id))])))
        for handler in socket.namespace.connectionHandlers { handler(socket) }
    }

    /// The server disconnects `socket`: DISCONNECT to the client, then, with `closeConnection`, the
    /// Engine.IO session closes.
    func serverDisconnected(_ socket: SocketIOSocket, closeConnection: Bool) {
        if sockets[socket.namespace.name] === socket {
            sockets[socket.namespace.name] = nil
            send(SocketIOPacket(type: .disconnect, namespace: socket.namespace.name))
            socket.closed(reason: "server namespace disconnect")
        }
        if closeConnection { session.close(code: 1000, reason: "forced close") }
    }

    /// Ends the Engine.IO session without a word to the client, as a network failure would (the
    /// client reconnects by itself).
    func drop() {
        guard let core = session.core.value as? EngineIOSessionCore else { return session.close() }
        let now = core.eventLoop.now
        core.perform { $0.dropped(SockwayCloseReason(code: 1000, reason: "transport close"), now: now) }
    }

    private func send(_ packet: SocketIOPacket) {
        let wire = SocketIOWirePacket(packet)
        session.send(wire.text)
        for attachment in wire.attachments { session.sendBinary(attachment) }
    }
}
