import SockwayWebSocket
import Testing

private func isValid(_ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { UTF8Validator.isValid($0) }
}

private func feed(_ validator: inout UTF8Validator, _ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { validator.feed($0) }
}

/// The index of the byte at which a byte-by-byte feed first returns `false`, or `nil` if none does.
private func firstRejectedIndex(_ bytes: [UInt8]) -> Int? {
    var validator = UTF8Validator()
    for (index, byte) in bytes.enumerated() where !feed(&validator, [byte]) {
        return index
    }
    return nil
}

@Suite("UTF-8 validation: well-formed input (RFC 3629)")
struct UTF8ValidatorValidTests {
    static let valid: [[UInt8]] = [
        [],
        Array("hello".utf8),
        [0x00, 0x7F],
        [0xC2, 0x80],  // U+0080, smallest two-byte
        [0xC3, 0xA9],  // é
        [0xDF, 0xBF],  // U+07FF
        [0xE0, 0xA0, 0x80],  // U+0800, smallest three-byte
        [0xE2, 0x82, 0xAC],  // €
        [0xED, 0x9F, 0xBF],  // U+D7FF, just below the surrogates
        [0xEE, 0x80, 0x80],  // U+E000, just above the surrogates
        [0xEF, 0xBF, 0xBF],  // U+FFFF
        [0xF0, 0x90, 0x80, 0x80],  // U+10000, smallest four-byte
        [0xF0, 0x9F, 0x98, 0x80],  // 😀
        [0xF4, 0x8F, 0xBF, 0xBF],  // U+10FFFF, the largest scalar
        Array("κόσμε 😀 € a\u{10FFFF}".utf8),
    ]

    @Test(arguments: valid)
    func wellFormedSequencesAreValid(bytes: [UInt8]) {
        // ASCII and every length of multibyte sequence, at the edges of each range, are valid.
        #expect(isValid(bytes))
        var validator = UTF8Validator()
        #expect(feed(&validator, bytes))
        #expect(validator.isComplete)
        #expect(!validator.hasFailed)
    }

    @Test func everyScalarAtARangeEdgeIsValid() {
        // The encoder's own output for each boundary scalar is accepted.
        let edges: [UInt32] = [0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF]
        for value in edges {
            var bytes: [UInt8] = []
            UTF8.encode(Unicode.Scalar(value)!) { bytes.append($0) }
            #expect(isValid(bytes), "U+\(String(value, radix: 16))")
        }
    }
}

@Suite("UTF-8 validation: ill-formed input (RFC 3629)")
struct UTF8ValidatorInvalidTests {
    /// Each ill-formed sequence and the index of the first byte that makes it so.
    static let invalid: [([UInt8], Int)] = [
        ([0xC0, 0x80], 0),  // overlong NUL; C0 can never start a sequence
        ([0xC1, 0xBF], 0),  // overlong U+007F
        ([0xE0, 0x80, 0x80], 1),  // overlong three-byte
        ([0xE0, 0x9F, 0xBF], 1),  // overlong U+07FF
        ([0xF0, 0x80, 0x80, 0x80], 1),  // overlong four-byte
        ([0xF0, 0x8F, 0xBF, 0xBF], 1),  // overlong U+FFFF
        ([0xED, 0xA0, 0x80], 1),  // U+D800, a surrogate
        ([0xED, 0xBF, 0xBF], 1),  // U+DFFF, a surrogate
        ([0xF4, 0x90, 0x80, 0x80], 1),  // U+110000, above the last scalar
        ([0xF5, 0x80, 0x80, 0x80], 0),  // F5 can never start a sequence
        ([0xFE], 0),
        ([0xFF], 0),
        ([0x80], 0),  // stray continuation
        ([0xBF], 0),  // stray continuation
        ([0x61, 0x80], 1),  // continuation after ASCII
        ([0xC3, 0xA9, 0xA9], 2),  // one continuation too many
        ([0xC3, 0x41], 1),  // lead byte followed by ASCII
        ([0xE2, 0x82, 0x41], 2),  // three-byte sequence cut by ASCII
        ([0xF0, 0x9F, 0x98, 0xC3], 3),  // four-byte sequence cut by a new lead byte
    ]

    @Test(arguments: invalid)
    func illFormedSequencesAreInvalid(bytes: [UInt8], firstBadIndex: Int) {
        // Overlongs, surrogates, values above U+10FFFF and misplaced continuations are refused.
        #expect(!isValid(bytes))
        var validator = UTF8Validator()
        #expect(!feed(&validator, bytes))
        #expect(validator.hasFailed)
    }

    @Test(arguments: invalid)
    func failureIsReportedAtTheFirstInvalidByte(bytes: [UInt8], firstBadIndex: Int) {
        // Fed one byte at a time, feed returns false exactly at the byte that cannot be part of valid UTF-8.
        #expect(firstRejectedIndex(bytes) == firstBadIndex)
    }

    @Test(arguments: [[0xC3], [0xE2, 0x82], [0xF0, 0x9F, 0x98], [0x61, 0xF4]] as [[UInt8]])
    func truncatedSequenceIsNotComplete(bytes: [UInt8]) {
        // A sequence cut short may still become valid, so feed succeeds, but the input is not complete.
        var validator = UTF8Validator()
        #expect(feed(&validator, bytes))
        #expect(!validator.isComplete)
        #expect(!validator.hasFailed)
        #expect(!isValid(bytes))
    }

    @Test func failureIsSticky() {
        // After an invalid byte no later input makes the stream valid again.
        var validator = UTF8Validator()
        #expect(feed(&validator, Array("abc".utf8)))
        #expect(!feed(&validator, [0x61, 0xFF, 0x61]))
        #expect(!feed(&validator, Array("more valid text".utf8)))
        #expect(!feed(&validator, []))
        #expect(validator.hasFailed)
        #expect(!validator.isComplete)
    }

    @Test func invalidByteMidStreamFailsThatFeed() {
        // A stream that was valid fails on the feed that brings the first invalid byte, not later.
        var validator = UTF8Validator()
        #expect(feed(&validator, Array("valid so far é".utf8)))
        #expect(feed(&validator, [0xE2, 0x82]))
        #expect(!feed(&validator, [0x41, 0x42]))
    }
}

@Suite("UTF-8 validation: incremental feeding")
struct UTF8ValidatorIncrementalTests {
    @Test(arguments: ["é", "€", "😀", "\u{10FFFF}", "\u{FFFF}", "aé€😀b"])
    func characterSplitAtEveryOffsetIsValid(text: String) {
        // A character split across feeds at any byte offset is validated as a whole.
        let bytes = Array(text.utf8)
        var boundaries: Set<Int> = [0]
        var offset = 0
        for scalar in text.unicodeScalars {
            offset += UTF8.width(scalar)
            boundaries.insert(offset)
        }
        for split in 0...bytes.count {
            var validator = UTF8Validator()
            #expect(feed(&validator, Array(bytes[..<split])))
            #expect(validator.isComplete == boundaries.contains(split), "split at \(split)")
            #expect(feed(&validator, Array(bytes[split...])))
            #expect(validator.isComplete, "split at \(split)")
        }
    }

    @Test func everyByteFedSeparatelyIsValid() {
        // Feeding one byte at a time gives the same answer as feeding everything at once.
        let bytes = Array("Ünïcödé 😀 text € \u{10FFFF} end".utf8)
        var validator = UTF8Validator()
        for byte in bytes {
            #expect(feed(&validator, [byte]))
        }
        #expect(validator.isComplete)
    }

    @Test func longASCIIRunAfterAnUnfinishedSequenceFails() {
        // ASCII cannot continue a multibyte sequence, however long the ASCII run is.
        var validator = UTF8Validator()
        #expect(feed(&validator, [0xC3]))
        #expect(!feed(&validator, Array(String(repeating: "a", count: 32).utf8)))
    }

    @Test(arguments: 0...40)
    func asciiOfEveryLengthIsValid(length: Int) {
        // Runs of ASCII of any length, around and across 8-byte words, are valid.
        let bytes = (0..<length).map { UInt8(0x20 + $0 % 0x5F) }
        #expect(isValid(bytes))
    }

    @Test(arguments: 1...40)
    func invalidByteAnywhereInAnASCIIRunIsFound(length: Int) {
        // A single 0xFF at any position of an ASCII run is found, inside or after whole 8-byte words.
        for position in 0..<length {
            var bytes = [UInt8](repeating: 0x61, count: length)
            bytes[position] = 0xFF
            #expect(!isValid(bytes), "0xFF at \(position) of \(length)")
        }
    }

    @Test(arguments: 0...40)
    func multibyteCharacterAnywhereInAnASCIIRunIsValid(length: Int) {
        // A valid multibyte character at any position of an ASCII run keeps the input valid.
        for position in 0...length {
            var bytes = [UInt8](repeating: 0x61, count: length)
            bytes.insert(contentsOf: [0xF0, 0x9F, 0x98, 0x80], at: position)
            #expect(isValid(bytes), "😀 at \(position) of \(length)")
        }
    }

    @Test(arguments: 0...40)
    func truncatedCharacterAtTheEndOfAnASCIIRunIsIncomplete(length: Int) {
        // A lead byte after an ASCII run of any length leaves the input incomplete.
        let bytes = [UInt8](repeating: 0x61, count: length) + [0xE2]
        var validator = UTF8Validator()
        #expect(feed(&validator, bytes))
        #expect(!validator.isComplete)
    }
}
