import NIOCore
import SockwayZlib

/// permessage-deflate (RFC 7692) settings of an endpoint: how much memory compression may use.
public struct PerMessageDeflateConfiguration: Hashable, Sendable {
    /// How the server compresses what it sends.
    public enum Compression: Hashable, Sendable {
        /// No permessage-deflate at all: offers are declined.
        case disabled
        /// A compressor per connection, keeping context between messages (best ratio). It is created
        /// when the connection first sends a message over the threshold, so idle connections that
        /// never do cost nothing. Memory: about `2^(windowBits+2) + 2^(memoryLevel+9)` bytes each
        /// (256 KiB at 15/8, 6 KiB at 10/1).
        case perConnection(windowBits: Int, memoryLevel: Int)
        /// One compressor per event loop shared by all its connections, reset after every message
        /// (`server_no_context_takeover` is always agreed). Constant memory whatever the connection count,
        /// like uWebSockets' SHARED_COMPRESSOR.
        case sharedPerEventLoop
    }

    public var compression: Compression
    /// Messages shorter than this many bytes are sent uncompressed (compressing them rarely pays).
    public var threshold: Int
    /// zlib compression level, 0...9 (default 6 would be zlib's; 1 is fastest).
    public var level: Int

    public init(compression: Compression = .perConnection(windowBits: 15, memoryLevel: 8), threshold: Int = 64, level: Int = 6) {
        self.compression = compression
        self.threshold = threshold
        self.level = level
    }

    /// No compression.
    public static let disabled = PerMessageDeflateConfiguration(compression: .disabled)

    /// Inflation always uses a shared per-loop inflater with a 15-bit window, reset after every message,
    /// so the server asks clients for `client_no_context_takeover`: idle connections then hold no
    /// decompression state at all.
    public var isEnabled: Bool { compression != .disabled }
}

/// The parameters agreed for one connection.
public struct PerMessageDeflateParameters: Hashable, Sendable {
    /// The server resets its compressor after each message.
    public var serverNoContextTakeover: Bool
    /// The client resets its compressor after each message.
    public var clientNoContextTakeover: Bool
    /// The server's window, if the client limited it (answered as `server_max_window_bits`).
    public var serverMaxWindowBits: Int?
    /// Window bits the server compresses with.
    public var serverWindowBits: Int

    /// The `Sec-WebSocket-Extensions` response value.
    public var responseHeaderValue: String {
        var value = "permessage-deflate"
        if serverNoContextTakeover { value += "; server_no_context_takeover" }
        if clientNoContextTakeover { value += "; client_no_context_takeover" }
        if let serverMaxWindowBits { value += "; server_max_window_bits=\(serverMaxWindowBits)" }
        return value
    }
}

/// Server-side negotiation of permessage-deflate (RFC 7692 §5, §7.1), as plain values.
public enum PerMessageDeflateNegotiation {
    /// Picks the first acceptable permessage-deflate offer among the `Sec-WebSocket-Extensions` values,
    /// declining the others (and any offer with an unknown, repeated or invalid parameter). Returns
    /// `nil` when none is acceptable or compression is disabled. The answer never carries a window-bits
    /// parameter the client did not offer.
    public static func negotiate(
        offers headerValues: [String],
        configuration: PerMessageDeflateConfiguration
    ) -> PerMessageDeflateParameters? {
        guard configuration.isEnabled else { return nil }
        for offer in parseOffers(headerValues) where offer.name == "permessage-deflate" {
            if let accepted = accept(offer.parameters, configuration: configuration) { return accepted }
        }
        return nil
    }

    struct Offer: Equatable {
        var name: String
        var parameters: [(String, String?)]

        static func == (lhs: Offer, rhs: Offer) -> Bool {
            lhs.name == rhs.name && lhs.parameters.elementsEqual(rhs.parameters) { $0.0 == $1.0 && $0.1 == $1.1 }
        }
    }

    /// `ext; a; b=1, ext2` → offers. Quoted values lose their quotes.
    static func parseOffers(_ headerValues: [String]) -> [Offer] {
        var offers: [Offer] = []
        for header in headerValues {
            for element in splitOutsideQuotes(header, separator: ",") {
                let parts = splitOutsideQuotes(element, separator: ";").map { $0.trimmingWhitespace }
                guard let name = parts.first, !name.isEmpty else { continue }
                var parameters: [(String, String?)] = []
                for part in parts.dropFirst() where !part.isEmpty {
                    if let equals = part.firstIndex(of: "=") {
                        var value = part[part.index(after: equals)...].trimmingWhitespace
                        if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                            value = String(value.dropFirst().dropLast())
                        }
                        parameters.append((part[..<equals].trimmingWhitespace.lowercased(), value))
                    } else {
                        parameters.append((part.lowercased(), nil))
                    }
                }
                offers.append(Offer(name: name.lowercased(), parameters: parameters))
            }
        }
        return offers
    }

    private static func accept(
        _ parameters: [(String, String?)],
        configuration: PerMessageDeflateConfiguration
    ) -> PerMessageDeflateParameters? {
        var seen = Set<String>()
        var serverNoContextTakeover = false
        var serverMaxWindowBits: Int?
        for (name, value) in parameters {
            guard seen.insert(name).inserted else { return nil }
            switch name {
            case "server_no_context_takeover", "client_no_context_takeover":
                guard value == nil else { return nil }
                if name == "server_no_context_takeover" { serverNoContextTakeover = true }
            case "server_max_window_bits":
                guard let value, let bits = windowBits(value) else { return nil }
                serverMaxWindowBits = bits
            case "client_max_window_bits":
                // Without a value the client merely allows us to limit its window; we inflate with 15 bits
                // and so never need to.
                if let value, windowBits(value) == nil { return nil }
            default:
                return nil
            }
        }
        var serverWindowBits: Int
        var alwaysReset: Bool
        switch configuration.compression {
        case .disabled:
            return nil
        case .perConnection(let bits, _):
            serverWindowBits = bits
            alwaysReset = false
        case .sharedPerEventLoop:
            serverWindowBits = 15
            alwaysReset = true
        }
        if let limit = serverMaxWindowBits {
            // zlib cannot write raw DEFLATE with an 8-bit window: decline rather than break the limit.
            guard limit >= 9 else { return nil }
            serverWindowBits = min(serverWindowBits, limit)
        }
        return PerMessageDeflateParameters(
            serverNoContextTakeover: serverNoContextTakeover || alwaysReset,
            clientNoContextTakeover: true,
            serverMaxWindowBits: serverMaxWindowBits.map { _ in serverWindowBits },
            serverWindowBits: serverWindowBits
        )
    }

    /// 8...15 written as plain decimal digits (RFC 7692 §7.1.2).
    private static func windowBits(_ text: String) -> Int? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            text.utf8.count <= 2, let bits = Int(text), (8...15).contains(bits), !(text.hasPrefix("0"))
        else { return nil }
        return bits
    }

    private static func splitOutsideQuotes(_ text: String, separator: Character) -> [String] {
        var parts: [String] = []
        var current = ""
        var quoted = false
        for character in text {
            if character == "\"" { quoted.toggle() }
            if character == separator && !quoted {
                parts.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        parts.append(current)
        return parts
    }
}

extension StringProtocol {
    fileprivate var trimmingWhitespace: String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return String(slice)
    }
}

/// The per-connection side of permessage-deflate: compresses outbound messages and inflates inbound
/// ones, synchronously on the connection's event loop. Borrow the zlib state it needs from
/// ``PerMessageDeflateResources`` (one per event loop).
public struct PerMessageDeflateCodec {
    public let parameters: PerMessageDeflateParameters
    public let configuration: PerMessageDeflateConfiguration
    private let resources: PerMessageDeflateResources
    /// This connection's own compressor (per-connection mode), created on first use.
    private var ownDeflater: Deflater?
    /// The inflater of a fragmented compressed message in progress.
    private var messageInflater: Inflater?

    public init(parameters: PerMessageDeflateParameters, configuration: PerMessageDeflateConfiguration, resources: PerMessageDeflateResources) {
        self.parameters = parameters
        self.configuration = configuration
        self.resources = resources
    }

    /// Whether a message of `count` bytes is worth compressing.
    public func shouldCompress(byteCount: Int) -> Bool {
        byteCount >= configuration.threshold
    }

    /// Compresses a whole message into `output` (without the `00 00 ff ff` tail). Returns `false` if
    /// the message should rather go uncompressed (compression did not make it smaller); then `output`
    /// is left as it was.
    public mutating func compress(_ message: ByteBuffer, into output: inout ByteBuffer) throws -> Bool {
        let deflater: Deflater
        let reset: Bool
        switch configuration.compression {
        case .disabled:
            return false
        case .perConnection(_, let memoryLevel):
            if ownDeflater == nil {
                ownDeflater = try Deflater(windowBits: parameters.serverWindowBits, memoryLevel: memoryLevel, level: configuration.level)
            }
            deflater = ownDeflater!
            reset = parameters.serverNoContextTakeover
        case .sharedPerEventLoop:
            deflater = try resources.sharedDeflater(level: configuration.level)
            reset = true
        }
        let start = output.writerIndex
        try message.withUnsafeReadableBytes { try deflater.compressMessage($0, into: &output) }
        if reset {
            deflater.reset()
            // Without shared history, a message that did not shrink may go out as it is.
            if output.writerIndex - start >= message.readableBytes {
                output.moveWriterIndex(to: start)
                return false
            }
        }
        return true
    }

    /// Inflates one fragment of a compressed inbound message into `output`. A message in one frame
    /// uses the loop's shared inflater; a fragmented one gets an inflater of its own until its last
    /// fragment, so that other connections on the loop can use the shared one in between.
    public mutating func inflateFragment(
        _ fragment: ByteBuffer,
        first: Bool,
        final: Bool,
        into output: inout ByteBuffer,
        limit: Int
    ) throws(InflateError) {
        let inflater: Inflater
        if first && final {
            inflater = try resources.sharedInflater()
        } else if first {
            guard let created = try? Inflater() else { throw .invalidData }
            messageInflater = created
            inflater = created
        } else {
            guard let current = messageInflater else { throw .invalidData }
            inflater = current
        }
        let result: Result<Void, InflateError> = fragment.withUnsafeReadableBytes { bytes in
            do throws(InflateError) {
                try inflater.inflateFragment(bytes, into: &output, limit: limit)
                if final { try inflater.finishMessage(into: &output, limit: limit) }
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        if final || (try? result.get()) == nil {
            if first && final { inflater.reset() }
            messageInflater = nil
        }
        try result.get()
    }
}

/// zlib state shared by the connections of one event loop. Use it on that loop only.
public final class PerMessageDeflateResources {
    private var deflater: Deflater?
    private var inflater: Inflater?

    public init() {}

    func sharedDeflater(level: Int) throws -> Deflater {
        if let deflater { return deflater }
        let created = try Deflater(windowBits: 15, memoryLevel: 8, level: level)
        deflater = created
        return created
    }

    func sharedInflater() throws(InflateError) -> Inflater {
        if let inflater { return inflater }
        guard let created = try? Inflater() else { throw .invalidData }
        inflater = created
        return created
    }
}
