import ArgumentParser
import Foundation
import SockwayConfigFile

@main
struct Sockway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A SockJS-compatible transport-fallback gateway.",
        subcommands: [Serve.self, Bench.self, Soak.self, Probe.self, Nodes.self],
        defaultSubcommand: Serve.self
    )

    /// Puts the settings of `serve --config FILE` before the command line's arguments, so ArgumentParser
    /// parses and validates them as options and the command line wins.
    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        // `serve` is the default subcommand: its arguments follow its name, or are all of them when no other subcommand is named.
        let serveStart = arguments.first == Serve._commandName ? 1 : 0
        let other = configuration.subcommands.map { $0._commandName }.filter { $0 != Serve._commandName } + ["help"]
        if serveStart == 1 || !other.contains(arguments.first ?? "") {
            do {
                arguments = Array(arguments[..<serveStart]) + (try ConfigFile.expand(Array(arguments[serveStart...]), for: Serve.self))
            } catch {
                FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
                exit(withError: ExitCode.validationFailure)
            }
        }
        await main(arguments)
    }
}
