import NIOCore

/// Collects the binary attachments that follow a BINARY_EVENT/BINARY_ACK header, then puts them in
/// place of the header's placeholders.
///
/// ``SocketIOPacketDecoder`` drives one of these per binary packet; use it directly only when the
/// text and binary messages are already sorted out some other way.
public struct SocketIOBinaryReassembler: Sendable {
    /// The header being completed.
    public let header: SocketIOBinaryPacketHeader
    /// Most bytes all attachments may hold together.
    public let maxAttachmentBytes: Int
    private var attachments: [ByteBuffer] = []
    private var receivedBytes = 0
    private var isComplete = false

    /// Starts collecting for `header`, whose placeholders should already have passed
    /// ``checkPlaceholders(_:)`` (the decoder does that).
    public init(header: SocketIOBinaryPacketHeader, maxAttachmentBytes: Int = SocketIOPacketDecoder.Configuration().maxAttachmentBytes) {
        self.header = header
        self.maxAttachmentBytes = maxAttachmentBytes
        attachments.reserveCapacity(min(header.attachmentCount, 64))
    }

    /// How many attachments are still to come.
    public var remainingAttachments: Int { isComplete ? 0 : header.attachmentCount - attachments.count }

    /// An attachment arrived. Returns the complete packet after the last one, else `nil`.
    ///
    /// - Throws: ``SocketIOError/unexpectedBinaryMessage`` if all attachments are already in,
    ///   ``SocketIOError/attachmentsTooLarge`` past ``maxAttachmentBytes``, or
    ///   ``SocketIOError/invalidPlaceholder``.
    public mutating func attachmentReceived(_ bytes: ByteBuffer) throws(SocketIOError) -> SocketIOPacket? {
        guard remainingAttachments > 0 else { throw .unexpectedBinaryMessage }
        receivedBytes += bytes.readableBytes
        guard receivedBytes <= maxAttachmentBytes else { throw .attachmentsTooLarge }
        attachments.append(bytes)
        guard remainingAttachments == 0 else { return nil }
        // Done either way: the attachments are handed over (or refused) and not held any longer.
        isComplete = true
        defer { attachments = [] }
        return try Self.reconstruct(header, attachments: attachments)
    }

    /// Checks that every placeholder in the header's payload has an integer `num` in
    /// `0..<attachmentCount` and that no two share one.
    ///
    /// A placeholder is any object whose `_placeholder` member is `true` (the reference's test).
    /// The reference would also take a repeated `num` (one buffer in two places) and a fractional
    /// one (which yields `undefined`); neither comes from any real encoder, so both are refused.
    /// Attachments that no placeholder names are allowed and dropped, as in the reference.
    public static func checkPlaceholders(_ header: SocketIOBinaryPacketHeader) throws(SocketIOError) {
        guard let data = header.packet.data else { return }
        var used = [Bool](repeating: false, count: header.attachmentCount)
        try visitPlaceholders(data, used: &used)
    }

    private static func visitPlaceholders(_ value: SocketIOValue, used: inout [Bool]) throws(SocketIOError) {
        switch value {
        case .array(let elements):
            for element in elements { try visitPlaceholders(element, used: &used) }
        case .object(let members):
            if let number = try placeholderIndex(value, count: used.count) {
                guard !used[number] else { throw .invalidPlaceholder }
                used[number] = true
                return
            }
            for member in members { try visitPlaceholders(member.value, used: &used) }
        case .null, .bool, .number, .string, .binary:
            return
        }
    }

    /// The attachment index if `value` is a placeholder object, `nil` if it is no placeholder.
    private static func placeholderIndex(_ value: SocketIOValue, count: Int) throws(SocketIOError) -> Int? {
        guard value["_placeholder"] == .bool(true) else { return nil }
        guard let number = value["num"]?.doubleValue, let index = Int(exactly: number), index >= 0, index < count else {
            throw .invalidPlaceholder
        }
        return index
    }

    /// Puts `attachments` in place of the header's placeholders and returns the packet as an EVENT or
    /// ACK (the reference parser reports reassembled packets with the plain types too).
    ///
    /// - Throws: ``SocketIOError/invalidPlaceholder`` (see ``checkPlaceholders(_:)``), also when
    ///   `attachments.count` differs from the header's count.
    public static func reconstruct(_ header: SocketIOBinaryPacketHeader, attachments: [ByteBuffer]) throws(SocketIOError) -> SocketIOPacket {
        guard attachments.count == header.attachmentCount else { throw .invalidPlaceholder }
        var packet = header.packet
        packet.type = header.packet.type == .binaryAck ? .ack : .event
        if let data = packet.data {
            var used = [Bool](repeating: false, count: attachments.count)
            packet.data = try substitute(data, attachments: attachments, used: &used)
        }
        return packet
    }

    private static func substitute(_ value: SocketIOValue, attachments: [ByteBuffer], used: inout [Bool]) throws(SocketIOError) -> SocketIOValue {
        switch value {
        case .array(var elements):
            for position in elements.indices {
                elements[position] = try substitute(elements[position], attachments: attachments, used: &used)
            }
            return .array(elements)
        case .object(var members):
            if let number = try placeholderIndex(value, count: attachments.count) {
                guard !used[number] else { throw .invalidPlaceholder }
                used[number] = true
                return .binary(attachments[number])
            }
            for position in members.indices {
                members[position].value = try substitute(members[position].value, attachments: attachments, used: &used)
            }
            return .object(members)
        case .null, .bool, .number, .string, .binary:
            return value
        }
    }
}
