#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CFuzzerDriver

/// The bytes libFuzzer hands a target, read from the front: a few control bytes pick a mode, a limit
/// or where to cut, and the rest is the input under test. Reading past the end gives zeros, so every
/// byte string is a valid input and short ones stay meaningful.
public struct FuzzInput {
    public let bytes: UnsafeRawBufferPointer
    public private(set) var offset = 0

    public init(_ data: UnsafePointer<UInt8>, _ size: Int) {
        bytes = UnsafeRawBufferPointer(start: data, count: size)
    }

    public var isAtEnd: Bool { offset >= bytes.count }

    /// The next byte, or 0 at the end.
    public mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// A little-endian 16-bit value from the next two bytes.
    public mutating func uint16() -> UInt16 {
        UInt16(byte()) | UInt16(byte()) << 8
    }

    /// Up to `count` next bytes.
    public mutating func take(_ count: Int) -> UnsafeRawBufferPointer {
        let end = min(bytes.count, offset + max(0, count))
        defer { offset = end }
        return UnsafeRawBufferPointer(rebasing: bytes[min(offset, end)..<end])
    }

    /// Everything not read yet.
    public mutating func rest() -> UnsafeRawBufferPointer {
        take(bytes.count - offset)
    }
}

/// Stops the run with a message when an invariant does not hold: libFuzzer reports the trap as a
/// crash and keeps the input, so logic bugs are found like memory bugs.
public func fuzzCheck(
    _ condition: @autoclosure () -> Bool,
    _ message: @autoclosure () -> String,
    file: StaticString = #fileID,
    line: UInt = #line
) {
    guard !condition() else { return }
    let text = "invariant broken at \(file):\(line): \(message())\n"
    // write(2) rather than `stderr`, a global that strict concurrency cannot vouch for.
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    abort()
}

/// The bytes as hex, for invariant messages.
public func hex(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

/// Whether `bytes` are well-formed UTF-8, by the standard library: the reference the parsers'
/// own validators are checked against.
public func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
    String(validating: bytes, as: UTF8.self) != nil
}

/// Runs libFuzzer with the process's arguments on `testOneInput`; never returns. Each target's
/// `@main` calls this: SwiftPM makes an executable's `main` the module's entry point, so libFuzzer's
/// own `main` would never run.
public func runLibFuzzer(_ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
}
