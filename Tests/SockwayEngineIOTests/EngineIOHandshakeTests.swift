import NIOCore
import Testing

@testable import SockwayEngineIO

/// Engine.IO v4 "Handshake": the open packet's JSON payload.
@Suite("Engine.IO handshake")
struct EngineIOHandshakeTests {
    @Test("The spec's example handshake, keys in the reference's order")
    func specExample() {
        let handshake = EngineIOHandshake(sid: "lv_VI97HAXpY6yYWAAAC")
        #expect(
            handshake.json
                == #"{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        )
    }

    @Test("The open packet is `0` followed by the JSON, in a text frame and in a payload")
    func openPacket() {
        let packet = EngineIOHandshake(sid: "abc", upgrades: [], pingInterval: .milliseconds(300), pingTimeout: .milliseconds(200)).openPacket
        let expected = #"0{"sid":"abc","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#
        #expect(packet.type == .open)
        #expect(packet.webSocketFrameKind == .text)
        var frame = ByteBuffer()
        packet.writeWebSocketFrameData(into: &frame)
        #expect(String(buffer: frame) == expected)
        #expect(packet.description == expected)
    }

    @Test("Several upgrades are a JSON array")
    func severalUpgrades() {
        let handshake = EngineIOHandshake(sid: "s", upgrades: [.websocket, .polling], maxPayload: 5)
        #expect(handshake.json == #"{"sid":"s","upgrades":["websocket","polling"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":5}"#)
    }

    @Test("Durations are whole milliseconds, rounded down; negative ones are zero")
    func durations() {
        #expect(EngineIOHandshake.milliseconds(.seconds(25)) == 25_000)
        #expect(EngineIOHandshake.milliseconds(.microseconds(1_999)) == 1)
        #expect(EngineIOHandshake.milliseconds(.milliseconds(-5)) == 0)
        #expect(EngineIOHandshake.milliseconds(.zero) == 0)
        #expect(EngineIOHandshake.milliseconds(.seconds(Int64.max)) == Int64.max)
    }

    @Test("The sid is escaped as JSON.stringify does")
    func sidEscaping() {
        #expect(EngineIOJSON.quoted(#"a"b\c"#) == #""a\"b\\c""#)
        #expect(EngineIOJSON.quoted("\u{8}\u{C}\n\r\t") == #""\b\f\n\r\t""#)
        #expect(EngineIOJSON.quoted("\u{0}\u{1F}\u{1E}") == #""\u0000\u001f\u001e""#)
        #expect(EngineIOJSON.quoted("€/😀\u{7F}\u{2028}") == "\"€/😀\u{7F}\u{2028}\"")
        #expect(EngineIOJSON.quoted("") == #""""#)
        #expect(EngineIOHandshake(sid: "x\"y").json.hasPrefix(#"{"sid":"x\"y","#))
    }

    @Test("A handshake with an escaped sid still travels as one polling packet")
    func escapedSidFitsPayload() throws {
        let packet = EngineIOHandshake(sid: "a\u{1E}b").openPacket
        #expect(EngineIOPayload.canCarry(packet.text ?? ""))
        var body = ByteBuffer()
        EngineIOPayload.encode([packet], into: &body)
        #expect(try EngineIOPayload.decode(body) == [packet])
    }

    @Test("Upgrades offered: websocket from polling only, and only when enabled and allowed")
    func offeredUpgrades() {
        #expect(EngineIOHandshake.upgrades(from: .polling) == [.websocket])
        #expect(EngineIOHandshake.upgrades(from: .websocket) == [])
        #expect(EngineIOHandshake.upgrades(from: .polling, enabled: [.polling]) == [])
        #expect(EngineIOHandshake.upgrades(from: .polling, allowUpgrades: false) == [])
    }
}
