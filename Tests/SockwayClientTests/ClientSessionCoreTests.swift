import NIOConcurrencyHelpers
import SockwayAsync
import SockwaySockJS
import Testing

@testable import SockwayClient

/// The client's session rules, without sockets.
@Suite struct ClientSessionCoreTests {
    // An open frame on a session that is already open means the server forgot the session (it timed
    // out) and the request made a new one: messages may be lost, so the session ends with
    // sockjs-client's 1006 "Server lost session" rather than carrying on as if nothing happened.
    @Test func secondOpenFrameEndsTheSessionAsLost() {
        let closed = NIOLockedValueBox<[SockJSCloseReason]>([])
        let core = ClientSessionCore(
            kind: .xhrPolling,
            inbound: InboundQueue(maxMessages: 16, maxBytes: 1024),
            configuration: .init(),
            onClose: { reason in closed.withLockedValue { $0.append(reason) } }
        )
        core.received(.open)
        core.received(.messages(SockJSMessageBatch(["a"])))
        #expect(closed.withLockedValue { $0 }.isEmpty)
        core.received(.open)
        #expect(closed.withLockedValue { $0 } == [SockJSCloseReason(code: 1006, reason: "Server lost session")])
    }
}
