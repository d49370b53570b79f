import CZlib
import NIOCore

/// A zlib failure. Carries zlib's return code; never shown to peers.
public struct ZlibError: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: Int32
    public var operation: String

    public var description: String { "zlib \(operation) failed (\(code))" }
}

/// Raw DEFLATE compression (no zlib header), as permessage-deflate needs: each message is flushed with
/// `Z_SYNC_FLUSH` and its trailing `00 00 ff ff` removed.
///
/// One `z_stream`, on the heap because zlib keeps a pointer back to it. Not thread-safe: use it on
/// one event loop.
public final class Deflater {
    private let stream: UnsafeMutablePointer<z_stream>
    public let windowBits: Int32
    public let memoryLevel: Int32

    /// - Parameters:
    ///   - windowBits: 9...15 (zlib cannot produce raw DEFLATE with an 8-bit window).
    ///   - memoryLevel: 1...9; memory is about `2^(windowBits+2) + 2^(memoryLevel+9)` bytes.
    ///   - level: compression level, 0...9.
    public init(windowBits: Int = 15, memoryLevel: Int = 8, level: Int = Int(Z_DEFAULT_COMPRESSION)) throws {
        precondition((9...15).contains(windowBits) && (1...9).contains(memoryLevel))
        self.windowBits = Int32(windowBits)
        self.memoryLevel = Int32(memoryLevel)
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let result = CZlib_deflateInit2(stream, Int32(level), Z_DEFLATED, -Int32(windowBits), Int32(memoryLevel), Z_DEFAULT_STRATEGY)
        guard result == Z_OK else {
            stream.deallocate()
            throw ZlibError(code: result, operation: "deflateInit2")
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
    }

    /// Compresses one whole message, appending it to `output` without the `00 00 ff ff` tail.
    public func compressMessage(_ input: UnsafeRawBufferPointer, into output: inout ByteBuffer) throws {
        let start = output.writerIndex
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: Bytef.self).baseAddress)
        stream.pointee.avail_in = UInt32(input.count)
        defer {
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
        }
        // Use the room the caller made; grow only when zlib fills it. deflateBound (for Z_FINISH, plus
        // a few bytes for the sync flush) sizes a buffer that arrives with too little room.
        let bound = Int(deflateBound(stream, UInt(input.count))) + 16
        while true {
            if output.writableBytes < 64 {
                output.reserveCapacity(minimumWritableBytes: max(bound / 2, 1024))
            }
            let (produced, outputFull, result): (Int, Bool, Int32) = output.withUnsafeMutableWritableBytes { out in
                stream.pointee.next_out = out.bindMemory(to: Bytef.self).baseAddress
                stream.pointee.avail_out = UInt32(out.count)
                let result = deflate(stream, Z_SYNC_FLUSH)
                let left = Int(stream.pointee.avail_out)
                stream.pointee.next_out = nil
                stream.pointee.avail_out = 0
                return (out.count - left, left == 0, result)
            }
            output.moveWriterIndex(forwardBy: produced)
            guard result == Z_OK || result == Z_BUF_ERROR else {
                throw ZlibError(code: result, operation: "deflate")
            }
            // zlib has flushed everything once it returns with output space to spare.
            if !outputFull { break }
        }
        // A sync flush ends with an empty stored block: 00 00 ff ff. RFC 7692 §7.2.1 removes it.
        if output.writerIndex - start >= 4 {
            output.moveWriterIndex(to: output.writerIndex - 4)
        }
    }

    /// Forgets the history, as `no_context_takeover` requires after each message.
    public func reset() {
        deflateReset(stream)
    }
}

/// Why inflating a message stopped.
public enum InflateError: Error, Hashable, Sendable {
    /// The message inflates to more than the limit; inflation stopped there.
    case tooBig
    /// The data is not valid DEFLATE.
    case invalidData
}

/// Raw DEFLATE decompression for permessage-deflate, with the output capped: a message is inflated in
/// steps and refused as soon as it passes the limit, so a small "zip bomb" never allocates its output.
public final class Inflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private static let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]
    private static let step = 16 * 1024

    /// Inflates with a 15-bit window, which decodes data compressed with any smaller window.
    public init() throws {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let result = CZlib_inflateInit2(stream, -15)
        guard result == Z_OK else {
            stream.deallocate()
            throw ZlibError(code: result, operation: "inflateInit2")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    /// Inflates one fragment of a compressed message, appending to `output`.
    /// - Throws: ``InflateError/tooBig`` once `output` would hold more than `limit` readable bytes.
    public func inflateFragment(_ input: UnsafeRawBufferPointer, into output: inout ByteBuffer, limit: Int) throws(InflateError) {
        guard !input.isEmpty else { return }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: Bytef.self).baseAddress)
        stream.pointee.avail_in = UInt32(input.count)
        defer {
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
        }
        while true {
            let room = limit - output.readableBytes
            // Grow only when the room left is small, by a step sized from the input (text and JSON
            // inflate about 3-5x), never more than the limit allows; one byte past the limit tells
            // "exactly at the limit" from "over it".
            if output.writableBytes < 64 {
                output.reserveCapacity(minimumWritableBytes: min(room + 1, min(Self.step, max(256, input.count * 4))))
            }
            let want = min(output.writableBytes, room + 1)
            let (produced, result): (Int, Int32) = output.withUnsafeMutableWritableBytes { out in
                let window = min(out.count, want)
                stream.pointee.next_out = out.bindMemory(to: Bytef.self).baseAddress
                stream.pointee.avail_out = UInt32(window)
                let result = inflate(stream, Z_SYNC_FLUSH)
                let produced = window - Int(stream.pointee.avail_out)
                stream.pointee.next_out = nil
                stream.pointee.avail_out = 0
                return (produced, result)
            }
            output.moveWriterIndex(forwardBy: produced)
            if output.readableBytes > limit { throw .tooBig }
            switch result {
            case Z_OK, Z_BUF_ERROR, Z_STREAM_END:
                break
            default:
                throw .invalidData
            }
            // More to do while input remains, or while the output window was filled (pending output).
            if stream.pointee.avail_in == 0 && produced < want { return }
            if result == Z_BUF_ERROR && produced == 0 { return }
            if result == Z_STREAM_END {
                // The sender ended its DEFLATE stream (BFINAL); the next message starts a new one.
                inflateReset(stream)
                return
            }
        }
    }

    /// Ends a compressed message: feeds the `00 00 ff ff` tail that the sender removed.
    public func finishMessage(into output: inout ByteBuffer, limit: Int) throws(InflateError) {
        let result: Result<Void, InflateError> = Self.tail.withUnsafeBytes { bytes in
            do throws(InflateError) {
                try inflateFragment(bytes, into: &output, limit: limit)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    /// Forgets the history (after each message when the client does not take over context), and
    /// recovers from an error.
    public func reset() {
        inflateReset(stream)
    }
}
