import NIOCore

/// What one text message decodes to: a whole packet, or the header of a binary packet whose
/// attachments follow as binary messages.
public enum SocketIODecodedText: Sendable, Hashable {
    /// A complete non-binary packet.
    case packet(SocketIOPacket)
    /// A BINARY_EVENT/BINARY_ACK header; complete it with ``SocketIOBinaryReassembler`` (also when
    /// its count is 0: ``SocketIOBinaryReassembler/reconstruct(_:attachments:)`` with no attachments).
    case binaryHeader(SocketIOBinaryPacketHeader)
}

/// A BINARY_EVENT or BINARY_ACK as its text message gives it: the payload still holds placeholders.
public struct SocketIOBinaryPacketHeader: Sendable, Hashable {
    /// The packet, of type ``SocketIOPacketType/binaryEvent`` or ``SocketIOPacketType/binaryAck``,
    /// with `{"_placeholder":true,"num":i}` objects where the binaries go.
    public var packet: SocketIOPacket
    /// How many binary messages follow (the `<n>` of `<type><n>-`).
    public var attachmentCount: Int

    public init(packet: SocketIOPacket, attachmentCount: Int) {
        self.packet = packet
        self.attachmentCount = attachmentCount
    }
}

extension SocketIOBinaryPacketHeader: CustomStringConvertible {
    /// The header's text form, with its announced attachment count.
    public var description: String {
        var buffer = ByteBuffer()
        _ = packet.encode(into: &buffer, attachmentCount: attachmentCount)
        return String(buffer: buffer)
    }
}

/// The Socket.IO v5 decoder of one connection: feed it each Engine.IO message in order, text or
/// binary; it returns each packet once complete.
///
/// A text message is a packet, unless it is a BINARY_EVENT/BINARY_ACK header: then the next
/// ``SocketIOBinaryPacketHeader/attachmentCount`` messages must be binary and complete it. As in the
/// reference parser, a text message while attachments are awaited, or a binary one while none are, is
/// an error. Any error means the connection should be closed; the decoder is then idle again.
public struct SocketIOPacketDecoder: Sendable {
    /// The decoder's bounds. Every default is the reference server's own limit or a safe stand-in.
    public struct Configuration: Sendable, Hashable {
        /// Most attachments one binary packet may announce. Default 10, the reference parser's
        /// `maxAttachments` default (added in socket.io-parser 4.2.5).
        public var maxAttachments: Int
        /// Most bytes all attachments of one packet may hold together. Default 10,000,000: 10
        /// attachments of Engine.IO's default `maxHttpBufferSize` (1 MB), so nothing the reference
        /// server takes by default is refused, and one connection cannot buffer more.
        public var maxAttachmentBytes: Int
        /// Most arrays/objects nested in a payload. Default 64 (``SocketIOValue/defaultMaxNestingDepth``);
        /// the reference has no bound but its stack.
        public var maxNestingDepth: Int
        /// Whether an EVENT named like one of ``SocketIOPacket/reservedEventNames`` is refused, as the
        /// reference decoder does. Default `true`.
        public var rejectsReservedEventNames: Bool

        /// A configuration; every bound defaults as documented on its property.
        public init(
            maxAttachments: Int = 10,
            maxAttachmentBytes: Int = 10_000_000,
            maxNestingDepth: Int = SocketIOValue.defaultMaxNestingDepth,
            rejectsReservedEventNames: Bool = true
        ) {
            self.maxAttachments = maxAttachments
            self.maxAttachmentBytes = maxAttachmentBytes
            self.maxNestingDepth = maxNestingDepth
            self.rejectsReservedEventNames = rejectsReservedEventNames
        }
    }

    /// The bounds this decoder enforces.
    public let configuration: Configuration
    private var reassembler: SocketIOBinaryReassembler?

    /// A decoder with nothing received yet.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Whether a binary packet is waiting for more attachments.
    public var isAwaitingAttachments: Bool { reassembler != nil }

    /// A text message arrived (its bytes, without Engine.IO's `4`). Returns the packet if it is
    /// complete, `nil` if it is a binary header whose attachments must follow.
    public mutating func textMessageReceived(_ text: ByteBuffer) throws(SocketIOError) -> SocketIOPacket? {
        let result = text.withUnsafeReadableBytes { bytes in
            Result { () throws(SocketIOError) in try self.textMessageReceived(bytes) }
        }
        return try result.get()
    }

    /// A text message arrived, as a `String`.
    public mutating func textMessageReceived(_ text: String) throws(SocketIOError) -> SocketIOPacket? {
        var text = text
        let result = text.withUTF8 { bytes in
            Result { () throws(SocketIOError) in try self.textMessageReceived(UnsafeRawBufferPointer(bytes)) }
        }
        return try result.get()
    }

    /// A text message arrived, as UTF-8 bytes.
    public mutating func textMessageReceived(_ text: UnsafeRawBufferPointer) throws(SocketIOError) -> SocketIOPacket? {
        guard reassembler == nil else {
            reassembler = nil
            throw .unexpectedTextMessage
        }
        switch try Self.decodeText(text, configuration: configuration) {
        case .packet(let packet):
            return packet
        case .binaryHeader(let header):
            if header.attachmentCount == 0 {
                return try SocketIOBinaryReassembler.reconstruct(header, attachments: [])
            }
            reassembler = SocketIOBinaryReassembler(header: header, maxAttachmentBytes: configuration.maxAttachmentBytes)
            return nil
        }
    }

    /// A binary message arrived. Returns the reassembled packet once its last attachment is in.
    public mutating func binaryMessageReceived(_ bytes: ByteBuffer) throws(SocketIOError) -> SocketIOPacket? {
        guard var current = reassembler else { throw .unexpectedBinaryMessage }
        reassembler = nil  // dropped on error; also keeps `current` uniquely referenced
        guard let packet = try current.attachmentReceived(bytes) else {
            reassembler = current
            return nil
        }
        return packet
    }

    /// Drops a partly received binary packet (the reference's `destroy()`).
    public mutating func reset() {
        reassembler = nil
    }

    /// Decodes one text message on its own, without connection state.
    ///
    /// Grammar: `<type>[<n>-][<namespace>,][<ack id>][<JSON>]`.
    /// - `<type>` is one digit `0`…`6` (else ``SocketIOError/unknownPacketType``; an empty message is
    ///   ``SocketIOError/emptyPacket``).
    /// - For types 5 and 6, `<n>` is one or more decimal digits then `-` (else
    ///   ``SocketIOError/invalidAttachmentCount``), at most `maxAttachments`
    ///   (else ``SocketIOError/tooManyAttachments``).
    /// - A namespace starts with `/` and runs to the first `,` or to the end (`1/admin` and `1/admin,`
    ///   both name `/admin`); it must be valid UTF-8. Without one the namespace is `/`.
    /// - The ack id is the decimal digits that follow, at most ``SocketIOPacket/maxAckID``.
    /// - Whatever remains must be one JSON value (see `SocketIOValue(parsingJSON:)`)
    ///   of a shape the type allows (``SocketIOPacket/validatePayload(rejectingReservedEventNames:)``).
    /// - A binary header's placeholders must each have an integer `num` below `<n>`, each used once
    ///   (``SocketIOError/invalidPlaceholder``), so a bad header fails before its attachments are held.
    public static func decodeText(_ text: UnsafeRawBufferPointer, configuration: Configuration = Configuration()) throws(SocketIOError) -> SocketIODecodedText {
        guard let first = text.first else { throw .emptyPacket }
        guard first >= UInt8(ascii: "0"), let type = SocketIOPacketType(rawValue: first &- UInt8(ascii: "0")) else {
            throw .unknownPacketType
        }
        var index = 1
        var attachmentCount = 0
        if type.isBinary {
            let start = index
            while index < text.count, text[index] >= UInt8(ascii: "0"), text[index] <= UInt8(ascii: "9") {
                let (times10, overflow) = attachmentCount.multipliedReportingOverflow(by: 10)
                attachmentCount = times10 + Int(text[index] - UInt8(ascii: "0"))
                if overflow || attachmentCount > configuration.maxAttachments { throw .tooManyAttachments }
                index += 1
            }
            guard index > start, index < text.count, text[index] == UInt8(ascii: "-") else { throw .invalidAttachmentCount }
            index += 1
        }

        var namespace = SocketIOPacket.mainNamespace
        if index < text.count, text[index] == UInt8(ascii: "/") {
            let start = index
            while index < text.count, text[index] != UInt8(ascii: ",") { index += 1 }
            let raw = UnsafeRawBufferPointer(rebasing: text[start..<index])
            guard SocketIOUTF8.isValid(raw) else { throw .invalidNamespace }
            namespace = String(decoding: raw, as: UTF8.self)
            if index < text.count { index += 1 }  // the comma
        }

        var ackID: UInt64?
        if index < text.count, text[index] >= UInt8(ascii: "0"), text[index] <= UInt8(ascii: "9") {
            var id: UInt64 = 0
            while index < text.count, text[index] >= UInt8(ascii: "0"), text[index] <= UInt8(ascii: "9") {
                id = id * 10 + UInt64(text[index] - UInt8(ascii: "0"))
                if id > SocketIOPacket.maxAckID { throw .ackIDTooLarge }
                index += 1
            }
            ackID = id
        }

        var data: SocketIOValue?
        if index < text.count {
            data = try SocketIOValue(
                parsingJSON: UnsafeRawBufferPointer(rebasing: text[index...]),
                maxNestingDepth: configuration.maxNestingDepth
            )
        }
        let packet = SocketIOPacket(type: type, namespace: namespace, data: data, ackID: ackID)
        try packet.validatePayload(rejectingReservedEventNames: configuration.rejectsReservedEventNames)
        guard type.isBinary else { return .packet(packet) }
        let header = SocketIOBinaryPacketHeader(packet: packet, attachmentCount: attachmentCount)
        try SocketIOBinaryReassembler.checkPlaceholders(header)
        return .binaryHeader(header)
    }

    /// Decodes one text message on its own, from a `ByteBuffer`'s readable bytes.
    public static func decodeText(_ text: ByteBuffer, configuration: Configuration = Configuration()) throws(SocketIOError) -> SocketIODecodedText {
        let result = text.withUnsafeReadableBytes { bytes in
            Result { () throws(SocketIOError) in try decodeText(bytes, configuration: configuration) }
        }
        return try result.get()
    }

    /// Decodes one text message on its own, from a `String`.
    public static func decodeText(_ text: String, configuration: Configuration = Configuration()) throws(SocketIOError) -> SocketIODecodedText {
        var text = text
        let result = text.withUTF8 { bytes in
            Result { () throws(SocketIOError) in try decodeText(UnsafeRawBufferPointer(bytes), configuration: configuration) }
        }
        return try result.get()
    }
}
