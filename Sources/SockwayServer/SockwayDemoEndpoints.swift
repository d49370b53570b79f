import NIOConcurrencyHelpers
import NIOCore
import SockwayCluster
import SockwaySockJS
import SockwaySocketIO

/// Sessions that receive every message sent to the group (a chat room, a topic), on every node of
/// its bus.
///
/// Thread-safe. Messages go through the bus (`InProcessBroadcastBus` unless another is given), so
/// every member, on this node and on the others sharing the bus, receives the group's messages in
/// one order, encoded once per node.
public final class SockwayBroadcastGroup: Sendable {
    /// The group's name on the bus.
    public let name: String
    public let bus: any BroadcastBus
    private let members = NIOLockedValueBox<[ObjectIdentifier: SockwaySession]>([:])
    private let subscription = NIOLockedValueBox<BroadcastSubscription?>(nil)
    private let stream: String

    /// A group of this process only.
    public convenience init() {
        // A random name cannot be refused.
        try! self.init(name: "group-" + BroadcastEpoch.make(), bus: InProcessBroadcastBus())
    }

    /// The group `name` on `bus`: groups of the same name on every node of a cluster are one group.
    /// Throws ``SockwayBroadcastGroupError/invalidName`` for an empty name or one longer than
    /// `BroadcastWire.maxNameBytes` (256) UTF-8 bytes.
    public init(name: String, bus: any BroadcastBus) throws(SockwayBroadcastGroupError) {
        guard BroadcastWire.isValidName(name) else { throw .invalidName }
        self.name = name
        self.bus = bus
        self.stream = "sockjs:" + name
        let subscription = bus.subscribe(to: "sockjs:" + name) { [weak self] delivery in self?.deliver(delivery) }
        self.subscription.withLockedValue { $0 = subscription }
        bus.reportMembers(of: "sockjs:" + name) { [weak self] in ["": self?.count ?? 0] }
    }

    /// The members on this node.
    public var count: Int { members.withLockedValue { $0.count } }

    /// The members on every node of the bus, as of their last reports (a cluster's nodes report every
    /// heartbeat, 2 s). Throws when the bus cannot tell now.
    public func clusterCount() async throws -> Int {
        try await bus.members(of: stream)[""] ?? 0
    }

    public func join(_ session: SockwaySession) {
        members.withLockedValue { $0[ObjectIdentifier(session)] = session }
    }

    public func leave(_ session: SockwaySession) {
        _ = members.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(session)) }
    }

    /// Sends `messages` to every member, on every node.
    public func broadcast(_ messages: [String]) {
        guard !messages.isEmpty else { return }
        let published = SockJSBusMessages(messages)
        bus.publish(published, on: stream) { published.encoded() }
    }

    private func deliver(_ delivery: BroadcastDelivery) {
        guard let decoded = delivery.value as? SockJSBusMessages ?? (try? SockJSBusMessages(decoding: delivery.payload)) else { return }
        let snapshot = members.withLockedValue { Array($0.values) }
        for member in snapshot { member.send(contentsOf: decoded.messages) }
    }
}

/// Messages for one session, addressed by endpoint and id, as they travel on the bus.
struct SessionDirectMessages: Equatable, Sendable {
    static let kind: UInt8 = 4
    var prefix: String
    var sessionID: String
    var messages: [String]

    func encoded() -> ByteBuffer {
        var writer = BroadcastWriter(kind: Self.kind, capacity: 32 + prefix.utf8.count + sessionID.utf8.count + messages.reduce(0) { $0 + $1.utf8.count + 4 })
        writer.write(prefix)
        writer.write(sessionID)
        writer.write(count: messages.count)
        for message in messages { writer.write(message) }
        return writer.buffer
    }

    init(prefix: String, sessionID: String, messages: [String]) {
        self.prefix = prefix
        self.sessionID = sessionID
        self.messages = messages
    }

    init(decoding payload: ByteBuffer) throws(BroadcastDecodingError) {
        var reader = try BroadcastReader(payload)
        guard reader.kind == Self.kind else { throw .malformed }
        prefix = try reader.readString()
        sessionID = try reader.readString()
        let count = try reader.readCount(limit: SockJSBusMessages.maxMessages)
        messages = []
        messages.reserveCapacity(min(count, 1024))
        for _ in 0..<count { messages.append(try reader.readString()) }
        try reader.finish()
    }
}

/// Why a broadcast group could not be made.
public enum SockwayBroadcastGroupError: Error, Sendable, Hashable {
    /// Empty, or longer than `BroadcastWire.maxNameBytes` (256) UTF-8 bytes.
    case invalidName
}

/// A group's messages as they travel on the bus.
struct SockJSBusMessages: Equatable, Sendable {
    static let kind: UInt8 = 2
    static let maxMessages = 1 << 20
    var messages: [String]

    init(_ messages: [String]) { self.messages = messages }

    func encoded() -> ByteBuffer {
        var writer = BroadcastWriter(kind: Self.kind, capacity: 8 + messages.reduce(0) { $0 + 4 + $1.utf8.count })
        writer.write(count: messages.count)
        for message in messages { writer.write(message) }
        return writer.buffer
    }

    init(decoding payload: ByteBuffer) throws(BroadcastDecodingError) {
        var reader = try BroadcastReader(payload)
        guard reader.kind == Self.kind else { throw .malformed }
        let count = try reader.readCount(limit: Self.maxMessages)
        messages = []
        messages.reserveCapacity(min(count, 1024))
        for _ in 0..<count { messages.append(try reader.readString()) }
        try reader.finish()
    }
}

/// The endpoints `sockway serve` runs, and that the SockJS protocol suite expects.
public enum SockwayDemoEndpoints {
    /// `/echo`, `/close`, `/disabled_websocket_echo`, `/cookie_needed_echo` and `/chat` (SockJS), and
    /// `/engine.io` (Engine.IO, every message echoed: the official engine.io-protocol suite's service).
    /// `/chat`'s room and Socket.IO's broadcasts go through `bus` (a cluster's, to span its nodes);
    /// `socketIORecovery` turns on Socket.IO's connection state recovery.
    public static func all(
        options: SockwayEndpointOptions = .init(),
        engineIO: EngineIOOptions = .init(),
        socketIOConnectTimeout: TimeAmount = .seconds(45),
        socketIORecovery: SocketIORecovery? = nil,
        bus: (any BroadcastBus)? = nil
    ) -> [SockwayEndpoint] {
        let bus = bus ?? InProcessBroadcastBus(retention: .forRecovery(socketIORecovery))
        var websocketOff = options
        websocketOff.webSocketEnabled = false
        var cookies = options
        cookies.cookieNeeded = true
        let room = try! SockwayBroadcastGroup(name: "chat", bus: bus)  // a constant, valid name
        return [
            .eventLoop("/echo", options: options) { _ in EchoDelegate() },
            .eventLoop("/close", options: options) { _ in CloseDelegate() },
            .eventLoop("/disabled_websocket_echo", options: websocketOff) { _ in EchoDelegate() },
            .eventLoop("/cookie_needed_echo", options: cookies) { _ in EchoDelegate() },
            .eventLoop("/chat", options: options) { _ in ChatDelegate(room: room) },
            .engineIO("/engine.io", options: options, engineIO: engineIO) { _ in EchoDelegate() },
            socketIO(options: options, engineIO: engineIO, connectTimeout: socketIOConnectTimeout, recovery: socketIORecovery, bus: bus).endpoint,
        ]
    }

    /// The Socket.IO service at `/socket.io`: the official socket.io-protocol suite's reference service
    /// (on connect `"auth"` with the client's auth; `"message"` answered with `"message-back"`;
    /// `"message-with-ack"` acknowledged with its arguments; `/custom` emits `"auth"` on connect),
    /// a `/chat` namespace where every `"chat"` event goes to every member, and what the interop
    /// checks use: `"join"`/`"leave"` a room, `"to-room"`, `"disconnect-me"`, and a refused auth
    /// (`{"refuse": true}`).
    public static func socketIO(
        options: SockwayEndpointOptions = .init(),
        engineIO: EngineIOOptions = .init(),
        connectTimeout: TimeAmount = .seconds(45),
        recovery: SocketIORecovery? = nil,
        bus: (any BroadcastBus)? = nil
    ) -> SocketIOServer {
        let io = SocketIOServer(options: options, engineIO: engineIO, connectTimeout: connectTimeout, recovery: recovery, bus: bus)
        let refuse: SocketIONamespace.ImmediateMiddleware = { socket in
            if socket.auth["refuse"]?.boolValue == true { throw SocketIOConnectError("refused by server") }
        }
        for name in ["/", "/custom", "/chat"] { io.of(name).use(refuse) }
        let echo: @Sendable (SocketIOSocket) -> Void = { socket in
            socket.emit("auth", [socket.auth])
            socket.on("message") { event in socket.emit("message-back", event.arguments) }
            socket.on("message-with-ack") { event in event.ack(event.arguments) }
        }
        io.of("/custom").onConnection(echo)
        io.sockets.onConnection { socket in
            echo(socket)
            socket.on("join") { event in
                guard let room = event.arguments.first?.stringValue else { return event.ack() }
                socket.join(room)
                event.ack([.string(room)])
            }
            socket.on("leave") { event in
                guard let room = event.arguments.first?.stringValue else { return event.ack() }
                socket.leave(room)
                event.ack([.string(room)])
            }
            socket.on("to-room") { event in
                guard let room = event.arguments.first?.stringValue else { return event.ack() }
                socket.namespace.to(room).emit("room-message", Array(event.arguments.dropFirst()))
                event.ack()
            }
            socket.on("disconnect-me") { event in
                event.ack(["bye"])
                let mode = event.arguments.first?.stringValue ?? "transport"
                socket.session.eventLoop.scheduleTask(in: .milliseconds(50)) {
                    if mode == "namespace" {
                        socket.disconnect()
                    } else {
                        socket.dropConnection()
                    }
                }
            }
        }
        let chat = io.of("/chat")
        chat.onConnection { socket in
            socket.on("chat") { event in chat.emit("chat", event.arguments) }
        }
        return io
    }
}

/// Sends every message back, as one frame per inbound batch; binary messages (raw WebSocket,
/// Engine.IO) as binary.
public final class EchoDelegate: SockwaySessionDelegate {
    public init() {}
    public func session(_ session: SockwaySession, didReceive messages: [String]) {
        session.send(contentsOf: messages)
    }
    public func session(_ session: SockwaySession, didReceiveBinary message: ByteBuffer) {
        session.sendBinary(message)
    }
}

/// Closes each session as soon as it opens, with 3000 "Go away!".
final class CloseDelegate: SockwaySessionDelegate {
    func sessionDidOpen(_ session: SockwaySession) {
        session.close()
    }
    func session(_ session: SockwaySession, didReceive messages: [String]) {}
}

/// Broadcasts every message to everyone in the room, the sender included.
final class ChatDelegate: SockwaySessionDelegate {
    let room: SockwayBroadcastGroup
    init(room: SockwayBroadcastGroup) { self.room = room }

    func sessionDidOpen(_ session: SockwaySession) {
        room.join(session)
    }
    func session(_ session: SockwaySession, didReceive messages: [String]) {
        room.broadcast(messages)
    }
    func session(_ session: SockwaySession, didCloseWith reason: SockJSCloseReason) {
        room.leave(session)
    }
}
