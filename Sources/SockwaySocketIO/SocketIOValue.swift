import NIOCore

/// A JSON value as Socket.IO carries it, plus binary attachments.
///
/// Numbers are `Double`, as in JavaScript: every integer up to 2^53 is exact, and integral numbers
/// print without a decimal point (`1`, not `1.0`). Objects keep their members in the order they were
/// parsed or written (duplicate keys included; lookups see the last one, as `JSON.parse` does).
/// ``binary(_:)`` stands for a `Buffer`/`ArrayBuffer`: the packet encoder moves it into an attachment.
public enum SocketIOValue: Sendable, Hashable {
    /// JSON `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number; JSON has one number type, JavaScript's double.
    case number(Double)
    /// A string.
    case string(String)
    /// An array.
    case array([SocketIOValue])
    /// An object, as its members in order.
    case object([Member])
    /// Binary data: an attachment on the wire, never part of the JSON text.
    case binary(ByteBuffer)

    /// One `key: value` member of an object.
    public struct Member: Sendable, Hashable {
        public var key: String
        public var value: SocketIOValue

        /// A member named `key`.
        public init(_ key: String, _ value: SocketIOValue) {
            self.key = key
            self.value = value
        }
    }

    /// The string, if this is a string.
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The number, if this is a number.
    public var doubleValue: Double? {
        if case .number(let value) = self { return value }
        return nil
    }

    /// The number as an `Int`, if this is a number with no fractional part that fits.
    public var intValue: Int? {
        guard case .number(let value) = self else { return nil }
        return Int(exactly: value)
    }

    /// The Boolean, if this is `true` or `false`.
    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// The elements, if this is an array.
    public var arrayValue: [SocketIOValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// The members in order, if this is an object.
    public var objectMembers: [Member]? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// The bytes, if this is a binary value.
    public var binaryValue: ByteBuffer? {
        if case .binary(let value) = self { return value }
        return nil
    }

    /// Whether this is `null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The value of the last member named `key`, if this is an object that has one.
    public subscript(key: String) -> SocketIOValue? {
        guard case .object(let members) = self else { return nil }
        return members.last(where: { $0.key == key })?.value
    }

    /// The element at `index`, if this is an array and `index` is in range.
    public subscript(index: Int) -> SocketIOValue? {
        guard case .array(let elements) = self, elements.indices.contains(index) else { return nil }
        return elements[index]
    }

    /// Whether a ``binary(_:)`` value occurs anywhere inside (the reference's `hasBinary`).
    public var containsBinary: Bool {
        switch self {
        case .binary: return true
        case .array(let elements): return elements.contains { $0.containsBinary }
        case .object(let members): return members.contains { $0.value.containsBinary }
        case .null, .bool, .number, .string: return false
        }
    }

    /// How many ``binary(_:)`` values occur inside, counted depth-first.
    public var binaryCount: Int {
        switch self {
        case .binary: return 1
        case .array(let elements): return elements.reduce(0) { $0 + $1.binaryCount }
        case .object(let members): return members.reduce(0) { $0 + $1.value.binaryCount }
        case .null, .bool, .number, .string: return 0
        }
    }
}

extension SocketIOValue: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) { self = .null }
}

extension SocketIOValue: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension SocketIOValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
}

extension SocketIOValue: ExpressibleByFloatLiteral {
    public init(floatLiteral value: Double) { self = .number(value) }
}

extension SocketIOValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}

extension SocketIOValue: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: SocketIOValue...) { self = .array(elements) }
}

extension SocketIOValue: ExpressibleByDictionaryLiteral {
    /// Members keep the literal's order.
    public init(dictionaryLiteral elements: (String, SocketIOValue)...) {
        self = .object(elements.map { Member($0.0, $0.1) })
    }
}

extension SocketIOValue: CustomStringConvertible {
    /// The value as `JSON.stringify` would write it (binary as Node's `{"type":"Buffer","data":[…]}`).
    public var description: String { jsonString }
}
