import NIOCore
import SockwaySocketIO

/// What a ``SocketIOClient`` reports, in order.
public enum SocketIOClientEvent: Sendable, Hashable {
    /// Connected to the namespace (again): the socket's id, and whether the server recovered the
    /// earlier connection's state (same id, same rooms, the events missed in between delivered next).
    case connected(id: String, recovered: Bool)
    /// An event from the server, without the offset the server adds for recovery.
    case event(name: String, arguments: [SocketIOValue])
    /// The connection was lost; the client reconnects at its next ``SocketIOClient/next()``.
    case disconnected(reason: String)
    /// The namespace refused the connection (CONNECT_ERROR): its data. The client stops.
    case refused(SocketIOValue?)
}

/// A Socket.IO v5 client over Sockway's Engine.IO transports, with connection state recovery: it keeps
/// the private session id of the CONNECT reply and the offset of the last event, and presents both when
/// it reconnects, as socket.io-client 4.6+ does, so a server with recovery (Sockway's, or Socket.IO's)
/// gives it back its id, its rooms and what it missed.
///
/// Read it with ``next()`` from one task: reading drives it (reconnecting included), and a reader that
/// falls behind slows the connection down rather than letting events pile up. Text events only (no
/// binary attachments), no acknowledgements.
///
/// ```swift
/// let client = SocketIOClient(url: "http://127.0.0.1:8080/socket.io")
/// await client.emit("join", ["news"])
/// while let event = await client.next() { print(event) }
/// ```
public actor SocketIOClient {
    /// When to reconnect after a lost connection.
    public struct Reconnection: Sendable, Hashable {
        /// The first wait; doubled after each failed attempt, up to ``maxDelay``.
        public var delay: Duration = .milliseconds(100)
        public var maxDelay: Duration = .seconds(5)
        /// Attempts in a row before the client gives up (``next()`` returns `nil`).
        public var attempts = 10

        public init() {}
    }

    public let url: String
    public let namespace: String
    public let auth: [SocketIOValue.Member]
    public let transport: SockwayClientTransport
    public let reconnection: Reconnection
    /// Events sent while disconnected wait for the next connection, at most this many (older ones are
    /// dropped first, as when a connection cannot take more).
    public let maxBufferedEmits: Int

    /// The socket's id once connected.
    public private(set) var id: String?
    /// Whether the last connection recovered the one before it.
    public private(set) var recovered = false

    private var session: SockwayClientSession?
    /// Messages read from the session and not handled yet.
    private var pending: ArraySlice<String> = []
    private var connected = false
    private var pid: String?
    private var lastOffset: String?
    private var buffered: [String] = []
    private var decoder = SocketIOPacketDecoder()
    private var failures = 0
    private var finished = false

    /// `url` is the Engine.IO endpoint (`http://host:port/socket.io`); `auth` goes in every CONNECT.
    public init(
        url: String,
        namespace: String = SocketIOPacket.mainNamespace,
        auth: [SocketIOValue.Member] = [],
        transport: SockwayClientTransport = .engineIOWebSocket,
        reconnection: Reconnection = Reconnection(),
        maxBufferedEmits: Int = 1000
    ) {
        self.url = url
        self.namespace = namespace
        self.auth = auth
        self.transport = transport
        self.reconnection = reconnection
        self.maxBufferedEmits = maxBufferedEmits
    }

    /// Sends an event (now, or once connected).
    public func emit(_ event: String, _ arguments: [SocketIOValue] = []) {
        let text = String(buffer: SocketIOPacket.event(event, arguments, namespace: namespace).encoded().text)
        guard connected, let session else {
            if buffered.count == maxBufferedEmits { buffered.removeFirst() }
            buffered.append(text)
            return
        }
        session.send(text)
    }

    /// The next event; connects (or reconnects, presenting the earlier connection's private id and last
    /// offset) when needed. `nil` once closed, refused, disconnected by the server, or out of attempts.
    public func next() async -> SocketIOClientEvent? {
        while !finished {
            if session == nil {
                if let failed = await open() { return failed }
                continue
            }
            if pending.isEmpty, let current = session {
                guard let batch = await current.nextBatch(limit: 64) else {
                    let reason = current.closeReason?.reason ?? ""
                    dropSession()
                    return finished ? nil : .disconnected(reason: reason.isEmpty ? "transport close" : reason)
                }
                // Closed or replaced while waiting.
                guard current === session else { continue }
                pending = batch[...]
            }
            guard let message = pending.popFirst() else { continue }
            if let event = handle(message) { return event }
        }
        return nil
    }

    /// Closes the connection and stops.
    public func close() {
        finished = true
        session?.close()
        dropSession()
    }

    // MARK: Internals

    /// Opens an Engine.IO session and sends CONNECT; waits (backing off) after a failure. Returns an
    /// event only when it gives up.
    private func open() async -> SocketIOClientEvent? {
        if failures > 0 {
            var wait = reconnection.delay
            for _ in 1..<failures { wait = min(wait * 2, reconnection.maxDelay) }
            try? await Task.sleep(for: wait)
        }
        do {
            let opened = try await SockwayClient.connect(to: url, configuration: .init(transports: [transport]))
            session = opened
            pending = []
            decoder = SocketIOPacketDecoder()
            var members = auth
            if let pid {
                members.append(.init("pid", .string(pid)))
                if let lastOffset { members.append(.init("offset", .string(lastOffset))) }
            }
            let connect = SocketIOPacket(type: .connect, namespace: namespace, data: .object(members))
            opened.send(String(buffer: connect.encoded().text))
            return nil
        } catch {
            failures += 1
            if failures > reconnection.attempts {
                finished = true
                return .disconnected(reason: "gave up after \(reconnection.attempts) attempts: \(error)")
            }
            return nil
        }
    }

    private func handle(_ message: String) -> SocketIOClientEvent? {
        guard let packet = try? decoder.textMessageReceived(message), packet.namespace == namespace else { return nil }
        switch packet.type {
        case .connect:
            let newID = packet.data?["sid"]?.stringValue
            let newPID = packet.data?["pid"]?.stringValue
            recovered = newPID != nil && newPID == pid
            pid = newPID
            id = newID
            connected = true
            failures = 0
            for text in buffered { session?.send(text) }
            buffered.removeAll()
            return .connected(id: newID ?? "", recovered: recovered)
        case .event, .binaryEvent:
            guard let name = packet.eventName else { return nil }
            var arguments = packet.arguments
            // With recovery on, the server appends the event's offset.
            if pid != nil, let offset = arguments.last?.stringValue {
                lastOffset = offset
                arguments.removeLast()
            }
            return .event(name: name, arguments: arguments)
        case .disconnect:
            finished = true
            session?.close()
            dropSession()
            return .disconnected(reason: "io server disconnect")
        case .connectError:
            finished = true
            session?.close()
            dropSession()
            return .refused(packet.data)
        case .ack, .binaryAck:
            return nil
        }
    }

    private func dropSession() {
        session = nil
        pending = []
        connected = false
        if !finished { failures += 1 }
    }
}
