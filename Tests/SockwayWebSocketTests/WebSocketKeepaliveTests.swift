import NIOCore
import SockwayWebSocket
import Testing

@Suite("WebSocket keepalive: server pings and idle timeout")
struct WebSocketKeepaliveTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test func neitherSettingNeedsNoTimer() {
        #expect(WebSocketKeepalive(pingInterval: nil, idleTimeout: nil, now: start) == nil)
    }

    @Test func pingsAtTheInterval() throws {
        var keepalive = try #require(WebSocketKeepalive(pingInterval: .seconds(10), idleTimeout: nil, now: start))
        #expect(keepalive.nextDeadline == start + .seconds(10))
        #expect(keepalive.tick(now: start + .seconds(9)) == .none)
        #expect(keepalive.tick(now: start + .seconds(10)) == .ping)
        #expect(keepalive.nextDeadline == start + .seconds(20))
        #expect(keepalive.tick(now: start + .seconds(15)) == .none)
    }

    // Any frame from the peer resets the idle clock; silence for the timeout closes.
    @Test func idleTimeoutCountsFromTheLastFrame() throws {
        var keepalive = try #require(WebSocketKeepalive(pingInterval: nil, idleTimeout: .seconds(30), now: start))
        keepalive.received(now: start + .seconds(20))
        #expect(keepalive.nextDeadline == start + .seconds(50))
        #expect(keepalive.tick(now: start + .seconds(49)) == .none)
        #expect(keepalive.tick(now: start + .seconds(50)) == .close)
    }

    // With both, the earlier deadline wins, and a peer that answers pings stays open.
    @Test func pingsKeepAnAnsweringPeerOpen() throws {
        var keepalive = try #require(WebSocketKeepalive(pingInterval: .seconds(10), idleTimeout: .seconds(25), now: start))
        var now = start
        for _ in 0..<10 {
            now = keepalive.nextDeadline
            #expect(keepalive.tick(now: now) == .ping)
            keepalive.received(now: now + .milliseconds(5))  // the pong
        }
        #expect(now == start + .seconds(100))
    }

    @Test func aSilentPeerIsClosedDespitePings() throws {
        var keepalive = try #require(WebSocketKeepalive(pingInterval: .seconds(10), idleTimeout: .seconds(25), now: start))
        #expect(keepalive.tick(now: keepalive.nextDeadline) == .ping)  // 10 s
        #expect(keepalive.tick(now: keepalive.nextDeadline) == .ping)  // 20 s
        #expect(keepalive.nextDeadline == start + .seconds(25))
        #expect(keepalive.tick(now: keepalive.nextDeadline) == .close)
    }
}
