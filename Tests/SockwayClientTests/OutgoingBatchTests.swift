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
