import NIOCore
import NIOWebSocket
import SockwayWebSocket
import Testing

/// A client frame's bytes, masked with `key` (RFC 6455 §5.2).
private func clientFrame(
    _ opcode: UInt8,
    _ payload: [UInt8],
    fin: Bool = true,
    rsv1: Bool = false,
    key: [UInt8]? = [0x37, 0xFA, 0x21, 0x3D]
) -> [UInt8] {
    var bytes: [UInt8] = [(fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode]
    let maskBit: UInt8 = key == nil ? 0 : 0x80
    if payload.count < 126 {
        bytes.append(maskBit | UInt8(payload.count))
    } else if payload.count <= 0xFFFF {
        bytes.append(maskBit | 126)
        bytes += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
    } else {
        bytes.append(maskBit | 127)
        bytes += (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xFF) }
    }
    guard let key else { return bytes + payload }
    return bytes + key + payload.enumerated().map { $0.element ^ key[$0.offset % 4] }
}

@Suite("WebSocket frames: reading (RFC 6455 §5.2)")
struct WebSocketFrameReaderTests {
    // A stream whose frames always straddle reads never empties the reader: it must still keep only
    // the unfinished frame, not everything ever read (it did: 200 MB for 3,000 messages of 64 KiB).
    @Test func framesStraddlingReadsKeepTheBufferBounded() throws {
        var reader = WebSocketFrameReader(maxFrameSize: 1 << 20)
        var stream = ByteBuffer()
        for index in 0..<300 {
            stream.writeBytes(clientFrame(0x2, [UInt8](repeating: UInt8(index & 0xFF), count: 10_000)))
        }
        var frames = 0
        var largestCapacity = 0
        // Reads of 7,000 bytes: almost every read ends inside a frame.
        while let chunk = stream.readSlice(length: min(7_000, stream.readableBytes)), chunk.readableBytes > 0 {
            reader.append(chunk)
            while let frame = try reader.next() {
                #expect(frame.data.readableBytes == 10_000)
                frames += 1
            }
            largestCapacity = max(largestCapacity, reader.bufferCapacity)
        }
        #expect(frames == 300)
        #expect(largestCapacity < 64 * 1024)
    }

    @Test(arguments: [0, 5, 125, 126, 127, 65535, 65536, 70000])
    func readsEveryLengthEncoding(length: Int) throws {
        let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var reader = WebSocketFrameReader(maxFrameSize: 1 << 20)
        reader.append(ByteBuffer(bytes: clientFrame(0x2, payload)))
        let frame = try #require(try reader.next())
        #expect(frame.opcode == .binary)
        #expect(frame.fin)
        #expect(frame.maskKey != nil)
        #expect(Array(frame.fastUnmaskedData.readableBytesView) == payload)
        #expect(try reader.next() == nil)
        #expect(reader.bufferedBytes == 0)
    }

    // A frame that arrives a byte at a time comes out once, whole, when its last byte is in.
    @Test func assemblesAFrameFromSingleBytes() throws {
        let bytes = clientFrame(0x1, Array("Hello, fragments".utf8), rsv1: true)
        var reader = WebSocketFrameReader(maxFrameSize: 1024)
        for (index, byte) in bytes.enumerated() {
            reader.append(ByteBuffer(bytes: [byte]))
            let frame = try reader.next()
            if index < bytes.count - 1 {
                #expect(frame == nil)
            } else {
                let frame = try #require(frame)
                #expect(frame.rsv1)
                #expect(String(buffer: frame.fastUnmaskedData) == "Hello, fragments")
            }
        }
        #expect(reader.bufferedBytes == 0)
    }

    // Several frames in one read come out in order; a partial tail waits.
    @Test func splitsSeveralFramesInOneRead() throws {
        let first = clientFrame(0x1, Array("one".utf8), fin: false)
        let second = clientFrame(0x0, Array("two".utf8))
        let ping = clientFrame(0x9, Array("p".utf8))
        var reader = WebSocketFrameReader(maxFrameSize: 1024)
        reader.append(ByteBuffer(bytes: first + second + ping.prefix(3)))
        let a = try #require(try reader.next())
        let b = try #require(try reader.next())
        #expect(!a.fin && a.opcode == .text && String(buffer: a.fastUnmaskedData) == "one")
        #expect(b.fin && b.opcode == .continuation && String(buffer: b.fastUnmaskedData) == "two")
        #expect(try reader.next() == nil)
        #expect(reader.bufferedBytes == 3)
        reader.append(ByteBuffer(bytes: ping.dropFirst(3)))
        let c = try #require(try reader.next())
        #expect(c.opcode == .ping && String(buffer: c.fastUnmaskedData) == "p")
    }

    // The limit is checked on the header, before any payload is buffered.
    @Test func refusesAFrameOverTheLimitFromItsHeader() {
        var reader = WebSocketFrameReader(maxFrameSize: 1000)
        reader.append(ByteBuffer(bytes: Array(clientFrame(0x2, Array(repeating: 0, count: 1001)).prefix(8))))
        #expect(throws: WebSocketFrameReadError.frameTooBig) { try reader.next() }
    }

    @Test func refusesA64BitLengthWithTheTopBitSet() {
        var reader = WebSocketFrameReader(maxFrameSize: .max)
        reader.append(ByteBuffer(bytes: [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1]))
        #expect(throws: WebSocketFrameReadError.frameTooBig) { try reader.next() }
    }

    // An unmasked client frame is read as such; the connection machine refuses it with 1002.
    @Test func reportsAnUnmaskedFrame() throws {
        var reader = WebSocketFrameReader(maxFrameSize: 1024)
        reader.append(ByteBuffer(bytes: clientFrame(0x1, Array("x".utf8), key: nil)))
        let frame = try #require(try reader.next())
        #expect(frame.maskKey == nil)
        var machine = WebSocketConnectionStateMachine()
        guard case .fail(let code, _) = machine.frameReceived(frame) else {
            Issue.record("unmasked frame accepted")
            return
        }
        #expect(code == 1002)
    }
}

@Suite("WebSocket frames: unmasking and writing")
struct WebSocketFrameWriterTests {
    // The word-at-a-time unmask agrees with NIO's byte-at-a-time one at every length and alignment.
    @Test func fastUnmaskAgreesWithNIO() {
        let key: WebSocketMaskingKey = [0x01, 0x80, 0xFE, 0x5A]
        for length in 0..<70 {
            var data = ByteBuffer(bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 * 31 + 3) })
            data.webSocketMask(key)
            let frame = WebSocketFrame(fin: true, opcode: .binary, maskKey: key, data: data)
            #expect(frame.fastUnmaskedData == frame.unmaskedData, "length \(length)")
        }
        // A slice that starts at an odd offset in its storage.
        var storage = ByteBuffer(bytes: Array(repeating: 0xAA, count: 3) + (0..<40).map { UInt8($0) })
        storage.moveReaderIndex(forwardBy: 3)
        let frame = WebSocketFrame(fin: true, opcode: .binary, maskKey: key, data: storage)
        #expect(frame.fastUnmaskedData == frame.unmaskedData)
    }

    @Test(arguments: [0, 125, 126, 65535, 65536])
    func writesInPlaceWhenThereIsHeadroom(length: Int) throws {
        var payload = ByteBufferAllocator().buffer(capacity: WebSocketFrameWriter.headroom + length)
        payload.moveWriterIndex(forwardBy: WebSocketFrameWriter.headroom)
        payload.moveReaderIndex(forwardBy: WebSocketFrameWriter.headroom)
        payload.writeBytes(Array(repeating: UInt8(ascii: "z"), count: length))
        let inPlace = WebSocketFrameWriter.frame(opcode: .text, payload: payload, allocator: .init())
        let copied = WebSocketFrameWriter.frame(opcode: .text, payload: ByteBuffer(bytes: Array(repeating: UInt8(ascii: "z"), count: length)), allocator: .init())
        #expect(inPlace == copied)
        // The reader reads it back.
        var reader = WebSocketFrameReader(maxFrameSize: 1 << 20)
        reader.append(inPlace)
        let frame = try #require(try reader.next())
        #expect(frame.maskKey == nil && frame.opcode == .text && frame.fin && frame.data.readableBytes == length)
        let headerLength = length < 126 ? 2 : (length <= 0xFFFF ? 4 : 10)
        #expect(inPlace.readableBytes == headerLength + length)
    }

    // A client frame: mask bit and key in the header, payload masked; the reader gets it back.
    @Test(arguments: [0, 5, 125, 126, 70000])
    func maskedFramesReadBack(length: Int) throws {
        let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        let key: WebSocketMaskingKey = [0x9A, 0x01, 0xFF, 0x42]
        let frame = WebSocketFrameWriter.maskedFrame(opcode: .binary, rsv1: true, payload: ByteBuffer(bytes: payload), maskKey: key, allocator: .init())
        #expect(Array(frame.readableBytesView) == clientFrame(0x2, payload, rsv1: true, key: Array(key)))
        var reader = WebSocketFrameReader(maxFrameSize: 1 << 20)
        reader.append(frame)
        let read = try #require(try reader.next())
        #expect(read.maskKey == key && read.rsv1)
        #expect(Array(read.fastUnmaskedData.readableBytesView) == payload)
    }

    @Test func setsRSV1AndFin() {
        let frame = WebSocketFrameWriter.frame(opcode: .binary, fin: false, rsv1: true, payload: ByteBuffer(bytes: [1]), allocator: .init())
        #expect(Array(frame.readableBytesView) == [0x42, 0x01, 0x01])
    }
}
