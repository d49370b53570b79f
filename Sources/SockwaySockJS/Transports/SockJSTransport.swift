import NIOCore

/// A SockJS transport, described as data: its route, its HTTP shape and how it wraps frames.
///
/// The server needs only three generic adapters (streaming receiver, polling receiver, WebSocket) and
/// one for the send endpoints; everything that differs between transports is here. Each transport is
/// declared in its own file as a static member; ``SockJSTransport/all`` is the registry.
public struct SockJSTransport: Hashable, Sendable, CustomStringConvertible {
    /// What a request on this transport does to its session.
    public enum Role: Hashable, Sendable {
        /// Receives frames until the response budget is spent.
        case receiver(ReceiverStyle)
        /// Carries messages from the client (`xhr_send`, `jsonp_send`).
        case sender(SenderStyle)
        /// A SockJS-framed WebSocket (`/<server>/<session>/websocket`).
        case webSocket
    }

    /// How many frames one receiving request carries.
    public enum ReceiverStyle: Hashable, Sendable {
        /// One frame, then the response ends (long polling).
        case polling
        /// Frames until the response limit is reached (HTTP streaming).
        case streaming
    }

    /// How a sender request carries its payload and is answered.
    public enum SenderStyle: Hashable, Sendable {
        /// The body is the JSON array; answered `204` (xhr_send).
        case xhr
        /// The body is the JSON array or a form with a `d` field; answered `200 ok` (jsonp_send).
        case jsonp
    }

    /// How each frame is wrapped on the wire.
    public enum FrameWrapping: Hashable, Sendable {
        /// `frame\n`
        case newline
        /// `data: frame\r\n\r\n`, with `%`, CR, LF and NUL percent-escaped (the client runs `decodeURI`).
        case eventSource
        /// `<script>\np("frame");\n</script>\r\n`, the frame JSON-quoted in its HTML-safe form.
        case htmlFile
        /// `/**/callback("frame");\r\n`, the frame JSON-quoted in its HTML-safe form.
        case jsonp
        /// The frame as a WebSocket text message.
        case webSocket
    }

    /// The public transport name, as sockjs-client calls it (`xhr-streaming`).
    public let name: String
    /// The last path segment of the session URL (`xhr_streaming`).
    public let pathSuffix: String
    /// The HTTP method of the transport's request.
    public let method: String
    public let role: Role
    /// The response content type, if the transport sends one.
    public let contentType: String?
    public let wrapping: FrameWrapping
    /// Whether the transport answers CORS preflight (`OPTIONS`) requests.
    public let answersPreflight: Bool
    /// Whether the response carries CORS headers.
    public let cors: Bool
    /// Whether the request must carry a `c` or `callback` query parameter.
    public let needsCallback: Bool

    public var description: String { name }

    /// Whether the transport's routes exist when WebSocket is switched off for an endpoint.
    public var isWebSocket: Bool { role == .webSocket }

    /// The methods this transport's route answers, for `Allow` headers.
    public var allowedMethods: [String] { answersPreflight ? [method, "OPTIONS"] : [method] }

    /// Every SockJS session transport, the registry the router looks suffixes up in.
    public static let all: [SockJSTransport] = [
        .webSocket, .xhrPolling, .xhrSend, .xhrStreaming, .eventSource, .htmlFile, .jsonpPolling, .jsonpSend,
    ]

    private static let byPathSuffix: [String: SockJSTransport] = Dictionary(
        uniqueKeysWithValues: all.map { ($0.pathSuffix, $0) }
    )

    /// Looks a transport up by the last segment of a session URL.
    public static func forPathSuffix<S: StringProtocol>(_ suffix: S) -> SockJSTransport? {
        byPathSuffix[String(suffix)]
    }

    /// What the transport writes before the first frame, if anything.
    public func prelude(callback: String?) -> String? {
        switch wrapping {
        case .newline where role == .receiver(.streaming):
            return XHRStreamingPrelude.text
        case .eventSource:
            return "\r\n"
        case .htmlFile:
            return HTMLFilePrelude.text(callback: callback ?? "")
        default:
            return nil
        }
    }

    /// `%`, CR, LF and NUL as `%XX`, everything else as it is: the runs between them found eight bytes
    /// at a time and copied whole.
    static func writePercentEscapingLines(_ bytes: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) {
        var runStart = 0
        var index = 0
        while index < bytes.count {
            if index + 8 <= bytes.count {
                let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                if !SWAR.hasByte(UInt8(ascii: "%"), in: word) && !SWAR.hasByte(0x0D, in: word)
                    && !SWAR.hasByte(0x0A, in: word) && !SWAR.hasByte(0x00, in: word)
                {
                    index += 8
                    continue
                }
            }
            let escape: StaticString
            switch bytes[index] {
            case UInt8(ascii: "%"): escape = "%25"
            case 0x0D: escape = "%0D"
            case 0x0A: escape = "%0A"
            case 0x00: escape = "%00"
            default:
                index += 1
                continue
            }
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<index]))
            buffer.writeStaticString(escape)
            index += 1
            runStart = index
        }
        buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<bytes.count]))
    }

    /// An `a` frame as a quoted JavaScript string (`"a[\"m1\",\"m2\"]"`) in one pass, when no message
    /// needs an escape in either quoting (the JSON one inside, the HTML-safe one around it); `false`,
    /// with nothing written, otherwise. Quoting the frame's text gives the same bytes.
    static func writeQuotedPlainMessages(_ messages: [String], into buffer: inout ByteBuffer) -> Bool {
        SockJSMessageArray.writePlain(
            count: messages.count, { visit in SockJSMessageArray.forEachUTF8(messages, visit) },
            open: "\"a[", quote: "\\\"", close: "]\"", htmlSafe: true, into: &buffer
        )
    }

    /// Writes `frame` wrapped for this transport. `scratch` is reused for the double encoding of
    /// htmlfile and jsonp frames; pass the same buffer on every call to avoid allocations.
    public func writeFrame(
        _ frame: SockJSFrame,
        callback: String?,
        into buffer: inout ByteBuffer,
        scratch: inout ByteBuffer
    ) {
        switch wrapping {
        case .newline:
            frame.write(into: &buffer)
            buffer.writeInteger(UInt8(ascii: "\n"))
        case .webSocket:
            frame.write(into: &buffer)
        case .eventSource:
            buffer.writeStaticString("data: ")
            scratch.clear()
            frame.write(into: &scratch)
            scratch.withUnsafeReadableBytes { Self.writePercentEscapingLines($0, into: &buffer) }
            buffer.writeStaticString("\r\n\r\n")
        case .htmlFile:
            buffer.writeStaticString("<script>\np(")
            scratch.clear()
            frame.write(into: &scratch)
            scratch.withUnsafeReadableBytes { SockJSJSON.writeQuoted(utf8: $0, into: &buffer, htmlSafe: true) }
            buffer.writeStaticString(");\n</script>\r\n")
        case .jsonp:
            buffer.writeStaticString("/**/")
            buffer.writeString(callback ?? "")
            buffer.writeInteger(UInt8(ascii: "("))
            if case .messages(let messages) = frame, Self.writeQuotedPlainMessages(messages, into: &buffer) {
                // Written in one pass.
            } else {
                scratch.clear()
                frame.write(into: &scratch)
                scratch.withUnsafeReadableBytes { SockJSJSON.writeQuoted(utf8: $0, into: &buffer, htmlSafe: true) }
            }
            buffer.writeStaticString(");\r\n")
        }
    }

    /// The frame wrapped for this transport, as a `String` (tests and cold paths).
    public func wrappedFrame(_ frame: SockJSFrame, callback: String? = nil) -> String {
        var buffer = ByteBuffer()
        var scratch = ByteBuffer()
        writeFrame(frame, callback: callback, into: &buffer, scratch: &scratch)
        return String(buffer: buffer)
    }
}
