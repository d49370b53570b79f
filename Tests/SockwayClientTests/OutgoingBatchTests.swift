import NIOCore
import Testing

@testable import SockwayClient

@Suite("Outgoing batches: messages as bytes")
struct OutgoingBatchTests {
    private func messages(_ batch: SockwayOutgoingBatch) -> [String] {
        var out: [String] = []
        batch.forEach { out.append(String(decoding: $0, as: UTF8.self)) }
        return out
    }

    // Strings and bytes go in side by side and come out in order; the byte count is the UTF-8 count.
    @Test func keepsOrderAndCounts() {
        var batch = SockwayOutgoingBatch()
        batch.append("one")
        Array("two é".utf8).withUnsafeBytes { batch.append(utf8: $0) }
        batch.append("")
        batch.append(String(repeating: "x", count: 300))
        #expect(batch.count == 4)
        #expect(batch.byteCount == 3 + 6 + 0 + 300)
        #expect(messages(batch) == ["one", "two é", "", String(repeating: "x", count: 300)])
    }

    // Bytes that are not UTF-8 are repaired as String(decoding:) does, so the wire never carries them.
    @Test func invalidUTF8BecomesReplacementCharacters() {
        var batch = SockwayOutgoingBatch()
        [UInt8(ascii: "a"), 0xFF, 0xC3, UInt8(ascii: "b")].withUnsafeBytes { batch.append(utf8: $0) }
        #expect(messages(batch) == ["a\u{FFFD}\u{FFFD}b"])
    }

    // Written in place: the count it returns is what is kept; invalid UTF-8 is repaired there too.
    @Test func messagesWrittenInPlace() {
        var batch = SockwayOutgoingBatch()
        batch.append("before")
        batch.append(capacity: 10) { out in
            for (index, byte) in "abc".utf8.enumerated() { out[index] = byte }
            return 3
        }
        batch.append(capacity: 4) { out in
            out[0] = UInt8(ascii: "x")
            out[1] = 0xFF
            return 2
        }
        batch.append("after")
        #expect(batch.count == 4)
        #expect(messages(batch) == ["before", "abc", "x\u{FFFD}", "after"])
        #expect(batch.byteCount == 6 + 3 + 4 + 5)
    }

    // The one-write quoting for send requests gives what per-message quoting gives, or steps aside.
    @Test func plainBatchesAreQuotedInOneWrite() {
        var batch = SockwayOutgoingBatch()
        for message in ["a", "", "b c", String(repeating: "z", count: 70)] { batch.append(message) }
        var array = ByteBufferAllocator().buffer(string: "[")
        #expect(batch.appendQuotedIfPlain(to: &array))
        #expect(String(buffer: array) == #"["a","","b c",""# + String(repeating: "z", count: 70) + #"""#)
        var more = ByteBufferAllocator().buffer(string: #"["x""#)
        #expect(batch.appendQuotedIfPlain(to: &more))
        #expect(String(buffer: more).hasPrefix(#"["x","a","""#))
        var escaped = SockwayOutgoingBatch()
        escaped.append("needs \" escape")
        var untouched = ByteBufferAllocator().buffer(string: "[")
        #expect(!escaped.appendQuotedIfPlain(to: &untouched))
        #expect(String(buffer: untouched) == "[")
    }

    @Test func asciiCheckLooksAtEveryByte() {
        for length in 0..<20 {
            for position in 0..<max(length, 1) {
                var bytes = Array(repeating: UInt8(ascii: "x"), count: length)
                if length > 0 { bytes[position] = 0x80 }
                #expect(bytes.withUnsafeBytes { SockwayOutgoingBatch.isASCII($0) } == (length == 0))
            }
        }
    }
}
