import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import SockwaySockJS
import Testing

@testable import SockwayServer

/// A server pipeline on an `EmbeddedChannel`: bytes in, bytes out, time under the test's control.
///
/// Several connections can share one `EmbeddedEventLoop`, so a session can be polled on one connection
/// and sent to on another, like a browser does.
final class InMemoryServer {
    let loop = EmbeddedEventLoop()
    let runtime: ServerRuntime

    init(endpoints: [SockwayEndpoint], configuration: SockwayConfiguration = .init()) {
        runtime = ServerRuntime(configuration: configuration, endpoints: endpoints, loops: [loop])
    }

    convenience init(options: SockwayEndpointOptions = .init()) {
        self.init(endpoints: SockwayDemoEndpoints.all(options: options))
    }

    func connect(from address: String = "127.0.0.1") throws -> InMemoryConnection {
        let channel = EmbeddedChannel(loop: loop)
        try SockwayServer.configurePipeline(channel: channel, runtime: runtime)
        try channel.connect(to: SocketAddress(ipAddress: address, port: 40000)).wait()
        return InMemoryConnection(channel: channel)
    }

    /// Sessions currently in the store of `prefix`.
    func sessionCount(_ prefix: String = "/echo") -> Int {
        runtime.runtime(forPrefix: prefix)!.store.count(on: loop)
    }

    func advance(by amount: TimeAmount) {
        loop.advanceTime(by: amount)
    }
}

final class InMemoryConnection {
    let channel: EmbeddedChannel
    /// Bytes read past an HTTP head (the first WebSocket frames after a 101), returned by the next read.
    var leftover = ByteBuffer()

    init(channel: EmbeddedChannel) {
        self.channel = channel
    }

    var isActive: Bool { channel.isActive }

    func write(_ text: String) throws {
        try write(ByteBuffer(string: text))
    }

    func write(_ bytes: ByteBuffer) throws {
        try channel.writeInbound(bytes)
        channel.embeddedEventLoop.run()
    }

    /// Sends a request with an optional body.
    func request(
        _ method: String,
        _ path: String,
        body: String = "",
        headers: [(String, String)] = [],
        version: String = "HTTP/1.1"
    ) throws {
        var text = "\(method) \(path) \(version)\r\nHost: 127.0.0.1\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if method == "POST" || !body.isEmpty { text += "Content-Length: \(body.utf8.count)\r\n" }
        text += "\r\n" + body
        try write(text)
    }

    /// Everything the server has written so far.
    func readBytes() throws -> ByteBuffer {
        var all = leftover
        leftover.clear()
        while var part = try channel.readOutbound(as: ByteBuffer.self) {
            all.writeBuffer(&part)
        }
        return all
    }

    func readText() throws -> String {
        String(buffer: try readBytes())
    }

    /// Reads one complete response (Content-Length or chunked-and-ended).
    func readResponse() throws -> HTTPTestResponse {
        let text = try readText()
        return try #require(HTTPTestResponse(parsing: text))
    }

    func close() throws {
        try channel.close().wait()
        channel.embeddedEventLoop.run()
    }
}

/// A parsed HTTP/1.x response, for assertions.
struct HTTPTestResponse {
    var version: String
    var status: Int
    var headers: [(String, String)]
    /// The body with chunked framing removed.
    var body: String
    /// The body chunks, one per chunk on the wire, when chunked.
    var chunks: [String]
    /// Whether the terminating zero-length chunk was seen.
    var ended: Bool

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    init?(parsing text: String) {
        guard let headEnd = text.range(of: "\r\n\r\n") else { return nil }
        let head = text[..<headEnd.lowerBound].components(separatedBy: "\r\n")
        let statusLine = head[0].split(separator: " ", maxSplits: 2)
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        version = String(statusLine[0])
        self.status = status
        headers = head.dropFirst().map { line in
            let parts = line.split(separator: ":", maxSplits: 1)
            return (String(parts[0]), parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : "")
        }
        var rest = Substring(text[headEnd.upperBound...])
        chunks = []
        ended = false
        if headers.contains(where: { $0.0.lowercased() == "transfer-encoding" && $0.1 == "chunked" }) {
            var body = ""
            while let lineEnd = rest.range(of: "\r\n") {
                guard let size = Int(rest[..<lineEnd.lowerBound], radix: 16) else { return nil }
                rest = rest[lineEnd.upperBound...]
                if size == 0 {
                    ended = true
                    break
                }
                let utf8 = Array(rest.utf8)
                guard utf8.count >= size + 2 else { return nil }
                let chunk = String(decoding: utf8[0..<size], as: UTF8.self)
                chunks.append(chunk)
                body += chunk
                rest = Substring(String(decoding: utf8[(size + 2)...], as: UTF8.self))
            }
            self.body = body
        } else {
            body = String(rest)
            ended = true
        }
    }
}

/// A chunked body read incrementally from a streaming response.
struct ChunkReader {
    private var pending = ""

    /// Appends raw bytes from the wire and returns the complete chunks found so far; `nil` marks the end.
    mutating func feed(_ text: String) -> [String?] {
        pending += text
        var out: [String?] = []
        while let lineEnd = pending.range(of: "\r\n"), let size = Int(pending[..<lineEnd.lowerBound], radix: 16) {
            let afterLine = pending[lineEnd.upperBound...]
            let utf8 = Array(afterLine.utf8)
            guard utf8.count >= size + 2 else { break }
            out.append(size == 0 ? nil : String(decoding: utf8[0..<size], as: UTF8.self))
            pending = String(decoding: utf8[(size + 2)...], as: UTF8.self)
        }
        return out
    }
}

extension String {
    /// The part after the HTTP head.
    var afterHead: String {
        guard let range = range(of: "\r\n\r\n") else { return "" }
        return String(self[range.upperBound...])
    }
}
