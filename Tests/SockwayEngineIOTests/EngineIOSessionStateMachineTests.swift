import NIOCore
import SockwayCore
import SockwayEngineIO
import Testing

private let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
private let interval = TimeAmount.milliseconds(300)
private let timeout = TimeAmount.milliseconds(200)
private let configuration = EngineIOSessionStateMachine.Configuration(pingInterval: interval, pingTimeout: timeout)
private typealias Action = SessionAction<EngineIOFrame>

/// A polling session whose handshake poll took the open packet.
private func openPollingSession(_ configuration: EngineIOSessionStateMachine.Configuration = configuration) -> EngineIOSessionStateMachine {
    var session = EngineIOSessionStateMachine(sid: "abc", transport: .polling, configuration: configuration)
    _ = session.receiverAttached(.polling, now: t0)
    return session
}

private func packets(_ actions: [Action]) -> [EngineIOPacket] {
    actions.flatMap { action -> [EngineIOPacket] in
        switch action {
        case .write(.packets(let packets)), .endAttached(.packets(let packets)): packets
        default: []
        }
    }
}

@Suite("Engine.IO session: handshake")
struct EngineIOHandshakeSessionTests {
    @Test func pollingHandshakeAnswersWithOpenPacketAndArmsThePing() throws {
        var session = EngineIOSessionStateMachine(sid: "abc", transport: .polling, configuration: configuration)
        let actions = session.receiverAttached(.polling, now: t0)
        #expect(actions == [.write(.packets([session.openPacket])), .notifyOpen, .finishReceiver, .armTimer(t0 + interval)])
        #expect(session.phase == .open)
        #expect(session.receiver == nil)
        let open = try #require(session.openPacket.text)
        #expect(open.contains(#""sid":"abc""#))
        #expect(open.contains(#""upgrades":["websocket"]"#))
        #expect(open.contains(#""pingInterval":300"#))
        #expect(open.contains(#""pingTimeout":200"#))
        #expect(open.contains(#""maxPayload":1000000"#))
    }

    @Test func webSocketHandshakeOffersNoUpgradeAndStaysAttached() throws {
        var session = EngineIOSessionStateMachine(sid: "abc", transport: .websocket, configuration: configuration)
        let actions = session.receiverAttached(.webSocket, now: t0)
        #expect(actions == [.write(.packets([session.openPacket])), .notifyOpen, .armTimer(t0 + interval)])
        #expect(session.receiver == .webSocket)
        #expect(try #require(session.openPacket.text).contains(#""upgrades":[]"#))
    }
}

@Suite("Engine.IO session: polling")
struct EngineIOPollingSessionTests {
    @Test func queuedMessagesGoOutInOnePollInOrder() {
        var session = openPollingSession()
        #expect(session.enqueue("a") == .queued)
        #expect(session.enqueueBinary(ByteBuffer(bytes: [1, 2])) == .queued)
        #expect(session.enqueue(contentsOf: ["b", "c"]) == .queued)
        let actions = session.receiverAttached(.polling, now: t0)
        #expect(actions == [
            .write(.packets([.message("a"), .message(binary: ByteBuffer(bytes: [1, 2])), .message("b"), .message("c")])),
            .finishReceiver,
        ])
        #expect(session.queuedMessages == 0)
    }

    @Test func aWaitingPollTakesTheNextMessages() {
        var session = openPollingSession()
        #expect(session.receiverAttached(.polling, now: t0) == [])
        #expect(session.receiver == .polling)
        _ = session.enqueue("x")
        #expect(session.flush(now: t0) == .writeAndFinish(.packets([.message("x")]), armTimer: t0 + interval))
        #expect(session.receiver == nil)
    }

    @Test func aSecondPollAtOnceEndsTheSession() {
        // The pending poll gets `close`, the newcomer is refused, and the sid is forgotten.
        var session = openPollingSession()
        _ = session.receiverAttached(.polling, now: t0)
        let actions = session.receiverAttached(.polling, now: t0)
        #expect(actions == [.reject(.refused), .notifyClosed(.engineIOTransportError), .endAttached(.packets([.close])), .reap])
        #expect(session.phase == .closed)
    }

    @Test func aCutPollEndsTheSession() {
        var session = openPollingSession()
        _ = session.receiverAttached(.polling, now: t0)
        #expect(session.receiverDetached(aborted: true, reason: nil, now: t0) == [.notifyClosed(.engineIOTransportError), .reap])
    }

    @Test func theClientsClosePacketAnswersTheWaitingPollWithNoop() {
        var session = openPollingSession()
        _ = session.receiverAttached(.polling, now: t0)
        #expect(session.closeReceived(now: t0) == [.notifyClosed(.engineIOTransportClose), .endAttached(.packets([.noop])), .reap])
        #expect(session.enqueue("late") == .notOpen)
    }

    @Test func aServerCloseWaitsForTheNextPollBehindTheQueuedMessages() {
        var session = openPollingSession()
        _ = session.enqueue("last")
        let reason = SockwayCloseReason(code: 4000, reason: "bye")
        #expect(session.closeRequested(reason, now: t0) == [.notifyClosed(reason), .armTimer(t0 + interval + timeout)])
        #expect(session.receiverAttached(.polling, now: t0) == [.write(.packets([.message("last"), .close])), .finishReceiver, .reap])
        #expect(session.phase == .closed)
    }

    @Test func aServerCloseNobodyPollsForIsForgottenAfterAHeartbeat() {
        var session = openPollingSession()
        _ = session.closeRequested(.goAway, now: t0)
        #expect(session.timerFired(now: t0 + interval) == [])
        #expect(session.timerFired(now: t0 + interval + timeout) == [.reap])
    }

    @Test func theOutboxIsBounded() {
        var session = openPollingSession(.init(pingInterval: interval, pingTimeout: timeout, maxQueuedMessages: 1))
        #expect(session.enqueue("1") == .queued)
        #expect(session.enqueue("2") == .overflow)
        #expect(session.isBackedUp)
    }
}

@Suite("Engine.IO session: heartbeat")
struct EngineIOHeartbeatSessionTests {
    @Test func theServerPingsAndAPongArmsTheNextPing() {
        var session = openPollingSession()
        _ = session.receiverAttached(.polling, now: t0)
        let ping = session.timerFired(now: t0 + interval)
        #expect(ping == [.write(.packets([.ping])), .finishReceiver, .armTimer(t0 + interval + timeout)])
        let later = t0 + interval + .milliseconds(50)
        #expect(session.pongReceived(now: later) == [.armTimer(later + interval)])
    }

    @Test func aPingQueuesBehindMessagesWhenNobodyPolls() {
        var session = openPollingSession()
        _ = session.enqueue("m")
        #expect(session.timerFired(now: t0 + interval) == [.armTimer(t0 + interval + timeout)])
        #expect(packets(session.receiverAttached(.polling, now: t0 + interval)) == [.message("m"), .ping])
    }

    @Test func noPongEndsTheSession() {
        var session = openPollingSession()
        _ = session.timerFired(now: t0 + interval)
        #expect(packets(session.receiverAttached(.polling, now: t0 + interval)) == [.ping])
        #expect(session.receiverAttached(.polling, now: t0 + interval) == [])
        let actions = session.timerFired(now: t0 + interval + timeout)
        #expect(actions == [.notifyClosed(.engineIOPingTimeout), .endAttached(.packets([.close])), .reap])
    }

    @Test func aStaleTimerDoesNothing() {
        var session = openPollingSession()
        #expect(session.timerFired(now: t0 + .milliseconds(10)) == [])
        #expect(session.deadline == t0 + interval)
    }

    @Test func webSocketGetsPingsDirectly() {
        var session = EngineIOSessionStateMachine(sid: "s", transport: .websocket, configuration: configuration)
        _ = session.receiverAttached(.webSocket, now: t0)
        #expect(session.timerFired(now: t0 + interval) == [.write(.packets([.ping])), .armTimer(t0 + interval + timeout)])
        #expect(session.timerFired(now: t0 + interval + timeout) == [.notifyClosed(.engineIOPingTimeout), .endAttached(nil), .reap])
    }
}

@Suite("Engine.IO session: upgrade")
struct EngineIOUpgradeSessionTests {
    private let delay = EngineIOSessionStateMachine.upgradePollDelay

    @Test func probeHoldsTheWaitingPollThenEndsItWithNoop() {
        var session = openPollingSession()
        _ = session.receiverAttached(.polling, now: t0)
        let probe = session.probeReceived(now: t0)
        #expect(probe.accepted)
        #expect(probe.actions == [.armTimer(t0 + delay)])
        #expect(session.timerFired(now: t0 + delay) == [.write(.packets([.noop])), .finishReceiver, .armTimer(t0 + interval)])
        // A poll during the probe is held the same way.
        #expect(session.receiverAttached(.polling, now: t0 + delay) == [.armTimer(t0 + delay + delay)])
        #expect(session.upgrade == .probing)
    }

    @Test func aPollHeldWhenTheUpgradeCompletesIsRefused() {
        // The client sent `upgrade` before (or while) it polled: its poll gets 400, as the
        // reference's transport check answers a poll after the upgrade.
        var session = openPollingSession()
        _ = session.probeReceived(now: t0)
        _ = session.receiverAttached(.polling, now: t0)
        let upgrade = session.upgradeReceived()
        #expect(upgrade.accepted)
        #expect(upgrade.actions == [.write(.refused), .finishReceiver, .armTimer(t0 + interval)])
        #expect(session.timerFired(now: t0 + delay) == [])
    }

    @Test func aPollWaitingSinceBeforeTheProbeIsRefusedAtTheUpgradeToo() {
        var session = openPollingSession()
        _ = session.receiverAttached(.polling, now: t0)
        _ = session.probeReceived(now: t0)
        #expect(session.upgradeReceived().actions == [.write(.refused), .finishReceiver, .armTimer(t0 + interval)])
    }

    @Test func noPacketIsLostOrReorderedAcrossTheUpgrade() {
        var session = openPollingSession()
        _ = session.enqueue("1")
        #expect(session.probeReceived(now: t0).accepted)
        _ = session.enqueue("2")
        let upgrade = session.upgradeReceived()
        #expect(upgrade.accepted && upgrade.actions.isEmpty)
        #expect(session.transport == .websocket)
        _ = session.enqueue("3")
        #expect(session.receiverAttached(.webSocket, now: t0) == [.write(.packets([.message("1"), .message("2"), .message("3")]))])
        _ = session.enqueue("4")
        #expect(session.flush(now: t0) == .write(.packets([.message("4")])))
    }

    @Test func aSecondProbeIsRefused() {
        var session = openPollingSession()
        #expect(session.probeReceived(now: t0).accepted)
        #expect(!session.probeReceived(now: t0).accepted)
        _ = session.upgradeReceived()
        #expect(!session.probeReceived(now: t0).accepted)
        #expect(!session.upgradeReceived().accepted)
    }

    @Test func aProbeThatGoesLeavesPolling() {
        var session = openPollingSession()
        _ = session.receiverAttached(.polling, now: t0)
        _ = session.probeReceived(now: t0)
        #expect(session.probeEnded(now: t0) == [.armTimer(t0 + interval)])
        #expect(session.upgrade == .none)
        _ = session.enqueue("m")
        #expect(session.flush(now: t0) == .writeAndFinish(.packets([.message("m")]), armTimer: t0 + interval))
    }

    @Test func aWebSocketSessionCannotUpgrade() {
        var session = EngineIOSessionStateMachine(sid: "s", transport: .websocket, configuration: configuration)
        _ = session.receiverAttached(.webSocket, now: t0)
        #expect(!session.probeReceived(now: t0).accepted)
        #expect(session.receiverAttached(.webSocket, now: t0) == [.reject(.refused)])
    }

    @Test func theUpgradedWebSocketClosingEndsTheSession() {
        var session = openPollingSession()
        _ = session.upgradeReceived()
        _ = session.receiverAttached(.webSocket, now: t0)
        #expect(session.receiverDetached(aborted: false, reason: nil, now: t0) == [.notifyClosed(.engineIOTransportClose), .reap])
    }
}
