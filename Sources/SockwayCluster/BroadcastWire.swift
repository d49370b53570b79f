import NIOCore

/// The binary layout of publications between nodes: a version byte, then fields written with
/// ``BroadcastWriter`` and read back with ``BroadcastReader``. A node refuses (and logs) a publication
/// whose version is newer than its own, so nodes of two releases can share a cluster during an upgrade.
public enum BroadcastWire {
    /// The version this build writes and the newest it reads.
    public static let version: UInt8 = 1
    /// The longest room, group or stream name, in UTF-8 bytes. Socket.IO sets no limit; 256 keeps a
    /// hostile name from bloating every publication that targets it.
    public static let maxNameBytes = 256

    /// Whether `name` can name a room, group or stream: 1 to ``maxNameBytes`` UTF-8 bytes.
    public static func isValidName(_ name: String) -> Bool {
        let count = name.utf8.count
        return count > 0 && count <= maxNameBytes
    }

    /// The version byte at the front of `payload`, if any.
    public static func version(of payload: ByteBuffer) -> UInt8? {
        payload.getInteger(at: payload.readerIndex, as: UInt8.self)
    }
}

/// Why a publication could not be read.
public enum BroadcastDecodingError: Error, Sendable, Hashable {
    /// Written by a node of a newer release.
    case newerVersion(UInt8)
    /// Cut short or otherwise not what the layout says.
    case malformed
    /// A name that is not UTF-8 or is too long.
    case invalidName
}

/// Writes a publication's fields after its version byte.
public struct BroadcastWriter {
    public private(set) var buffer: ByteBuffer

    public init(kind: UInt8, capacity: Int = 64) {
        buffer = ByteBufferAllocator().buffer(capacity: capacity)
        buffer.writeInteger(BroadcastWire.version)
        buffer.writeInteger(kind)
    }

    public mutating func write(count: Int) {
        buffer.writeInteger(UInt32(count))
    }

    public mutating func write(number: UInt64) {
        buffer.writeInteger(number)
    }

    public mutating func write(_ string: String) {
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(UInt32(0))
        let written = buffer.writeString(string)
        buffer.setInteger(UInt32(written), at: lengthIndex)
    }

    public mutating func write(bytes: ByteBuffer) {
        buffer.writeInteger(UInt32(bytes.readableBytes))
        var copy = bytes
        buffer.writeBuffer(&copy)
    }
}

/// Reads what a ``BroadcastWriter`` wrote, checking every length against what is there.
public struct BroadcastReader {
    private var buffer: ByteBuffer
    /// The kind byte the writer was made with.
    public let kind: UInt8

    public init(_ payload: ByteBuffer) throws(BroadcastDecodingError) {
        buffer = payload
        guard let version = buffer.readInteger(as: UInt8.self), let kind = buffer.readInteger(as: UInt8.self) else {
            throw .malformed
        }
        guard version <= BroadcastWire.version else { throw .newerVersion(version) }
        self.kind = kind
    }

    /// A count, at most `limit` (a count over it is malformed: it cannot be what a writer wrote).
    public mutating func readCount(limit: Int) throws(BroadcastDecodingError) -> Int {
        guard let count = buffer.readInteger(as: UInt32.self), count <= limit else { throw .malformed }
        return Int(count)
    }

    public mutating func readNumber() throws(BroadcastDecodingError) -> UInt64 {
        guard let number = buffer.readInteger(as: UInt64.self) else { throw .malformed }
        return number
    }

    public mutating func readString() throws(BroadcastDecodingError) -> String {
        guard let length = buffer.readInteger(as: UInt32.self), let bytes = buffer.readSlice(length: Int(length)) else {
            throw .malformed
        }
        return String(buffer: bytes)
    }

    /// A room, group or stream name: valid UTF-8 of 1 to ``BroadcastWire/maxNameBytes`` bytes.
    public mutating func readName() throws(BroadcastDecodingError) -> String {
        guard let length = buffer.readInteger(as: UInt32.self), let bytes = buffer.readSlice(length: Int(length)) else {
            throw .malformed
        }
        guard length > 0, length <= BroadcastWire.maxNameBytes else { throw .invalidName }
        let name = String(buffer: bytes)
        // String(buffer:) repairs bad sequences; a name that does not survive unchanged was not UTF-8.
        guard name.utf8.elementsEqual(bytes.readableBytesView) else { throw .invalidName }
        return name
    }

    public mutating func readBytes() throws(BroadcastDecodingError) -> ByteBuffer {
        guard let length = buffer.readInteger(as: UInt32.self), let bytes = buffer.readSlice(length: Int(length)) else {
            throw .malformed
        }
        return bytes
    }

    /// Throws unless everything was read.
    public func finish() throws(BroadcastDecodingError) {
        guard buffer.readableBytes == 0 else { throw .malformed }
    }
}
