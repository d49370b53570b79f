import FuzzSupport
import SockwaySockJS

// The SockJS URL grammar (`SockJSRoute.parse`) and query/form decoding (`SockJSQuery`).
//
// Input: a request target, `<path>[?<query>]`, as text.
// Invariants: a session route has ids that the grammar allows and comes back from its canonical URL;
// a trailing slash changes nothing; the byte and the text percent decoders agree; an accepted
// callback name is one a script can hold.

@main
enum FuzzSockJSRouteMain {
    static func main() {
        runLibFuzzer { data, size in fuzz(data!, size) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let target = String(decoding: input.rest(), as: UTF8.self)
    let path: Substring
    let query: Substring
    // Bytes, not Characters: a combining mark after `?` or `/` must not hide it.
    if let question = target.utf8.firstIndex(of: UInt8(ascii: "?")) {
        path = target[..<question]
        query = target[target.utf8.index(after: question)...]
    } else {
        path = target[...]
        query = ""
    }

    let route = SockJSRoute.parse(path)
    switch route {
    case .session(let id, let transport):
        fuzzCheck(
            !id.isEmpty && !id.utf8.contains(UInt8(ascii: ".")) && !id.utf8.contains(UInt8(ascii: "/")),
            "session id \(id.debugDescription) broke the grammar"
        )
        fuzzCheck(SockJSTransport.forPathSuffix(transport.pathSuffix) == transport, "transport not in the registry")
        fuzzCheck(SockJSRoute.parse("/0/\(id)/\(transport.pathSuffix)") == route, "canonical session URL parses differently")
    case .greeting:
        fuzzCheck(path.isEmpty || path.utf8.elementsEqual("/".utf8), "greeting for \(path.debugDescription)")
    case .info, .iframe, .rawWebSocket, .notFound:
        break
    }
    // An optional trailing slash: `/x/` is `/x`, except that `/` alone is the greeting.
    if !path.isEmpty, path.utf8.last != UInt8(ascii: "/") {
        fuzzCheck(SockJSRoute.parse(path + "/") == route, "trailing slash changed \(path.debugDescription)")
    }

    // Query values: the text decoder is the byte decoder plus lossy UTF-8.
    for plusAsSpace in [false, true] {
        let text = SockJSQuery.percentDecode(query, plusAsSpace: plusAsSpace)
        let bytes = Array(query.utf8).withUnsafeBytes { SockJSQuery.percentDecodeBytes($0, plusAsSpace: plusAsSpace) }
        fuzzCheck(text == bytes.map { String(decoding: $0, as: UTF8.self) }, "percent decoders disagree on \(query.debugDescription)")
        if let bytes {
            fuzzCheck(bytes.count <= query.utf8.count, "percent decoding lengthened the text")
        }
    }
    for (name, form) in [("c", false), ("d", true)] {
        let value = SockJSQuery.value(named: name, in: query, form: form)
        fuzzCheck(value == referenceValue(named: name, in: query, form: form), "value(named: \(name)) in \(query.debugDescription) is \(String(describing: value))")
    }
    if let d = Array(query.utf8).withUnsafeBytes({ SockJSQuery.formValue(named: "d", in: $0) }) {
        fuzzCheck(d.count <= query.utf8.count, "form value longer than the body")
    }
    do throws(SockJSQuery.CallbackError) {
        let name = try SockJSQuery.callback(in: query)
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
        fuzzCheck(!name.isEmpty && name.utf8.count <= 32 && allowed, "callback \(name.debugDescription) accepted")
    } catch {
        // Refused names are the rule working.
    }
    return 0
}

/// `SockJSQuery.value(named:in:form:)` as the grammar states it, on bytes: pairs split on `&`, name
/// and value on the first `=`, both percent-decoded.
private func referenceValue(named name: String, in query: Substring, form: Bool) -> String? {
    for pair in query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
        let equals = pair.firstIndex(of: UInt8(ascii: "="))
        let key = Substring(pair[..<(equals ?? pair.endIndex)])
        guard SockJSQuery.percentDecode(key, plusAsSpace: form) == name else { continue }
        let raw = Substring(equals.map { pair[pair.index(after: $0)...] } ?? pair[pair.endIndex...])
        return SockJSQuery.percentDecode(raw, plusAsSpace: form) ?? String(raw)
    }
    return nil
}
