import NIOCore

/// The payload of the `open` packet that starts every session:
/// `{"sid":"…","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`.
///
/// The keys are written in that order, as the reference server writes them, with numbers in whole
/// milliseconds and bytes.
public struct EngineIOHandshake: Hashable, Sendable {
    /// The session id the client must send as `sid` from now on.
    public var sid: String
    /// The transports the session may upgrade to: `[.websocket]` for a polling session (when
    /// upgrades are allowed), `[]` for a WebSocket session, which has nowhere to go.
    public var upgrades: [EngineIOTransport]
    /// How often the server pings. Default 25 s, the reference's default.
    public var pingInterval: Duration
    /// How long the server waits for the pong. Default 20 s, the reference's default.
    public var pingTimeout: Duration
    /// The most bytes a polling body may have (the client batches packets under it). Default
    /// 1,000,000, the reference's `maxHttpBufferSize`.
    public var maxPayload: Int

    /// A handshake with every value defaulted as the reference server does.
    public init(
        sid: String,
        upgrades: [EngineIOTransport] = [.websocket],
        pingInterval: Duration = .milliseconds(25_000),
        pingTimeout: Duration = .milliseconds(20_000),
        maxPayload: Int = EngineIOPayload.defaultMaxPayload
    ) {
        self.sid = sid
        self.upgrades = upgrades
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.maxPayload = maxPayload
    }

    /// The upgrades the reference offers on `transport`: `[.websocket]` from polling when WebSocket is
    /// enabled and upgrades are allowed, else none.
    public static func upgrades(
        from transport: EngineIOTransport,
        enabled: Set<EngineIOTransport> = Set(EngineIOTransport.allCases),
        allowUpgrades: Bool = true
    ) -> [EngineIOTransport] {
        guard allowUpgrades, transport == .polling, enabled.contains(.websocket) else { return [] }
        return [.websocket]
    }

    /// Writes the JSON object (without the `0` type digit) into `buffer`. Strings are escaped as
    /// `JSON.stringify` does: `"` and `\` with a backslash, `\b \f \n \r \t`, other control
    /// characters as `\u00XX`; everything else as UTF-8.
    public func writeJSON(into buffer: inout ByteBuffer) {
        buffer.writeStaticString("{\"sid\":")
        EngineIOJSON.writeQuoted(sid, into: &buffer)
        buffer.writeStaticString(",\"upgrades\":[")
        for (index, upgrade) in upgrades.enumerated() {
            if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            EngineIOJSON.writeQuoted(upgrade.rawValue, into: &buffer)
        }
        buffer.writeStaticString("],\"pingInterval\":")
        buffer.writeString(String(Self.milliseconds(pingInterval)))
        buffer.writeStaticString(",\"pingTimeout\":")
        buffer.writeString(String(Self.milliseconds(pingTimeout)))
        buffer.writeStaticString(",\"maxPayload\":")
        buffer.writeString(String(maxPayload))
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    /// The JSON object as text.
    public var json: String {
        var buffer = ByteBuffer()
        writeJSON(into: &buffer)
        return String(buffer: buffer)
    }

    /// The `open` packet carrying this handshake (`0{"sid":…}`).
    public var openPacket: EngineIOPacket { EngineIOPacket(type: .open, text: json) }

    /// Whole milliseconds, rounded down; negative durations count as zero.
    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        guard !overflow else { return Int64.max }
        return whole + attoseconds / 1_000_000_000_000_000
    }
}

/// JSON text as `JSON.stringify` writes it, for the few strings the module sends.
enum EngineIOJSON {
    /// Writes `text` as a JSON string literal. Runs without characters to escape are copied whole.
    static func writeQuoted(_ text: String, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            var runStart = 0
            for index in utf8.indices {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if index > runStart {
                    buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(utf8)[runStart..<index]))
                }
                writeEscape(byte, into: &buffer)
                runStart = index + 1
            }
            if utf8.count > runStart {
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(utf8)[runStart...]))
            }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    private static func writeEscape(_ byte: UInt8, into buffer: inout ByteBuffer) {
        switch byte {
        case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
        case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
        case 0x08: buffer.writeStaticString("\\b")
        case 0x0C: buffer.writeStaticString("\\f")
        case 0x0A: buffer.writeStaticString("\\n")
        case 0x0D: buffer.writeStaticString("\\r")
        case 0x09: buffer.writeStaticString("\\t")
        default:
            let hex: [UInt8] = Array("0123456789abcdef".utf8)
            buffer.writeStaticString("\\u00")
            buffer.writeInteger(hex[Int(byte >> 4)])
            buffer.writeInteger(hex[Int(byte & 0x0F)])
        }
    }

    /// The JSON text of `text` as a string literal.
    static func quoted(_ text: String) -> String {
        var buffer = ByteBuffer()
        writeQuoted(text, into: &buffer)
        return String(buffer: buffer)
    }
}
