#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import SockwayEngineIO
import SockwayCore
import SockwayServer

/// One session's connection to its upstream, as the bridge uses it. On the session's event loop.
protocol UpstreamLink: AnyObject {
    /// Below the write buffer's high mark.
    var isWritable: Bool { get }
    func write(text: String) throws(TCPFramingError)
    func write(binary: ByteBuffer) throws(TCPFramingError)
    func flush()
    /// Reads from the upstream on (`true`) or paused (`false`): the client is slow.
    func setReading(_ on: Bool)
    /// The client side is gone: close the upstream politely with `reason` (a WebSocket close frame
    /// with its code where the code may be sent), after what was written.
    func close(_ reason: SockwayCloseReason)
    /// Close at once (a protocol error of the upstream's, already reported to the client).
    func abort()
}

/// What an upstream connection reports to its bridge. On the session's event loop.
protocol UpstreamLinkDelegate: AnyObject {
    func upstreamOpened(_ link: any UpstreamLink)
    /// The connection or its handshake failed before it opened.
    func upstreamFailed(_ why: String)
    func upstreamReceived(text: String)
    func upstreamReceived(binary: ByteBuffer)
    /// The end of one read: what it brought goes to the client as one frame.
    func upstreamReadComplete()
    func upstreamBecameWritable()
    /// The open connection ended: `reason` is for the client.
    func upstreamClosed(_ reason: SockwayCloseReason)
}

/// The delegate of a bridged session: it makes the session's upstream connection (with back-off), then
/// passes messages both ways and carries each side's pace and close to the other.
final class BridgeSession: SockwaySessionDelegate, UpstreamLinkDelegate {
    private let session: SockwaySession
    private let upstream: SockwayUpstream
    private let options: SockwayBridgeOptions
    private let health: UpstreamHealth
    private let loop: any EventLoop

    private enum State {
        /// Attempts under way until `deadline`: the one being made, or the wait before the next.
        case connecting(deadline: NIODeadline, connector: UpstreamConnector?, retry: Scheduled<Void>?)
        case open(any UpstreamLink)
        case closed
    }

    private enum Pending {
        case text(String)
        case binary(ByteBuffer)
        var byteCount: Int {
            switch self {
            case .text(let text): text.utf8.count
            case .binary(let data): data.readableBytes
            }
        }
    }

    private var state: State = .closed
    /// Client messages that arrived while the upstream connection was being made.
    private var pending: [Pending] = []
    private var pendingBytes = 0
    /// Upstream messages of the current read, sent to the client as one frame at its end.
    private var toClient: [String] = []
    /// The client is held back because the upstream's write buffer is full.
    private var clientPausedForUpstream = false
    /// Upstream reads are paused because the client's outbox is backed up.
    private var upstreamReadsPaused = false
    private var lastFailure = ""

    init(session: SockwaySession, upstream: SockwayUpstream, options: SockwayBridgeOptions, health: UpstreamHealth) {
        self.session = session
        self.upstream = upstream
        self.options = options
        self.health = health
        self.loop = session.eventLoop
    }

    // MARK: The client side

    func sessionDidOpen(_ session: SockwaySession) {
        // Nothing may reach the upstream before it is there: the client waits.
        session.pauseReceiving()
        state = .connecting(deadline: .now() + options.connectTimeout, connector: nil, retry: nil)
        let failures = health.consecutiveFailures
        if failures > 0 {
            scheduleAttempt(after: options.backoff.delay(afterFailures: failures, random: Double.random(in: 0...1)))
        } else {
            attempt()
        }
    }

    func session(_ session: SockwaySession, didReceive messages: [String]) {
        switch state {
        case .open(let link):
            for message in messages {
                do {
                    try link.write(text: message)
                } catch {
                    return failClientMessage(error)
                }
            }
            link.flush()
            holdClientIfUpstreamFull(link)
        case .connecting:
            for message in messages { hold(.text(message)) }
        case .closed:
            break
        }
    }

    func session(_ session: SockwaySession, didReceiveBinary message: ByteBuffer) {
        switch state {
        case .open(let link):
            do {
                try link.write(binary: message)
            } catch {
                return failClientMessage(error)
            }
            link.flush()
            holdClientIfUpstreamFull(link)
        case .connecting:
            hold(.binary(message))
        case .closed:
            break
        }
    }

    func session(_ session: SockwaySession, didCloseWith reason: SockwayCloseReason) {
        let previous = state
        state = .closed
        pending = []
        switch previous {
        case .connecting(_, let connector, let retry):
            retry?.cancel()
            connector?.cancel()
        case .open(let link):
            link.close(reason)
        case .closed:
            break
        }
    }

    private func hold(_ message: Pending) {
        pendingBytes += message.byteCount
        pending.append(message)
        if pendingBytes > options.maxPendingBytes {
            session.close(code: 1013, reason: "Upstream not ready: too many messages waiting")
        }
    }

    private func failClientMessage(_ error: TCPFramingError) {
        switch error {
        case .newlineInMessage:
            session.close(code: 1007, reason: "Message holds a newline, which the upstream's newline framing cannot carry")
        case .messageTooBig:
            session.close(code: 1009, reason: "Message too big for the upstream's framing")
        }
    }

    private func holdClientIfUpstreamFull(_ link: any UpstreamLink) {
        guard !link.isWritable, !clientPausedForUpstream else { return }
        clientPausedForUpstream = true
        session.pauseReceiving()
    }

    // MARK: Connecting

    private func scheduleAttempt(after delay: TimeAmount) {
        guard case .connecting(let deadline, _, _) = state else { return }
        if .now() + delay >= deadline {
            return giveUp()
        }
        let retry = loop.assumeIsolated().scheduleTask(in: delay) { [self] in
            guard case .connecting(let deadline, _, _) = state else { return }
            state = .connecting(deadline: deadline, connector: nil, retry: nil)
            attempt()
        }
        state = .connecting(deadline: deadline, connector: nil, retry: retry)
    }

    private func attempt() {
        guard case .connecting(let deadline, _, _) = state else { return }
        let remaining = deadline - .now()
        guard remaining > .zero else { return giveUp() }
        let connector = UpstreamConnector(upstream: upstream, options: options, session: session, delegate: self)
        state = .connecting(deadline: deadline, connector: connector, retry: nil)
        connector.start(timeout: remaining)
    }

    func upstreamFailed(_ why: String) {
        guard case .connecting(let deadline, _, _) = state else { return }
        state = .connecting(deadline: deadline, connector: nil, retry: nil)
        lastFailure = why
        let failures = health.recordFailure()
        options.logger.debug("upstream attempt failed", metadata: ["upstream": "\(upstream)", "error": "\(why)", "failures": "\(failures)"])
        scheduleAttempt(after: options.backoff.delay(afterFailures: failures, random: Double.random(in: 0...1)))
    }

    private func giveUp() {
        state = .closed
        options.logger.notice("upstream unreachable", metadata: ["upstream": "\(upstream)", "error": "\(lastFailure)", "session": "\(session.id)"])
        let why = lastFailure.isEmpty ? "timed out" : lastFailure
        session.close(code: 1014, reason: "Upstream unreachable (\(why))")
    }

    func upstreamOpened(_ link: any UpstreamLink) {
        guard case .connecting = state else { return link.abort() }
        health.recordSuccess()
        state = .open(link)
        let held = pending
        pending = []
        pendingBytes = 0
        for message in held {
            do {
                switch message {
                case .text(let text): try link.write(text: text)
                case .binary(let data): try link.write(binary: data)
                }
            } catch {
                return failClientMessage(error)
            }
        }
        if !held.isEmpty { link.flush() }
        if link.isWritable {
            session.resumeReceiving()
        } else {
            clientPausedForUpstream = true
        }
    }

    // MARK: The upstream side

    func upstreamReceived(text: String) {
        toClient.append(text)
    }

    func upstreamReceived(binary: ByteBuffer) {
        if session.carriesBinary {
            sendToClient()
            session.sendBinary(binary)
        } else if options.binaryAsBase64 {
            toClient.append(EngineIOBase64.encode(binary))
        } else {
            sendToClient()
            session.close(code: 1003, reason: "Upstream sent a binary message, which this transport cannot carry")
            if case .open(let link) = state { link.close(SockwayCloseReason(code: 1003, reason: "Binary messages are not supported")) }
            state = .closed
        }
    }

    func upstreamReadComplete() {
        sendToClient()
        guard case .open(let link) = state, !upstreamReadsPaused, session.isSendQueueBackedUp else { return }
        // The client takes its messages slower than the upstream sends them: stop reading the
        // upstream (its own writes then block) until the client has caught up.
        upstreamReadsPaused = true
        link.setReading(false)
        let bound = NIOLoopBound(self, eventLoop: loop)
        session.whenSendQueueDrained {
            let this = bound.value
            this.upstreamReadsPaused = false
            if case .open(let link) = this.state { link.setReading(true) }
        }
    }

    private func sendToClient() {
        guard !toClient.isEmpty else { return }
        session.send(contentsOf: toClient)
        toClient.removeAll(keepingCapacity: true)
    }

    func upstreamBecameWritable() {
        guard clientPausedForUpstream, case .open(let link) = state, link.isWritable else { return }
        clientPausedForUpstream = false
        session.resumeReceiving()
    }

    func upstreamClosed(_ reason: SockwayCloseReason) {
        guard case .open = state else { return }
        state = .closed
        sendToClient()
        session.close(code: reason.code, reason: reason.reason)
    }
}
