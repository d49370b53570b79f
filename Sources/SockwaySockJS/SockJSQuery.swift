#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
/// Query-string and form decoding, and the callback rules of the htmlfile and jsonp transports.
public enum SockJSQuery {
    /// The value of the first `name=` pair in a query string or form body, percent-decoded
    /// (`+` as space when `form` is true). `nil` when the name is absent.
    public static func value<S: StringProtocol>(named name: String, in query: S, form: Bool = false) -> String? {
        // Split on bytes, not Characters: `=` or `&` followed by a combining mark is one Character,
        // and would otherwise no longer separate anything.
        for pair in Substring(query).utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let equals = pair.firstIndex(of: UInt8(ascii: "="))
            let key = Substring(pair[..<(equals ?? pair.endIndex)])
            guard percentDecode(key, plusAsSpace: form) == name else { continue }
            let raw = Substring(equals.map { pair[pair.index(after: $0)...] } ?? pair[pair.endIndex...])
            return percentDecode(raw, plusAsSpace: form) ?? String(raw)
        }
        return nil
    }

    /// The bytes of the first `name=` pair of a form body (`application/x-www-form-urlencoded`),
    /// percent-decoded with `+` as space, working on bytes (a `jsonp_send` body can be megabytes; splitting
    /// it as Swift `Character`s costs microseconds per message). `nil` when the name is absent; a value
    /// with a malformed escape comes back undecoded.
    public static func formValue(named name: StaticString, in body: UnsafeRawBufferPointer) -> [UInt8]? {
        let key = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        var start = 0
        while start <= body.count {
            let end = firstIndex(of: UInt8(ascii: "&"), in: body, from: start) ?? body.count
            let pair = UnsafeRawBufferPointer(rebasing: body[start..<end])
            if pair.count >= key.count + 1, pair[key.count] == UInt8(ascii: "="), pair.starts(with: key) {
                let raw = UnsafeRawBufferPointer(rebasing: pair[(key.count + 1)...])
                // A malformed escape is kept as it came, as Node's querystring does.
                return percentDecodeBytes(raw, plusAsSpace: true) ?? Array(raw)
            }
            if pair.count == key.count, pair.elementsEqual(key) { return [] }
            start = end + 1
        }
        return nil
    }

    /// Percent-decodes bytes; `nil` if an escape is malformed. Runs without `%` (or `+`) are found
    /// eight bytes at a time and copied whole: a `jsonp_send` body is mostly such runs.
    public static func percentDecodeBytes(_ bytes: UnsafeRawBufferPointer, plusAsSpace: Bool) -> [UInt8]? {
        var malformed = false
        let count = bytes.count
        let decoded = [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
            guard let source = bytes.baseAddress, let target = out.baseAddress else {
                initialized = 0
                return
            }
            var index = 0
            var written = 0
            while index < count {
                var runEnd = index
                while runEnd + 8 <= count {
                    let word = bytes.loadUnaligned(fromByteOffset: runEnd, as: UInt64.self)
                    if SWAR.hasByte(UInt8(ascii: "%"), in: word) || (plusAsSpace && SWAR.hasByte(UInt8(ascii: "+"), in: word)) { break }
                    runEnd += 8
                }
                while runEnd < count, bytes[runEnd] != UInt8(ascii: "%"), !(plusAsSpace && bytes[runEnd] == UInt8(ascii: "+")) {
                    runEnd += 1
                }
                if runEnd > index {
                    (target + written).update(from: source.assumingMemoryBound(to: UInt8.self) + index, count: runEnd - index)
                    written += runEnd - index
                    index = runEnd
                }
                guard index < count else { break }
                if bytes[index] == UInt8(ascii: "+") {
                    target[written] = UInt8(ascii: " ")
                    index += 1
                } else {
                    guard index + 2 < count, let hi = hexValue(bytes[index + 1]), let lo = hexValue(bytes[index + 2]) else {
                        malformed = true
                        break
                    }
                    target[written] = hi << 4 | lo
                    index += 3
                }
                written += 1
            }
            initialized = written
        }
        return malformed ? nil : decoded
    }

    /// The index of the first `byte` in `bytes` at or after `from`.
    static func firstIndex(of byte: UInt8, in bytes: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard from < bytes.count, let base = bytes.baseAddress,
            let hit = memchr(base + from, Int32(byte), bytes.count - from)
        else { return nil }
        return base.distance(to: UnsafeRawPointer(hit))
    }

    /// Percent-decodes `text`; `nil` if an escape is malformed. Decoded bytes that are not UTF-8 become U+FFFD.
    public static func percentDecode<S: StringProtocol>(_ text: S, plusAsSpace: Bool) -> String? {
        let utf8 = Array(text.utf8)
        guard utf8.contains(UInt8(ascii: "%")) || (plusAsSpace && utf8.contains(UInt8(ascii: "+"))) else {
            return String(text)
        }
        return utf8.withUnsafeBytes { percentDecodeBytes($0, plusAsSpace: plusAsSpace) }.map { String(decoding: $0, as: UTF8.self) }
    }

    /// The value of one hex digit, either case.
    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// Why a callback parameter was refused.
    public enum CallbackError: Error, Hashable, Sendable {
        /// Neither `c` nor `callback` is in the query.
        case missing
        /// The name has characters outside `[a-zA-Z0-9_.-]` or is over 32 characters long.
        case invalid
    }

    /// The callback name of an htmlfile or jsonp request. Only `[a-zA-Z0-9_.-]`, at most 32 characters:
    /// the name is written into a script, so anything else could inject code.
    public static func callback<S: StringProtocol>(in query: S) throws(CallbackError) -> String {
        guard let name = value(named: "c", in: query) ?? value(named: "callback", in: query) else {
            throw .missing
        }
        let valid =
            !name.isEmpty && name.utf8.count <= 32
            && name.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                    || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
            }
        guard valid else { throw .invalid }
        return name
    }
}
