import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Testing

@testable import SockwayServer

@Suite("Operability: health check and JSON logs")
struct OperabilityTests {
    @Test("GET /healthz answers 200 with the number of live sessions; it can be moved or switched off")
    func healthCheck() throws {
        let server = InMemoryServer()
        let connection = try server.connect()
        try connection.request("POST", "/echo/000/h1/xhr")
        _ = try connection.readResponse()
        try connection.request("GET", "/healthz")
        let response = try connection.readResponse()
        #expect(response.status == 200)
        #expect(response.header("Content-Type") == "application/json")
        #expect(response.body == #"{"status":"ok","sessions":1}"#)

        let off = InMemoryServer(endpoints: SockwayDemoEndpoints.all(options: .init()), configuration: .init(healthCheckPath: nil))
        let other = try off.connect()
        try other.request("GET", "/healthz")
        #expect(try other.readResponse().status == 404)
    }

    @Test("a local sockjs-client copy is served at its path, so the demo and iframe pages work offline")
    func localClientScript() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sockway-local-sockjs-\(UInt32.random(in: 0 ... .max)).js")
        try Data("/* sockjs-client */ var SockJS = {};".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let options = SockwayEndpointOptions(clientScriptURL: "/sockjs.min.js")
        let server = InMemoryServer(
            endpoints: SockwayDemoEndpoints.all(options: options),
            configuration: .init(clientScriptURL: "/sockjs.min.js", localClientScriptFile: file.path)
        )
        let connection = try server.connect()
        try connection.request("GET", "/sockjs.min.js")
        let script = try connection.readResponse()
        #expect(script.status == 200)
        #expect(script.header("Content-Type") == "application/javascript; charset=UTF-8")
        #expect(script.body == "/* sockjs-client */ var SockJS = {};")
        try connection.request("GET", "/echo/iframe.html")
        #expect(try connection.readResponse().body.contains(#"<script src="/sockjs.min.js"></script>"#))
        try connection.request("GET", "/")
        #expect(try connection.readResponse().body.contains("/sockjs.min.js"))

        let without = try InMemoryServer().connect()
        try without.request("GET", "/sockjs.min.js")
        #expect(try without.readResponse().status == 404)
    }

    @Test("the JSON log handler writes one object per line with level, label, message and metadata")
    func jsonLogLines() throws {
        let lines = NIOLockedValueBox<[String]>([])
        var logger = Logger(label: "sockway-test") { label in
            SockwayJSONLogHandler(label: label, logLevel: .notice) { line in lines.withLockedValue { $0.append(line) } }
        }
        logger[metadataKey: "node"] = "a"
        logger.info("left out: below the level")
        logger.notice("Refused: \"quoted\"", metadata: ["client": "127.0.0.1", "counts": ["1", "2"]])
        let written = lines.withLockedValue { $0 }
        #expect(written.count == 1)
        let line = try #require(written.first)
        #expect(line.hasSuffix("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["level"] as? String == "notice")
        #expect(object["label"] as? String == "sockway-test")
        #expect(object["message"] as? String == "Refused: \"quoted\"")
        #expect(object["client"] as? String == "127.0.0.1")
        #expect(object["node"] as? String == "a")
        #expect(object["counts"] as? [String] == ["1", "2"])
        #expect((object["time"] as? String)?.hasSuffix("Z") == true)
    }
}
