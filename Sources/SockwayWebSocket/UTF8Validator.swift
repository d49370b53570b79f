/// Incremental UTF-8 validation that fails at the first invalid byte, across fragment boundaries.
///
/// A DFA over byte classes (after Björn Höhrmann's decoder): one table lookup per byte, no decoding.
/// Rejects overlong forms, surrogates (U+D800–DFFF) and anything above U+10FFFF, as RFC 3629 requires.
public struct UTF8Validator: Sendable {
    @usableFromInline static let accept: UInt8 = 0
    @usableFromInline static let reject: UInt8 = 12

    @usableFromInline var state: UInt8 = UTF8Validator.accept

    public init() {}

    /// Whether everything fed so far is valid and ends on a character boundary.
    public var isComplete: Bool { state == Self.accept }
    /// Whether an invalid byte has been seen.
    public var hasFailed: Bool { state == Self.reject }

    /// Feeds more bytes. Returns `false` as soon as the input can no longer be valid UTF-8.
    @inlinable
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var state = self.state
        if state == Self.accept {
            // Skip ASCII eight bytes at a time.
            var index = 0
            let count = bytes.count
            while index + 8 <= count {
                let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                if word & 0x8080_8080_8080_8080 != 0 { break }
                index += 8
            }
            for byte in bytes[index...] {
                state = Self.transitions[Int(state) + Int(Self.classes[Int(byte)])]
                if state == Self.reject { break }
            }
        } else if state != Self.reject {
            for byte in bytes {
                state = Self.transitions[Int(state) + Int(Self.classes[Int(byte)])]
                if state == Self.reject { break }
            }
        }
        self.state = state
        return state != Self.reject
    }

    /// Validates a complete byte sequence.
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var validator = UTF8Validator()
        return validator.feed(bytes) && validator.isComplete
    }

    @usableFromInline
    static let classes: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 256)
        for b in 0x80...0x8F { table[b] = 1 }
        for b in 0x90...0x9F { table[b] = 9 }
        for b in 0xA0...0xBF { table[b] = 7 }
        table[0xC0] = 8
        table[0xC1] = 8
        for b in 0xC2...0xDF { table[b] = 2 }
        table[0xE0] = 10
        for b in 0xE1...0xEC { table[b] = 3 }
        table[0xED] = 4
        table[0xEE] = 3
        table[0xEF] = 3
        table[0xF0] = 11
        for b in 0xF1...0xF3 { table[b] = 6 }
        table[0xF4] = 5
        for b in 0xF5...0xFF { table[b] = 8 }
        return table
    }()

    /// States are multiples of 12: 0 accept, 12 reject, then partial-sequence states.
    @usableFromInline
    static let transitions: [UInt8] = [
        0, 12, 24, 36, 60, 96, 84, 12, 12, 12, 48, 72,
        12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
        12, 0, 12, 12, 12, 12, 12, 0, 12, 0, 12, 12,
        12, 24, 12, 12, 12, 12, 12, 24, 12, 24, 12, 12,
        12, 12, 12, 12, 12, 12, 12, 24, 12, 12, 12, 12,
        12, 24, 12, 12, 12, 12, 12, 12, 12, 24, 12, 12,
        12, 12, 12, 12, 12, 12, 12, 36, 12, 36, 12, 12,
        12, 36, 12, 12, 12, 12, 12, 36, 12, 36, 12, 12,
        12, 36, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
    ]
}
