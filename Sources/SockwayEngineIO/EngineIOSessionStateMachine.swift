import NIOCore
import SockwayCore

/// What an Engine.IO session asks a receiver to write.
public enum EngineIOFrame: Hashable, Sendable {
    /// Packets in order: one payload (`\x1e`-joined) for a poll, one WebSocket message each otherwise.
    case packets([EngineIOPacket])
    /// The receiver is refused: a poll is answered `400`, a WebSocket is closed.
    case refused
}

extension SockwayCloseReason {
    /// The client sent a `close` packet, or its WebSocket closed.
    public static let engineIOTransportClose = SockwayCloseReason(code: 1000, reason: "transport close")
    /// The client broke a transport rule (a second poll at once, a cut poll, a ping sent to the server).
    public static let engineIOTransportError = SockwayCloseReason(code: 1002, reason: "transport error")
    /// The client sent a packet that does not decode.
    public static let engineIOParseError = SockwayCloseReason(code: 1007, reason: "parse error")
    /// No `pong` arrived within the ping timeout.
    public static let engineIOPingTimeout = SockwayCloseReason(code: 1006, reason: "ping timeout")
}

/// The life of one Engine.IO v4 session, as a plain value: handshake, heartbeat, polling and
/// WebSocket receivers, and the upgrade from one to the other.
///
/// The handshake request is the first receiver: it gets the `open` packet (and a poll nothing else).
/// The server pings every `pingInterval` (the `ping` packet queues behind the messages already
/// waiting) and closes the session when no `pong` arrives within `pingTimeout`: that is how a client
/// that stopped polling is found out, so a session without a receiver needs no other timer.
/// During an upgrade the polling receiver is answered with `noop`, and once the client sends
/// `upgrade` the WebSocket becomes the receiver and takes the queued packets in order.
public struct EngineIOSessionStateMachine: SessionStateMachine {
    public typealias Frame = EngineIOFrame

    public struct Configuration: Hashable, Sendable {
        public var pingInterval: TimeAmount
        public var pingTimeout: TimeAmount
        /// Advertised in the handshake: the most bytes the client should put in one POST.
        public var maxPayload: Int
        /// Most messages waiting for a receiver.
        public var maxQueuedMessages: Int
        /// Most bytes of messages waiting for a receiver.
        public var maxQueuedBytes: Int
        /// Whether a polling session offers the upgrade to WebSocket in its handshake.
        public var allowsUpgrade: Bool

        public init(
            pingInterval: TimeAmount = .seconds(25),
            pingTimeout: TimeAmount = .seconds(20),
            maxPayload: Int = 1_000_000,
            maxQueuedMessages: Int = 16384,
            maxQueuedBytes: Int = 1 << 20,
            allowsUpgrade: Bool = true
        ) {
            self.allowsUpgrade = allowsUpgrade
            self.pingInterval = pingInterval
            self.pingTimeout = pingTimeout
            self.maxPayload = maxPayload
            self.maxQueuedMessages = maxQueuedMessages
            self.maxQueuedBytes = maxQueuedBytes
        }
    }

    /// The transport that carries the session's packets to the client.
    public enum Transport: String, Hashable, Sendable {
        case polling
        case websocket
    }

    /// Where an upgrade from polling to WebSocket stands.
    public enum Upgrade: Hashable, Sendable {
        case none
        /// A WebSocket sent `2probe`: polls are answered with `noop` until it sends `upgrade` or goes.
        case probing
        /// The WebSocket is the transport now; polls are refused.
        case upgraded
    }

    public let sid: String
    public let configuration: Configuration
    public private(set) var phase: SessionPhase = .connecting
    public private(set) var receiver: SessionReceiverKind?
    public private(set) var deadline: NIODeadline?
    public private(set) var transport: Transport
    public private(set) var upgrade: Upgrade = .none
    private var outbox: SessionOutbox<EngineIOPacket>
    private var pingDue: NIODeadline?
    private var pongDeadline: NIODeadline?
    /// A close waiting for the client's next poll to carry the `close` packet.
    private var closeDeadline: NIODeadline?
    /// When a poll held during an upgrade gets its `noop`.
    private var noopDeadline: NIODeadline?

    /// How long a poll is held during an upgrade before it gets `noop` (the reference answers it at
    /// its next 100 ms check): a client that completes the upgrade meanwhile has its poll refused
    /// instead, so that a poll and an `upgrade` racing on two connections are taken in the order the
    /// client sent them.
    public static let upgradePollDelay = TimeAmount.milliseconds(100)

    /// - Parameters:
    ///   - sid: the session id sent in the handshake.
    ///   - transport: the transport of the handshake request.
    ///   - configuration: the heartbeat, the payload limit and the outbox bounds.
    public init(sid: String, transport: Transport, configuration: Configuration = .init()) {
        self.sid = sid
        self.transport = transport
        self.configuration = configuration
        self.outbox = SessionOutbox(maxMessages: configuration.maxQueuedMessages, maxBytes: configuration.maxQueuedBytes)
    }

    public var queuedMessages: Int { outbox.count }
    public var queuedBytes: Int { outbox.bytes }
    public var isBackedUp: Bool { outbox.isBackedUp }

    /// The `open` packet: the handshake's JSON, with the upgrades this session can still make.
    public var openPacket: EngineIOPacket {
        EngineIOHandshake(
            sid: sid,
            upgrades: transport == .polling && configuration.allowsUpgrade ? [.websocket] : [],
            pingInterval: .nanoseconds(configuration.pingInterval.nanoseconds),
            pingTimeout: .nanoseconds(configuration.pingTimeout.nanoseconds),
            maxPayload: configuration.maxPayload
        ).openPacket
    }

    // MARK: Receivers

    public mutating func receiverAttached(_ kind: SessionReceiverKind, now: NIODeadline) -> [SessionAction<EngineIOFrame>] {
        if let attached = receiver {
            guard kind == .polling && attached == .polling else { return [.reject(.refused)] }
            // Two polls at once: the client broke the protocol. The pending poll gets `close`,
            // the newcomer 400, and the session ends.
            return [.reject(.refused)] + close(.engineIOTransportError, now: now, attachedGets: [.close])
        }
        switch phase {
        case .closed:
            return [.reject(.refused)]
        case .closing:
            // The close waited, queued behind the messages, for this poll (or the WebSocket of an
            // upgrade the client completed).
            return [.write(.packets(outbox.drain() ?? [.close])), .finishReceiver] + reaped()
        case .connecting:
            phase = .open
            var actions: [SessionAction<EngineIOFrame>] = [.write(.packets([openPacket])), .notifyOpen]
            pingDue = now + configuration.pingInterval
            if kind == .polling {
                actions.append(.finishReceiver)
            } else {
                receiver = kind
            }
            actions.append(contentsOf: rearm())
            return actions
        case .open:
            if kind == .polling {
                if let batch = outbox.drain() {
                    return [.write(.packets(batch)), .finishReceiver]
                }
                if upgrade == .probing {
                    // The client is about to switch: this poll only ends, with `noop`, unless the
                    // upgrade completes first.
                    receiver = kind
                    noopDeadline = now + Self.upgradePollDelay
                    return rearm()
                }
            } else if let batch = outbox.drain() {
                receiver = kind
                return [.write(.packets(batch))]
            }
            receiver = kind
            return []
        }
    }

    public mutating func receiverDetached(aborted: Bool, reason: SockwayCloseReason?, now: NIODeadline) -> [SessionAction<EngineIOFrame>] {
        guard let kind = receiver else { return [] }
        receiver = nil
        switch kind {
        case .webSocket:
            // The session's only transport is gone. The WebSocket's own close reason means nothing
            // to Engine.IO: a clean close is "transport close", a cut or a failed frame an error.
            let failed = aborted || (reason.map { $0.code != 1000 && $0.code != 1001 && $0.code != 1005 } ?? false)
            return endAfterLosingTransport(failed ? .engineIOTransportError : .engineIOTransportClose)
        case .polling, .streaming:
            // A poll cut before its answer: what it would have carried may be lost.
            return aborted ? endAfterLosingTransport(.engineIOTransportError) : []
        }
    }

    public mutating func responseDrained(now: NIODeadline) -> [SessionAction<EngineIOFrame>] { [] }

    // MARK: Outbound

    public mutating func enqueue(_ message: String) -> SessionEnqueueResult {
        guard phase == .open else { return .notOpen }
        return outbox.append(.message(message), size: message.utf8.count) ? .queued : .overflow
    }

    public mutating func enqueue(contentsOf messages: [String]) -> SessionEnqueueResult {
        guard phase == .open else { return .notOpen }
        for message in messages {
            guard outbox.append(.message(message), size: message.utf8.count) else { return .overflow }
        }
        return .queued
    }

    public mutating func enqueueBinary(_ message: ByteBuffer) -> SessionEnqueueResult {
        guard phase == .open else { return .notOpen }
        return outbox.append(.message(binary: message), size: message.readableBytes) ? .queued : .overflow
    }

    public mutating func flush(now: NIODeadline) -> SessionFlushAction<EngineIOFrame> {
        guard let kind = receiver, phase == .open, let batch = outbox.drain() else { return .none }
        if kind == .polling {
            receiver = nil
            return .writeAndFinish(.packets(batch), armTimer: deadline ?? now + configuration.pingInterval)
        }
        return .write(.packets(batch))
    }

    // MARK: Closing and time

    public mutating func closeRequested(_ reason: SockwayCloseReason, now: NIODeadline) -> [SessionAction<EngineIOFrame>] {
        guard phase == .open || phase == .connecting else { return [] }
        if receiver != nil {
            return close(reason, now: now, attachedGets: [.close])
        }
        // The close packet waits, behind the queued messages, for the client's next poll; a client
        // that does not come back within a heartbeat's time is gone anyway.
        phase = .closing(reason)
        pingDue = nil
        pongDeadline = nil
        outbox.appendControl(.close)
        closeDeadline = now + configuration.pingInterval + configuration.pingTimeout
        return [.notifyClosed(reason)] + rearm()
    }

    public mutating func timerFired(now: NIODeadline) -> [SessionAction<EngineIOFrame>] {
        guard let deadline, deadline <= now else { return [] }
        self.deadline = nil
        if let closeDeadline, closeDeadline <= now {
            self.closeDeadline = nil
            return reaped()
        }
        if let pongDeadline, pongDeadline <= now {
            return close(.engineIOPingTimeout, now: now, attachedGets: [.close])
        }
        var actions: [SessionAction<EngineIOFrame>] = []
        if let noopDeadline, noopDeadline <= now {
            self.noopDeadline = nil
            if receiver == .polling {
                receiver = nil
                actions += [.write(.packets([.noop])), .finishReceiver]
            }
        }
        if let pingDue, pingDue <= now, phase == .open {
            self.pingDue = nil
            pongDeadline = now + configuration.pingTimeout
            outbox.appendControl(.ping)
            if let kind = receiver, let batch = outbox.drain() {
                actions.append(.write(.packets(batch)))
                if kind == .polling {
                    receiver = nil
                    actions.append(.finishReceiver)
                }
            }
        }
        return actions + rearm()
    }

    // MARK: Packets from the client

    /// The client answered a ping.
    public mutating func pongReceived(now: NIODeadline) -> [SessionAction<EngineIOFrame>] {
        guard phase == .open else { return [] }
        pongDeadline = nil
        pingDue = now + configuration.pingInterval
        return rearm()
    }

    /// The client sent a `close` packet: a poll waiting for packets gets `noop`, and the session ends.
    public mutating func closeReceived(now: NIODeadline) -> [SessionAction<EngineIOFrame>] {
        guard phase == .open else { return [] }
        return close(.engineIOTransportClose, now: now, attachedGets: [.noop])
    }

    /// The client broke the protocol (a packet that does not decode, a `ping` sent to the server,
    /// two POSTs at once): the session ends with `reason`.
    public mutating func protocolViolated(_ reason: SockwayCloseReason, now: NIODeadline) -> [SessionAction<EngineIOFrame>] {
        guard phase == .open || phase == .connecting else { return [] }
        return close(reason, now: now, attachedGets: [.close])
    }

    /// Ends the session without telling the client: a waiting poll ends empty, a WebSocket just
    /// closes, and later requests for the sid are refused, as when the network fails (a client then
    /// reconnects by itself, where a `close` packet would tell it the server meant it).
    public mutating func dropped(_ reason: SockwayCloseReason, now: NIODeadline) -> [SessionAction<EngineIOFrame>] {
        guard phase == .open || phase == .connecting || phase.isClosing else { return [] }
        return close(reason, now: now, attachedGets: [])
    }

    /// A WebSocket of this polling session sent `2probe`. Returns `false` when the session cannot
    /// upgrade (not open, already upgrading or upgraded): the caller closes that WebSocket. A poll
    /// waiting for packets gets `noop` after ``upgradePollDelay``.
    public mutating func probeReceived(now: NIODeadline) -> (accepted: Bool, actions: [SessionAction<EngineIOFrame>]) {
        guard phase == .open, transport == .polling, upgrade == .none else { return (false, []) }
        upgrade = .probing
        guard receiver == .polling else { return (true, []) }
        noopDeadline = now + Self.upgradePollDelay
        return (true, rearm())
    }

    /// The probing WebSocket sent `upgrade`: it becomes the session's transport. Attach it next
    /// (``receiverAttached(_:now:)`` with `.webSocket`), which hands it the queued packets.
    public mutating func upgradeReceived() -> (accepted: Bool, actions: [SessionAction<EngineIOFrame>]) {
        guard upgrade == .probing || (upgrade == .none && transport == .polling && phase == .open) else {
            return (false, [])
        }
        upgrade = .upgraded
        transport = .websocket
        noopDeadline = nil
        guard receiver == .polling else { return (true, rearm()) }
        receiver = nil
        // A client pauses polling once it has `3probe` and sends `upgrade` only when its last poll
        // has ended, so a poll still here raced the `upgrade` from the client's side: it is answered
        // as a poll after the upgrade is, refused (the reference's transport check).
        return (true, [.write(.refused), .finishReceiver] + rearm())
    }

    /// The probing WebSocket went before it sent `upgrade`: polling goes on.
    public mutating func probeEnded(now: NIODeadline) -> [SessionAction<EngineIOFrame>] {
        guard upgrade == .probing else { return [] }
        upgrade = .none
        noopDeadline = nil
        return rearm()
    }

    // MARK: Internals

    /// Ends the session now: the attached receiver gets what is queued then `attachedGets` (a poll)
    /// or what is queued (a WebSocket, which then closes).
    private mutating func close(
        _ reason: SockwayCloseReason,
        now: NIODeadline,
        attachedGets ending: [EngineIOPacket]
    ) -> [SessionAction<EngineIOFrame>] {
        var actions: [SessionAction<EngineIOFrame>] = phase.isClosing ? [] : [.notifyClosed(reason)]
        if let kind = receiver {
            var packets = outbox.drain() ?? []
            if kind == .polling { packets.append(contentsOf: ending) }
            // A poll is always answered (empty when the client is not to be told); a WebSocket
            // with nothing to write just closes.
            actions.append(.endAttached(kind == .polling || !packets.isEmpty ? .packets(packets) : nil))
            receiver = nil
        }
        return actions + reaped()
    }

    private mutating func endAfterLosingTransport(_ reason: SockwayCloseReason) -> [SessionAction<EngineIOFrame>] {
        var actions: [SessionAction<EngineIOFrame>] = []
        if phase == .open || phase == .connecting { actions.append(.notifyClosed(reason)) }
        return actions + reaped()
    }

    private mutating func reaped() -> [SessionAction<EngineIOFrame>] {
        phase = .closed
        receiver = nil
        outbox.removeAll()
        pingDue = nil
        pongDeadline = nil
        closeDeadline = nil
        noopDeadline = nil
        deadline = nil
        return [.reap]
    }

    /// Arms the earliest of the session's deadlines, if it moved.
    private mutating func rearm() -> [SessionAction<EngineIOFrame>] {
        let next = [pingDue, pongDeadline, closeDeadline, noopDeadline].compactMap { $0 }.min()
        guard next != deadline else { return [] }
        deadline = next
        return next.map { [.armTimer($0)] } ?? []
    }
}

extension SessionPhase {
    var isClosing: Bool {
        if case .closing = self { return true }
        return false
    }
}
