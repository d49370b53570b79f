import ArgumentParser
import Foundation
import NIOCore
import SockwayBench

struct Probe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Try every transport against an echo endpoint and say which work, how fast, and which to use.",
        discussion: """
            URL is a SockJS echo endpoint (Sockway's /echo, or any SockJS server's) or, with --engine-io or \
            a path ending in /engine.io, an Engine.IO v4 echo endpoint. Each transport in turn: open a session, \
            send --messages messages one at a time, each after the echo of the last. Reports the time to open, \
            to the first echo, round-trip p50/p99, and whether streaming transports stream: a proxy that \
            buffers responses holds xhr-streaming's and eventsource's frames until the response ends, so their \
            open frame or echo does not arrive within --timeout (buffered), or comes much later than over \
            polling (delayed). Recommends the first transport in sockjs-client's order (websocket, \
            xhr-streaming, eventsource, xhr-polling, jsonp-polling) that works and is not held up. Exit \
            status 0 if any transport worked, 1 if none did, 64 for usage errors.
            """
    )

    @Argument(help: "The echo endpoint, e.g. http://127.0.0.1:8080/echo.")
    var url: String

    @Flag(name: .customLong("engine-io"), help: "The URL is an Engine.IO v4 echo endpoint (implied by a path ending in /engine.io).")
    var engineIO = false

    @Option(help: "Messages per transport.")
    var messages = 30

    @Option(help: "Seconds each step (opening, each echo) may take before the transport is given up.")
    var timeout = 5.0

    @Option(name: .customLong("header"), help: "An extra request header, \"Name: value\" (repeatable).")
    var headers: [String] = []

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    func validate() throws {
        guard url.hasPrefix("http://") || url.hasPrefix("ws://"), url.split(separator: "/").count >= 2 else {
            throw ValidationError("URL must be http://host[:port]/prefix (or ws://)")
        }
        guard (1...10_000).contains(messages) else { throw ValidationError("--messages must be 1...10000") }
        guard timeout > 0, timeout <= 600 else { throw ValidationError("--timeout must be positive, at most 600 s") }
    }

    func run() async throws {
        var options = ProbeOptions(url: url)
        options.engineIO = engineIO
        options.messages = messages
        options.timeout = .nanoseconds(Int64(timeout * 1e9))
        options.extraHeaders = try parseHeaderOptions(headers)
        let terminal = !json && isatty(STDERR_FILENO) != 0
        let runner = ProbeRunner(options: options) { line in
            if terminal { FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8)) }
        }
        let report = await runner.run()
        if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        print(json ? try report.json() : report.table())
        if !report.anyWorked { throw ExitCode.failure }
    }
}
