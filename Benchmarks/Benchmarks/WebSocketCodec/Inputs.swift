import NIOCore
import NIOWebSocket
import SockwaySockJS
import SockwayWebSocket

/// The frames every benchmark in this target draws from, built once before any measurement.
///
/// The compression inputs are SockJS message frames (`a[...]`), the bytes the server actually
/// compresses. The 300 B and 4 KiB sizes come as pools of distinct frames (same shape, different
/// words, ids and timestamps; words from a 125-word vocabulary) cycled through by the benchmarks:
/// compressing one frame over and over with context takeover would only measure zlib finding a single
/// whole-message back-reference.
enum Inputs {
    /// Frames in each pool: at least 64 KiB of them (twice the 32 KiB window), so a compressor with
    /// context takeover never finds the identical frame in its history.
    static func poolSize(frameBytes: Int) -> Int { max(64, (64 * 1024 + frameBytes - 1) / frameBytes) }

    /// `a["hello, world! this is a typical chat message"]`: 49 bytes, under the default 64-byte
    /// compression threshold. A single frame: with context takeover it compresses to a back-reference
    /// to its previous copy (the best case).
    static let smallFrame = frame(["hello, world! this is a typical chat message"])

    /// Chat messages as a JSON object inside the SockJS string (so every quote is escaped), each
    /// frame exactly 300 bytes (a pool of 219).
    static let chatFrames: [ByteBuffer] = (0..<poolSize(frameBytes: 300)).map { chatFrame(index: $0, bytes: 300) }

    /// A room-history snapshot: one message holding a JSON object with 16 chat entries, each frame
    /// exactly 4096 bytes (a pool of 64).
    static let historyFrames: [ByteBuffer] = (0..<poolSize(frameBytes: 4096)).map { historyFrame(index: $0, bytes: 4096) }

    /// Plain ASCII message texts for the uncompressed inbound and the outbound-frame benchmarks.
    static let ascii20 = "Hello, Sockway! 0123"
    static let ascii1K = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 23).prefix(1024).description

    static let maskKey: WebSocketMaskingKey = [0x37, 0xFA, 0x21, 0x3D]

    // MARK: Building

    static func frame(_ messages: [String]) -> ByteBuffer {
        var buffer = ByteBuffer()
        SockJSFrame.messages(messages).write(into: &buffer)
        return buffer
    }

    /// A masked client frame carrying `payload`, as `WebSocketFrameReader.next()` hands it over
    /// (data still masked).
    static func maskedFrame(_ payload: ByteBuffer, compressed: Bool) -> WebSocketFrame {
        var data = payload
        data.webSocketMask(maskKey)
        var frame = WebSocketFrame(fin: true, opcode: .text, maskKey: maskKey, data: data)
        frame.rsv1 = compressed
        return frame
    }

    /// The bytes of a masked, final client text frame carrying `payload` (up to 64 KiB), as they come
    /// off the connection: header, masking key, masked payload.
    static func maskedWireFrame(_ payload: ByteBuffer) -> ByteBuffer {
        precondition(payload.readableBytes <= 0xFFFF)
        var data = payload
        data.webSocketMask(maskKey)
        var wire = ByteBuffer()
        wire.writeInteger(UInt8(0x81))
        if data.readableBytes < 126 {
            wire.writeInteger(0x80 | UInt8(data.readableBytes))
        } else {
            wire.writeInteger(UInt8(0x80 | 126))
            wire.writeInteger(UInt16(data.readableBytes))
        }
        wire.writeBytes(maskKey)
        wire.writeBuffer(&data)
        return wire
    }

    private static let words = """
        the be to of and a in that have it for not on with he as you do at this but his by from they we say \
        her she or an will my one all would there their what so up out if about who get which go me when make \
        can like time no just him know take people into year your good some could them see other than then now \
        look only come its over think also back after use two how our work first well way even new want because \
        any these give day most us chat room message server client socket frame deflate window session event \
        loop buffer hello world typing online offline meeting lunch coffee release deploy build test review
        """.split(separator: " ").map(String.init)

    /// A deterministic pseudo-random generator (64-bit LCG), so every run compresses the same bytes.
    private struct Generator {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
    }

    /// Exactly `length` bytes of space-separated words (padded with `.`).
    private static func text(length: Int, generator: inout Generator) -> String {
        var result = ""
        while true {
            let word = words[generator.next(words.count)]
            let extra = (result.isEmpty ? 0 : 1) + word.utf8.count
            if result.utf8.count + extra > length { break }
            if !result.isEmpty { result += " " }
            result += word
        }
        result += String(repeating: ".", count: length - result.utf8.count)
        return result
    }

    private static func chatJSON(id: Int, from: String, timestamp: Int, text: String) -> String {
        #"{"type":"chat","room":"general","id":\#(id),"from":"\#(from)","ts":\#(timestamp),"text":"\#(text)"}"#
    }

    private static let users = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]

    private static func chatFrame(index: Int, bytes: Int) -> ByteBuffer {
        var generator = Generator(state: UInt64(index) &+ 1)
        let id = 100_000 + index * 7
        let from = users[index % users.count]
        let timestamp = 1_700_000_000_000 + index * 1_337
        let overhead = frame([chatJSON(id: id, from: from, timestamp: timestamp, text: "")]).readableBytes
        let result = frame([chatJSON(id: id, from: from, timestamp: timestamp, text: text(length: bytes - overhead, generator: &generator))])
        precondition(result.readableBytes == bytes)
        return result
    }

    private static func historyFrame(index: Int, bytes: Int) -> ByteBuffer {
        var generator = Generator(state: UInt64(index) &+ 1_000)
        let count = 16
        func json(_ texts: [String]) -> String {
            let entries = texts.enumerated().map { entry, text in
                chatJSON(id: 100_000 + index * 16 + entry, from: users[(index + entry) % users.count], timestamp: 1_700_000_000_000 + (index * 16 + entry) * 1_337, text: text)
            }
            return #"{"type":"history","room":"general","messages":["# + entries.joined(separator: ",") + "]}"
        }
        let overhead = frame([json(Array(repeating: "", count: count))]).readableBytes
        let room = bytes - overhead
        let texts = (0..<count).map { entry in
            text(length: room / count + (entry < room % count ? 1 : 0), generator: &generator)
        }
        let result = frame([json(texts)])
        precondition(result.readableBytes == bytes)
        return result
    }
}
