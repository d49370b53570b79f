import ArgumentParser

@main
struct Sockway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A SockJS-compatible transport-fallback gateway.",
        subcommands: [Serve.self, Bench.self, Soak.self],
        defaultSubcommand: Serve.self
    )
}
