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
    /// Connection state recovery, when on: a client that lost its connection comes back with its
    /// socket id, its rooms and the events it missed.
    public let recovery: SocketIORecovery?
    private let namespaces = NIOLockedValueBox<[String: SocketIONamespace]>([:])

    /// `bus` carries the broadcasts and rooms: pass a cluster's bus (`SockwayPostgres`) so that an emit
    /// to a room reaches its members on every node, and a client recovers on any node. Default: this
    /// process only (keeping, with `recovery`, what the recovery window needs).
    public init(
        path: String = "/socket.io",
        options: SockwayEndpointOptions = .init(),
        engineIO: EngineIOOptions = .init(),
        connectTimeout: TimeAmount = .seconds(45),
        decoderConfiguration: SocketIOPacketDecoder.Configuration = .init(),
        recovery: SocketIORecovery? = nil,
        bus: (any BroadcastBus)? = nil
    ) {
        self.path = path
        self.options = options
        self.engineIO = engineIO
        self.connectTimeout = connectTimeout
        self.decoderConfiguration = decoderConfiguration
        self.recovery = recovery
        self.bus = bus ?? InProcessBroadcastBus(retention: .forRecovery(recovery))
        _ = of(SocketIOPacket.mainNamespace)
    }

    /// The namespace `name` (`/`, `/admin`), created on first use. Clients can connect only to
    /// namespaces that exist.
    public func of(_ name: String) -> SocketIONamespace {
        let name = name.hasPrefix("/") ? name : "/" + name
        return namespaces.withLockedValue { namespaces in
            if let existing = namespaces[name] { return existing }
            let created = SocketIONamespace(name: name, stream: "sio:\(path)#\(name)", bus: bus, recovery: recovery)
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

/// Socket.IO's connection state recovery (Socket.IO 4.6): the server gives each socket a private
/// session id in its CONNECT reply and an offset with every event; a client that lost its connection
/// sends both back when it reconnects and gets its socket id, its rooms and the events it missed in
/// between (``SocketIOSocket/recovered`` is then `true`, on both sides). Through a cluster's bus this
/// works on any node, also when the client's node died.
///
/// With recovery on, every event to a socket goes through the bus (an emit to one socket is a
/// broadcast to the room of its id), as Socket.IO does, so that it can be replayed.
public struct SocketIORecovery: Sendable, Hashable {
    /// How long after losing its connection a client can still recover. Default 2 minutes.
    public var maxDisconnectionDuration: Duration
    /// The most events a client can have missed and still recover (past it, it is told it was not
    /// recovered). Default 10,000.
    public var maxMissedPackets: Int
    /// Whether a recovered socket skips the namespace's middleware. Default `true`, as Socket.IO.
    public var skipMiddlewares: Bool

    public init(maxDisconnectionDuration: Duration = .seconds(120), maxMissedPackets: Int = 10_000, skipMiddlewares: Bool = true) {
        self.maxDisconnectionDuration = maxDisconnectionDuration
        self.maxMissedPackets = maxMissedPackets
        self.skipMiddlewares = skipMiddlewares
    }
}

extension InProcessBroadcastBus.Retention {
    /// What `recovery` needs kept: its window and its most missed events; nothing without it.
    public static func forRecovery(_ recovery: SocketIORecovery?) -> Self {
        guard let recovery else { return .none }
        return Self(count: recovery.maxMissedPackets, age: recovery.maxDisconnectionDuration)
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
    let recovery: SocketIORecovery?
    private let state = NIOLockedValueBox(State())
    private let subscription = NIOLockedValueBox<BroadcastSubscription?>(nil)

    struct State {
        var middlewares: [AnyMiddleware] = []
        var connectionHandlers: [@Sendable (SocketIOSocket) -> Void] = []
        var sockets: [String: SocketIOSocket] = [:]
        var rooms: [String: Set<String>] = [:]
        /// The position of the latest broadcast delivered here: a socket that joins now gets every
        /// later one.
        var lastPosition: BroadcastPosition?

        /// The sockets in any of `rooms` (all when empty), but none whose id is in `except`.
        func targets(rooms: Set<String>, except: Set<String>) -> [SocketIOSocket] {
            if rooms.isEmpty {
                return sockets.values.filter { !except.contains($0.id) }
            }
            var ids = Set<String>()
            for room in rooms { ids.formUnion(self.rooms[room] ?? []) }
            return ids.subtracting(except).compactMap { sockets[$0] }
        }
    }

    init(name: String, stream: String, bus: any BroadcastBus, recovery: SocketIORecovery?) {
        self.name = name
        self.stream = stream
        self.bus = bus
        self.recovery = recovery
        let subscription = bus.subscribe(to: stream) { [weak self] delivery in self?.deliver(delivery) }
        self.subscription.withLockedValue { $0 = subscription }
        bus.reportMembers(of: stream) { [weak self] in self?.localCounts() ?? [:] }
    }

    /// This node's sockets (under `""`, a name no room can have) and the members of each room,
    /// the rooms of the sockets' own ids left out.
    private func localCounts() -> [String: Int] {
        state.withLockedValue { state in
            var counts = ["": state.sockets.count]
            for (room, members) in state.rooms where state.sockets[room] == nil {
                counts[room] = members.count
            }
            return counts
        }
    }

    /// The namespace's sockets and the members of each of its rooms, on every node of the bus (as of
    /// their last reports: a cluster's nodes report every heartbeat, 2 s). The rooms of the sockets'
    /// own ids are not counted. Throws when the bus cannot tell now (its database away).
    public func counts() async throws -> (sockets: Int, rooms: [String: Int]) {
        var rooms = try await bus.members(of: stream)
        let sockets = rooms.removeValue(forKey: "") ?? 0
        return (sockets, rooms)
    }

    /// A broadcast from the bus (made here or on another node): to the local sockets it targets,
    /// encoded once (with its offset, when recovery is on).
    private func deliver(_ delivery: BroadcastDelivery) {
        guard let broadcast = delivery.value as? SocketIOBusBroadcast ?? (try? SocketIOBusBroadcast(decoding: delivery.payload)) else { return }
        let (targets, position) = state.withLockedValue { state in
            if let position = delivery.position { state.lastPosition = position }
            return (state.targets(rooms: broadcast.rooms, except: broadcast.except), state.lastPosition)
        }
        guard !targets.isEmpty else { return }
        // Delivered without a position (the cluster's database away): the latest known offset, so
        // that the client's offset stays one of this stream's.
        let wire = packet(broadcast, offset: recovery == nil ? nil : position)
        for socket in targets { socket.deliver(wire, at: delivery.position) }
    }

    /// The packet of a broadcast, with `offset` appended to the event's arguments (what Socket.IO's
    /// client keeps as the last offset it saw).
    func packet(_ broadcast: SocketIOBusBroadcast, offset: BroadcastPosition?) -> SocketIOWirePacket {
        guard let offset, broadcast.text.utf8.last == UInt8(ascii: "]") else {
            return SocketIOWirePacket(text: broadcast.text, attachments: broadcast.attachments)
        }
        var text = broadcast.text
        text.removeLast()
        text += text.utf8.last == UInt8(ascii: "[") ? "\"\(offset)\"]" : ",\"\(offset)\"]"
        return SocketIOWirePacket(text: text, attachments: broadcast.attachments)
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

    /// Adds the socket; returns the position from which it gets broadcasts.
    func add(_ socket: SocketIOSocket) -> BroadcastPosition? {
        state.withLockedValue { state in
            state.sockets[socket.id] = socket
            return state.lastPosition
        }
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
        state.withLockedValue { $0.targets(rooms: rooms, except: except) }
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
        namespace.bus.publish(broadcast, on: namespace.stream) { broadcast.encoded() }
    }
}

/// A Socket.IO broadcast as it travels on the bus: its targets and its packet, already encoded.
struct SocketIOBusBroadcast: Equatable, Sendable {
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

/// What a node needs to resume a socket whose client lost its connection: its namespace, id and
/// rooms, and from where it got broadcasts (for a client that saw no offset yet).
struct SocketIOSessionRecord: Equatable {
    static let kind: UInt8 = 3

    var namespace: String
    var id: String
    var rooms: Set<String>
    var joinedAt: BroadcastPosition?

    func encoded() -> ByteBuffer {
        var writer = BroadcastWriter(kind: Self.kind, capacity: 64 + rooms.count * 24)
        writer.write(namespace)
        writer.write(id)
        writer.write(count: rooms.count)
        for room in rooms { writer.write(room) }
        writer.write(joinedAt?.epoch ?? "")
        writer.write(number: joinedAt?.offset ?? 0)
        return writer.buffer
    }

    init(namespace: String, id: String, rooms: Set<String>, joinedAt: BroadcastPosition?) {
        self.namespace = namespace
        self.id = id
        self.rooms = rooms
        self.joinedAt = joinedAt
    }

    init(decoding payload: ByteBuffer) throws(BroadcastDecodingError) {
        var reader = try BroadcastReader(payload)
        guard reader.kind == Self.kind else { throw .malformed }
        namespace = try reader.readString()
        id = try reader.readString()
        rooms = []
        for _ in 0..<(try reader.readCount(limit: SocketIOBusBroadcast.maxNames)) { rooms.insert(try reader.readName()) }
        let epoch = try reader.readString()
        let offset = try reader.readNumber()
        joinedAt = epoch.isEmpty ? nil : BroadcastPosition(epoch: epoch, offset: offset)
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
        /// While a recovering socket waits for what it missed: broadcasts delivered meanwhile.
        var held: [(packet: SocketIOWirePacket, position: BroadcastPosition?)]?
        /// From where it gets broadcasts (kept in its record, for a client that saw no offset yet).
        var joinedAt: BroadcastPosition?
        /// For a recovered socket: the last position its replay sent.
        var replayedThrough: BroadcastPosition?

        func record(namespace: String, id: String) -> SocketIOSessionRecord {
            SocketIOSessionRecord(namespace: namespace, id: id, rooms: rooms, joinedAt: joinedAt)
        }
    }

    /// The private session id a recovering client presents (recovery on); never shown to others.
    let pid: String?
    /// Whether this socket is one that had lost its connection and was recovered: same id, same
    /// rooms, and the events it missed were sent after its CONNECT reply.
    public let recovered: Bool
    /// For a recovering socket: the position after which it must be sent what it missed.
    let resumeAfter: BroadcastPosition?

    init(
        id: String,
        namespace: SocketIONamespace,
        session: SockwaySession,
        auth: SocketIOValue,
        resuming record: SocketIOSessionRecord? = nil,
        pid: String? = nil,
        after position: BroadcastPosition? = nil
    ) {
        self.id = id
        self.namespace = namespace
        self.session = session
        self.auth = auth
        self.pid = namespace.recovery == nil ? nil : pid ?? RandomID.make()
        self.recovered = record != nil
        self.resumeAfter = record == nil ? nil : position
        state.withLockedValue { state in
            state.rooms.insert(id)
            if let record {
                state.rooms.formUnion(record.rooms)
                state.held = []
            }
        }
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

    /// Sends an event to the client. With recovery on it goes through the bus, to the room of the
    /// socket's id, so that it has an offset and can be replayed.
    public func emit(_ event: String, _ arguments: [SocketIOValue] = []) {
        if namespace.recovery != nil {
            SocketIOBroadcast(namespace: namespace, rooms: [id]).emit(event, arguments)
        } else {
            send(SocketIOWirePacket(.event(event, arguments, namespace: namespace.name)))
        }
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
        let changed = state.withLockedValue { state in
            guard state.rooms.insert(room).inserted, state.connected else { return false }
            namespace.join(self, room: room)
            return true
        }
        if changed { keepRecord() }
        return true
    }

    /// Takes the socket out of `room`.
    public func leave(_ room: String) {
        let changed = state.withLockedValue { state in
            guard state.rooms.remove(room) != nil, state.connected else { return false }
            namespace.leave(self, room: room)
            return true
        }
        if changed { keepRecord() }
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
            state.joinedAt = namespace.add(self)
            for room in state.rooms { namespace.join(self, room: room) }
        }
    }

    /// A broadcast for this socket: sent, or held while the socket waits for what it missed.
    func deliver(_ packet: SocketIOWirePacket, at position: BroadcastPosition?) {
        enum Action { case send, skip, overflow }
        let limit = namespace.recovery?.maxMissedPackets ?? 0
        let action = state.withLockedValue { state -> Action in
            if let position, let floor = state.replayedThrough, position.epoch == floor.epoch, position.offset <= floor.offset {
                return .skip
            }
            guard state.held != nil else { return .send }
            // Bounded like the replay: a socket that cannot catch up is dropped (its client comes back).
            guard state.held!.count < limit else { return .overflow }
            state.held!.append((packet, position))
            return .skip
        }
        switch action {
        case .send: send(packet)
        case .skip: break
        case .overflow: dropConnection()
        }
    }

    /// Sends what the socket missed (from the bus's history: those publications it is a target of),
    /// then what was held meanwhile that is newer. Runs on the session's loop, so a broadcast
    /// delivered from another thread after this queues behind it.
    func replay(_ missed: [BroadcastDelivery]) {
        var last = resumeAfter
        let rooms = self.rooms
        for delivery in missed {
            guard let broadcast = delivery.value as? SocketIOBusBroadcast ?? (try? SocketIOBusBroadcast(decoding: delivery.payload)) else { continue }
            last = delivery.position ?? last
            guard broadcast.rooms.isEmpty || !broadcast.rooms.isDisjoint(with: rooms), !broadcast.except.contains(id) else { continue }
            send(namespace.packet(broadcast, offset: delivery.position))
        }
        // From here on, a publication the replay covered is dropped when it arrives (this node may
        // deliver it after the history was read).
        let held = state.withLockedValue { state in
            defer {
                state.held = nil
                state.replayedThrough = last
            }
            return state.held ?? []
        }
        for (packet, position) in held {
            if let position, let last, position.epoch == last.epoch, position.offset <= last.offset { continue }
            send(packet)
        }
    }

    /// The socket's state as another node needs it to resume the socket.
    var record: SocketIOSessionRecord {
        state.withLockedValue { state in state.record(namespace: namespace.name, id: id) }
    }

    /// Writes the socket's record where any node can resume it (recovery on, connected).
    func keepRecord() {
        guard let recovery = namespace.recovery, let pid, isConnected else { return }
        namespace.bus.keepSession(record.encoded(), key: pid, window: recovery.maxDisconnectionDuration)
    }

    /// A socket that could not be resumed after all: out of the namespace, without a word.
    func abandon() {
        let rooms = state.withLockedValue { state in
            defer {
                state.connected = false
                state.gone = true
                state.held = nil
            }
            return state.rooms
        }
        namespace.remove(self, rooms: rooms)
    }

    /// The socket is gone: it leaves its rooms, pending acknowledgements fail, handlers learn why.
    func closed(reason: String) {
        let (wasConnected, rooms, acks, handlers, record) = state.withLockedValue { state in
            defer {
                state.connected = false
                state.gone = true
                state.pendingAcks = [:]
                state.handlers = [:]
                state.anyHandlers = []
                state.disconnectHandlers = []
            }
            let record = state.record(namespace: namespace.name, id: id)
            return (state.connected, state.rooms, Array(state.pendingAcks.values), state.disconnectHandlers, record)
        }
        guard wasConnected else { return }
        // After the lock above no join or leave reaches the namespace any more.
        namespace.remove(self, rooms: rooms)
        if let pid, let recovery = namespace.recovery {
            // A client that left, or was sent away, does not come back to this socket. Otherwise the
            // record is written again as it is now (rooms, and for a socket lost while it was being
            // resumed, the record it was resumed from), then parked.
            if reason == "client namespace disconnect" || reason == "server namespace disconnect" {
                namespace.bus.forgetSession(key: pid)
            } else {
                namespace.bus.keepSession(record.encoded(), key: pid, window: recovery.maxDisconnectionDuration)
                namespace.bus.parkSession(key: pid)
            }
        }
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
        let auth = auth ?? .object([])
        if namespace.recovery != nil, let pid = auth["pid"]?.stringValue {
            return resume(namespace, pid: pid, offset: auth["offset"], auth: auth)
        }
        admit(SocketIOSocket(id: RandomID.make(), namespace: namespace, session: session, auth: auth))
    }

    /// A client that presents a private session id: its socket is resumed if the bus still has its
    /// record and the client gave an offset the bus has history after (or gave none, having seen no
    /// event); otherwise it gets a new socket, as any client.
    private func resume(_ namespace: SocketIONamespace, pid: String, offset: SocketIOValue?, auth: SocketIOValue) {
        let nsp = namespace.name
        connecting.insert(nsp)
        let loop = session.eventLoop
        let this = NIOLoopBound(self, eventLoop: loop)
        Task {
            let taken = await namespace.bus.takeSession(key: pid)
            loop.execute {
                let connection = this.value
                connection.connecting.remove(nsp)
                guard !connection.closed else {
                    // Gone again before it could be resumed: the record waits for the next try.
                    if let taken, let window = namespace.recovery?.maxDisconnectionDuration {
                        namespace.bus.keepSession(taken, key: pid, window: window)
                        namespace.bus.parkSession(key: pid)
                    }
                    return
                }
                let record = taken.flatMap { try? SocketIOSessionRecord(decoding: $0) }
                let after: BroadcastPosition? =
                    switch offset {
                    case .none, .some(.null): record?.joinedAt
                    case .some(let value): value.stringValue.flatMap { BroadcastPosition($0) }
                    }
                guard let record, record.namespace == nsp, let after, let recovery = namespace.recovery else {
                    return connection.admit(SocketIOSocket(id: RandomID.make(), namespace: namespace, session: connection.session, auth: auth))
                }
                let socket = SocketIOSocket(
                    id: record.id, namespace: namespace, session: connection.session, auth: auth,
                    resuming: record, pid: pid, after: after
                )
                if recovery.skipMiddlewares { connection.connected(socket) } else { connection.admit(socket) }
            }
        }
    }

    /// Runs the namespace's middleware for `socket`, then connects it or refuses it.
    private func admit(_ socket: SocketIOSocket) {
        let nsp = socket.namespace.name
        let namespace = socket.namespace
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
        let namespace = socket.namespace
        sockets[namespace.name] = socket
        socket.markConnected()
        guard let after = socket.resumeAfter, let recovery = namespace.recovery else { return announce(socket, missed: []) }
        // Joined first, then the history read: what is published meanwhile is held by the socket, and
        // what the history has too is not sent twice.
        let loop = session.eventLoop
        let this = NIOLoopBound(self, eventLoop: loop)
        Task {
            let history = await namespace.bus.history(of: namespace.stream, after: after, limit: recovery.maxMissedPackets)
            loop.execute { this.value.finishResuming(socket, history) }
        }
    }

    private func finishResuming(_ socket: SocketIOSocket, _ history: BroadcastHistory) {
        let namespace = socket.namespace
        guard !closed, sockets[namespace.name] === socket else { return }
        switch history {
        case .publications(let missed):
            announce(socket, missed: missed)
        case .unavailable:
            // Too much missed, or too long ago: a new socket, and the client learns it was not recovered.
            sockets[namespace.name] = nil
            socket.abandon()
            admit(SocketIOSocket(id: RandomID.make(), namespace: namespace, session: session, auth: socket.auth))
        }
    }

    /// The CONNECT reply (with the private session id when recovery is on), what a recovered socket
    /// missed, then the connection handlers.
    private func announce(_ socket: SocketIOSocket, missed: [BroadcastDelivery]) {
        var reply: [SocketIOValue.Member] = [.init("sid", .string(socket.id))]
        if let pid = socket.pid { reply.append(.init("pid", .string(pid))) }
        send(SocketIOPacket(type: .connect, namespace: socket.namespace.name, data: .object(reply)))
        if socket.resumeAfter != nil { socket.replay(missed) }
        socket.keepRecord()
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
