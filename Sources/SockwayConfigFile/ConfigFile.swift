import ArgumentParser
import Foundation
import Yams

/// One value of a config file, as the command-line arguments it stands for.
public struct ConfigFileSetting: Sendable, Equatable {
    /// The key, a long option name without `--`.
    public var key: String
    /// The 1-based line of the value (of each item, for a list).
    public var line: Int
    /// `["--port=8080"]`, `["--cookie-needed"]`, or `[]` for a flag set to `false`.
    public var arguments: [String]

    public init(key: String, line: Int, arguments: [String]) {
        self.key = key
        self.line = line
        self.arguments = arguments
    }
}

/// A YAML config file whose keys are a command's long option names: `port: 8080`, `cookie-needed: true`,
/// `allowed-origin: [http://a, http://b]`.
///
/// The file becomes arguments put before the command line's, so the command parses and validates both
/// together and a command-line option wins: a single option's later value replaces the file's, and a
/// repeatable option given on the command line drops the file's list.
public struct ConfigFile: Sendable, Equatable {
    /// The file as it was named, for messages.
    public var path: String
    /// The file's values in file order; a list gives one setting per item.
    public var settings: [ConfigFileSetting]

    /// Reads the file at `path`; see ``init(yaml:path:schema:)``.
    public init(contentsOf path: String, schema: ConfigFileSchema) throws(ConfigFileError) {
        let yaml: String
        do {
            yaml = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigFileError(path: path, line: nil, key: nil, message: "cannot read the file: \(Self.reason(error))")
        }
        try self.init(yaml: yaml, path: path, schema: schema)
    }

    /// Reads `yaml`, refusing invalid YAML, keys `schema` does not have, and values of the wrong shape.
    ///
    /// Values are not checked against the options here; ``check(against:)`` does that.
    public init(yaml: String, path: String, schema: ConfigFileSchema) throws(ConfigFileError) {
        self.path = path
        self.settings = []
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw Self.yamlError(error, path: path)
        } catch {
            throw ConfigFileError(path: path, line: nil, key: nil, message: "invalid YAML: \(error)")
        }
        guard let root, root.null == nil else { return }  // an empty file sets nothing
        guard case .mapping(let mapping) = root else {
            throw ConfigFileError(path: path, line: root.mark?.line, key: nil, message: "expected a mapping of option names to values (port: 8080)")
        }
        for (keyNode, value) in mapping {
            guard case .scalar(let keyScalar) = keyNode else {
                throw ConfigFileError(path: path, line: keyNode.mark?.line, key: nil, message: "a key must be an option name, not a \(Self.shape(keyNode))")
            }
            let key = keyScalar.string
            let line = keyNode.mark?.line ?? 1
            guard let kind = schema.keys[key] else {
                throw ConfigFileError(path: path, line: line, key: key, message: "unknown key \"\(key)\"\(Self.suggestion(for: key, in: schema))")
            }
            func refuse(_ message: String, at node: Node? = nil) -> ConfigFileError {
                ConfigFileError(path: path, line: node?.mark?.line ?? line, key: key, message: "\"\(key)\" \(message)")
            }
            switch (kind, value) {
            case (.flag, .scalar(let scalar)):
                if scalar.style == .plain, value.null != nil { throw refuse("has no value", at: value) }
                guard let on = value.bool else {
                    throw refuse("is a flag: expected true or false, not \(Self.quoted(value))", at: value)
                }
                let inversion = "no-\(key)"
                let arguments = on ? ["--\(key)"] : schema.keys[inversion] == .flag ? ["--\(inversion)"] : []
                settings.append(ConfigFileSetting(key: key, line: line, arguments: arguments))
            case (.value, .scalar), (.values, .scalar):
                settings.append(ConfigFileSetting(key: key, line: line, arguments: ["--\(key)=\(try Self.text(of: value, refuse))"]))
            case (.values, .sequence(let items)):
                for item in items {
                    guard case .scalar = item else {
                        throw refuse("expects a list of values, not of \(Self.shape(item))s", at: item)
                    }
                    let itemLine = item.mark?.line ?? line
                    settings.append(ConfigFileSetting(key: key, line: itemLine, arguments: ["--\(key)=\(try Self.text(of: item, refuse))"]))
                }
            case (.flag, _):
                throw refuse("is a flag: expected true or false, not a \(Self.shape(value))", at: value)
            case (.value, _):
                throw refuse("expects a single value, not a \(Self.shape(value))", at: value)
            case (.values, _):
                throw refuse("expects a value or a list of values, not a \(Self.shape(value))", at: value)
            }
        }
    }

    /// Parses each setting alone with `command`, so a value the option refuses is reported with its key and
    /// line, then all of them together (for rules across options).
    public func check<Command: ParsableCommand>(against command: Command.Type) throws(ConfigFileError) {
        for setting in settings {
            do {
                _ = try command.parse(setting.arguments)
            } catch {
                throw ConfigFileError(path: path, line: setting.line, key: setting.key, message: "\"\(setting.key)\": \(command.message(for: error))")
            }
        }
        do {
            _ = try command.parse(settings.flatMap(\.arguments))
        } catch {
            throw ConfigFileError(path: path, line: nil, key: nil, message: command.message(for: error))
        }
    }

    /// The file's arguments followed by `commandLine`, less the file's values for a repeatable option
    /// the command line gives (so its list replaces the file's).
    public func arguments(before commandLine: [String], schema: ConfigFileSchema) -> [String] {
        let options = commandLine.prefix { $0 != "--" }
        let givenLists = Set(schema.keys.compactMap { key, kind in
            kind == .values && options.contains { $0 == "--\(key)" || $0.hasPrefix("--\(key)=") } ? key : nil
        })
        return settings.filter { !givenLists.contains($0.key) }.flatMap(\.arguments) + commandLine
    }

    /// `commandLine` (a command's arguments, after its name) with the settings of its `--config FILE` put
    /// before it, checked against `command`; unchanged without `--config`.
    ///
    /// Keys are `command`'s long option names, less `option` itself.
    public static func expand<Command: ParsableCommand>(
        _ commandLine: [String],
        for command: Command.Type,
        option: String = "config"
    ) throws(ConfigFileError) -> [String] {
        guard let path = Self.value(of: option, in: commandLine) else { return commandLine }
        let schema = ConfigFileSchema(command, excluding: [option])
        let file = try ConfigFile(contentsOf: path, schema: schema)
        try file.check(against: command)
        return file.arguments(before: commandLine, schema: schema)
    }

    /// The last value of `--name VALUE` or `--name=VALUE` before any `--`.
    static func value(of name: String, in arguments: [String]) -> String? {
        var found: String?
        var index = arguments.startIndex
        while index < arguments.endIndex, arguments[index] != "--" {
            let argument = arguments[index]
            if argument == "--\(name)", index + 1 < arguments.endIndex {
                found = arguments[index + 1]
                index += 1
            } else if argument.hasPrefix("--\(name)=") {
                found = String(argument.dropFirst(name.count + 3))
            }
            index += 1
        }
        return found
    }

    private static func text(of node: Node, _ refuse: (String, Node?) -> ConfigFileError) throws(ConfigFileError) -> String {
        guard case .scalar(let scalar) = node else { throw refuse("expects a value", node) }
        if scalar.style == .plain, node.null != nil { throw refuse("has no value", node) }
        return scalar.string
    }

    private static func shape(_ node: Node) -> String {
        switch node {
        case .scalar: "value"
        case .mapping: "mapping"
        case .sequence: "list"
        case .alias: "alias"
        }
    }

    private static func quoted(_ node: Node) -> String {
        if case .scalar(let scalar) = node, scalar.style == .plain { scalar.string } else { "\"\(node.string ?? "")\"" }
    }

    private static func suggestion(for key: String, in schema: ConfigFileSchema) -> String {
        let near = schema.keys.keys.filter { editDistance(key, $0) <= 2 }.sorted()
        return near.isEmpty ? "" : " (did you mean \(near.map { "\"\($0)\"" }.joined(separator: " or "))?)"
    }

    /// Levenshtein distance.
    private static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }

    private static func reason(_ error: any Error) -> String {
        switch (error as? CocoaError)?.code {
        case .fileReadNoSuchFile?: "no such file"
        case .fileReadNoPermission?: "permission denied"
        case .fileReadInapplicableStringEncoding?: "not UTF-8 text"
        default: error.localizedDescription
        }
    }

    private static func yamlError(_ error: YamlError, path: String) -> ConfigFileError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            // libyaml's context says where the construct left open began (a flow list's `[`, say).
            let opened = context.map { " (\($0.text) from line \($0.mark.line))" } ?? ""
            return ConfigFileError(path: path, line: mark.line, key: nil, message: "invalid YAML: \(problem)\(opened)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let key = duplicates.first ?? ""
            return ConfigFileError(path: path, line: context.mark.line, key: key, message: "duplicate key \"\(key)\"")
        default:
            return ConfigFileError(path: path, line: nil, key: nil, message: "invalid YAML: \(error)")
        }
    }
}
