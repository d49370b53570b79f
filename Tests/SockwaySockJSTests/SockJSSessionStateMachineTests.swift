import NIOCore
import SockwaySockJS
import Testing

private let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
private let heartbeat = TimeAmount.seconds(25)
private let disconnect = TimeAmount.seconds(5)

/// A session that is open and has no receiver (a first poll took the open frame).
private func openSessionWithoutReceiver(
    _ configuration: SockJSSessionStateMachine.Configuration = .init()
) -> SockJSSessionStateMachine {
    var session = SockJSSessionStateMachine(configuration: configuration)
    _ = session.receiverAttached(.polling, now: t0)
    return session
}

/// The frames written by a list of actions, in order.
private func writes(_ actions: [SockJSSessionStateMachine.Action]) -> [SockJSFrame] {
    actions.compactMap { action in
        if case .write(let frame) = action { return frame }
        return nil
    }
}

@Suite("Session: opening")
struct SockJSSessionOpeningTests {
    @Test func firstStreamingReceiverGetsOpenFrameAndHeartbeatTimer() {
        // The first receiver gets `o`, the application learns of the session, and the heartbeat is armed.
        var session = SockJSSessionStateMachine()
        #expect(session.phase == .connecting)
        #expect(session.receiverAttached(.streaming, now: t0) == [.write(.open), .notifyOpen, .armTimer(t0 + heartbeat)])
        #expect(session.phase == .open)
        #expect(session.receiver == .streaming)
        #expect(session.deadline == t0 + heartbeat)
    }

    @Test func firstPollingReceiverTakesOpenFrameAndLeaves() {
        // A poll carries one frame: `o` ends it, and the disconnect delay starts.
        var session = SockJSSessionStateMachine()
        #expect(
            session.receiverAttached(.polling, now: t0)
                == [.write(.open), .notifyOpen, .finishReceiver, .armTimer(t0 + disconnect)]
        )
        #expect(session.phase == .open)
        #expect(session.receiver == nil)
    }

    @Test func firstWebSocketReceiverGetsOpenFrame() {
        // A SockJS websocket also starts with `o` and a heartbeat timer.
        var session = SockJSSessionStateMachine()
        #expect(session.receiverAttached(.webSocket, now: t0) == [.write(.open), .notifyOpen, .armTimer(t0 + heartbeat)])
        #expect(session.receiver == .webSocket)
    }

    @Test func configuredIntervalsAreUsed() {
        // The heartbeat interval and disconnect delay come from the configuration.
        let configuration = SockJSSessionStateMachine.Configuration(heartbeatInterval: .seconds(7), disconnectDelay: .seconds(3))
        var streaming = SockJSSessionStateMachine(configuration: configuration)
        #expect(streaming.receiverAttached(.streaming, now: t0).last == .armTimer(t0 + .seconds(7)))
        var polling = SockJSSessionStateMachine(configuration: configuration)
        #expect(polling.receiverAttached(.polling, now: t0).last == .armTimer(t0 + .seconds(3)))
    }
}

@Suite("Session: one receiver at a time")
struct SockJSSessionSingleReceiverTests {
    @Test(arguments: [SockJSSessionStateMachine.ReceiverKind.polling, .streaming])
    func secondReceiverIsRejectedWith2010(kind: SockJSSessionStateMachine.ReceiverKind) {
        // The suite: a second receiver gets `c[2010,"Another connection still open"]`; the session is unchanged.
        var session = SockJSSessionStateMachine()
        _ = session.receiverAttached(.streaming, now: t0)
        _ = session.enqueue("queued")
        let before = (session.phase, session.receiver, session.deadline, session.queuedMessages)
        #expect(session.receiverAttached(kind, now: t0 + .seconds(1)) == [.reject(.close(.anotherConnectionStillOpen))])
        #expect(session.phase == before.0)
        #expect(session.receiver == before.1)
        #expect(session.deadline == before.2)
        #expect(session.queuedMessages == before.3)
    }

    @Test func rejectionFrameIsTheSuitesText() {
        // The frame the newcomer gets is exactly `c[2010,"Another connection still open"]`.
        #expect(SockJSFrame.close(.anotherConnectionStillOpen).text == #"c[2010,"Another connection still open"]"#)
    }
}

@Suite("Session: outbound queue")
struct SockJSSessionQueueTests {
    @Test func messagesWaitForTheNextPollAndArriveOnceInOrder() {
        // Messages sent with no receiver reach the next receiver in order, as one frame, exactly once.
        var session = openSessionWithoutReceiver()
        #expect(session.enqueue("a") == .queued)
        #expect(session.enqueue("b") == .queued)
        #expect(session.enqueue("c") == .queued)
        #expect(session.queuedMessages == 3)
        let now = t0 + .seconds(1)
        #expect(session.receiverAttached(.polling, now: now) == [.write(.messages(["a", "b", "c"])), .finishReceiver, .armTimer(now + disconnect)])
        #expect(session.queuedMessages == 0)
        #expect(session.queuedBytes == 0)
        // The next poll finds nothing to deliver and waits.
        let later = t0 + .seconds(2)
        #expect(session.receiverAttached(.polling, now: later) == [.armTimer(later + heartbeat)])
        #expect(session.receiver == .polling)
    }

    @Test func messagesWaitForTheNextStreamingReceiver() {
        // A streaming receiver gets the queued messages first and stays attached.
        var session = openSessionWithoutReceiver()
        _ = session.enqueue("a")
        _ = session.enqueue("b")
        let now = t0 + .seconds(1)
        #expect(session.receiverAttached(.streaming, now: now) == [.write(.messages(["a", "b"])), .armTimer(now + heartbeat)])
        #expect(session.receiver == .streaming)
    }

    @Test func flushToAWaitingPollWritesAndFinishes() {
        // A waiting poll takes one frame with everything queued, ends, and the disconnect delay starts.
        var session = openSessionWithoutReceiver()
        _ = session.receiverAttached(.polling, now: t0)
        _ = session.enqueue("x")
        _ = session.enqueue("y")
        let now = t0 + .seconds(3)
        #expect(session.flush(now: now) == .writeAndFinish(.messages(["x", "y"]), armTimer: now + disconnect))
        #expect(session.receiver == nil)
        #expect(session.deadline == now + disconnect)
        #expect(session.flush(now: now) == .none)
    }

    @Test func flushToAStreamingReceiverWritesAndKeepsIt() {
        // A streaming receiver takes each batch as one frame and stays attached.
        var session = SockJSSessionStateMachine()
        _ = session.receiverAttached(.streaming, now: t0)
        _ = session.enqueue("x")
        #expect(session.flush(now: t0) == .write(.messages(["x"])))
        #expect(session.receiver == .streaming)
        _ = session.enqueue("y")
        _ = session.enqueue("z")
        #expect(session.flush(now: t0) == .write(.messages(["y", "z"])))
    }

    @Test func flushWithNothingQueuedOrNoReceiverDoesNothing() {
        // Nothing to send, or nobody to send it to: no action, and queued messages stay queued.
        var session = SockJSSessionStateMachine()
        _ = session.receiverAttached(.streaming, now: t0)
        #expect(session.flush(now: t0) == .none)
        var idle = openSessionWithoutReceiver()
        _ = idle.enqueue("kept")
        #expect(idle.flush(now: t0) == .none)
        #expect(idle.queuedMessages == 1)
    }

    @Test func queueOverflowsByMessageCount() {
        // The outbox is bounded in messages: one over the limit is refused with overflow.
        var session = openSessionWithoutReceiver(.init(maxQueuedMessages: 2))
        #expect(session.enqueue("a") == .queued)
        #expect(session.enqueue("b") == .queued)
        #expect(session.enqueue("c") == .overflow)
        #expect(session.queuedMessages == 2)
    }

    @Test func batchEnqueueStopsAtTheFirstMessageThatDoesNotFit() {
        var session = openSessionWithoutReceiver(.init(maxQueuedMessages: 3))
        #expect(session.enqueue(contentsOf: ["a", "b"]) == .queued)
        #expect(session.enqueue(contentsOf: ["c", "d", "e"]) == .overflow)
        #expect(session.queuedMessages == 3)
        _ = session.receiverAttached(.streaming, now: t0)
        var closed = SockJSSessionStateMachine()
        #expect(closed.enqueue(contentsOf: ["x"]) == .notOpen)
    }

    @Test func halfAFullOutboxIsBackedUp() {
        // In messages or in bytes, whichever comes first; draining it ends that.
        var session = openSessionWithoutReceiver(.init(maxQueuedMessages: 4, maxQueuedBytes: 100))
        _ = session.enqueue("a")
        #expect(!session.isBackedUp)
        _ = session.enqueue("b")
        #expect(session.isBackedUp)
        _ = session.receiverAttached(.streaming, now: t0)
        #expect(!session.isBackedUp)
        var bytes = openSessionWithoutReceiver(.init(maxQueuedMessages: 100, maxQueuedBytes: 10))
        _ = bytes.enqueue("1234")
        #expect(!bytes.isBackedUp)
        _ = bytes.enqueue("5")
        #expect(bytes.isBackedUp)
    }

    @Test func queueOverflowsByUTF8Bytes() {
        // The outbox is bounded in UTF-8 bytes, counting multibyte characters by their bytes.
        var session = openSessionWithoutReceiver(.init(maxQueuedBytes: 10))
        #expect(session.enqueue("12345") == .queued)
        #expect(session.enqueue("12345") == .queued)
        #expect(session.queuedBytes == 10)
        #expect(session.enqueue("1") == .overflow)

        var multibyte = openSessionWithoutReceiver(.init(maxQueuedBytes: 3))
        #expect(multibyte.enqueue("é") == .queued)
        #expect(multibyte.enqueue("é") == .overflow)
    }

    @Test func oneMessageLargerThanTheBoundFitsAnEmptyOutbox() {
        // The bounds limit what piles up behind a receiver, not one message's size: an empty outbox
        // takes any single message, and the next one overflows.
        var single = openSessionWithoutReceiver(.init(maxQueuedBytes: 4))
        #expect(single.enqueue("12345") == .queued)
        #expect(single.enqueue("1") == .overflow)
    }

    @Test func enqueueBeforeOpenOrAfterCloseIsNotOpen() {
        // Only an open session takes messages.
        var connecting = SockJSSessionStateMachine()
        #expect(connecting.enqueue("a") == .notOpen)
        var closing = openSessionWithoutReceiver()
        _ = closing.closeRequested(.goAway, now: t0)
        #expect(closing.enqueue("a") == .notOpen)
    }
}

@Suite("Session: closing")
struct SockJSSessionClosingTests {
    @Test func closeWithAStreamingReceiverWritesCloseFrameAndFinishes() {
        // The receiver gets `c[3000,"Go away!"]` and ends; the session lingers for the disconnect delay.
        var session = SockJSSessionStateMachine()
        _ = session.receiverAttached(.streaming, now: t0)
        let now = t0 + .seconds(1)
        #expect(
            session.closeRequested(.goAway, now: now)
                == [.notifyClosed(.goAway), .write(.close(.goAway)), .finishReceiver, .armTimer(now + disconnect)]
        )
        #expect(session.phase == .closing(.goAway))
        #expect(session.receiver == nil)
    }

    @Test func queuedMessagesGoOutBeforeTheCloseFrame() {
        // Messages accepted before the close are delivered, then the close frame.
        var session = SockJSSessionStateMachine()
        _ = session.receiverAttached(.streaming, now: t0)
        _ = session.enqueue("last words")
        #expect(
            session.closeRequested(.goAway, now: t0)
                == [.notifyClosed(.goAway), .write(.messages(["last words"])), .write(.close(.goAway)), .finishReceiver, .armTimer(t0 + disconnect)]
        )
    }

    @Test func queuedMessagesReachAWaitingPollBeforeTheCloseFrame() {
        // Messages accepted before the close are delivered exactly once, ahead of the close frame, on a poll too.
        var session = openSessionWithoutReceiver()
        _ = session.receiverAttached(.polling, now: t0)
        #expect(session.enqueue("bye") == .queued)
        let onThisPoll = writes(session.closeRequested(.goAway, now: t0))
        let onNextPoll = writes(session.receiverAttached(.polling, now: t0 + .seconds(1)))
        #expect(onThisPoll.first == .messages(["bye"]))
        let delivered = onThisPoll + onNextPoll
        #expect(delivered.filter { $0 == .messages(["bye"]) }.count == 1)
        #expect(delivered.contains(.close(.goAway)))
    }

    @Test func queuedMessagesGoOutBeforeTheCloseFrameOnAWebSocket() {
        // The same holds for a SockJS websocket: messages, then the close frame.
        var session = SockJSSessionStateMachine()
        _ = session.receiverAttached(.webSocket, now: t0)
        _ = session.enqueue("bye")
        #expect(writes(session.closeRequested(.goAway, now: t0)) == [.messages(["bye"]), .close(.goAway)])
    }

    @Test func everyLaterReceiverGetsTheCloseFrameAgain() {
        // The suite: after the close, each new request gets `c[3000,"Go away!"]` again, not 2010.
        var session = openSessionWithoutReceiver()
        #expect(session.closeRequested(.goAway, now: t0) == [.notifyClosed(.goAway)])
        for second in 1...3 {
            let now = t0 + .seconds(Int64(second))
            #expect(session.receiverAttached(.polling, now: now) == [.write(.close(.goAway)), .finishReceiver, .armTimer(now + disconnect)])
        }
        let now = t0 + .seconds(4)
        #expect(session.receiverAttached(.streaming, now: now) == [.write(.close(.goAway)), .finishReceiver, .armTimer(now + disconnect)])
    }

    @Test func pollAfterCloseGetsQueuedMessagesFirstThenTheCloseFrame() {
        // Messages queued before the close reach the next poll; the poll after that gets the close frame.
        var session = openSessionWithoutReceiver()
        _ = session.enqueue("a")
        _ = session.enqueue("b")
        _ = session.closeRequested(.goAway, now: t0)
        #expect(session.receiverAttached(.polling, now: t0) == [.write(.messages(["a", "b"])), .finishReceiver, .armTimer(t0 + disconnect)])
        #expect(session.receiverAttached(.polling, now: t0) == [.write(.close(.goAway)), .finishReceiver, .armTimer(t0 + disconnect)])
    }

    @Test func streamingAfterCloseGetsQueuedMessagesAndTheCloseFrame() {
        // A streaming receiver can take both frames at once.
        var session = openSessionWithoutReceiver()
        _ = session.enqueue("a")
        _ = session.closeRequested(.goAway, now: t0)
        #expect(
            session.receiverAttached(.streaming, now: t0)
                == [.write(.messages(["a"])), .write(.close(.goAway)), .finishReceiver, .armTimer(t0 + disconnect)]
        )
    }

    @Test func closingTwiceDoesNothingTheSecondTime() {
        // Once closing, another close request has no effect.
        var session = openSessionWithoutReceiver()
        _ = session.closeRequested(.goAway, now: t0)
        #expect(session.closeRequested(.serverShuttingDown, now: t0) == [])
        #expect(session.phase == .closing(.goAway))
    }

    @Test func closeWithAWebSocketReceiverEndsTheSession() {
        // A websocket gets the close frame and is closed; the session is over at once.
        var session = SockJSSessionStateMachine()
        _ = session.receiverAttached(.webSocket, now: t0)
        #expect(session.closeRequested(.goAway, now: t0) == [.notifyClosed(.goAway), .write(.close(.goAway)), .finishReceiver, .reap])
        #expect(session.phase == .closed)
        #expect(session.deadline == nil)
    }
}

@Suite("Session: interrupted receivers")
struct SockJSSessionAbortTests {
    @Test(arguments: [SockJSSessionStateMachine.ReceiverKind.polling, .streaming])
    func abortedReceiverClosesTheSessionWith1002(kind: SockJSSessionStateMachine.ReceiverKind) {
        // Frames may have been lost on a cut connection: the session closes with 1002 "Connection interrupted".
        var session = openSessionWithoutReceiver()
        _ = session.receiverAttached(kind, now: t0)
        _ = session.enqueue("maybe lost")
        let now = t0 + .seconds(1)
        let actions = session.receiverDetached(aborted: true, now: now)
        #expect(actions.contains(.notifyClosed(.connectionInterrupted)))
        #expect(actions.last == .armTimer(now + disconnect))
        #expect(session.phase == .closing(.connectionInterrupted))
        // The suite accepts `c[1002,"Connection interrupted"]` for the next request.
        let next = t0 + .seconds(2)
        #expect(
            session.receiverAttached(.polling, now: next)
                == [.write(.close(.connectionInterrupted)), .finishReceiver, .armTimer(next + disconnect)]
        )
        #expect(SockJSFrame.close(.connectionInterrupted).text == #"c[1002,"Connection interrupted"]"#)
    }

    @Test func normalDetachKeepsTheSessionOpen() {
        // A streaming response that ended normally leaves the session open for the next receiver.
        var session = SockJSSessionStateMachine()
        _ = session.receiverAttached(.streaming, now: t0)
        let now = t0 + .seconds(1)
        #expect(session.receiverDetached(aborted: false, now: now) == [.armTimer(now + disconnect)])
        #expect(session.phase == .open)
        #expect(session.receiver == nil)
    }

    @Test func detachWithoutAReceiverDoesNothing() {
        // Nothing is attached, so there is nothing to detach.
        var session = openSessionWithoutReceiver()
        #expect(session.receiverDetached(aborted: true, now: t0) == [])
        #expect(session.phase == .open)
    }

    @Test func webSocketDetachEndsTheSession() {
        // A websocket is the session's only receiver: when it goes, the application is told and the session is reaped.
        var session = SockJSSessionStateMachine()
        _ = session.receiverAttached(.webSocket, now: t0)
        let actions = session.receiverDetached(aborted: false, now: t0)
        #expect(actions.count == 2)
        #expect(actions.contains { if case .notifyClosed = $0 { true } else { false } })
        #expect(actions.last == .reap)
        #expect(session.phase == .closed)
    }

    @Test func webSocketDetachReportsTheGivenReason() {
        // The client's close code and reason reach the application.
        var session = SockJSSessionStateMachine()
        _ = session.receiverAttached(.webSocket, now: t0)
        let reason = SockJSCloseReason(code: 4001, reason: "bye")
        #expect(session.receiverDetached(aborted: false, reason: reason, now: t0) == [.notifyClosed(reason), .reap])
    }

    @Test func abortedWebSocketIsAnInterruption() {
        // A websocket cut by the network closes the session with 1002.
        var session = SockJSSessionStateMachine()
        _ = session.receiverAttached(.webSocket, now: t0)
        #expect(session.receiverDetached(aborted: true, now: t0) == [.notifyClosed(.connectionInterrupted), .reap])
    }
}

@Suite("Session: timers")
struct SockJSSessionTimerTests {
    @Test func heartbeatOnAStreamingReceiverAndRearm() {
        // Every heartbeat interval an attached receiver gets `h`, and the next heartbeat is armed.
        var session = SockJSSessionStateMachine()
        _ = session.receiverAttached(.streaming, now: t0)
        let first = t0 + heartbeat
        #expect(session.timerFired(now: first) == [.write(.heartbeat), .armTimer(first + heartbeat)])
        let second = first + heartbeat
        #expect(session.timerFired(now: second) == [.write(.heartbeat), .armTimer(second + heartbeat)])
        #expect(session.phase == .open)
    }

    @Test func heartbeatEndsAWaitingPoll() {
        // A poll carries one frame, so a heartbeat ends it and the disconnect delay starts.
        var session = openSessionWithoutReceiver()
        _ = session.receiverAttached(.polling, now: t0)
        let now = t0 + heartbeat
        #expect(session.timerFired(now: now) == [.write(.heartbeat), .finishReceiver, .armTimer(now + disconnect)])
        #expect(session.receiver == nil)
    }

    @Test func staleTimerDoesNothing() {
        // A firing before the armed deadline (the deadline moved) is ignored.
        var session = SockJSSessionStateMachine()
        _ = session.receiverAttached(.streaming, now: t0)
        #expect(session.timerFired(now: t0 + .seconds(24)) == [])
        #expect(session.deadline == t0 + heartbeat)
        #expect(session.receiver == .streaming)
    }

    @Test func timerMovedByANewReceiverMakesTheOldFiringStale() {
        // Re-attaching before the disconnect delay ends replaces the deadline; the old one does not reap.
        var session = openSessionWithoutReceiver()
        let attached = t0 + .seconds(3)
        _ = session.receiverAttached(.streaming, now: attached)
        #expect(session.timerFired(now: t0 + disconnect) == [])
        #expect(session.phase == .open)
    }

    @Test func sessionWithoutReceiverTimesOutAfterTheDisconnectDelay() {
        // No receiver for the disconnect delay: the application is told (1000 "Session timed out") and the session reaped.
        var session = openSessionWithoutReceiver()
        #expect(session.timerFired(now: t0 + .seconds(4)) == [])
        #expect(session.timerFired(now: t0 + disconnect) == [.notifyClosed(.sessionTimedOut), .reap])
        #expect(session.phase == .closed)
    }

    @Test func closedSessionIsReapedWithoutASecondNotification() {
        // A session already closed by the application is reaped silently when its delay runs out.
        var session = openSessionWithoutReceiver()
        _ = session.closeRequested(.goAway, now: t0)
        _ = session.receiverAttached(.polling, now: t0)
        #expect(session.timerFired(now: t0 + disconnect) == [.reap])
    }

    @Test func timerWithNothingArmedDoesNothing() {
        // Without an armed deadline there is nothing to fire.
        var session = SockJSSessionStateMachine()
        #expect(session.timerFired(now: t0) == [])
    }
}

@Suite("Session: the disconnect delay and slow downloads")
struct SockJSSessionResponseDrainedTests {
    @Test func disconnectDelayCountsFromWhenTheLastResponseWasWrittenOut() {
        // A poll handed over at t0 but written out only at t0+4 s (a slow client): the session waits
        // the whole delay from t0+4 s, so the timer armed at the poll's end fires stale.
        var session = openSessionWithoutReceiver()
        let written = t0 + .seconds(4)
        #expect(session.responseDrained(now: written) == [.armTimer(written + disconnect)])
        #expect(session.timerFired(now: t0 + disconnect) == [])
        #expect(session.phase == .open)
        #expect(session.timerFired(now: written + disconnect) == [.notifyClosed(.sessionTimedOut), .reap])
    }

    @Test func responseDrainedNeverShortensTheDelayNorTouchesAnAttachedReceiver() {
        // Written out before the deadline it already has: nothing changes.
        var session = openSessionWithoutReceiver()
        #expect(session.responseDrained(now: t0) == [])
        // With a receiver attached, the heartbeat timer is its business.
        _ = session.receiverAttached(.streaming, now: t0 + .seconds(1))
        #expect(session.responseDrained(now: t0 + .seconds(2)) == [])
        #expect(session.deadline == t0 + .seconds(1) + heartbeat)
    }

    @Test func sendDecisionsFollowThePhaseAndTheOutbox() {
        // Open with room: deliver. Backed up: hold, up to the bound, then busy. Held ones go first.
        var session = openSessionWithoutReceiver(.init(maxQueuedMessages: 4))
        #expect(session.sendArrived(held: 0, maxHeld: 2) == .deliver)
        #expect(session.sendArrived(held: 1, maxHeld: 2) == .hold)
        _ = session.enqueue(contentsOf: ["a", "b"])
        #expect(session.sendArrived(held: 0, maxHeld: 2) == .hold)
        #expect(session.sendArrived(held: 2, maxHeld: 2) == .refuse(.busy))
        #expect(session.sendOutcomeAfterDelivery == .accepted)
        _ = session.closeRequested(.sendQueueFull, now: t0)
        #expect(session.sendOutcomeAfterDelivery == .refused(.closed))
        #expect(session.sendArrived(held: 0, maxHeld: 2) == .refuse(.closed))
        var closedByApplication = openSessionWithoutReceiver()
        _ = closedByApplication.closeRequested(.goAway, now: t0)
        #expect(closedByApplication.sendOutcomeAfterDelivery == .accepted)
    }
}
