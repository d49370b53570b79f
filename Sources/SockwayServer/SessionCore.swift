import NIOCore
import SockwayCore

/// Where a session's frames go: a polling or streaming HTTP response, or a WebSocket.
/// Used on the session's event loop only.
protocol SessionReceiver<Frame>: AnyObject {
    associatedtype Frame
    var kind: SessionReceiverKind { get }
    /// Whether the receiver can take more frames now (its channel is under the write high-water mark).
    var isWritable: Bool { get }
    /// Writes one frame. Returns `true` when the receiver's response budget is spent.
    func write(_ frame: Frame) -> Bool
    /// Ends the response, or closes the WebSocket.
    func finish()
    /// Whether the receiver carries binary messages beside the machine's frames (a raw WebSocket).
    var carriesBinary: Bool { get }
    /// Writes a binary message beside the frames. Returns `false` when more than `limit` bytes of them
    /// are already waiting in the channel: the caller closes the session rather than buffer without bound.
    func writeBinary(_ message: ByteBuffer, limit: Int) -> Bool
}

extension SessionReceiver {
    var carriesBinary: Bool { false }
    func writeBinary(_ message: ByteBuffer, limit: Int) -> Bool { true }
}

/// What the public ``SockwaySession`` handle asks of its core, whatever the protocol family.
/// Used on the session's event loop only.
protocol SessionFace: AnyObject, SendableMetatype {
    func send(_ message: String)
    func send(contentsOf messages: [String])
    /// Sends handed over from another thread, the first of them at `sentAt` (``timesSends``).
    func send(contentsOf messages: [String], sentAt: NIODeadline?)
    func sendBinary(_ message: ByteBuffer)
    func close(_ reason: SockwayCloseReason)
    /// Closes with 1013 "Send queue full", counted as an outbox overflow.
    func outboxOverflowed()
    /// Whether the time from a send to its write is measured (metrics are on): then sends from other
    /// threads carry the time they were made.
    var timesSends: Bool { get }
    /// The session's event-loop delegate, if it has one.
    var delegateObject: AnyObject? { get }
    /// Holds the client's messages back (WebSocket reads paused, HTTP sends held) while `true`.
    func setReceivingPaused(_ paused: Bool)
    /// Whether the outbox holds more than its back-up mark (the client reads slower than it is sent to).
    var isOutboxBackedUp: Bool { get }
    /// Calls `body` once the outbox is below its back-up mark or the session is no longer open.
    func whenOutboxDrained(_ body: @escaping () -> Void)
}

/// The I/O side of one session: runs its protocol's state machine on the session's event loop, and
/// holds what every protocol family shares: the receiver, the timer, delivery to the application,
/// held sends and the waits for a drained outbox.
final class SessionCore<Machine: SessionStateMachine>: SessionFace {
    typealias Frame = Machine.Frame
    typealias Action = SessionAction<Machine.Frame>

    let eventLoop: any EventLoop
    let options: SockwayEndpointOptions
    private let handler: SockwayEndpoint.Handler
    private(set) var machine: Machine
    private(set) var receiver: (any SessionReceiver<Frame>)?
    private var timer: Scheduled<Void>?
    /// The public handle; released when the session is reaped.
    private(set) var handle: SockwaySession?
    private var delegate: (any SockwaySessionDelegate)?
    var delegateObject: AnyObject? { delegate }
    private var onReap: ((SessionCore) -> Void)?
    /// What a request must present to reach this session besides its id (set when it is created).
    var binding = SessionBindingToken.none
    /// The server-wide outbox meter, and what this session has added to it.
    private let queuedMeter: QueuedBytesMeter?
    private var accountedBytes = 0

    private var deliveryDepth = 0
    private var flushDeferred = false
    private var runDepth = 0
    private var notifications: [Notification] = []
    /// A WebSocket reader paused until the outbox drains (``whenDrained(_:)``).
    private var drainWaiter: (() -> Void)?
    /// The connection of the last finished response while no receiver is attached, and how much the
    /// client had acknowledged on it when last looked at (when it was written out, then ``timerFired()``).
    private var lastResponse: (channel: any Channel, progress: TCPProgress?)?
    /// HTTP sends held, undelivered, until the outbox drains (``acceptSend(_:answer:)``), oldest first.
    private var heldSends: [HeldSend] = []
    private var nextHeldSendID = 0
    private var releasingHeldSends = false
    /// Called once the session is closed (``whenClosed(_:)``).
    private var closeWatchers: [() -> Void] = []
    /// Waiting for the application to read its inbound queue below half (``watchInbound()``).
    private var watchingInbound = false
    /// The application holds the client's messages back (``setReceivingPaused(_:)``).
    private var receivingPaused = false
    /// Waiting for the outbox alone to drain (``whenOutboxDrained(_:)``), whatever the inbound side does.
    private var outboxWaiters: [() -> Void] = []
    /// Where the session is counted (metrics); `nil` in tests that make a core alone, and once the
    /// session is reaped. A plain value: counting a message touches no reference count.
    private var meter: SessionMeter?
    /// When the oldest message not yet written was sent, if it had to wait (metrics on only).
    private var waitingSince: NIODeadline?
    /// Whether the session's close was counted (by its code, with its lifetime).
    private var closeCounted = false

    private struct HeldSend {
        let id: Int
        let deliver: (SessionCore) -> Void
        let answer: (SessionSendOutcome) -> Void
        let timeout: Scheduled<Void>
    }

    private enum Notification {
        case open
        case closed(SockwayCloseReason)
        case reap
    }

    init(
        eventLoop: any EventLoop,
        machine: Machine,
        options: SockwayEndpointOptions,
        handler: SockwayEndpoint.Handler,
        queuedMeter: QueuedBytesMeter? = nil,
        meter: SessionMeter? = nil,
        onReap: @escaping (SessionCore) -> Void
    ) {
        self.eventLoop = eventLoop
        self.machine = machine
        self.options = options
        self.handler = handler
        self.queuedMeter = queuedMeter
        self.onReap = onReap
        self.meter = meter
        meter?.row[LoopTally.Column.sessionsOpened.rawValue] += 1
    }

    deinit {
        // A session freed without being reaped (its loop stopped) lets its tally go here.
        meter?.release()
    }

    var timesSends: Bool { meter?.timesSends == true }

    /// The session moved to another transport (an Engine.IO upgrade), for its metrics.
    func meterTransport(_ transport: MeteredTransport) {
        meter?.move(to: transport)
    }

    func setHandle(_ handle: SockwaySession) {
        self.handle = handle
    }

    // MARK: Events from receivers

    func attach(_ newReceiver: any SessionReceiver<Frame>) {
        eventLoop.preconditionInEventLoop()
        lastResponse = nil
        let alreadyAttached = machine.receiver != nil
        let actions = machine.receiverAttached(newReceiver.kind, now: eventLoop.now)
        if !alreadyAttached && machine.receiver != nil { receiver = newReceiver }
        run(actions, for: newReceiver)
    }

    func detach(_ oldReceiver: any SessionReceiver<Frame>, aborted: Bool, reason: SockwayCloseReason? = nil) {
        guard receiver === oldReceiver else { return }
        receiver = nil
        run(machine.receiverDetached(aborted: aborted, reason: reason, now: eventLoop.now), for: oldReceiver)
    }

    /// The response of a receiver that has finished has been written out in full, on `channel`.
    func responseDrained(on channel: any Channel) {
        guard receiver == nil else { return }
        lastResponse = (channel, nil)
        TCPProgress.read(channel).hop(to: eventLoop).assumeIsolated().whenSuccess { [self] progress in
            guard let last = lastResponse, last.channel === channel, last.progress == nil else { return }
            lastResponse = (channel, progress)
        }
        run(machine.responseDrained(now: eventLoop.now), for: nil)
    }

    /// The receiver can take frames again (its channel became writable).
    func receiverBecameWritable(_ someReceiver: any SessionReceiver<Frame>) {
        guard receiver === someReceiver else { return }
        flush()
    }

    func deliver(_ messages: [String]) {
        guard machine.isOpen, !messages.isEmpty, let handle else { return }
        if let counts = meter?.row { Self.count(messages, into: counts, .messagesIn, .bytesIn) }
        delivering {
            if let delegate {
                delegate.session(handle, didReceive: messages)
            } else if !handle.deliverToStream(messages) {
                countOverflow(.inbound)
                close(.receiveQueueFull)
            }
        }
    }

    func deliverBinary(_ message: ByteBuffer) {
        guard machine.isOpen, let handle else { return }
        if let counts = meter?.row {
            counts[LoopTally.Column.messagesIn.rawValue] &+= 1
            counts[LoopTally.Column.bytesIn.rawValue] &+= message.readableBytes
        }
        delivering {
            if let delegate {
                delegate.session(handle, didReceiveBinary: message)
            } else {
                close(SockwayCloseReason(code: 1003, reason: "Binary messages are not supported"))
            }
        }
    }

    /// Runs `body` (a receiver handing over everything one read brought): what the application sends
    /// meanwhile goes out as one frame at the end, not one per inbound frame.
    func coalescingSends(_ body: () -> Void) {
        delivering(body)
    }

    /// Sends now what the current coalescing scope has gathered: a control frame (pong, close) is about
    /// to go out, and replies to the frames before it must not end up after it.
    func flushCoalescedSends() {
        guard flushDeferred else { return }
        flushDeferred = false
        flush()
    }

    /// Runs an application callback; what it sends meanwhile goes out as one frame when it returns.
    private func delivering(_ body: () -> Void) {
        deliveryDepth += 1
        body()
        deliveryDepth -= 1
        if deliveryDepth == 0 && flushDeferred {
            flushDeferred = false
            flush()
        }
    }

    // MARK: Calls from the application

    /// Sends a binary message: in the machine's frames if its protocol carries them, else beside them
    /// on a receiver that does (a raw WebSocket); otherwise it is dropped.
    func sendBinary(_ message: ByteBuffer) {
        guard !refusedForServerQueues() else { return }
        switch machine.enqueueBinary(message) {
        case .queued:
            countSent(binary: message)
            scheduleFlush()
        case .notOpen: break
        case .overflow: outboxOverflowed()
        case .unsupported:
            guard let socket = receiver, socket.carriesBinary else { return }
            countSent(binary: message)
            // Text queued before this message goes first, so the two kinds keep their order.
            if machine.queuedMessages > 0, case .write(let frame) = machine.flush(now: eventLoop.now) {
                _ = socket.write(frame)
            }
            if !socket.writeBinary(message, limit: options.maxQueuedBytes) {
                outboxOverflowed()
            }
        }
    }

    func send(_ message: String) {
        guard !refusedForServerQueues() else { return }
        switch machine.enqueue(message) {
        case .queued:
            if let counts = meter?.row {
                counts[LoopTally.Column.messagesOut.rawValue] &+= 1
                counts[LoopTally.Column.bytesOut.rawValue] &+= message.utf8.count
            }
            scheduleFlush()
        case .notOpen, .unsupported: break
        case .overflow: outboxOverflowed()
        }
    }

    @inline(__always)
    func send(contentsOf messages: [String]) {
        send(contentsOf: messages, sentAt: nil)
    }

    func send(contentsOf messages: [String], sentAt: NIODeadline?) {
        guard !refusedForServerQueues() else { return }
        switch machine.enqueue(contentsOf: messages) {
        case .queued:
            if let counts = meter?.row { Self.count(messages, into: counts, .messagesOut, .bytesOut) }
            if let sentAt, waitingSince == nil { waitingSince = sentAt }
            scheduleFlush()
        case .notOpen, .unsupported: break
        case .overflow: outboxOverflowed()
        }
    }

    @inline(__always)
    private static func count(_ messages: [String], into counts: UnsafeMutablePointer<Int>, _ number: LoopTally.Column, _ bytes: LoopTally.Column) {
        counts[number.rawValue] &+= messages.count
        var total = 0
        for message in messages { total &+= message.utf8.count }
        counts[bytes.rawValue] &+= total
    }

    private func countSent(binary message: ByteBuffer) {
        guard let counts = meter?.row else { return }
        counts[LoopTally.Column.messagesOut.rawValue] &+= 1
        counts[LoopTally.Column.bytesOut.rawValue] &+= message.readableBytes
    }

    private func countOverflow(_ queue: MeteredQueue) {
        meter?.tally.overflows[queue.rawValue] += 1
    }

    /// The outbox (or a hop's sends on their way to it) went past its bounds: close 1013.
    func outboxOverflowed() {
        countOverflow(.outbox)
        close(.sendQueueFull)
    }

    /// Past the server-wide outbox bound, a session that is already holding messages (its client is
    /// slow or away) is closed with `1013` rather than given more; sessions whose messages go straight
    /// out are not touched.
    private func refusedForServerQueues() -> Bool {
        // `accountedBytes` first: a session whose messages go straight out pays one comparison.
        guard accountedBytes > 0, let queuedMeter, queuedMeter.isOverLimit else { return false }
        countOverflow(.server)
        close(.serverQueuesFull)
        return true
    }

    /// Brings the server-wide meter up to date with the outbox (a machine read: called where the
    /// outbox may have kept something, not for every message that went straight out).
    private func accountQueuedBytes() {
        guard let queuedMeter else { return }
        let queued = inPlace { $0.queuedBytes }
        if queued != accountedBytes {
            queuedMeter.add(queued - accountedBytes)
            accountedBytes = queued
        }
    }

    /// Reads the machine where it is: a plain read of a property of the (generic) machine copies the
    /// whole machine first, retaining everything it holds (seen in profiles as its value witness).
    @inline(__always)
    private func inPlace<T>(_ body: (inout Machine) -> T) -> T {
        body(&machine)
    }

    /// Runs `body` on the machine (an event of its protocol's own, such as an Engine.IO pong) and
    /// carries out the actions it returns, for the attached receiver.
    func perform(_ body: (inout Machine) -> [Action]) {
        run(body(&machine), for: receiver)
    }

    func close(_ reason: SockwayCloseReason) {
        run(machine.closeRequested(reason, now: eventLoop.now), for: receiver)
    }

    /// Calls `body` once the outbox is no longer backed up, or the session is no longer open: at once
    /// if it is not backed up now (the session's WebSocket reader uses it).
    func whenDrained(_ body: @escaping () -> Void) {
        guard machine.isOpen, isBackedUp else { return body() }
        watchInbound()
        if let earlier = drainWaiter {
            drainWaiter = {
                earlier()
                body()
            }
        } else {
            drainWaiter = body
        }
    }

    /// Messages a client sent over HTTP. `answer` is called on this loop with `.accepted` once they
    /// were handed to the application while the session was open; with a refusal, and nothing
    /// delivered, when the session is closing or closed, or when the request was held (the outbox is
    /// backed up) past the endpoint's bounds on held requests and hold time.
    func acceptSend(_ messages: [String], answer: @escaping (SessionSendOutcome) -> Void) {
        acceptSend(delivering: { $0.deliver(messages) }, answer: answer)
    }

    /// ``acceptSend(_:answer:)`` for a protocol whose sends carry more than text (Engine.IO: binary
    /// messages, a close): `deliver` hands them over, in order, when the send is accepted.
    func acceptSend(delivering deliver: @escaping (SessionCore) -> Void, answer: @escaping (SessionSendOutcome) -> Void) {
        switch machine.sendArrived(held: heldSends.count, maxHeld: options.maxHeldSendRequests, applicationBackedUp: applicationBackedUp) {
        case .deliver:
            answer(deliverSend(deliver))
        case .refuse(let refusal):
            answer(.refused(refusal))
        case .hold:
            let id = nextHeldSendID
            nextHeldSendID &+= 1
            let timeout = eventLoop.assumeIsolated().scheduleTask(in: options.sendHoldTimeout) { [self] in
                guard let index = heldSends.firstIndex(where: { $0.id == id }) else { return }
                heldSends.remove(at: index).answer(.refused(.busy))
            }
            heldSends.append(HeldSend(id: id, deliver: deliver, answer: answer, timeout: timeout))
            watchInbound()
        }
    }

    /// Calls `body` once the session is closed (at once if it is): for what hangs on a session without
    /// being its receiver, such as a WebSocket between its Engine.IO probe and its upgrade.
    func whenClosed(_ body: @escaping () -> Void) {
        guard machine.phase == .open || machine.phase == .connecting else { return body() }
        closeWatchers.append(body)
    }

    private func runCloseWatchers() {
        let watchers = closeWatchers
        closeWatchers = []
        for watcher in watchers { watcher() }
    }

    /// Whether sends are held, waiting for the outbox to drain.
    var hasHeldSends: Bool { !heldSends.isEmpty }

    /// The client should wait: the outbox is backed up (it sends faster than it receives), or the
    /// async application has not read half its inbound bound (it sends faster than the application reads).
    var isBackedUp: Bool {
        inPlace { $0.isBackedUp } || applicationBackedUp
    }

    /// The application takes no more now: it paused receiving, or (async face) has not read half its
    /// inbound bound. An event-loop delegate has no inbound queue to lag.
    private var applicationBackedUp: Bool {
        receivingPaused || (delegate == nil && handle?.inboundIsBackedUp == true)
    }

    func setReceivingPaused(_ paused: Bool) {
        guard receivingPaused != paused else { return }
        receivingPaused = paused
        if !paused { releaseDrainWaiters() }
    }

    var isOutboxBackedUp: Bool { inPlace { $0.isBackedUp } }

    func whenOutboxDrained(_ body: @escaping () -> Void) {
        guard machine.isOpen, isOutboxBackedUp else { return body() }
        outboxWaiters.append(body)
    }

    /// Asks the inbound queue to say when the application has read it below half, if it is backed up.
    private func watchInbound() {
        guard !watchingInbound, delegate == nil, let handle, handle.inboundIsBackedUp else { return }
        watchingInbound = true
        let this = NIOLoopBound(self, eventLoop: eventLoop)
        let loop = eventLoop
        handle.whenInboundDrained {
            loop.execute {
                this.value.watchingInbound = false
                this.value.releaseDrainWaiters()
            }
        }
    }

    private func deliverSend(_ deliver: (SessionCore) -> Void) -> SessionSendOutcome {
        deliver(self)
        return machine.sendOutcomeAfterDelivery
    }

    /// Wakes what waits for the outbox (and an async application's inbound queue): held sends are
    /// delivered in order while there is room (or refused once the session is no longer open), and a
    /// paused WebSocket reader resumes.
    private func releaseDrainWaiters() {
        if !outboxWaiters.isEmpty, !machine.isOpen || !isOutboxBackedUp {
            let waiters = outboxWaiters
            outboxWaiters = []
            for waiter in waiters { waiter() }
        }
        guard !heldSends.isEmpty || drainWaiter != nil else { return }
        guard !machine.isOpen || !isBackedUp else {
            watchInbound()
            return
        }
        if !heldSends.isEmpty && !releasingHeldSends {
            // Delivering runs the application, which may send and so come back here: the loop
            // below carries on instead.
            releasingHeldSends = true
            while let held = heldSends.first, !machine.isOpen || !isBackedUp {
                heldSends.removeFirst()
                held.timeout.cancel()
                held.answer(machine.isOpen ? deliverSend(held.deliver) : .refused(.closed))
            }
            releasingHeldSends = false
        }
        if !heldSends.isEmpty { watchInbound() }
        if let waiter = drainWaiter, !machine.isOpen || !isBackedUp {
            drainWaiter = nil
            waiter()
        }
    }

    // MARK: Internals

    private func scheduleFlush() {
        if deliveryDepth > 0 {
            // Coalesce everything the delegate sends during one delivery into one frame.
            flushDeferred = true
        } else {
            flush()
        }
    }

    private func flush() {
        guard let current = receiver, current.isWritable else {
            // What was just queued stays: it counts towards the server-wide bound.
            accountQueuedBytes()
            if waitingSince == nil, timesSends, inPlace({ $0.queuedMessages }) > 0 { waitingSince = .now() }
            return
        }
        switch machine.flush(now: eventLoop.now) {
        case .none:
            break
        case .write(let frame):
            recordWait()
            if current.write(frame) { budgetSpent(current) }
        case .writeAndFinish(let frame, let deadline):
            recordWait()
            _ = current.write(frame)
            receiver = nil
            current.finish()
            arm(deadline)
        }
        // A flush hands over everything queued: only a session that had bytes counted settles up.
        if accountedBytes != 0 { accountQueuedBytes() }
        releaseDrainWaiters()
    }

    /// A frame with the waiting messages is being written: how long the oldest of them waited.
    private func recordWait() {
        guard let since = waitingSince else { return }
        waitingSince = nil
        meter?.tally.sendToWrite?.recordNanoseconds((NIODeadline.now() - since).nanoseconds)
    }

    private func budgetSpent(_ spent: any SessionReceiver<Frame>) {
        guard receiver === spent else { return }
        receiver = nil
        spent.finish()
        run(machine.receiverDetached(aborted: false, reason: nil, now: eventLoop.now), for: spent)
    }

    private func timerFired() {
        timer = nil
        // The disconnect delay is up. A client still reading the last response (a large poll over a
        // slow link: the kernel holds what it has not taken) is not gone: while it has acknowledged
        // more since the last look (when the response was written out, then at each delay), the
        // session waits another delay. One that stopped reading, or left, is not waited for.
        if machine.receiver == nil, machine.isOpen, let deadline = machine.deadline, deadline <= eventLoop.now,
            let last = lastResponse, last.channel.isActive
        {
            TCPProgress.read(last.channel).hop(to: eventLoop).assumeIsolated().whenComplete { [self] result in
                if case .success(let progress) = result, progress.bytesAcked > (last.progress?.bytesAcked ?? 0),
                    lastResponse?.channel === last.channel
                {
                    lastResponse = (last.channel, progress)
                    run(machine.responseDrained(now: eventLoop.now), for: nil)
                } else {
                    lastResponse = nil
                    run(machine.timerFired(now: eventLoop.now), for: receiver)
                }
            }
            return
        }
        lastResponse = nil
        run(machine.timerFired(now: eventLoop.now), for: receiver)
    }

    private func arm(_ deadline: NIODeadline) {
        timer?.cancel()
        timer = eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            self.timerFired()
        }
    }

    private func run(_ actions: [Action], for target: (any SessionReceiver<Frame>)?) {
        runDepth += 1
        var spent = false
        for action in actions {
            switch action {
            case .write(let frame):
                if target != nil { recordWait() }
                if let target, target.write(frame) { spent = true }
            case .finishReceiver:
                if receiver === target { receiver = nil }
                target?.finish()
                spent = false
            case .reject(let frame):
                _ = target?.write(frame)
                target?.finish()
            case .endAttached(let frame):
                if let attached = receiver {
                    receiver = nil
                    if let frame { _ = attached.write(frame) }
                    attached.finish()
                    if attached === target { spent = false }
                }
            case .notifyOpen:
                notifications.append(.open)
            case .notifyClosed(let reason):
                notifications.append(.closed(reason))
            case .armTimer(let deadline):
                arm(deadline)
            case .reap:
                timer?.cancel()
                timer = nil
                notifications.append(.reap)
            }
        }
        if spent, let target { budgetSpent(target) }
        accountQueuedBytes()
        releaseDrainWaiters()
        runDepth -= 1
        // Application callbacks run after the actions, so that a callback that sends or closes sees a
        // settled state machine rather than one halfway through an action list.
        if runDepth == 0 { dispatchNotifications() }
    }

    private func dispatchNotifications() {
        // Taken in batches and released, so that an idle session holds no array buffer.
        while !notifications.isEmpty {
            let batch = notifications
            notifications = []
            for next in batch { dispatch(next) }
        }
    }

    private func countClose(code: Int) {
        guard let meter, !closeCounted else { return }
        closeCounted = true
        meter.tally.closes[LoopTally.CloseKey(endpoint: meter.endpoint, code: code), default: 0] += 1
        if let createdAt = meter.createdAt {
            meter.tally.recordSessionDuration(endpoint: meter.endpoint, nanoseconds: (NIODeadline.now() - createdAt).nanoseconds)
        }
    }

    private func dispatch(_ next: Notification) {
        switch next {
        case .open:
            open()
        case .closed(let reason):
            countClose(code: reason.code)
            if let handle {
                delegate?.session(handle, didCloseWith: reason)
                handle.finishStream()
            }
            runCloseWatchers()
        case .reap:
            if let meter {
                // A session reaped without a close (never opened) counts under code "none".
                if !closeCounted { countClose(code: 0) }
                meter.row[LoopTally.Column.sessionsClosed.rawValue] += 1
                self.meter = nil
                meter.release()
            }
            runCloseWatchers()
            queuedMeter?.add(-accountedBytes)
            accountedBytes = 0
            let reap = onReap
            onReap = nil
            delegate = nil
            handle = nil
            reap?(self)
        }
    }

    private func open() {
        guard let handle else { return }
        switch handler {
        case .eventLoop(let makeDelegate):
            let delegate = makeDelegate(handle)
            self.delegate = delegate
            delegate.sessionDidOpen(handle)
        case .async(let body):
            Task {
                do {
                    try await body(handle)
                    handle.close()
                } catch {
                    handle.close(code: 1011, reason: "Internal server error")
                }
            }
        }
    }
}
