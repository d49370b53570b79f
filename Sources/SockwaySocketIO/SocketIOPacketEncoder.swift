import NIOCore

/// A packet in wire form: one text message, then its binary attachments, each its own Engine.IO
/// message, in order.
public struct SocketIOEncodedPacket: Sendable, Hashable {
    /// `<type>[<n>-][<namespace>,][<ack id>][<JSON>]`, without Engine.IO's `4` prefix.
    public var text: ByteBuffer
    /// The binaries taken out of the payload, in placeholder order.
    public var attachments: [ByteBuffer]

    /// A packet's text message and attachments.
    public init(text: ByteBuffer, attachments: [ByteBuffer]) {
        self.text = text
        self.attachments = attachments
    }
}

extension SocketIOPacket {
    /// The type written on the wire: an EVENT or ACK whose payload holds binaries goes out as
    /// BINARY_EVENT or BINARY_ACK, as the reference encoder does; any other type as it is.
    public var wireType: SocketIOPacketType {
        switch type {
        case .event where data?.containsBinary == true: .binaryEvent
        case .ack where data?.containsBinary == true: .binaryAck
        default: type
        }
    }

    /// Appends the packet's text form to `buffer` and returns the attachments that must follow it.
    ///
    /// The layout is the reference encoder's: `<type>[<n>-][<namespace>,][<ack id>][<JSON>]`; the
    /// namespace only when it is neither `"/"` nor empty; the attachment count only for the binary
    /// types (even when it is 0). For a binary type each ``SocketIOValue/binary(_:)`` in the payload is
    /// replaced by `{"_placeholder":true,"num":i}`, numbered depth-first, and returned at index `i`.
    /// Binaries in other packet types are written as Node writes a `Buffer` in JSON.
    ///
    /// Nothing is checked: the namespace is written as given (it must start with `/` and hold no `,`
    /// to decode back), and so is any ack id (a JavaScript peer reads ids above
    /// ``maxAckID`` inexactly). Appending lets the caller put Engine.IO's `4` in front, and the same
    /// bytes can go to every receiver of a broadcast.
    public func encode(into buffer: inout ByteBuffer) -> [ByteBuffer] {
        encode(into: &buffer, attachmentCount: nil)
    }

    /// `attachmentCount` overrides the count written for binary types (a decoded header's placeholders
    /// are JSON, not binaries, so counting would give 0).
    func encode(into buffer: inout ByteBuffer, attachmentCount: Int?) -> [ByteBuffer] {
        let wireType = self.wireType
        buffer.writeInteger(UInt8(ascii: "0") + wireType.rawValue)
        if wireType.isBinary {
            SocketIOJSONWriter.writeInteger(Int64(attachmentCount ?? data?.binaryCount ?? 0), into: &buffer)
            buffer.writeInteger(UInt8(ascii: "-"))
        }
        if !namespace.isEmpty && namespace != Self.mainNamespace {
            buffer.writeString(namespace)
            buffer.writeInteger(UInt8(ascii: ","))
        }
        if let ackID {
            if ackID <= UInt64(Int64.max) {
                SocketIOJSONWriter.writeInteger(Int64(ackID), into: &buffer)
            } else {
                buffer.writeString(String(ackID))
            }
        }
        guard let data else { return [] }
        var writer = SocketIOJSONWriter(attachments: wireType.isBinary ? [] : nil)
        writer.write(data, into: &buffer)
        return writer.attachments ?? []
    }

    /// The packet in wire form, in a fresh buffer.
    public func encoded(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> SocketIOEncodedPacket {
        var text = allocator.buffer(capacity: 64)
        let attachments = encode(into: &text)
        return SocketIOEncodedPacket(text: text, attachments: attachments)
    }
}
