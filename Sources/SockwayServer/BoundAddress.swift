import NIOConcurrencyHelpers
import NIOCore

/// The address a listener bound, for callers that ask before it has: they wait until the listener
/// publishes it (once; `nil` when binding failed). Shared by ``SockwayServer`` and the Prometheus
/// exporter.
package final class BoundAddress: Sendable {
    private let state = NIOLockedValueBox<(address: SocketAddress?, done: Bool, waiters: [CheckedContinuation<SocketAddress?, Never>])>((nil, false, []))

    package init() {}

    /// The published address; waits for it if the listener has not bound yet.
    package var value: SocketAddress? {
        get async {
            await withCheckedContinuation { continuation in
                let ready = state.withLockedValue { state -> SocketAddress?? in
                    if state.done { return .some(state.address) }
                    state.waiters.append(continuation)
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }

    /// The listener bound `address` (`nil`: it failed to): wakes every caller waiting for it.
    package func publish(_ address: SocketAddress?) {
        let waiters = state.withLockedValue { state in
            state.address = address
            state.done = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: address) }
    }
}
