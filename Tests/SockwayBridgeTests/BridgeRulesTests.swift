import NIOCore
import Testing

@testable import SockwayBridge

@Suite struct UpstreamURLTests {
    @Test func webSocketURLs() throws {
        let plain = try SockwayUpstream("ws://127.0.0.1:9000/chat?room=1")
        #expect(plain.scheme == .webSocket)
        #expect(plain.host == "127.0.0.1")
        #expect(plain.port == 9000)
        #expect(plain.target == "/chat?room=1")
        #expect(plain.hostHeader == "127.0.0.1:9000")
        let bare = try SockwayUpstream("WS://backend")
        #expect(bare.port == 80)
        #expect(bare.target == "/")
        #expect(bare.hostHeader == "backend")
        let query = try SockwayUpstream("ws://backend:81?x=1")
        #expect(query.target == "/?x=1")
        let v6 = try SockwayUpstream("ws://[::1]:9000/")
        #expect(v6.host == "::1")
        #expect(v6.hostHeader == "[::1]:9000")
        #expect(v6.description == "ws://[::1]:9000/")
    }

    @Test func tcpURLs() throws {
        let tcp = try SockwayUpstream("tcp://localhost:7000")
        #expect(tcp.scheme == .tcp)
        #expect(tcp.port == 7000)
        #expect(tcp.target == "")
        #expect(try SockwayUpstream("tcp://[::1]:7000/").host == "::1")
    }

    @Test(arguments: [
        "http://backend:80/", "wss://backend/", "ftp://x:1", "backend:80", "ws:/backend", "ws://", "ws://:80/",
        "tcp://backend", "tcp://backend:0", "tcp://backend:65536", "tcp://backend:7000/path", "ws://backend:x/",
        "ws://user:pass@backend/", "ws://backend/#frag", "ws://[::1/", "ws://[::1]x/", "ws://back end/", "ws://backend/a b",
        "ws://backend/\u{e9}",
    ])
    func refusedURLs(url: String) {
        #expect(throws: SockwayUpstreamError.self) { try SockwayUpstream(url) }
    }

    @Test func errorsNameTheProblem() {
        #expect(throws: SockwayUpstreamError.self) { try SockwayUpstream("gopher://x:1") }
        do {
            _ = try SockwayUpstream("gopher://x:1")
        } catch {
            #expect(error.description.contains("unknown scheme \"gopher\""))
        }
    }
}

@Suite struct TCPFramingTests {
    private func messages(_ reader: inout TCPMessageReader) throws -> [String] {
        var out: [String] = []
        while let message = try reader.next() { out.append(String(buffer: message)) }
        return out
    }

    @Test func newlineFramingAcrossReads() throws {
        var reader = TCPMessageReader(framing: .newline, maxMessageBytes: 16)
        reader.append(ByteBuffer(string: "one\ntw"))
        #expect(try messages(&reader) == ["one"])
        reader.append(ByteBuffer(string: "o\r\n\nthree"))
        #expect(try messages(&reader) == ["two", ""])
        #expect(reader.bufferedBytes == 5)
        reader.append(ByteBuffer(string: "\n"))
        #expect(try messages(&reader) == ["three"])
        #expect(reader.bufferedBytes == 0)
    }

    @Test func newlineFramingBounds() throws {
        var exact = TCPMessageReader(framing: .newline, maxMessageBytes: 4)
        exact.append(ByteBuffer(string: "abcd\r"))
        #expect(try exact.next() == nil)
        exact.append(ByteBuffer(string: "\n"))
        #expect(try exact.next().map { String(buffer: $0) } == "abcd")
        // An unfinished line already past the bound fails before its newline comes.
        var long = TCPMessageReader(framing: .newline, maxMessageBytes: 4)
        long.append(ByteBuffer(string: "abcdef"))
        #expect(throws: TCPFramingError.messageTooBig) { try long.next() }
        var finished = TCPMessageReader(framing: .newline, maxMessageBytes: 4)
        finished.append(ByteBuffer(string: "abcde\n"))
        #expect(throws: TCPFramingError.messageTooBig) { try finished.next() }
    }

    @Test func lengthPrefixedFraming() throws {
        var reader = TCPMessageReader(framing: .lengthPrefixed, maxMessageBytes: 8)
        var bytes = ByteBuffer()
        try TCPMessageReader.append("hé", framing: .lengthPrefixed, to: &bytes)
        try TCPMessageReader.append(ByteBuffer(bytes: [0x0A, 0x00]), framing: .lengthPrefixed, to: &bytes)
        try TCPMessageReader.append("", framing: .lengthPrefixed, to: &bytes)
        #expect(bytes.readableBytes == 4 + 3 + 4 + 2 + 4)
        // Byte by byte: a message comes out only when whole.
        var out: [[UInt8]] = []
        for byte in bytes.readableBytesView {
            reader.append(ByteBuffer(bytes: [byte]))
            while let message = try reader.next() { out.append(Array(message.readableBytesView)) }
        }
        #expect(out == [Array("hé".utf8), [0x0A, 0x00], []])
        var big = TCPMessageReader(framing: .lengthPrefixed, maxMessageBytes: 8)
        big.append(ByteBuffer(bytes: [0, 0, 0, 9]))
        #expect(throws: TCPFramingError.messageTooBig) { try big.next() }
    }

    @Test func newlineFramingCannotCarryANewline() throws {
        var output = ByteBuffer()
        #expect(throws: TCPFramingError.newlineInMessage) { try TCPMessageReader.append("a\nb", framing: .newline, to: &output) }
        #expect(throws: TCPFramingError.newlineInMessage) {
            try TCPMessageReader.append(ByteBuffer(string: "a\n"), framing: .newline, to: &output)
        }
        try TCPMessageReader.append("a\rb", framing: .newline, to: &output)
        #expect(String(buffer: output) == "a\rb\n")
    }
}

@Suite struct BackoffTests {
    @Test func doublesUpToTheMaximumWithBoundedJitter() {
        let policy = BackoffPolicy(initial: .milliseconds(100), maximum: .seconds(5))
        #expect(policy.delay(afterFailures: 0, random: 0.5) == .zero)
        #expect(policy.delay(afterFailures: 1, random: 0) == .milliseconds(100))
        #expect(policy.delay(afterFailures: 2, random: 0) == .milliseconds(200))
        #expect(policy.delay(afterFailures: 4, random: 0) == .milliseconds(800))
        #expect(policy.delay(afterFailures: 10, random: 0) == .seconds(5))
        #expect(policy.delay(afterFailures: 1 << 20, random: 0) == .seconds(5))
        #expect(policy.delay(afterFailures: 2, random: 1) == .milliseconds(150))
    }

    @Test func healthCountsFailuresInARow() {
        let health = UpstreamHealth()
        #expect(health.recordFailure() == 1)
        #expect(health.recordFailure() == 2)
        health.recordSuccess()
        #expect(health.consecutiveFailures == 0)
    }
}
