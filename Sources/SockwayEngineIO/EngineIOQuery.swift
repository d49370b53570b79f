/// The query parameters of an Engine.IO request (`EIO`, `transport`, `sid`, and any others).
///
/// Parsing follows the WHATWG `application/x-www-form-urlencoded` rules that the reference server
/// gets from `URLSearchParams`: pairs split on `&` (empty pairs skipped), name and value split on the
/// first `=` (a pair without one has an empty value), `+` is a space, `%XX` is a byte, a `%` not
/// followed by two hex digits stays as it is, and decoded bytes that are not UTF-8 become U+FFFD.
/// When a name occurs more than once the last value wins, as in the reference
/// (`Object.fromEntries`).
public struct EngineIOQuery: Hashable, Sendable {
    /// One `name=value` pair, decoded.
    public struct Parameter: Hashable, Sendable {
        /// The decoded name.
        public var name: String
        /// The decoded value (empty for a pair without `=`).
        public var value: String

        /// A pair of already decoded text.
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The pairs in the order they came.
    public var parameters: [Parameter]

    /// A query of already decoded pairs.
    public init(parameters: [Parameter]) {
        self.parameters = parameters
    }

    /// A query of already decoded `(name, value)` pairs.
    public init(_ pairs: [(name: String, value: String)]) {
        self.parameters = pairs.map { Parameter(name: $0.name, value: $0.value) }
    }

    /// Parses a raw query string such as `EIO=4&transport=polling&sid=abc`; one leading `?` is
    /// skipped. The result never holds more text than `query` has.
    public init<S: StringProtocol>(parsing query: S) {
        var utf8 = Substring(query).utf8[...]
        if utf8.first == UInt8(ascii: "?") { utf8 = utf8.dropFirst() }
        var parameters: [Parameter] = []
        for pair in utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let equals = pair.firstIndex(of: UInt8(ascii: "="))
            let name = pair[..<(equals ?? pair.endIndex)]
            let value = equals.map { pair[pair.index(after: $0)...] } ?? pair[pair.endIndex...]
            parameters.append(Parameter(name: Self.formDecode(name), value: Self.formDecode(value)))
        }
        self.parameters = parameters
    }

    /// Parses the query of a request target such as `/engine.io/?EIO=4&transport=polling`: the text
    /// after the first `?`, up to a `#` if there is one. No `?` means no parameters.
    public init<S: StringProtocol>(uri: S) {
        let utf8 = Substring(uri).utf8
        guard let question = utf8.firstIndex(of: UInt8(ascii: "?")) else {
            self.init(parameters: [])
            return
        }
        let rest = utf8[utf8.index(after: question)...]
        let end = rest.firstIndex(of: UInt8(ascii: "#")) ?? rest.endIndex
        self.init(parsing: Substring(rest[..<end]))
    }

    /// The value of the last pair named `name`, or `nil` when there is none.
    public subscript(name: String) -> String? {
        parameters.last { $0.name == name }?.value
    }

    /// `EIO`: the protocol version the client speaks (`"4"`).
    public var protocolVersion: String? { self["EIO"] }
    /// `transport`: `"polling"` or `"websocket"`.
    public var transport: String? { self["transport"] }
    /// `sid`: the session id, once the session exists.
    public var sid: String? { self["sid"] }

    /// `+` as space, `%XX` as a byte (malformed escapes kept), then UTF-8 with U+FFFD for bad bytes.
    static func formDecode(_ bytes: Substring.UTF8View.SubSequence) -> String {
        guard bytes.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) else {
            return String(Substring(bytes))
        }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+") {
                decoded.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"),
                let first = bytes.index(index, offsetBy: 1, limitedBy: bytes.endIndex), first < bytes.endIndex,
                let second = bytes.index(first, offsetBy: 1, limitedBy: bytes.endIndex), second < bytes.endIndex,
                let high = hexValue(bytes[first]), let low = hexValue(bytes[second])
            {
                decoded.append(high << 4 | low)
                index = second
            } else {
                decoded.append(byte)
            }
            index = bytes.index(after: index)
        }
        return String(decoding: decoded, as: UTF8.self)
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

extension EngineIOQuery: ExpressibleByDictionaryLiteral {
    /// A query of decoded pairs, in order; a name may repeat (the last one wins on lookup).
    public init(dictionaryLiteral elements: (String, String)...) {
        self.parameters = elements.map { Parameter(name: $0.0, value: $0.1) }
    }
}
