import Foundation
import SockwayClient
import SockwaySockJS
import Testing

/// The client against another SockJS server: sockjs-node 0.3.24 (Debian `node-sockjs`), started by
/// `scripts/test` with `scripts/interop/sockjs-node-server.js`, its URL in `SOCKWAY_SOCKJS_NODE_URL`.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SOCKWAY_SOCKJS_NODE_URL"] != nil))
struct SockJSNodeInteropTests {
    let base = ProcessInfo.processInfo.environment["SOCKWAY_SOCKJS_NODE_URL"] ?? ""

    /// What sockjs-node carries intact on every transport. (It loses `</script>`-like messages and
    /// U+2028/9 on jsonp; Sockway's server does not, see its own tests.)
    static let messages = ["", "plain", "\"quotes\" and \\backslashes\\", "\u{1F600}", "%25%20+&=", #"a["x"]"#, String(repeating: "y", count: 20_000)]

    @Test(arguments: SockwayClientTransport.sockJS)
    func everyTransportEchoes(transport: SockwayClientTransport) async throws {
        let session = try await SockwayClient.connect(to: base + "/echo", configuration: .init(transports: [transport]))
        #expect(session.transport == transport)
        expectSame(await echo(Self.messages, over: session), Self.messages)
        session.close()
    }

    @Test func fallbackPicksWebSocket() async throws {
        let session = try await SockwayClient.connect(to: base + "/echo")
        #expect(session.transport == .webSocket)
        #expect(await echo(["hello"], over: session) == ["hello"])
        session.close()
    }

    @Test func fallbackSkipsDisabledWebSocket() async throws {
        let session = try await SockwayClient.connect(to: base + "/disabled_websocket_echo")
        #expect(session.transport == .xhrStreaming)
        #expect(await echo(["hello"], over: session) == ["hello"])
        session.close()
    }

    @Test(arguments: [SockwayClientTransport.webSocket, .xhrStreaming, .xhrPolling])
    func serverCloseEndsTheSession(transport: SockwayClientTransport) async throws {
        do {
            let session = try await SockwayClient.connect(to: base + "/close", configuration: .init(transports: [transport]))
            for await _ in session.messages {}
            #expect(session.closeReason == .goAway)
        } catch SockwayClientError.closedBeforeOpen(let reason) {
            #expect(reason == .goAway)
        }
    }

    // sockjs-node's WebSocket (faye) declines permessage-deflate; the client goes on uncompressed.
    @Test func deflateDeclinedStillWorks() async throws {
        let session = try await SockwayClient.connect(
            to: base + "/echo",
            configuration: .init(transports: [.webSocket], webSocketCompression: true)
        )
        #expect(await echo(["uncompressed"], over: session) == ["uncompressed"])
        session.close()
    }
}
