import ArgumentParser
import Foundation

/// The keys a config file may set: a command's long option and flag names, read from the command's own definition.
public struct ConfigFileSchema: Sendable, Equatable {
    /// How a key's value becomes arguments.
    public enum Kind: Sendable, Equatable {
        /// `true` gives `--name`; `false` gives `--no-name` where the command has it, else nothing.
        case flag
        /// One value: `--name=value`.
        case value
        /// A value or a list: `--name=value` for each.
        case values
    }

    /// Each key's kind, by long name without `--`.
    public var keys: [String: Kind]

    public init(keys: [String: Kind]) {
        self.keys = keys
    }

    /// The schema of `command`, from the same description `--experimental-dump-help` prints, so keys cannot drift from options.
    ///
    /// - Parameter excluding: long names that are not keys (`config`, say); `help` and `version` never are.
    public init<Command: ParsableCommand>(_ command: Command.Type, excluding: Set<String> = []) {
        // ArgumentParser writes this JSON itself; failing to read it back is a programming error.
        do {
            try self.init(dumpHelp: Data(command._dumpHelp().utf8), excluding: excluding)
        } catch {
            fatalError("cannot read \(command)'s dump-help description: \(error)")
        }
    }

    /// The schema in `--experimental-dump-help` JSON (ArgumentParser's `ToolInfoV0`).
    public init(dumpHelp json: Data, excluding: Set<String> = []) throws {
        let info = try JSONDecoder().decode(DumpHelp.self, from: json)
        let notKeys = excluding.union(["help", "version", "experimental-dump-help", "generate-completion-script"])
        var keys: [String: Kind] = [:]
        for argument in info.command.arguments ?? [] {
            let kind: Kind
            switch argument.kind {
            case "flag": kind = .flag
            case "option": kind = argument.isRepeating ? .values : .value
            default: continue
            }
            for name in argument.names ?? [] where name.kind == "long" && !notKeys.contains(name.name) {
                keys[name.name] = kind
            }
        }
        self.keys = keys
    }
}

/// The part of ArgumentParser's `ToolInfoV0` the schema reads (the ToolInfo module is not a product).
private struct DumpHelp: Decodable {
    struct Command: Decodable {
        var arguments: [Argument]?
    }
    struct Argument: Decodable {
        struct Name: Decodable {
            var kind: String
            var name: String
        }
        var kind: String
        var isRepeating: Bool
        var names: [Name]?
    }
    var command: Command
}
