import Logging
import NIOConcurrencyHelpers
import NIOCore
import SockwayHTTP

/// Why the server refused a client: each is logged (rate-limited) and counted.
public struct SockwayRefusal: Error, Hashable, Sendable, CustomStringConvertible {
    enum Kind: Hashable, Sendable {
        case malformedRequest(HTTPRequestError)
        case malformedFrame(code: UInt16)
        case headTimeout
        case bodyTimeout
        case bodyTooLarge
        case sessionLimit
        case addressSessionLimit
        case queuedBytesLimit
        case foreignOrigin
        case sessionOwnerMismatch
        case draining
        case forwardFailed
    }

    let kind: Kind

    static func malformedRequest(_ error: HTTPRequestError) -> Self { Self(kind: .malformedRequest(error)) }
    static func malformedFrame(code: UInt16) -> Self { Self(kind: .malformedFrame(code: code)) }
    static let headTimeout = Self(kind: .headTimeout)
    static let bodyTimeout = Self(kind: .bodyTimeout)
    static let bodyTooLarge = Self(kind: .bodyTooLarge)
    static let sessionLimit = Self(kind: .sessionLimit)
    static let addressSessionLimit = Self(kind: .addressSessionLimit)
    static let queuedBytesLimit = Self(kind: .queuedBytesLimit)
    static let foreignOrigin = Self(kind: .foreignOrigin)
    static let sessionOwnerMismatch = Self(kind: .sessionOwnerMismatch)
    static let draining = Self(kind: .draining)
    static let forwardFailed = Self(kind: .forwardFailed)

    /// A stable name for logs and metrics (`malformed_request`, `session_limit`...).
    public var name: String {
        switch kind {
        case .malformedRequest: "malformed_request"
        case .malformedFrame: "malformed_frame"
        case .headTimeout: "head_timeout"
        case .bodyTimeout: "body_timeout"
        case .bodyTooLarge: "body_too_large"
        case .sessionLimit: "session_limit"
        case .addressSessionLimit: "address_session_limit"
        case .queuedBytesLimit: "queued_bytes_limit"
        case .foreignOrigin: "foreign_origin"
        case .sessionOwnerMismatch: "session_owner_mismatch"
        case .draining: "draining"
        case .forwardFailed: "forward_failed"
        }
    }

    public var description: String {
        switch kind {
        case .malformedRequest(let error): "malformed request (\(error))"
        case .malformedFrame(let code): "WebSocket frame or message refused (close \(code))"
        case .headTimeout: "request head not received in time"
        case .bodyTimeout: "request body stalled"
        case .bodyTooLarge: "request body over its bound"
        case .sessionLimit: "server-wide session limit reached"
        case .addressSessionLimit: "session limit of the client address reached"
        case .queuedBytesLimit: "server-wide queued bytes limit reached"
        case .foreignOrigin: "origin not allowed"
        case .sessionOwnerMismatch: "session used by another client than its owner"
        case .draining: "server draining before it stops: new sessions belong on another node"
        case .forwardFailed: "the node that holds the session could not be reached"
        }
    }
}

/// Logs refusals without flooding: the first of each kind in an interval is logged with the client
/// address and the reason (never message content); the rest are counted and summed up in the next
/// line of that kind. Every refusal is counted for metrics.
final class RefusalLog: Sendable {
    private struct Bucket {
        var lastLogged: NIODeadline
        var suppressed: Int
    }

    private struct State {
        var buckets: [String: Bucket] = [:]
        var totals: [String: Int] = [:]
    }

    private let logger: Logger
    private let interval: TimeAmount
    private let state = NIOLockedValueBox(State())

    init(logger: Logger, interval: TimeAmount = .seconds(10)) {
        self.logger = logger
        self.interval = interval
    }

    func log(_ refusal: SockwayRefusal, from address: SocketAddress?) {
        let now = NIODeadline.now()
        let name = refusal.name
        let suppressed: Int? = state.withLockedValue { state in
            state.totals[name, default: 0] += 1
            if var bucket = state.buckets[name], now < bucket.lastLogged + interval {
                bucket.suppressed += 1
                state.buckets[name] = bucket
                return nil
            }
            let suppressed = state.buckets[name]?.suppressed ?? 0
            state.buckets[name] = Bucket(lastLogged: now, suppressed: 0)
            return suppressed
        }
        guard let suppressed else { return }
        var metadata: Logger.Metadata = ["refusal": "\(name)", "client": "\(address?.ipAddress ?? "unknown")"]
        if suppressed > 0 { metadata["suppressed"] = "\(suppressed)" }
        logger.notice("Refused: \(refusal)", metadata: metadata)
    }

    /// Refusals counted so far, by name.
    var totals: [String: Int] {
        state.withLockedValue { $0.totals }
    }
}
