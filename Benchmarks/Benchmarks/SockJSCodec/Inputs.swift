import NIOCore
import SockwaySockJS

/// The sample messages every benchmark in this suite draws from, built once before any measurement.
enum Inputs {
    /// A typical chat-sized message: 20 bytes of plain ASCII, nothing to escape.
    static let ascii20 = "Hello, Sockway! 0123"

    /// 1 KiB of plain ASCII prose: the quoting fast path over a long run.
    static let ascii1K = text(bytes: 1024, from: ["The quick brown fox jumps over the lazy dog. "])

    /// 1 KiB that forces the escape path many times over: quotes, a backslash, a newline, U+2028
    /// (escaped by SockJS because browsers treat it as a line break inside scripts), U+FFF9 (in the
    /// U+FFF0–FFFF escape block) and 4-byte emoji, which are copied through unescaped.
    static let escaped1K = text(
        bytes: 1024,
        from: ["say \"hi\" 👋 ", "line\u{2028}sep ", "tab\there ", "path\\to ", "wörld 🌍 ", "spec\u{FFF9}ial "]
    )

    /// Ten distinct chat-sized (20-byte) messages, for the multi-message payload.
    static let ten20: [String] = (0..<10).map { "Hello, Sockway! 01\($0)x" }

    /// 1 KiB mixing 1-, 2-, 3- and 4-byte UTF-8 sequences.
    static let mixed1K = Array(text(bytes: 1024, from: ["abc ", "é ", "ñø ", "中文 ", "€ ", "😀 "]).utf8)
    /// 64 KiB of the same mix.
    static let mixed64K = Array(text(bytes: 64 * 1024, from: ["abc ", "é ", "ñø ", "中文 ", "€ ", "😀 "]).utf8)
    static let ascii1KBytes = Array(ascii1K.utf8)

    /// The bytes of a client payload (`xhr_send` body): a JSON array of the given messages.
    static func payload(_ messages: [String]) -> ByteBuffer {
        var buffer = ByteBuffer()
        SockJSFrame.messages(messages).write(into: &buffer)
        buffer.moveReaderIndex(forwardBy: 1)  // drop the frame's leading "a": what is left is the JSON array
        return buffer
    }

    /// Cycles through `pieces` until exactly `bytes` UTF-8 bytes, padding with ASCII so no sequence is cut.
    static func text(bytes: Int, from pieces: [String]) -> String {
        var result = ""
        var index = 0
        while true {
            let piece = pieces[index % pieces.count]
            if result.utf8.count + piece.utf8.count > bytes { break }
            result += piece
            index += 1
        }
        result += String(repeating: "x", count: bytes - result.utf8.count)
        precondition(result.utf8.count == bytes)
        return result
    }
}
