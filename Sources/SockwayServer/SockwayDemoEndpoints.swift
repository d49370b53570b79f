import NIOConcurrencyHelpers
import NIOCore
import SockwaySockJS

/// Sessions that receive every message sent to the group (a chat room, a topic).
///
/// Thread-safe; membership changes take a lock, broadcasting takes it once per message for a snapshot.
public final class SockwayBroadcastGroup: Sendable {
    private let members = NIOLockedValueBox<[ObjectIdentifier: SockwaySession]>([:])

    public init() {}

    public var count: Int { members.withLockedValue { $0.count } }

    public func join(_ session: SockwaySession) {
        members.withLockedValue { $0[ObjectIdentifier(session)] = session }
    }

    public func leave(_ session: SockwaySession) {
        _ = members.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(session)) }
    }

    /// Sends `messages` to every member.
    public func broadcast(_ messages: [String]) {
        let snapshot = members.withLockedValue { Array($0.values) }
        for member in snapshot { member.send(contentsOf: messages) }
    }
}

/// The endpoints `sockway serve` runs, and that the SockJS protocol suite expects.
public enum SockwayDemoEndpoints {
    /// `/echo`, `/close`, `/disabled_websocket_echo`, `/cookie_needed_echo` and `/chat` (SockJS), and
    /// `/engine.io` (Engine.IO, every message echoed: the official engine.io-protocol suite's service).
    public static func all(options: SockwayEndpointOptions = .init(), engineIO: EngineIOOptions = .init()) -> [SockwayEndpoint] {
        var websocketOff = options
        websocketOff.webSocketEnabled = false
        var cookies = options
        cookies.cookieNeeded = true
        let room = SockwayBroadcastGroup()
        return [
            .eventLoop("/echo", options: options) { _ in EchoDelegate() },
            .eventLoop("/close", options: options) { _ in CloseDelegate() },
            .eventLoop("/disabled_websocket_echo", options: websocketOff) { _ in EchoDelegate() },
            .eventLoop("/cookie_needed_echo", options: cookies) { _ in EchoDelegate() },
            .eventLoop("/chat", options: options) { _ in ChatDelegate(room: room) },
            .engineIO("/engine.io", options: options, engineIO: engineIO) { _ in EchoDelegate() },
        ]
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
