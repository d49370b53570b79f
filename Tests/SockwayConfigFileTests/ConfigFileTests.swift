import ArgumentParser
import Foundation
import Testing

@testable import SockwayConfigFile

/// A command with one option of each shape `sockway serve` has.
struct Example: ParsableCommand {
    enum Mode: String, ExpressibleByArgument { case shared, none }

    @Option var host = "127.0.0.1"
    @Option var port = 8080
    @Option var heartbeat: Double = 25
    @Option(name: .customLong("allowed-origin")) var allowedOrigins: [String] = []
    @Option(name: .customLong("eio-cookie")) var eioCookie: String?
    @Option var compression: Mode = .shared
    @Flag(name: .customLong("cookie-needed")) var cookieNeeded = false
    @Flag(inversion: .prefixedNo) var deflate = true
    @Option var config: String?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
    }
}

let schema = ConfigFileSchema(Example.self, excluding: ["config"])

func expand(_ yaml: String, _ commandLine: [String] = []) throws -> Example {
    let file = try ConfigFile(yaml: yaml, path: "sockway.yaml", schema: schema)
    try file.check(against: Example.self)
    return try Example.parse(file.arguments(before: commandLine, schema: schema))
}

func refusal(_ yaml: String) -> ConfigFileError? {
    do {
        try ConfigFile(yaml: yaml, path: "sockway.yaml", schema: schema).check(against: Example.self)
        return nil
    } catch {
        return error
    }
}

@Suite struct SchemaTests {
    @Test func keysAreTheCommandsLongNamesLessHelpAndExcluded() {
        #expect(
            schema.keys == [
                "host": .value, "port": .value, "heartbeat": .value, "allowed-origin": .values, "eio-cookie": .value,
                "compression": .value, "cookie-needed": .flag, "deflate": .flag, "no-deflate": .flag,
            ]
        )
    }

    @Test func dumpHelpJSONGivesTheSameSchema() throws {
        let json = Data(Example._dumpHelp().utf8)
        #expect(try ConfigFileSchema(dumpHelp: json, excluding: ["config"]) == schema)
    }
}

@Suite struct ConversionTests {
    @Test func eachShapeBecomesItsArguments() throws {
        let file = try ConfigFile(
            yaml: """
                port: 9000
                heartbeat: 2.5
                host: "::1"
                eio-cookie: -io
                cookie-needed: true
                deflate: false
                allowed-origin:
                  - http://a
                  - http://b
                """,
            path: "sockway.yaml",
            schema: schema
        )
        #expect(
            file.settings == [
                .init(key: "port", line: 1, arguments: ["--port=9000"]),
                .init(key: "heartbeat", line: 2, arguments: ["--heartbeat=2.5"]),
                .init(key: "host", line: 3, arguments: ["--host=::1"]),
                .init(key: "eio-cookie", line: 4, arguments: ["--eio-cookie=-io"]),
                .init(key: "cookie-needed", line: 5, arguments: ["--cookie-needed"]),
                .init(key: "deflate", line: 6, arguments: ["--no-deflate"]),
                .init(key: "allowed-origin", line: 8, arguments: ["--allowed-origin=http://a"]),
                .init(key: "allowed-origin", line: 9, arguments: ["--allowed-origin=http://b"]),
            ]
        )
        let parsed = try Example.parse(file.arguments(before: [], schema: schema))
        #expect(parsed.port == 9000 && parsed.host == "::1" && parsed.eioCookie == "-io" && parsed.cookieNeeded && !parsed.deflate)
        #expect(parsed.allowedOrigins == ["http://a", "http://b"])
    }

    @Test func aFlagSetToFalseWithoutInversionGivesNothing() throws {
        let file = try ConfigFile(yaml: "cookie-needed: false", path: "f", schema: schema)
        #expect(file.settings.map(\.arguments) == [[]])
    }

    @Test func aSingleValueCountsAsAOneItemList() throws {
        #expect(try expand("allowed-origin: http://a").allowedOrigins == ["http://a"])
    }

    @Test func anEmptyFileSetsNothing() throws {
        #expect(try ConfigFile(yaml: "", path: "f", schema: schema).settings.isEmpty)
        #expect(try ConfigFile(yaml: "# nothing\n", path: "f", schema: schema).settings.isEmpty)
    }

    @Test func commandLineOptionsWin() throws {
        let yaml = "port: 9000\nhost: 0.0.0.0\nallowed-origin: [http://a, http://b]\ncompression: none"
        let parsed = try expand(yaml, ["--port", "9100", "--allowed-origin=http://c"])
        #expect(parsed.port == 9100)
        #expect(parsed.host == "0.0.0.0")
        #expect(parsed.allowedOrigins == ["http://c"])
        #expect(parsed.compression == .none)
    }

    @Test func aFileListIsKeptWhenTheCommandLineHasNone() throws {
        #expect(try expand("allowed-origin: [http://a]", ["--port", "1"]).allowedOrigins == ["http://a"])
    }

    @Test func argumentsAfterTheTerminatorAreNotOptions() throws {
        let file = try ConfigFile(yaml: "allowed-origin: [http://a]", path: "f", schema: schema)
        #expect(file.arguments(before: ["--", "--allowed-origin=x"], schema: schema) == ["--allowed-origin=http://a", "--", "--allowed-origin=x"])
    }

    @Test func theConfigOptionIsFoundInEitherSpelling() {
        #expect(ConfigFile.value(of: "config", in: ["--port", "1", "--config", "a.yaml"]) == "a.yaml")
        #expect(ConfigFile.value(of: "config", in: ["--config=b.yaml"]) == "b.yaml")
        #expect(ConfigFile.value(of: "config", in: ["--config=a", "--config", "b"]) == "b")
        #expect(ConfigFile.value(of: "config", in: ["--", "--config", "a"]) == nil)
        #expect(ConfigFile.value(of: "config", in: ["--config"]) == nil)
    }

    @Test func expandPutsTheFileBeforeTheCommandLine() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID().uuidString).yaml")
        try Data("port: 9000\ncookie-needed: true\n".utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let arguments = try ConfigFile.expand(["--config", url.path, "--host", "::1"], for: Example.self)
        #expect(arguments == ["--port=9000", "--cookie-needed", "--config", url.path, "--host", "::1"])
        #expect(try ConfigFile.expand(["--port", "1"], for: Example.self) == ["--port", "1"])
    }
}

@Suite struct RefusalTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var yaml: String
        var line: Int?
        var key: String?
        var message: String
        var testDescription: String { message }
    }

    /// Every refusal names the file, the line and (where there is one) the key.
    @Test(arguments: [
        Case(yaml: "port: 1\n\nprot: 8080", line: 3, key: "prot", message: #"sockway.yaml:3: unknown key "prot" (did you mean "port"?)"#),
        Case(yaml: "config: other.yaml", line: 1, key: "config", message: #"sockway.yaml:1: unknown key "config""#),
        Case(yaml: "port: [1]", line: 1, key: "port", message: #"sockway.yaml:1: "port" expects a single value, not a list"#),
        Case(yaml: "host:\n  name: a", line: 2, key: "host", message: #"sockway.yaml:2: "host" expects a single value, not a mapping"#),
        Case(yaml: "port:", line: 1, key: "port", message: #"sockway.yaml:1: "port" has no value"#),
        Case(yaml: "cookie-needed: \"yes\"", line: 1, key: "cookie-needed", message: #"sockway.yaml:1: "cookie-needed" is a flag: expected true or false, not "yes""#),
        Case(yaml: "cookie-needed: 1", line: 1, key: "cookie-needed", message: #"sockway.yaml:1: "cookie-needed" is a flag: expected true or false, not 1"#),
        Case(yaml: "cookie-needed: [true]", line: 1, key: "cookie-needed", message: #"sockway.yaml:1: "cookie-needed" is a flag: expected true or false, not a list"#),
        Case(yaml: "allowed-origin:\n  - http://a\n  - {x: 1}", line: 3, key: "allowed-origin", message: #"sockway.yaml:3: "allowed-origin" expects a list of values, not of mappings"#),
        Case(yaml: "allowed-origin: {a: 1}", line: 1, key: "allowed-origin", message: #"sockway.yaml:1: "allowed-origin" expects a value or a list of values, not a mapping"#),
        Case(yaml: "host: a\nport: abc", line: 2, key: "port", message: #"sockway.yaml:2: "port": The value 'abc' is invalid for '--port <port>'"#),
        Case(yaml: "port: 70000", line: 1, key: "port", message: #"sockway.yaml:1: "port": --port must be 0...65535"#),
        Case(yaml: "compression: fast", line: 1, key: "compression", message: #"sockway.yaml:1: "compression": The value 'fast' is invalid for '--compression <compression>'"#),
        Case(yaml: "port: 1\nport: 2", line: 1, key: "port", message: #"sockway.yaml:1: duplicate key "port""#),
        Case(yaml: "port: 1\nhost: [a\n", line: 3, key: nil, message: "sockway.yaml:3: invalid YAML: "),
        Case(yaml: "- port\n- 1", line: 1, key: nil, message: "sockway.yaml:1: expected a mapping of option names to values (port: 8080)"),
        Case(yaml: "? [a]\n: 1", line: 1, key: nil, message: "sockway.yaml:1: a key must be an option name, not a list"),
    ])
    func refusesWithKeyAndLine(_ expected: Case) throws {
        let error = try #require(refusal(expected.yaml))
        #expect(error.line == expected.line)
        #expect(error.key == expected.key)
        #expect(error.description.hasPrefix(expected.message), "\(error)")
    }

    @Test func refusesAnUnreadableFile() {
        #expect {
            _ = try ConfigFile(contentsOf: "/nonexistent/sockway.yaml", schema: schema)
        } throws: { error in
            let error = error as? ConfigFileError
            return error?.line == nil && error?.description.hasPrefix("/nonexistent/sockway.yaml: cannot read the file") == true
        }
    }
}
