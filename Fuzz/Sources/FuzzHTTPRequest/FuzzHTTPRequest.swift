import FuzzSupport
import NIOCore
import NIOHTTP1
import SockwayHTTP

// The strict HTTP/1.1 request parser (`HTTPRequestParser`), the first code every byte from a client
// meets.
//
// Input: one control byte (how the bytes are cut into reads, and the limits), then the raw bytes of a
// connection.
// Invariants: the parts and the error do not depend on how the bytes were cut; a request target and
// field values carry no control characters; a fixed-length body is exactly its declared length; the
// head bounds hold; the requests read, written back out canonically, parse to the same requests.

@main
enum FuzzHTTPRequestMain {
    static func main() {
        runLibFuzzer { data, size in fuzz(data!, size) }
    }
}

/// What a parser made of some bytes: its parts, and the error that stopped it.
private struct Outcome: Equatable {
    var parts: [HTTPRequestParser.Part] = []
    var error: HTTPRequestError?
}

private func parse(_ bytes: UnsafeRawBufferPointer, step: Int, limits: HTTPRequestParser.Limits) -> Outcome {
    var parser = HTTPRequestParser(limits: limits)
    var buffer = ByteBuffer()
    var outcome = Outcome()
    var offset = 0
    repeat {
        let end = min(bytes.count, offset + step)
        buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
        offset = end
        do {
            while let part = try parser.next(&buffer) {
                // Adjacent body slices are one body: how reads cut them is not the parser's to keep.
                if case .body(var slice) = part, case .body(var previous)? = outcome.parts.last {
                    previous.writeBuffer(&slice)
                    outcome.parts[outcome.parts.count - 1] = .body(previous)
                } else {
                    outcome.parts.append(part)
                }
            }
        } catch {
            outcome.error = error
            return outcome
        }
    } while offset < bytes.count
    return outcome
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let control = input.byte()
    let step = 1 + Int(control & 0x1F)
    let limits =
        control & 0x20 == 0
        ? HTTPRequestParser.Limits()
        : HTTPRequestParser.Limits(maxRequestLineBytes: 64, maxHeadBytes: 256, maxHeaderFields: 4, maxChunkLineBytes: 16)
    let bytes = input.rest()

    let whole = parse(bytes, step: bytes.count + 1, limits: limits)
    let pieces = parse(bytes, step: step, limits: limits)
    fuzzCheck(whole == pieces, "parts depend on how the bytes were cut (step \(step)): \(hex(bytes))")

    var pendingLength: Int?
    var bodyBytes = 0
    for part in whole.parts {
        switch part {
        case .head(let head):
            fuzzCheck(head.uri.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "target with a control byte or space: \(head.uri.debugDescription)")
            fuzzCheck(head.uri.utf8.count <= limits.maxRequestLineBytes, "request line over its bound")
            fuzzCheck(head.headers.count <= limits.maxHeaderFields, "more fields than the bound")
            for (name, value) in head.headers {
                fuzzCheck(!name.isEmpty && !name.utf8.contains(where: { $0 <= 0x20 || $0 == 0x3A || $0 >= 0x7F }), "bad field name \(name.debugDescription)")
                fuzzCheck(!value.utf8.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }), "control byte in a field value")
                fuzzCheck(value.utf8.first != 0x20 && value.utf8.last != 0x20, "field value not trimmed")
            }
            fuzzCheck(head.headers["host"].count <= 1, "several Host fields accepted")
            for host in head.headers["host"] {
                fuzzCheck(host.utf8.allSatisfy { HTTPSyntaxCheck.isHostByte($0) }, "invalid Host accepted: \(host.debugDescription)")
            }
            fuzzCheck(
                !(head.headers.contains(name: "content-length") && head.headers.contains(name: "transfer-encoding")),
                "Content-Length and Transfer-Encoding both accepted"
            )
            pendingLength = head.headers.first(name: "content-length").flatMap { Int($0) }
            bodyBytes = 0
        case .body(let slice):
            bodyBytes += slice.readableBytes
        case .end:
            if let pendingLength, pendingLength > 0 {
                fuzzCheck(bodyBytes == pendingLength, "fixed body of \(bodyBytes) bytes, \(pendingLength) declared")
            }
            pendingLength = nil
        }
    }

    // Round trip: the complete requests, written out canonically (a fixed-length body), read the same.
    var canonical = ByteBuffer()
    var expected: [HTTPRequestParser.Part] = []
    var current: (head: HTTPRequestHead, body: ByteBuffer)?
    for part in whole.parts {
        switch part {
        case .head(let head): current = (head, ByteBuffer())
        case .body(var slice): current?.body.writeBuffer(&slice)
        case .end:
            guard var (head, body) = current else { break }
            head.headers.remove(name: "transfer-encoding")
            head.headers.remove(name: "content-length")
            if body.readableBytes > 0 { head.headers.add(name: "Content-Length", value: String(body.readableBytes)) }
            let version = head.version.minor == 0 ? "HTTP/1.0" : "HTTP/1.1"
            canonical.writeString("\(head.method.rawValue) \(head.uri) \(version)\r\n")
            for (name, value) in head.headers { canonical.writeString("\(name): \(value)\r\n") }
            canonical.writeString("\r\n")
            canonical.writeImmutableBuffer(body)
            expected.append(.head(head))
            if body.readableBytes > 0 { expected.append(.body(body)) }
            expected.append(.end)
            current = nil
        }
    }
    let again = canonical.withUnsafeReadableBytes { parse($0, step: $0.count + 1, limits: .init(maxRequestLineBytes: 1 << 20, maxHeadBytes: 1 << 22, maxHeaderFields: 1 << 16)) }
    fuzzCheck(again.error == nil, "a canonical request was refused: \(again.error.map(String.init(describing:)) ?? "")")
    fuzzCheck(again.parts == expected, "canonical requests read differently")
    return 0
}

enum HTTPSyntaxCheck {
    /// uri-host [":" port] (RFC 3986): unreserved, pct-encoded, sub-delims, ":" and the IP-literal brackets.
    static func isHostByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: "-._~%!$&'()*+,;=:[]".utf8.contains(byte)
        }
    }
}
