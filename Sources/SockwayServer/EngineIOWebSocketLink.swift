import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import SockwayCore
import SockwayEngineIO
import SockwayWebSocket

/// What an Engine.IO WebSocket link needs of its connection: Sockway's own (``SockwayWebSocketHandler``)
/// or a foreign front's. Used on the connection's loop.
protocol EngineIOConnection: AnyObject {
    var eventLoop: (any EventLoop)? { get }
    var remoteAddress: SocketAddress? { get }
    /// Whether the connection takes more now, as a function that may be called from any thread (the
    /// session's loop asks it).
    var writability: @Sendable () -> Bool { get }
    func writeMessages(_ messages: [SockwayWebSocketHandler.OutboundMessage], flushNow: Bool)
    func close(code: UInt16, reason: String)
}

extension SockwayWebSocketHandler: EngineIOConnection {
    var remoteAddress: SocketAddress? { channel?.remoteAddress }

    var writability: @Sendable () -> Bool {
        let channel = self.channel
        return { channel?.isWritable ?? false }
    }
}

/// An Engine.IO WebSocket: a WebSocket-only session (no `sid`), created on this connection's loop,
/// or the upgrade of a polling session (`sid`), which lives on the loop that owns its id.
///
/// Two halves: the connection side runs on the connection's loop (decoding packets, writing
/// frames), the session side on the session's loop (the session core and the upgrade). When the
/// two loops differ every crossing goes through `execute`, which keeps order; when they are the same
/// (every WebSocket-only session) nothing hops.
final class EngineIOWebSocketLink: WebSocketSessionLink, SessionReceiver, @unchecked Sendable {
    private enum Stage {
        /// Waiting for the connection (or, for an upgrade, for the session to be found).
        case opening
        /// An upgrade between its `2probe` and its `upgrade`.
        case probing
        /// The session's transport.
        case attached
        case ended
    }

    let kind = SessionReceiverKind.webSocket
    private let runtime: EngineIORuntime
    private let upgradeSID: String?
    private let requestHeaders: HTTPHeaders

    // Connection side.
    private var connection: (any EngineIOConnection)?
    private var connectionLoop: (any EventLoop)?
    private var inbound: [EngineIOPacket] = []
    private var malformed = false
    private var resumeReads: (() -> Void)?
    private var upgradeTimer: Scheduled<Void>?

    // Set once on the connection side before the session side runs.
    private var writable: (@Sendable () -> Bool)?
    private var sessionLoop: (any EventLoop)?

    // Session side.
    private var core: EngineIOSessionCore?
    private var stage = Stage.opening
    private var watchingDrain = false
    /// Whether this link's `2probe` was accepted: only then is the session's upgrade its to end.
    private var ownsProbe = false
    /// For a connection on another loop: whether the session is backed up, and how many bytes of
    /// packets were handed over and not yet handled; reads pause while either holds.
    private let crossing = NIOLockedValueBox(Crossing())

    private struct Crossing {
        var backedUp = false
        var bytesInFlight = 0
        var readsPaused = false

        var mustPause: Bool { backedUp || bytesInFlight > EngineIOWebSocketLink.maxBytesInFlight }
    }

    /// Bytes of packets on their way to a session on another loop before the connection stops reading.
    static let maxBytesInFlight = 1 << 20

    /// - Parameter upgradeSID: the polling session to upgrade; `nil` for a WebSocket-only session.
    init(runtime: EngineIORuntime, upgradeSID: String?, requestHeaders: HTTPHeaders) {
        self.runtime = runtime
        self.upgradeSID = upgradeSID
        self.requestHeaders = requestHeaders
    }

    private var sameLoop: Bool { sessionLoop === connectionLoop }

    private func onSession(_ body: @escaping @Sendable (EngineIOWebSocketLink) -> Void) {
        guard let sessionLoop else { return }
        if sessionLoop.inEventLoop {
            body(self)
        } else {
            sessionLoop.execute { body(self) }
        }
    }

    private func onConnection(_ body: @escaping @Sendable (EngineIOWebSocketLink, any EngineIOConnection) -> Void) {
        guard let connectionLoop else { return }
        if connectionLoop.inEventLoop {
            if let connection { body(self, connection) }
        } else {
            connectionLoop.execute { if let connection = self.connection { body(self, connection) } }
        }
    }

    // MARK: Connection side

    func connectionReady(_ connection: SockwayWebSocketHandler) {
        connectionReady(connection as any EngineIOConnection)
    }

    func connectionReady(_ connection: any EngineIOConnection) {
        guard let loop = connection.eventLoop else { return }
        self.connection = connection
        self.connectionLoop = loop
        self.writable = connection.writability
        guard let sid = upgradeSID else {
            let sid = runtime.newSessionID(ownedBy: loop)
            sessionLoop = loop
            guard case .success(let core) = runtime.makeSession(sid: sid, transport: .websocket, remoteAddress: connection.remoteAddress, headers: requestHeaders) else {
                stage = .ended
                connection.close(code: WebSocketCloseCode.tryAgainLater, reason: "Try again later")
                return
            }
            self.core = core
            stage = .attached
            core.attach(self)
            return
        }
        sessionLoop = runtime.store.owner(of: sid)
        onSession { link in
            guard let core = link.runtime.store.session(id: sid), core.machine.transport == .polling, core.machine.upgrade == .none else {
                link.stage = .ended
                link.onConnection { _, connection in connection.close(code: WebSocketCloseCode.normalClosure, reason: "") }
                return
            }
            link.core = core
            link.stage = .probing
            // A session that ends while this WebSocket probes takes the WebSocket with it.
            core.whenClosed {
                guard link.stage == .probing else { return }
                link.stage = .ended
                link.onConnection { _, connection in connection.close(code: WebSocketCloseCode.normalClosure, reason: "") }
            }
        }
        // A client that does not finish its upgrade in time loses this WebSocket, not its session.
        upgradeTimer = loop.scheduleTask(in: runtime.engineIO.upgradeTimeout) { [self] in
            onSession { link in
                guard link.stage == .probing else { return }
                link.endProbe()
                link.onConnection { _, connection in connection.close(code: WebSocketCloseCode.normalClosure, reason: "") }
            }
        }
    }

    func readCycle(_ body: () -> Void) {
        body()
        handOver()
    }

    func flushCoalescedSends() {
        // A control frame is about to go out: the messages before it are handled first.
        handOver()
    }

    func receivedText(_ text: ByteBuffer) {
        decode(text, kind: .text)
    }

    func receivedBinary(_ data: ByteBuffer) {
        decode(data, kind: .binary)
    }

    private func decode(_ data: ByteBuffer, kind: EngineIOPacket.WebSocketFrameKind) {
        guard !malformed else { return }
        do {
            inbound.append(try EngineIOPacket.decodeWebSocketFrame(data, kind: kind))
        } catch {
            malformed = true
        }
    }

    /// Hands what the read brought to the session side, in one crossing.
    private func handOver() {
        guard !inbound.isEmpty || malformed else { return }
        let packets = inbound
        let broken = malformed
        inbound = []
        let bytes = sameLoop ? 0 : packets.reduce(0) { $0 + $1.webSocketFrameByteCount }
        if bytes > 0 { crossing.withLockedValue { $0.bytesInFlight += bytes } }
        onSession { link in
            link.handle(packets, malformed: broken)
            if bytes > 0 { link.handled(bytes: bytes) }
        }
    }

    func connectionEnded(aborted: Bool, reason: SockwayCloseReason?) {
        handOver()
        upgradeTimer?.cancel()
        upgradeTimer = nil
        resumeReads = nil
        connection = nil
        onSession { link in
            switch link.stage {
            case .attached:
                link.core?.detach(link, aborted: aborted, reason: reason)
            case .probing:
                link.endProbe()
            case .opening, .ended:
                break
            }
            link.stage = .ended
        }
    }

    func connectionBecameWritable() {
        onSession { link in
            if link.stage == .attached { link.core?.receiverBecameWritable(link) }
        }
    }

    func pauseReadsIfBackedUp(resume: @escaping () -> Void) -> Bool {
        if sameLoop {
            guard stage == .attached, let core, core.isBackedUp else { return false }
            core.whenDrained(resume)
            return true
        }
        let paused = crossing.withLockedValue { state -> Bool in
            guard state.mustPause else { return false }
            state.readsPaused = true
            return true
        }
        if paused { resumeReads = resume }
        return paused
    }

    /// Resumes a paused connection on another loop once nothing holds it back.
    private func resumeIfClear() {
        let resume = crossing.withLockedValue { state -> Bool in
            guard state.readsPaused, !state.mustPause else { return false }
            state.readsPaused = false
            return true
        }
        guard resume else { return }
        onConnection { link, _ in
            let resume = link.resumeReads
            link.resumeReads = nil
            resume?()
        }
    }

    // MARK: Session side

    private func handle(_ packets: [EngineIOPacket], malformed: Bool) {
        guard let core else { return }
        let now = core.eventLoop.now
        var rest = packets[...]
        while stage == .probing, let packet = rest.popFirst() {
            probing(packet, core: core, now: now)
        }
        if stage == .probing {
            if malformed {
                endProbe()
                onConnection { _, connection in connection.close(code: WebSocketCloseCode.normalClosure, reason: "") }
            }
            return
        }
        // What followed the `upgrade` in the same read belongs to the session already.
        guard stage == .attached else { return }
        core.coalescingSends {
            var messages: [EngineIOPacket] = []
            for packet in rest {
                switch packet.type {
                case .message, .close:
                    messages.append(packet)
                case .pong:
                    core.receive(messages)
                    messages = []
                    core.perform { $0.pongReceived(now: now) }
                case .ping:
                    // In v4 the server pings, never the client.
                    core.receive(messages)
                    messages = []
                    core.perform { $0.protocolViolated(.engineIOTransportError, now: now) }
                case .open, .upgrade, .noop:
                    break
                }
            }
            core.receive(messages)
            if malformed { core.perform { $0.protocolViolated(.engineIOParseError, now: now) } }
        }
        watchBackpressure(core)
    }

    private func probing(_ packet: EngineIOPacket, core: EngineIOSessionCore, now: NIODeadline) {
        switch packet.type {
        case .ping where packet.text == "probe":
            var accepted = false
            core.perform { machine in
                let result = machine.probeReceived(now: now)
                accepted = result.accepted
                return result.actions
            }
            if accepted {
                ownsProbe = true
                // Out at once: the client may poll on another connection as soon as it sends
                // `upgrade`, and that poll's answer must not overtake this one.
                let probe = SockwayWebSocketHandler.OutboundMessage.text(Self.pongProbe)
                onConnection { _, connection in connection.writeMessages([probe], flushNow: true) }
            } else {
                endProbe()
                onConnection { _, connection in connection.close(code: WebSocketCloseCode.normalClosure, reason: "") }
            }
        case .upgrade:
            var accepted = false
            core.perform { machine in
                let result = machine.upgradeReceived()
                accepted = result.accepted
                return result.actions
            }
            guard accepted else {
                endProbe()
                onConnection { _, connection in connection.close(code: WebSocketCloseCode.normalClosure, reason: "") }
                return
            }
            core.meterTransport(.engineIOWebSocket)
            stage = .attached
            ownsProbe = false
            onConnection { link, _ in
                link.upgradeTimer?.cancel()
                link.upgradeTimer = nil
            }
            core.attach(self)
        default:
            // Anything else before the upgrade: this WebSocket is not a proper probe.
            endProbe()
            onConnection { _, connection in connection.close(code: WebSocketCloseCode.normalClosure, reason: "") }
        }
    }

    private func endProbe() {
        stage = .ended
        guard ownsProbe, let core else { return }
        ownsProbe = false
        let now = core.eventLoop.now
        core.perform { $0.probeEnded(now: now) }
    }

    /// For a connection on another loop: tells it the session is backed up, and when it no longer is.
    private func watchBackpressure(_ core: EngineIOSessionCore) {
        guard !sameLoop, !watchingDrain, core.isBackedUp else { return }
        watchingDrain = true
        crossing.withLockedValue { $0.backedUp = true }
        core.whenDrained { [self] in
            watchingDrain = false
            crossing.withLockedValue { $0.backedUp = false }
            resumeIfClear()
        }
    }

    /// The session side handled `bytes` of packets handed over from another loop.
    private func handled(bytes: Int) {
        crossing.withLockedValue { $0.bytesInFlight -= bytes }
        resumeIfClear()
    }

    private static let pongProbe: ByteBuffer = {
        var buffer = ByteBufferAllocator().buffer(capacity: SockwayWebSocketHandler.headroom + 8)
        buffer.moveWriterIndex(forwardBy: SockwayWebSocketHandler.headroom)
        buffer.moveReaderIndex(forwardBy: SockwayWebSocketHandler.headroom)
        EngineIOPacket.pongProbe.writeWebSocketFrameData(into: &buffer)
        return buffer
    }()

    // MARK: SessionReceiver (session side)

    var isWritable: Bool { writable?() ?? false }

    func write(_ frame: EngineIOFrame) -> Bool {
        switch frame {
        case .packets(let packets):
            let headroom = SockwayWebSocketHandler.headroom
            let allocator = ByteBufferAllocator()
            var messages: [SockwayWebSocketHandler.OutboundMessage] = []
            messages.reserveCapacity(packets.count)
            for packet in packets {
                if let bytes = packet.binary {
                    messages.append(.binary(bytes))
                } else {
                    var buffer = allocator.buffer(capacity: packet.webSocketFrameByteCount + headroom)
                    buffer.moveWriterIndex(forwardBy: headroom)
                    buffer.moveReaderIndex(forwardBy: headroom)
                    packet.writeWebSocketFrameData(into: &buffer)
                    messages.append(.text(buffer))
                }
            }
            let batch = messages
            onConnection { _, connection in connection.writeMessages(batch, flushNow: false) }
        case .refused:
            finish()
        }
        return false
    }

    func finish() {
        onConnection { _, connection in connection.close(code: WebSocketCloseCode.normalClosure, reason: "") }
    }
}
