import NIOConcurrencyHelpers
import NIOCore

/// How long to wait before the next connection attempt to an upstream that failed `failures` times in
/// a row: `initial × 2^(failures−1)`, at most `maximum`, with up to a quarter taken off at random so that
/// sessions waiting together do not retry together.
struct BackoffPolicy: Hashable, Sendable {
    var initial: TimeAmount
    var maximum: TimeAmount

    func delay(afterFailures failures: Int, random: Double) -> TimeAmount {
        guard failures > 0 else { return .zero }
        let exponent = min(failures - 1, 30)
        let full = min(initial.nanoseconds.multipliedReportingOverflow(by: 1 << exponent).overflow
            ? maximum.nanoseconds : initial.nanoseconds << exponent, maximum.nanoseconds)
        let jitter = Double(full) * 0.25 * min(max(random, 0), 1)
        return .nanoseconds(full - Int64(jitter))
    }
}

/// What every session of one bridged endpoint knows of its upstream: how many connection attempts in
/// a row failed. A session opening while the upstream is failing waits the back-off before its first
/// attempt instead of adding to the storm; the first success resets it.
final class UpstreamHealth: Sendable {
    private let failures = NIOLockedValueBox(0)

    var consecutiveFailures: Int { failures.withLockedValue { $0 } }

    func recordFailure() -> Int {
        failures.withLockedValue { value in
            value = min(value + 1, 1 << 20)
            return value
        }
    }

    func recordSuccess() {
        failures.withLockedValue { $0 = 0 }
    }
}
