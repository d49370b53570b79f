import NIOCore
import SockwaySocketIO

/// The text form of `packet` as a `String`, and its attachments.
func encode(_ packet: SocketIOPacket) -> (text: String, attachments: [ByteBuffer]) {
    let encoded = packet.encoded()
    return (String(buffer: encoded.text), encoded.attachments)
}

/// Decodes one text message that must be a complete (non-binary) packet.
func decodePacket(_ text: String, configuration: SocketIOPacketDecoder.Configuration = .init()) throws -> SocketIOPacket? {
    if case .packet(let packet) = try SocketIOPacketDecoder.decodeText(text, configuration: configuration) {
        return packet
    }
    return nil
}

/// Decodes one text message that must be a binary header.
func decodeHeader(_ text: String, configuration: SocketIOPacketDecoder.Configuration = .init()) throws -> SocketIOBinaryPacketHeader? {
    if case .binaryHeader(let header) = try SocketIOPacketDecoder.decodeText(text, configuration: configuration) {
        return header
    }
    return nil
}

/// A buffer holding `bytes`.
func buffer(_ bytes: [UInt8]) -> ByteBuffer {
    ByteBuffer(bytes: bytes)
}

/// `value` written as JSON.
func json(_ value: SocketIOValue) -> String {
    value.jsonString
}

/// Parses `text`, writes it back.
func reserialized(_ text: String) throws -> String {
    try SocketIOValue(parsingJSON: text).jsonString
}
