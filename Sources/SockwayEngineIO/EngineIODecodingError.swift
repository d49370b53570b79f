/// Why an inbound Engine.IO packet or polling payload was refused.
///
/// The reference server answers any of these by closing the session (`"parse error"`), except
/// ``payloadTooLarge(limit:)``, which it answers with HTTP 413 before reading on; see ``httpStatus``.
public enum EngineIODecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A polling body is longer than the `maxPayload` limit (bytes of the body).
    case payloadTooLarge(limit: Int)
    /// The bytes are not well-formed UTF-8.
    case invalidUTF8
    /// A packet has no bytes at all: an empty text frame, an empty body, or two separators in a row.
    case emptyPacket
    /// A packet starts with a byte that is neither a type digit `0`…`6` nor `b`.
    case unknownPacketType(UInt8)
    /// The base64 after a `b` prefix is malformed (bad character, length or padding).
    case invalidBase64

    /// The HTTP status a polling `POST` gets for this error: 413 for ``payloadTooLarge(limit:)`` (as the
    /// reference), 400 otherwise.
    public var httpStatus: Int {
        if case .payloadTooLarge = self { return 413 }
        return 400
    }

    /// A short text for logs.
    public var description: String {
        switch self {
        case .payloadTooLarge(let limit): return "payload larger than \(limit) bytes"
        case .invalidUTF8: return "invalid UTF-8"
        case .emptyPacket: return "empty packet"
        case .unknownPacketType(let byte): return "unknown packet type byte \(byte)"
        case .invalidBase64: return "invalid base64"
        }
    }
}
