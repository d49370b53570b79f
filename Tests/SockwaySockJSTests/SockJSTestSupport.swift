import NIOCore
import SockwaySockJS

/// `SockJSPayload.parseArray` as a `Result`, so expectations read `#expect(parseArray("[]") == .success([]))`.
func parseArray(_ text: String, repair: SockJSPayload.Repair = .refuse) -> Result<[String], SockJSPayloadError> {
    parseArray(bytes: Array(text.utf8), repair: repair)
}

/// `SockJSPayload.parseArray` of raw bytes (which need not be UTF-8) as a `Result`.
func parseArray(bytes: [UInt8], repair: SockJSPayload.Repair = .refuse) -> Result<[String], SockJSPayloadError> {
    do throws(SockJSPayloadError) {
        return .success(try SockJSPayload.parseArray(ByteBuffer(bytes: bytes), repair: repair))
    } catch {
        return .failure(error)
    }
}

/// `SockJSPayload.parseWebSocketMessage` as a `Result`.
func parseWebSocketMessage(_ text: String) -> Result<[String], SockJSPayloadError> {
    Array(text.utf8).withUnsafeBytes { bytes in
        do throws(SockJSPayloadError) {
            return .success(try SockJSPayload.parseWebSocketMessage(bytes))
        } catch {
            return .failure(error)
        }
    }
}

/// `SockJSQuery.callback(in:)` as a `Result`.
func callback(in query: String) -> Result<String, SockJSQuery.CallbackError> {
    do throws(SockJSQuery.CallbackError) {
        return .success(try SockJSQuery.callback(in: query))
    } catch {
        return .failure(error)
    }
}

/// Every code point from U+00FF to U+FFFF that the SockJS protocol suite's `escapable_by_server` matches,
/// in order: U+200C–200F, U+2028–202F, U+2060–206F, U+FFF0–FFFF (surrogates are not scalars).
let serverEscapableScalars: [Unicode.Scalar] = (0x00FF...0xFFFF).compactMap { value -> Unicode.Scalar? in
    let escaped =
        (0x200C...0x200F).contains(value) || (0x2028...0x202F).contains(value)
        || (0x2060...0x206F).contains(value) || (0xFFF0...0xFFFF).contains(value)
    return escaped ? Unicode.Scalar(UInt32(value)) : nil
}

/// The suite's `server_killer_string_esc`: the quoted string of ``serverEscapableScalars``, each as a
/// lowercase `\uxxxx`.
let serverKillerStringEscaped: String = {
    var text = "\""
    for scalar in serverEscapableScalars {
        text += "\\u" + lowercaseHex4(scalar.value)
    }
    return text + "\""
}()

func lowercaseHex4(_ value: UInt32) -> String {
    let hex = String(value, radix: 16, uppercase: false)
    return String(repeating: "0", count: max(0, 4 - hex.count)) + hex
}

func string(of scalars: some Sequence<Unicode.Scalar>) -> String {
    var text = ""
    text.unicodeScalars.append(contentsOf: scalars)
    return text
}

/// Python's `str.strip()`: drops leading and trailing whitespace (spaces, tabs, CR, LF).
func pythonStrip(_ text: String) -> String {
    let whitespace: Set<Unicode.Scalar> = [" ", "\t", "\r", "\n", "\u{0B}", "\u{0C}"]
    var scalars = Substring(text).unicodeScalars
    while let first = scalars.first, whitespace.contains(first) { scalars = scalars.dropFirst() }
    while let last = scalars.last, whitespace.contains(last) { scalars = scalars.dropLast() }
    return string(of: scalars)
}
