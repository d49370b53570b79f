import NIOCore
import NIOWebSocket
import SockwayZlib

/// RFC 6455 rules for the server side of one connection, without I/O.
///
/// Feed it each decoded frame; it reassembles fragmented messages, validates UTF-8 as bytes arrive,
/// enforces the message size limit, answers pings and runs the close handshake. The adapter writes the
/// frames it asks for and closes the TCP connection when told.
public struct WebSocketConnectionStateMachine {
    public struct Configuration: Hashable, Sendable {
        /// Largest message, after reassembly, in bytes. Larger ones fail the connection with 1009.
        public var maxMessageSize: Int

        public init(maxMessageSize: Int = 1 << 20) {
            self.maxMessageSize = maxMessageSize
        }
    }

    public enum State: Hashable, Sendable {
        case open
        /// We sent a close frame and wait for the peer's.
        case closeSent
        /// Both close frames are exchanged, or the connection failed; only the TCP close remains.
        case closed
    }

    /// What the adapter must do after a frame.
    public enum Action: Equatable, Sendable {
        case none
        /// A complete text message (valid UTF-8).
        case text(ByteBuffer)
        /// A complete binary message.
        case binary(ByteBuffer)
        /// Answer a ping.
        case sendPong(ByteBuffer)
        /// The peer started the close handshake: send this close frame back, then close the connection.
        /// `code` is what the peer sent (1005 if it sent none).
        case replyClose(code: UInt16, reason: String, echo: WebSocketFrame)
        /// The peer answered our close: close the connection.
        case closeConnection
        /// The peer broke the protocol: send this close frame, then close the connection.
        case fail(code: UInt16, reason: String)
    }

    public let configuration: Configuration
    public private(set) var state: State = .open
    private var messageOpcode: WebSocketOpcode?
    private var message = ByteBuffer()
    private var validator = UTF8Validator()
    private var messageCompressed = false
    /// permessage-deflate, when negotiated: RSV1 marks a compressed message.
    public private(set) var compression: PerMessageDeflateCodec?
    /// Bytes through permessage-deflate since ``takeDeflateCounts()`` last took them.
    private var deflateCounts = DeflateCounts()

    /// Message bytes before and after permessage-deflate, both ways (for a compression ratio).
    public struct DeflateCounts: Sendable, Equatable {
        public var sentPlain = 0
        public var sentCompressed = 0
        public var receivedPlain = 0
        public var receivedCompressed = 0
        public init() {}
    }

    /// What went through permessage-deflate since the last call; the counts start again from zero.
    public mutating func takeDeflateCounts() -> DeflateCounts {
        defer { deflateCounts = DeflateCounts() }
        return deflateCounts
    }

    public init(configuration: Configuration = .init(), compression: PerMessageDeflateCodec? = nil) {
        self.configuration = configuration
        self.compression = compression
    }

    /// Handles one frame from the client.
    public mutating func frameReceived(_ frame: WebSocketFrame) -> Action {
        switch state {
        case .closed:
            return .none
        case .open, .closeSent:
            break
        }
        guard frame.maskKey != nil else { return fail(WebSocketCloseCode.protocolError, "Unmasked client frame") }
        // RSV1 means "compressed" on the first frame of a message, and only with permessage-deflate;
        // everything else must have all reserved bits clear.
        let mayCompress = compression != nil && (frame.opcode == .text || frame.opcode == .binary)
        guard frame.reservedBits.isEmpty || (mayCompress && frame.reservedBits == .rsv1) else {
            return fail(WebSocketCloseCode.protocolError, "Reserved bits set")
        }
        switch frame.opcode {
        case .ping, .pong, .connectionClose:
            guard frame.fin else { return fail(WebSocketCloseCode.protocolError, "Fragmented control frame") }
            guard frame.length <= 125 else { return fail(WebSocketCloseCode.protocolError, "Control frame too long") }
            return controlFrameReceived(frame)
        case .text, .binary:
            guard messageOpcode == nil else {
                return fail(WebSocketCloseCode.protocolError, "New message inside a fragmented one")
            }
            guard state == .open else { return .none }
            messageOpcode = frame.opcode
            messageCompressed = frame.reservedBits.contains(.rsv1)
            // `message` is always empty here (finishing or failing a message replaces it); clearing
            // the shared empty buffer would allocate.
            validator = UTF8Validator()
            return appendFragment(frame, first: true)
        case .continuation:
            guard messageOpcode != nil else {
                return fail(WebSocketCloseCode.protocolError, "Continuation without a message")
            }
            guard state == .open else { return .none }
            return appendFragment(frame, first: false)
        default:
            return fail(WebSocketCloseCode.protocolError, "Reserved opcode")
        }
    }

    /// The application closes the connection. Returns the close frame to send, or `nil` if closing
    /// has already begun.
    public mutating func closeRequested(code: UInt16, reason: String) -> WebSocketFrame? {
        guard state == .open else { return nil }
        state = .closeSent
        return Self.closeFrame(code: code, reason: reason)
    }

    /// The frame reader reported an error in the byte stream (a frame over the limit).
    public mutating func decodingFailed(tooBig: Bool) -> Action {
        guard state != .closed else { return .none }
        return tooBig
            ? fail(WebSocketCloseCode.messageTooBig, "Message too big")
            : fail(WebSocketCloseCode.protocolError, "Protocol error")
    }

    /// A close frame with `code` and a reason cut to fit the 125-byte control frame limit on a
    /// character boundary.
    public static func closeFrame(code: UInt16, reason: String) -> WebSocketFrame {
        var data = ByteBuffer()
        data.writeInteger(code)
        var reasonBytes = Array(reason.utf8.prefix(123))
        while !reasonBytes.isEmpty, !reasonBytes.withUnsafeBytes({ UTF8Validator.isValid($0) }) {
            reasonBytes.removeLast()
        }
        data.writeBytes(reasonBytes)
        return WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
    }

    private mutating func appendFragment(_ frame: WebSocketFrame, first: Bool) -> Action {
        if messageCompressed {
            return appendCompressedFragment(frame, first: first)
        }
        var data = frame.fastUnmaskedData
        guard message.readableBytes + data.readableBytes <= configuration.maxMessageSize else {
            return fail(WebSocketCloseCode.messageTooBig, "Message too big")
        }
        if messageOpcode == .text {
            let valid = data.withUnsafeReadableBytes { validator.feed($0) }
            guard valid else { return fail(WebSocketCloseCode.invalidPayload, "Invalid UTF-8") }
        }
        if frame.fin && message.readableBytes == 0 {
            // Unfragmented: hand over the frame's own buffer, no copy.
            return finishMessage(data)
        }
        message.writeBuffer(&data)
        guard frame.fin else { return .none }
        let complete = message
        message = ByteBuffer()
        return finishMessage(complete)
    }

    private mutating func appendCompressedFragment(_ frame: WebSocketFrame, first: Bool) -> Action {
        let before = message.writerIndex
        do throws(InflateError) {
            try compression!.inflateFragment(
                frame.fastUnmaskedData,
                first: first,
                final: frame.fin,
                into: &message,
                limit: configuration.maxMessageSize
            )
        } catch .tooBig {
            return fail(WebSocketCloseCode.messageTooBig, "Message too big")
        } catch {
            return fail(WebSocketCloseCode.invalidPayload, "Invalid compressed data")
        }
        deflateCounts.receivedCompressed += frame.length
        deflateCounts.receivedPlain += message.writerIndex - before
        if messageOpcode == .text {
            // Validate what this fragment inflated to, so invalid text fails before the message ends.
            let valid = message.withUnsafeReadableBytes { bytes in
                validator.feed(UnsafeRawBufferPointer(rebasing: bytes[(before - message.readerIndex)...]))
            }
            guard valid else { return fail(WebSocketCloseCode.invalidPayload, "Invalid UTF-8") }
        }
        guard frame.fin else { return .none }
        let complete = message
        message = ByteBuffer()
        return finishMessage(complete)
    }

    private mutating func finishMessage(_ data: ByteBuffer) -> Action {
        let opcode = messageOpcode
        messageOpcode = nil
        messageCompressed = false
        if opcode == .text {
            guard validator.isComplete else { return fail(WebSocketCloseCode.invalidPayload, "Invalid UTF-8") }
            return .text(data)
        }
        return .binary(data)
    }

    /// Compresses an outbound message if permessage-deflate is on and it is worth it. Returns the
    /// bytes to send and whether they are compressed (RSV1 on the frame).
    public mutating func prepareOutbound(_ message: consuming ByteBuffer, allocator: ByteBufferAllocator, headroom: Int) -> (ByteBuffer, compressed: Bool) {
        guard compression != nil, compression!.shouldCompress(byteCount: message.readableBytes) else { return (consume message, false) }
        var output = allocator.buffer(capacity: message.readableBytes / 2 + headroom + 32)
        output.moveWriterIndex(forwardBy: headroom)
        output.moveReaderIndex(forwardBy: headroom)
        guard let compressed = try? compression!.compress(message, into: &output), compressed else { return (message, false) }
        deflateCounts.sentPlain += message.readableBytes
        deflateCounts.sentCompressed += output.readableBytes
        return (output, true)
    }

    private mutating func controlFrameReceived(_ frame: WebSocketFrame) -> Action {
        var data = frame.fastUnmaskedData
        switch frame.opcode {
        case .ping:
            return state == .open ? .sendPong(data) : .none
        case .pong:
            return .none
        default:
            break
        }
        // Close.
        var code: UInt16 = 1005
        var reason = ""
        if data.readableBytes == 1 {
            return fail(WebSocketCloseCode.protocolError, "Close frame with a one-byte body")
        }
        if data.readableBytes >= 2 {
            code = data.readInteger(as: UInt16.self)!
            guard WebSocketCloseCode.isSendable(code) else {
                return fail(WebSocketCloseCode.protocolError, "Invalid close code")
            }
            let valid = data.withUnsafeReadableBytes { UTF8Validator.isValid($0) }
            guard valid else { return fail(WebSocketCloseCode.invalidPayload, "Invalid UTF-8 in close reason") }
            reason = data.readString(length: data.readableBytes) ?? ""
        }
        switch state {
        case .closeSent:
            state = .closed
            return .closeConnection
        case .open:
            state = .closed
            let echoCode = code == 1005 ? WebSocketCloseCode.normalClosure : code
            return .replyClose(code: code, reason: reason, echo: Self.closeFrame(code: echoCode, reason: ""))
        case .closed:
            return .none
        }
    }

    private mutating func fail(_ code: UInt16, _ reason: String) -> Action {
        let wasOpen = state == .open
        state = .closed
        messageOpcode = nil
        message = ByteBuffer()
        // After our close frame went out, the peer gets no second one: just drop the connection.
        return wasOpen ? .fail(code: code, reason: reason) : .closeConnection
    }
}
