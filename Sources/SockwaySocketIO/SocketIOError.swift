/// Why a Socket.IO packet, its JSON payload or one of its binary attachments was refused.
///
/// Every error means the peer broke the protocol (or exceeded a configured bound); the Socket.IO
/// protocol says the receiver then closes the connection. Compare with the static members:
/// `#expect(throws: SocketIOError.invalidPayload) { ... }`.
public struct SocketIOError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Base: Hashable, Sendable {
        case emptyPacket
        case unknownPacketType
        case invalidAttachmentCount
        case tooManyAttachments
        case invalidNamespace
        case ackIDTooLarge
        case invalidJSON
        case jsonNestingTooDeep
        case invalidUTF8
        case invalidPayload
        case reservedEventName
        case invalidPlaceholder
        case unexpectedTextMessage
        case unexpectedBinaryMessage
        case attachmentsTooLarge
    }

    private let base: Base

    private init(_ base: Base) {
        self.base = base
    }

    /// The message was empty: it has no packet type.
    public static let emptyPacket = SocketIOError(.emptyPacket)
    /// The first character is not a packet type `0`…`6`.
    public static let unknownPacketType = SocketIOError(.unknownPacketType)
    /// A binary packet's attachment count is missing, not decimal digits, or not followed by `-`.
    public static let invalidAttachmentCount = SocketIOError(.invalidAttachmentCount)
    /// A binary packet announces more attachments than ``SocketIOPacketDecoder/Configuration/maxAttachments``.
    public static let tooManyAttachments = SocketIOError(.tooManyAttachments)
    /// The namespace is not valid UTF-8.
    public static let invalidNamespace = SocketIOError(.invalidNamespace)
    /// The acknowledgement id exceeds ``SocketIOPacket/maxAckID`` (2^53 − 1).
    public static let ackIDTooLarge = SocketIOError(.ackIDTooLarge)
    /// The payload is not one JSON value (syntax error, or something after the value).
    public static let invalidJSON = SocketIOError(.invalidJSON)
    /// The payload nests arrays and objects deeper than the configured bound.
    public static let jsonNestingTooDeep = SocketIOError(.jsonNestingTooDeep)
    /// A JSON string or the namespace holds bytes that are not valid UTF-8.
    public static let invalidUTF8 = SocketIOError(.invalidUTF8)
    /// The payload's shape is not allowed for the packet type (see ``SocketIOPacket/validatePayload(rejectingReservedEventNames:)``).
    public static let invalidPayload = SocketIOError(.invalidPayload)
    /// An event's name is one of ``SocketIOPacket/reservedEventNames``.
    public static let reservedEventName = SocketIOError(.reservedEventName)
    /// A binary placeholder's `num` is not an integer, is out of range, or is used twice.
    public static let invalidPlaceholder = SocketIOError(.invalidPlaceholder)
    /// A text message arrived while a binary packet still awaited attachments.
    public static let unexpectedTextMessage = SocketIOError(.unexpectedTextMessage)
    /// A binary message arrived while no binary packet awaited attachments.
    public static let unexpectedBinaryMessage = SocketIOError(.unexpectedBinaryMessage)
    /// A binary packet's attachments together exceed ``SocketIOPacketDecoder/Configuration/maxAttachmentBytes``.
    public static let attachmentsTooLarge = SocketIOError(.attachmentsTooLarge)

    public var description: String {
        switch base {
        case .emptyPacket: "empty packet"
        case .unknownPacketType: "unknown packet type"
        case .invalidAttachmentCount: "illegal attachment count"
        case .tooManyAttachments: "too many attachments"
        case .invalidNamespace: "invalid namespace"
        case .ackIDTooLarge: "acknowledgement id too large"
        case .invalidJSON: "invalid JSON payload"
        case .jsonNestingTooDeep: "JSON payload nested too deep"
        case .invalidUTF8: "invalid UTF-8"
        case .invalidPayload: "invalid payload"
        case .reservedEventName: "reserved event name"
        case .invalidPlaceholder: "illegal attachment placeholder"
        case .unexpectedTextMessage: "got plaintext data when reconstructing a packet"
        case .unexpectedBinaryMessage: "got binary data when not reconstructing a packet"
        case .attachmentsTooLarge: "attachments too large"
        }
    }
}
