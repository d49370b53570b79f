import NIOCore

/// The seven Socket.IO v5 packet types, with their wire digit as raw value.
public enum SocketIOPacketType: UInt8, Sendable, Hashable, CaseIterable {
    /// `0`: a client asks to join a namespace; the server grants it (payload `{"sid":…}`).
    case connect = 0
    /// `1`: leave a namespace.
    case disconnect = 1
    /// `2`: an event, `[name, arguments…]`.
    case event = 2
    /// `3`: the answer to an event that carried an ack id.
    case ack = 3
    /// `4`: the server refuses a CONNECT.
    case connectError = 4
    /// `5`: an event whose binaries follow as attachments.
    case binaryEvent = 5
    /// `6`: an ack whose binaries follow as attachments.
    case binaryAck = 6

    /// Whether the wire form carries an attachment count (`5` and `6`).
    public var isBinary: Bool {
        self == .binaryEvent || self == .binaryAck
    }
}

/// One Socket.IO packet: a type, a namespace, an optional JSON payload and an optional ack id.
///
/// Binary data sits inside ``data`` as ``SocketIOValue/binary(_:)`` values; on the wire it travels as
/// attachments after the text packet (see ``encode(into:)`` and ``SocketIOPacketDecoder``).
public struct SocketIOPacket: Sendable, Hashable {
    /// The packet type. The decoder reports reassembled binary packets as ``SocketIOPacketType/event``
    /// or ``SocketIOPacketType/ack``, as the reference parser does; the encoder picks the binary type
    /// by itself when ``data`` holds binaries.
    public var type: SocketIOPacketType
    /// The namespace, `"/"` for the main one. Written only when it is not `"/"`.
    public var namespace: String
    /// The payload, if any.
    public var data: SocketIOValue?
    /// The acknowledgement id, if the sender wants an ack (0 … ``maxAckID``).
    public var ackID: UInt64?

    /// The largest ack id the decoder takes: 2^53 − 1, JavaScript's `Number.MAX_SAFE_INTEGER`, the
    /// largest id a JavaScript peer can count to exactly.
    public static let maxAckID: UInt64 = (1 << 53) - 1

    /// The main namespace.
    public static let mainNamespace = "/"

    /// Event names that the reference parser refuses in an incoming EVENT, since they mean something
    /// to the Socket.IO libraries themselves.
    public static let reservedEventNames: Set<String> = [
        "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
    ]

    /// A packet; nothing is checked (see ``validatePayload(rejectingReservedEventNames:)``).
    public init(type: SocketIOPacketType, namespace: String = mainNamespace, data: SocketIOValue? = nil, ackID: UInt64? = nil) {
        self.type = type
        self.namespace = namespace
        self.data = data
        self.ackID = ackID
    }

    /// An EVENT: `[name, arguments…]`.
    public static func event(_ name: String, _ arguments: [SocketIOValue] = [], namespace: String = mainNamespace, ackID: UInt64? = nil) -> SocketIOPacket {
        SocketIOPacket(type: .event, namespace: namespace, data: .array([.string(name)] + arguments), ackID: ackID)
    }

    /// An ACK answering the event with `ackID`.
    public static func ack(_ ackID: UInt64, _ arguments: [SocketIOValue] = [], namespace: String = mainNamespace) -> SocketIOPacket {
        SocketIOPacket(type: .ack, namespace: namespace, data: .array(arguments), ackID: ackID)
    }

    /// The event name, if this is an (binary) event whose first element is a string.
    public var eventName: String? {
        guard type == .event || type == .binaryEvent else { return nil }
        return data?[0]?.stringValue
    }

    /// The event's arguments (after the name), or an ack's arguments.
    public var arguments: [SocketIOValue] {
        guard let elements = data?.arrayValue else { return [] }
        switch type {
        case .event, .binaryEvent: return Array(elements.dropFirst())
        case .ack, .binaryAck: return elements
        case .connect, .disconnect, .connectError: return []
        }
    }

    /// Checks the payload's shape for the packet type, as the reference decoder's `isPayloadValid`,
    /// with the payloads that the protocol text makes mandatory required:
    ///
    /// - CONNECT: absent or an object.
    /// - DISCONNECT: absent.
    /// - EVENT, BINARY_EVENT: an array whose first element is a string (not a reserved name when
    ///   `rejectingReservedEventNames`) or a number (the reference allows numbers too).
    /// - ACK, BINARY_ACK: an array, possibly empty.
    /// - CONNECT_ERROR: a string or an object.
    ///
    /// - Throws: ``SocketIOError/invalidPayload`` or ``SocketIOError/reservedEventName``.
    public func validatePayload(rejectingReservedEventNames: Bool = true) throws(SocketIOError) {
        switch type {
        case .connect:
            guard data == nil || data?.objectMembers != nil else { throw .invalidPayload }
        case .disconnect:
            guard data == nil else { throw .invalidPayload }
        case .event, .binaryEvent:
            guard let first = data?[0] else { throw .invalidPayload }
            switch first {
            case .number:
                break
            case .string(let name):
                if rejectingReservedEventNames && Self.reservedEventNames.contains(name) { throw .reservedEventName }
            default:
                throw .invalidPayload
            }
        case .ack, .binaryAck:
            guard data?.arrayValue != nil else { throw .invalidPayload }
        case .connectError:
            guard data?.stringValue != nil || data?.objectMembers != nil else { throw .invalidPayload }
        }
    }
}

extension SocketIOPacket: CustomStringConvertible {
    /// The packet's text form, as ``encode(into:)`` writes it.
    public var description: String {
        var buffer = ByteBuffer()
        _ = encode(into: &buffer)
        return String(buffer: buffer)
    }
}
