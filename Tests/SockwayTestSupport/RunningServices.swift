import Logging
import ServiceLifecycle

/// Runs `services` in a service group for `body`, then shuts them down gracefully, also when `body`
/// throws (else the test would wait for them forever); rethrows what `body` threw.
public func withRunningServices<Result: Sendable>(
    _ services: [any Service],
    _ body: () async throws -> Result
) async throws -> Result {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    let group = ServiceGroup(configuration: .init(services: services, logger: logger))
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        let result: Swift.Result<Result, any Error>
        do {
            result = .success(try await body())
        } catch {
            result = .failure(error)
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        return try result.get()
    }
}
