import FuzzSupport
import NIOCore
import SockwaySockJS

// The SockJS payload reader: `xhr_send`/`jsonp_send` bodies (`SockJSServiceRules.parseSendBody`), the
// JSON array reader (`SockJSPayload`) and the `websocket` transport's messages.
//
// Input: one mode byte, one limit byte, then the body.
// Invariants: what parses re-encodes (`SockJSJSON.quoted`) to an array that parses to the same
// messages; the repairing reader agrees with the refusing one wherever the latter accepts; no message
// over `maxMessageBytes` gets through; nothing is accepted that is not UTF-8.

@main
enum FuzzSockJSPayloadMain {
    static func main() {
        runLibFuzzer { data, size in fuzz(data!, size) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let mode = input.byte()
    let limitByte = input.byte()
    let body = input.rest()
    let maxMessageBytes = limitByte == 0 ? Int.max : Int(limitByte)

    switch mode % 6 {
    case 0:
        // xhr_send: the body is the JSON array.
        let buffer = ByteBuffer(bytes: body)
        let outcome = parse(buffer, transport: .xhrSend, contentType: "application/json", maxMessageBytes: maxMessageBytes)
        checkSendOutcome(outcome, body: body, maxMessageBytes: maxMessageBytes)
        if case .success(let messages) = outcome { checkArrayRoundTrip(messages) }
    case 1:
        // jsonp_send as a form: `d=<percent-encoded array>`.
        let buffer = ByteBuffer(bytes: body)
        let outcome = parse(buffer, transport: .jsonpSend, contentType: "application/x-www-form-urlencoded", maxMessageBytes: maxMessageBytes)
        if case .success(let messages) = outcome {
            fuzzCheck(messages.allSatisfy { $0.utf8.count <= maxMessageBytes }, "message over maxMessageBytes")
            // The form value alone is what was parsed.
            let d = SockJSQuery.formValue(named: "d", in: body)
            fuzzCheck(d != nil, "jsonp form accepted without a d field")
            let direct = d!.withUnsafeBytes { bytes in Result { () throws(SockJSPayloadError) in try SockJSPayload.parseArray(bytes) } }
            fuzzCheck(direct == .success(messages), "form body and its d field parse differently")
            checkArrayRoundTrip(messages)
        }
        // jsonp_send with a JSON body is parsed as xhr_send is.
        let plain = parse(buffer, transport: .jsonpSend, contentType: "text/plain", maxMessageBytes: maxMessageBytes)
        let xhr = parse(buffer, transport: .xhrSend, contentType: "text/plain", maxMessageBytes: maxMessageBytes)
        fuzzCheck(plain == xhr, "jsonp_send text body and xhr_send body parse differently")
    case 2:
        // The websocket transport: an array or a single value; the WebSocket layer guarantees UTF-8.
        guard isValidUTF8(body) else { return 0 }
        let outcome = Result { () throws(SockJSPayloadError) in try SockJSPayload.parseWebSocketMessage(body) }
        if case .success(let messages) = outcome {
            checkArrayRoundTrip(messages)
            // A message that is an array parses as the same messages through the array reader.
            let asArray = Result { () throws(SockJSPayloadError) in try SockJSPayload.parseArray(body) }
            if case .success(let arrayMessages) = asArray {
                fuzzCheck(arrayMessages == messages, "websocket message and array reader disagree")
            }
        }
    case 3:
        // The client side's repairing reader against the server's refusing one.
        let refused = Result { () throws(SockJSPayloadError) in try SockJSPayload.parseArray(body) }
        let repaired = Result { () throws(SockJSPayloadError) in try SockJSPayload.parseArray(body, repair: .replaceWithU_FFFD) }
        if case .success(let messages) = refused {
            fuzzCheck(repaired == .success(messages), "repair changed a payload that needed none")
        }
        if case .success(let messages) = repaired {
            // Repaired text is always valid and re-encodes.
            checkArrayRoundTrip(messages)
        }
        fuzzCheck(SockJSPayload.isValidUTF8(body) == isValidUTF8(body), "UTF-8 validator disagrees with the standard library")
    case 4:
        checkServerFrame(body)
    default:
        checkBodyDecoder(body, settings: limitByte)
    }
    return 0
}

private func parse(
    _ body: ByteBuffer,
    transport: SockJSTransport,
    contentType: String?,
    maxMessageBytes: Int
) -> Result<[String], SockJSPayloadError> {
    Result { () throws(SockJSPayloadError) in
        try SockJSServiceRules.parseSendBody(body, transport: transport, contentType: contentType, maxMessageBytes: maxMessageBytes)
    }
}

private func checkSendOutcome(_ outcome: Result<[String], SockJSPayloadError>, body: UnsafeRawBufferPointer, maxMessageBytes: Int) {
    switch outcome {
    case .success(let messages):
        fuzzCheck(isValidUTF8(body), "a body that is not UTF-8 was accepted: \(hex(body))")
        fuzzCheck(messages.allSatisfy { $0.utf8.count <= maxMessageBytes }, "message over maxMessageBytes")
    case .failure(.messageTooLarge):
        // Only a parse that succeeds without the limit can be too large with it.
        let unlimited = parse(ByteBuffer(bytes: body), transport: .xhrSend, contentType: nil, maxMessageBytes: .max)
        guard case .success(let messages) = unlimited else {
            fuzzCheck(false, "messageTooLarge for a body that does not parse")
            return
        }
        fuzzCheck(messages.contains { $0.utf8.count > maxMessageBytes }, "messageTooLarge with every message within the limit")
    case .failure:
        break
    }
}

/// A frame from a server, as the client reads it: the frame parser and the batch reader (which keeps
/// messages as bytes) agree, and a parsed frame writes back to text that parses to it again.
private func checkServerFrame(_ body: UnsafeRawBufferPointer) {
    let direct = Result { () throws(SockJSFrameError) in try SockJSFrame.parse(body) }
    let received = Result { () throws(SockJSFrameError) in try SockJSReceivedFrame.parse(ByteBuffer(bytes: body)) }
    fuzzCheck(direct == received.map(\.decoded), "frame parser and batch reader disagree: \(direct) vs \(received.map(\.decoded))")
    if case .success(.messages(let batch)) = received {
        var viaBytes: [String] = []
        batch.forEach { viaBytes.append(String(decoding: $0, as: UTF8.self)) }
        fuzzCheck(batch.count == viaBytes.count && viaBytes == batch.strings, "a batch's bytes and strings disagree")
    }
    guard case .success(let frame) = direct else { return }
    var written = ByteBuffer()
    frame.write(into: &written)
    let reread = Result { () throws(SockJSFrameError) in try SockJSFrame.parse(written) }
    fuzzCheck(reread == .success(frame), "frame \(frame) wrote as \(String(buffer: written)), read back as \(reread)")
}

/// A response body cut into frames (xhr, eventsource, jsonp): how TCP cuts the body changes nothing,
/// and no more than a line is held.
private func checkBodyDecoder(_ body: UnsafeRawBufferPointer, settings: UInt8) {
    let format: SockJSBodyDecoder.Format = [.lines, .eventSource, .jsonp][Int(settings % 3)]
    let maxLineBytes = settings & 0x80 == 0 ? 1 << 16 : 48
    func decode(cutEvery step: Int) -> (frames: [SockJSFrame], error: SockJSFrameError?) {
        var decoder = SockJSBodyDecoder(format: format, maxLineBytes: maxLineBytes)
        var frames: [SockJSFrame] = []
        var offset = 0
        repeat {
            let end = min(body.count, offset + step)
            decoder.append(ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: body[offset..<end])))
            offset = end
            while true {
                do throws(SockJSFrameError) {
                    guard let frame = try decoder.next() else { break }
                    frames.append(frame.decoded)
                } catch {
                    return (frames, error)
                }
            }
            fuzzCheck(decoder.bufferedBytes <= maxLineBytes, "\(decoder.bufferedBytes) bytes held, over a line's limit")
        } while offset < body.count
        return (frames, nil)
    }
    let whole = decode(cutEvery: max(body.count, 1))
    let cut = decode(cutEvery: Int(settings >> 3 & 0x0F) + 1)
    fuzzCheck(whole.frames == cut.frames && whole.error == cut.error, "frames depend on how the body was cut: \(whole) vs \(cut)")
}

/// Writing the messages as a JSON array of strings and reading them back gives them unchanged, in
/// both the plain and the HTML-safe quoting.
private func checkArrayRoundTrip(_ messages: [String]) {
    for htmlSafe in [false, true] {
        var buffer = ByteBuffer()
        buffer.writeString("[")
        for (index, message) in messages.enumerated() {
            if index > 0 { buffer.writeString(",") }
            SockJSJSON.writeQuoted(message, into: &buffer, htmlSafe: htmlSafe)
        }
        buffer.writeString("]")
        // Nothing that browsers or proxies mangle goes out raw (the SockJS escape set).
        let written = String(buffer: buffer)
        for scalar in written.unicodeScalars {
            let value = scalar.value
            let mangled =
                value < 0x20 || (0x200C...0x200F).contains(value) || (0x2028...0x202F).contains(value)
                || (0x2060...0x206F).contains(value) || (0xFFF0...0xFFFF).contains(value)
            fuzzCheck(!mangled, "U+\(String(value, radix: 16)) written unescaped")
            fuzzCheck(!htmlSafe || !"<>&".unicodeScalars.contains(scalar), "HTML-safe quoting left \(scalar)")
        }
        let reread = Result { () throws(SockJSPayloadError) in try SockJSPayload.parseArray(buffer) }
        fuzzCheck(
            reread == .success(messages),
            "round trip changed the messages: \(messages.map { hex($0.utf8) }) -> \(String(buffer: buffer))"
        )
    }
}
