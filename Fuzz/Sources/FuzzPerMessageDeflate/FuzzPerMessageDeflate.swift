import FuzzSupport
import NIOCore
import SockwayWebSocket

// The permessage-deflate inflater (`PerMessageDeflateCodec.inflateFragment`, zlib underneath) with
// its size bound, and the compressor's round trip.
//
// Input: a mode byte, a limit byte, a byte that says where fragments are cut, then the data.
// Invariants: the output never holds more than the limit, whatever the data (a small "zip bomb"
// cannot allocate its output: the buffer stays within a small multiple of the limit); whatever a
// message did to the shared inflater, the next message inflates correctly; what the server
// compresses inflates back to itself.

private let allocator = ByteBufferAllocator()
/// The zlib state an event loop would share. libFuzzer calls the target from one thread only.
nonisolated(unsafe) private let resources = PerMessageDeflateResources()
/// A known message, compressed once, to check that the shared inflater is clean after any input.
private let probeText: [UInt8] = Array("permessage-deflate probe: the quick brown fox, the quick brown fox".utf8)

@main
enum FuzzPerMessageDeflateMain {
    static func main() {
        runLibFuzzer { data, size in fuzz(data!, size) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let mode = input.byte()
    let limit = [16, 1000, 1 << 16, 1 << 20][Int(input.byte() & 3)]
    let cut = Int(input.byte())
    let body = input.rest()
    var codec = makeCodec(mode & 0x10 == 0 ? .perConnection(windowBits: 15, memoryLevel: 8) : .sharedPerEventLoop)

    if mode & 0x20 != 0 {
        checkNegotiation(String(decoding: body, as: UTF8.self))
        return 0
    }
    if mode & 1 == 0 {
        // Untrusted compressed data, in one frame or cut in two or three fragments.
        let fragments = split(body, at: cut)
        var output = ByteBuffer()
        for (index, fragment) in fragments.enumerated() {
            var failed = false
            do {
                try codec.inflateFragment(
                    ByteBuffer(bytes: fragment),
                    first: index == 0,
                    final: index == fragments.count - 1,
                    into: &output,
                    limit: limit
                )
            } catch {
                failed = true
            }
            fuzzCheck(output.readableBytes <= limit + 1, "inflated \(output.readableBytes) bytes past the limit \(limit)")
            fuzzCheck(output.capacity <= max(4 * limit, 64 * 1024), "buffer of \(output.capacity) bytes for a limit of \(limit)")
            if failed { break }
            if index == fragments.count - 1 {
                fuzzCheck(output.readableBytes <= limit, "a message of \(output.readableBytes) bytes accepted over the limit \(limit)")
            }
        }
    } else {
        // The server's compression of the data inflates back to it.
        var compressed = allocator.buffer(capacity: 0)
        let didCompress = (try? codec.compress(ByteBuffer(bytes: body), into: &compressed)) ?? false
        if didCompress {
            let fragments = split(compressed.readableBytesView, at: cut)
            var output = ByteBuffer()
            for (index, fragment) in fragments.enumerated() {
                do {
                    try codec.inflateFragment(
                        ByteBuffer(bytes: fragment),
                        first: index == 0,
                        final: index == fragments.count - 1,
                        into: &output,
                        limit: 1 << 20
                    )
                } catch {
                    fuzzCheck(false, "the server's own compression did not inflate: \(error)")
                }
            }
            fuzzCheck(Array(output.readableBytesView) == Array(body), "round trip changed \(body.count) bytes")
        }
    }

    // A known good message still inflates correctly after whatever came before.
    var probe = makeCodec(.sharedPerEventLoop)
    var compressedProbe = ByteBuffer()
    _ = try? probe.compress(ByteBuffer(bytes: probeText), into: &compressedProbe)
    var output = ByteBuffer()
    do {
        try codec.inflateFragment(compressedProbe, first: true, final: true, into: &output, limit: 1 << 16)
    } catch {
        fuzzCheck(false, "the shared inflater is broken after the input: \(error)")
    }
    fuzzCheck(Array(output.readableBytesView) == probeText, "the shared inflater kept state from the input")
    return 0
}

/// `Sec-WebSocket-Extensions` negotiation: what is agreed stays within what the client offered and
/// what zlib can do.
private func checkNegotiation(_ header: String) {
    let offers = header.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    for compression in [PerMessageDeflateConfiguration.Compression.perConnection(windowBits: 15, memoryLevel: 8), .sharedPerEventLoop, .disabled] {
        let configuration = PerMessageDeflateConfiguration(compression: compression)
        guard let agreed = PerMessageDeflateNegotiation.negotiate(offers: offers, configuration: configuration) else { continue }
        fuzzCheck(compression != .disabled, "negotiated with compression disabled")
        fuzzCheck((9...15).contains(agreed.serverWindowBits), "server window of \(agreed.serverWindowBits) bits")
        fuzzCheck(agreed.clientNoContextTakeover, "the client was not asked to reset its context")
        let lowered = header.lowercased()
        fuzzCheck(lowered.contains("permessage-deflate"), "agreed without an offer")
        if let bits = agreed.serverMaxWindowBits {
            fuzzCheck(lowered.contains("server_max_window_bits"), "answered server_max_window_bits unasked")
            fuzzCheck(bits == agreed.serverWindowBits, "announced \(bits) window bits, compresses with \(agreed.serverWindowBits)")
        }
        if compression == .sharedPerEventLoop {
            fuzzCheck(agreed.serverNoContextTakeover, "a shared compressor kept context")
        }
        // The answer, offered back, is agreed as it is.
        let again = PerMessageDeflateNegotiation.negotiate(offers: [agreed.responseHeaderValue], configuration: configuration)
        fuzzCheck(again?.responseHeaderValue == agreed.responseHeaderValue, "answer \(agreed.responseHeaderValue) not stable")
    }
}

private func makeCodec(_ compression: PerMessageDeflateConfiguration.Compression) -> PerMessageDeflateCodec {
    let configuration = PerMessageDeflateConfiguration(compression: compression, threshold: 0)
    let parameters = PerMessageDeflateNegotiation.negotiate(offers: ["permessage-deflate"], configuration: configuration)!
    return PerMessageDeflateCodec(parameters: parameters, configuration: configuration, resources: resources)
}

/// One, two or three fragments: `cut`'s low bits choose how many, the rest where.
private func split<Bytes: Collection<UInt8>>(_ bytes: Bytes, at cut: Int) -> [[UInt8]] {
    let all = Array(bytes)
    let pieces = cut % 3 + 1
    guard pieces > 1, all.count > 0 else { return [all] }
    let first = (cut * 7919) % (all.count + 1)
    if pieces == 2 { return [Array(all[..<first]), Array(all[first...])] }
    let second = first + (cut * 104_729) % (all.count - first + 1)
    return [Array(all[..<first]), Array(all[first..<second]), Array(all[second...])]
}
