#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Atomics
import NIOConcurrencyHelpers
import NIOCore

/// The server-wide session budget: how many sessions may live at once, in all and per client address.
///
/// A session takes a place when it is created and gives it back when it is reaped. Taken under one
/// lock, once per session (not per message). IPv6 clients are counted by their /64 prefix, which one
/// host usually holds whole.
final class SessionBudget: Sendable {
    /// A granted place, given back once with ``release(_:)``.
    struct Place: Sendable {
        fileprivate let address: AddressKey?
    }

    /// What a client address is counted under.
    struct AddressKey: Hashable, Sendable {
        var isIPv6: Bool
        var bits: UInt64
    }

    private struct State {
        var sessions = 0
        var byAddress: [AddressKey: Int] = [:]
    }

    let maxSessions: Int?
    let maxSessionsPerAddress: Int?
    /// Set once the server is draining (shutting down): no new session from then on.
    private let drainingFlag = ManagedAtomic(false)
    /// Bytes waiting in every session's outbox.
    let queued: QueuedBytesMeter
    private let state = NIOLockedValueBox(State())

    init(maxSessions: Int?, maxSessionsPerAddress: Int?, maxQueuedBytes: Int? = nil) {
        self.maxSessions = maxSessions
        self.maxSessionsPerAddress = maxSessionsPerAddress
        self.queued = QueuedBytesMeter(limit: maxQueuedBytes)
    }

    /// Takes a place for a session of a client at `address`, or says which bound refuses it.
    func admit(_ address: SocketAddress?) -> Result<Place, SockwayRefusal> {
        if drainingFlag.load(ordering: .relaxed) { return .failure(.draining) }
        if queued.isOverLimit { return .failure(.queuedBytesLimit) }
        let key = address.flatMap(Self.key(for:))
        return state.withLockedValue { state in
            if let maxSessions, state.sessions >= maxSessions { return .failure(.sessionLimit) }
            if let key, let maxSessionsPerAddress {
                let count = state.byAddress[key, default: 0]
                guard count < maxSessionsPerAddress else { return .failure(.addressSessionLimit) }
                state.byAddress[key] = count + 1
            }
            state.sessions += 1
            return .success(Place(address: key))
        }
    }

    /// ``admit(_:)``, with a refusal logged.
    func admit(_ address: SocketAddress?, logging refusals: RefusalLog) -> Result<Place, SockwayRefusal> {
        let result = admit(address)
        if case .failure(let refusal) = result { refusals.log(refusal, from: address) }
        return result
    }

    /// No new session from now on (the server is shutting down).
    func startDraining() {
        drainingFlag.store(true, ordering: .relaxed)
    }

    var isDraining: Bool { drainingFlag.load(ordering: .relaxed) }

    func release(_ place: Place) {
        state.withLockedValue { state in
            state.sessions -= 1
            if let key = place.address, let count = state.byAddress[key] {
                state.byAddress[key] = count > 1 ? count - 1 : nil
            }
        }
    }

    /// Sessions alive now.
    var sessions: Int {
        state.withLockedValue { $0.sessions }
    }

    /// Sessions of the client at `address` alive now.
    func sessions(of address: SocketAddress) -> Int {
        guard let key = Self.key(for: address) else { return 0 }
        return state.withLockedValue { $0.byAddress[key, default: 0] }
    }

    static func key(for address: SocketAddress) -> AddressKey? {
        switch address {
        case .v4(let v4):
            return AddressKey(isIPv6: false, bits: UInt64(UInt32(bigEndian: v4.address.sin_addr.s_addr)))
        case .v6(let v6):
            var raw = v6.address.sin6_addr
            let bytes = withUnsafeBytes(of: &raw) { Array($0) }
            // An IPv4-mapped address (::ffff:a.b.c.d) is its IPv4 client.
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
                let v4 = bytes[12..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                return AddressKey(isIPv6: false, bits: v4)
            }
            let prefix = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            return AddressKey(isIPv6: true, bits: prefix)
        case .unixDomainSocket:
            return nil
        }
    }
}

/// The bytes waiting in every session's outbox, server-wide. A session adds what its outbox grew by
/// and takes off what it wrote (only when that changed: a session whose messages go straight out,
/// as on a WebSocket, never touches it).
final class QueuedBytesMeter: Sendable {
    let limit: Int?
    private let total = ManagedAtomic<Int>(0)

    init(limit: Int?) {
        self.limit = limit
    }

    func add(_ delta: Int) {
        total.wrappingIncrement(by: delta, ordering: .relaxed)
    }

    var bytes: Int { total.load(ordering: .relaxed) }

    var isOverLimit: Bool {
        guard let limit else { return false }
        return bytes > limit
    }
}
