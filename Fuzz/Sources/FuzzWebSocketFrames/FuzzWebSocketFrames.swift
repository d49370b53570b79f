import FuzzSupport
import NIOCore
import NIOWebSocket
import SockwayWebSocket

// The WebSocket frame reader (`WebSocketFrameReader`) and the server's connection rules
// (`WebSocketConnectionStateMachine`), permessage-deflate on or off, fed an arbitrary byte stream
// cut into arbitrary reads.
//
// Input: a settings byte (compression, limits), a seed for where reads are cut, then the stream.
// Invariants: no frame over the frame limit comes out; a frame re-encoded by `WebSocketFrameWriter`
// reads back the same; where reading stopped does not change the frames; a delivered text message is
// UTF-8, no message is over the limit, and an uncompressed one is exactly its fragments unmasked;
// pongs echo pings; after the connection closed nothing more is delivered.

private let allocator = ByteBufferAllocator()
/// The zlib state an event loop would share. libFuzzer calls the target from one thread only.
nonisolated(unsafe) private let resources = PerMessageDeflateResources()

@main
enum FuzzWebSocketFramesMain {
    static func main() {
        runLibFuzzer { data, size in fuzz(data!, size) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let settings = input.byte()
    var cutSeed = UInt32(input.byte()) | 0x100
    let stream = input.rest()

    let maxFrameSize = settings & 0x01 == 0 ? 1 << 16 : 200
    let maxMessageSize = settings & 0x02 == 0 ? 1 << 17 : 300
    var compression: PerMessageDeflateCodec?
    if settings & 0x04 != 0 {
        let configuration = PerMessageDeflateConfiguration()
        let parameters = PerMessageDeflateNegotiation.negotiate(offers: ["permessage-deflate"], configuration: configuration)!
        compression = PerMessageDeflateCodec(parameters: parameters, configuration: configuration, resources: resources)
    }

    // The stream as a close reason: cut to fit a control frame, on a character boundary.
    let reason = String(decoding: stream, as: UTF8.self)
    let close = WebSocketConnectionStateMachine.closeFrame(code: 1000, reason: reason)
    fuzzCheck(close.length <= 125 && close.fin && close.opcode == .connectionClose, "a close frame of \(close.length) bytes")
    let written = close.data.getString(at: close.data.readerIndex + 2, length: close.length - 2)
    fuzzCheck(written.map { reason.utf8.starts(with: $0.utf8) } == true, "the close reason is not a prefix of the reason given")

    // The same stream read whole, for comparison with the cut reads.
    var wholeReader = WebSocketFrameReader(maxFrameSize: maxFrameSize)
    wholeReader.append(ByteBuffer(bytes: stream))
    var wholeFrames: [WebSocketFrame] = []
    var wholeFailed = false
    while true {
        do throws(WebSocketFrameReadError) {
            guard let frame = try wholeReader.next() else { break }
            wholeFrames.append(frame)
        } catch {
            wholeFailed = true
            break
        }
    }

    var reader = WebSocketFrameReader(maxFrameSize: maxFrameSize)
    var machine = WebSocketConnectionStateMachine(
        configuration: .init(maxMessageSize: maxMessageSize),
        compression: compression
    )
    var model = MessageModel()
    var frames: [WebSocketFrame] = []
    var failed = false
    var offset = 0
    reading: while offset < stream.count {
        // A small xorshift decides each read's size, 1...64 bytes.
        cutSeed ^= cutSeed << 13
        cutSeed ^= cutSeed >> 17
        cutSeed ^= cutSeed << 5
        let length = min(stream.count - offset, Int(cutSeed % 64) + 1)
        reader.append(ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: stream[offset..<offset + length])))
        offset += length
        while true {
            let frame: WebSocketFrame
            do throws(WebSocketFrameReadError) {
                guard let next = try reader.next() else { break }
                frame = next
            } catch {
                failed = true
                _ = machine.decodingFailed(tooBig: true)
                fuzzCheck(machine.state == .closed, "a stream error left the connection \(machine.state)")
                break reading
            }
            fuzzCheck(frame.length <= maxFrameSize, "frame of \(frame.length) bytes over the limit \(maxFrameSize)")
            checkReencoding(frame, maxFrameSize: maxFrameSize)
            frames.append(frame)
            deliver(frame, to: &machine, model: &model, maxMessageSize: maxMessageSize)
        }
    }
    if !failed {
        fuzzCheck(reader.bufferedBytes == wholeReader.bufferedBytes, "bytes held depend on how the stream was cut")
    }
    // Cutting the stream differently changes nothing.
    fuzzCheck(failed == wholeFailed, "a frame error depends on how the stream was cut")
    fuzzCheck(frames == wholeFrames, "frames depend on how the stream was cut")
    return 0
}

/// Writing the frame again and reading it back gives the same frame.
private func checkReencoding(_ frame: WebSocketFrame, maxFrameSize: Int) {
    // The writer sets FIN and RSV1 only.
    guard !frame.rsv2, !frame.rsv3 else { return }
    let payload = frame.fastUnmaskedData
    let bytes: ByteBuffer
    if let maskKey = frame.maskKey {
        bytes = WebSocketFrameWriter.maskedFrame(
            opcode: frame.opcode, fin: frame.fin, rsv1: frame.rsv1, payload: payload, maskKey: maskKey, allocator: allocator
        )
    } else {
        bytes = WebSocketFrameWriter.frame(opcode: frame.opcode, fin: frame.fin, rsv1: frame.rsv1, payload: payload, allocator: allocator)
    }
    var reader = WebSocketFrameReader(maxFrameSize: maxFrameSize)
    reader.append(bytes)
    let reread = try? reader.next()
    fuzzCheck(reread != nil, "a written frame did not read back: \(hex(bytes.readableBytesView))")
    fuzzCheck(reader.bufferedBytes == 0, "a written frame left bytes over")
    guard let reread else { return }
    fuzzCheck(
        reread.fin == frame.fin && reread.rsv1 == frame.rsv1 && reread.opcode == frame.opcode && reread.maskKey == frame.maskKey,
        "a written frame's header read back differently"
    )
    fuzzCheck(reread.fastUnmaskedData == payload, "a written frame's payload read back differently")
    // Masking twice with the same key is the identity.
    if frame.maskKey != nil {
        fuzzCheck(frame.fastUnmaskedData == frame.unmaskedData, "fast unmasking differs from NIO's")
    }
}

/// What the client has sent of the message in progress, unmasked, to compare deliveries against.
private struct MessageModel {
    var opcode: WebSocketOpcode?
    var compressed = false
    var bytes: [UInt8] = []
}

private func deliver(
    _ frame: WebSocketFrame,
    to machine: inout WebSocketConnectionStateMachine,
    model: inout MessageModel,
    maxMessageSize: Int
) {
    let stateBefore = machine.state
    switch frame.opcode {
    case .text, .binary:
        model = MessageModel(opcode: frame.opcode, compressed: frame.rsv1, bytes: Array(frame.fastUnmaskedData.readableBytesView))
    case .continuation:
        model.bytes += frame.fastUnmaskedData.readableBytesView
    default:
        break
    }
    let action = machine.frameReceived(frame)
    switch action {
    case .none:
        break
    case .text(let message), .binary(let message):
        fuzzCheck(stateBefore == .open, "a message delivered in state \(stateBefore)")
        fuzzCheck(frame.fin, "a message delivered before its last fragment")
        fuzzCheck(message.readableBytes <= maxMessageSize, "a message of \(message.readableBytes) bytes over the limit")
        if case .text = action {
            fuzzCheck(model.opcode == .text, "text delivered for a \(String(describing: model.opcode)) message")
            fuzzCheck(message.withUnsafeReadableBytes { isValidUTF8($0) }, "invalid UTF-8 delivered as text")
        } else {
            fuzzCheck(model.opcode == .binary, "binary delivered for a \(String(describing: model.opcode)) message")
        }
        if !model.compressed {
            fuzzCheck(Array(message.readableBytesView) == model.bytes, "the message is not its fragments unmasked")
        }
        model = MessageModel()
    case .sendPong(let payload):
        fuzzCheck(frame.opcode == .ping && stateBefore == .open, "a pong for a \(frame.opcode)")
        fuzzCheck(payload == frame.fastUnmaskedData, "the pong does not echo the ping")
    case .replyClose(let code, let reason, let echo):
        fuzzCheck(frame.opcode == .connectionClose && stateBefore == .open, "a close reply to a \(frame.opcode)")
        fuzzCheck(echo.opcode == .connectionClose && echo.fin && echo.length <= 125, "a bad close echo")
        fuzzCheck(code == 1005 || WebSocketCloseCode.isSendable(code), "close code \(code) accepted")
        fuzzCheck(reason.utf8.count <= 123, "close reason longer than a control frame allows")
        fuzzCheck(machine.state == .closed, "still \(machine.state) after the close handshake")
    case .closeConnection:
        fuzzCheck(machine.state == .closed, "told to close while \(machine.state)")
    case .fail(let code, _):
        fuzzCheck(stateBefore == .open, "failed twice")
        fuzzCheck(WebSocketCloseCode.isSendable(code), "failed with unsendable code \(code)")
        fuzzCheck(machine.state == .closed, "still \(machine.state) after failing")
    }
    if stateBefore == .closed {
        fuzzCheck(action == .none, "\(action) after the connection closed")
    }
}
