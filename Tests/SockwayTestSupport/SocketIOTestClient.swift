import Foundation
import NIOConcurrencyHelpers
import SockwayClient

/// A Socket.IO client in a test: Socket.IO packets over Sockway's Engine.IO client, written and read
/// in their Engine.IO message form (`40`, `42["event"]`: the leading `4` is Engine.IO's message type),
/// what arrives collected and waited for with a deadline.
public final class SocketIOTestClient: Sendable {
    public let session: SockwayClientSession
    private let received = NIOLockedValueBox<[String]>([])
    private let pump: Task<Void, Never>

    public init(port: Int, path: String = "/socket.io", transport: SockwayClientTransport = .engineIOWebSocket) async throws {
        session = try await SockwayClient.connect(
            to: "http://127.0.0.1:\(port)\(path)",
            configuration: .init(transports: [transport])
        )
        let session = self.session
        let received = self.received
        pump = Task {
            for await message in session.messages { received.withLockedValue { $0.append("4" + message) } }
        }
    }

    deinit { pump.cancel() }

    /// Sends `packet` (`40`, `42[…]`).
    public func send(_ packet: String) {
        precondition(packet.hasPrefix("4"), "an Engine.IO message packet")
        session.send(String(packet.dropFirst()))
    }

    public func close() { session.close() }

    /// Everything received so far.
    public var packets: [String] { received.withLockedValue { $0 } }

    /// Waits until `count` packets have arrived (or `timeout` passed); returns them all.
    @discardableResult
    public func waitFor(_ count: Int, timeout: Duration = .seconds(10)) async -> [String] {
        await waitUntil(timeout: timeout) { $0.count >= count }
    }

    /// Waits until `condition` holds for what has arrived (or `timeout` passed); returns it all.
    @discardableResult
    public func waitUntil(timeout: Duration = .seconds(10), _ condition: ([String]) -> Bool) async -> [String] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let now = packets
            if condition(now) { return now }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return packets
    }

    /// The `sid` and `pid` of a CONNECT reply (`40{"sid":"…","pid":"…"}`).
    public static func connectReply(_ packet: String) -> (sid: String, pid: String?)? {
        guard let brace = packet.firstIndex(of: "{"), packet.hasPrefix("40"),
            let object = try? JSONSerialization.jsonObject(with: Data(packet[brace...].utf8)) as? [String: Any],
            let sid = object["sid"] as? String
        else { return nil }
        return (sid, object["pid"] as? String)
    }

    /// The arguments of an EVENT packet (`42["name",…]`), name first.
    public static func event(_ packet: String) -> [Any]? {
        guard packet.hasPrefix("42"), let bracket = packet.firstIndex(of: "[") else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(packet[bracket...].utf8)) as? [Any]
    }
}
