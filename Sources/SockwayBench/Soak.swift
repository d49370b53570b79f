import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SockwayClient
import SockwaySockJS

/// The numbered-message accounting of one stream (a session's echoes, or one chat member's messages as
/// another member receives them): what arrived, once, in order, unaltered. Pure: tested without sockets.
public struct SoakSequenceCheck: Sendable {
    /// Distinct sequence numbers received.
    public private(set) var delivered = 0
    /// Sequence numbers received again.
    public private(set) var duplicated = 0
    /// Sequence numbers received after a higher one.
    public private(set) var reordered = 0
    /// Messages whose text was not what was sent with their number (or that did not parse).
    public private(set) var altered = 0
    private var seen: [UInt64] = []
    private var highest = -1

    public init() {}

    /// One received message carrying `sequence`; `intact` whether its text is what was sent.
    public mutating func received(sequence: Int, intact: Bool) {
        guard intact, sequence >= 0 else {
            altered += 1
            return
        }
        let word = sequence >> 6
        let bit = UInt64(1) << UInt64(sequence & 63)
        if word >= seen.count { seen.append(contentsOf: repeatElement(0, count: word - seen.count + 1)) }
        if seen[word] & bit != 0 {
            duplicated += 1
            return
        }
        seen[word] |= bit
        delivered += 1
        if sequence < highest { reordered += 1 }
        highest = max(highest, sequence)
    }

    /// Of `expected` messages (sequence numbers `0..<expected`), those that never arrived.
    public func lost(expected: Int) -> Int { max(0, expected - delivered) }

    /// The sequence numbers below `expected` that never arrived.
    public func missing(expected: Int) -> [Int] {
        (0..<expected).filter { sequence in
            let word = sequence >> 6
            return word >= seen.count || seen[word] & (UInt64(1) << UInt64(sequence & 63)) == 0
        }
    }

    /// Sums the counts of another stream into this one (its sequence numbers are not merged).
    public mutating func addCounts(of other: SoakSequenceCheck) {
        delivered += other.delivered
        duplicated += other.duplicated
        reordered += other.reordered
        altered += other.altered
    }
}

/// The soak's messages: `<tag>:<sequence>:<payload>`, the payload a function of the sequence number, so
/// that a receiver checks it is intact without keeping what was sent.
public enum SoakMessage {
    /// Pieces of payload: plain ASCII, and text that stresses JSON quoting and every transport's
    /// wrapping (quotes, backslashes, `</script>`, U+2028, non-ASCII, astral characters).
    static let plain = Array("abcdefghijklmnopqrstuvwxyz0123456789").map(String.init)
    static let rich = ["a", "\"", "\\", "</script>", "\u{2028}", "é", "中", "😀", "\n", "<!--", "%41", "\u{0}", "\u{FEFF}", "z"]

    /// The payload of message `sequence`: `length` pieces.
    public static func payload(sequence: Int, length: Int, rich: Bool) -> String {
        let pieces = rich ? Self.rich : Self.plain
        var text = ""
        text.reserveCapacity(length * (rich ? 3 : 1))
        for offset in 0..<length { text += pieces[(sequence &+ offset) % pieces.count] }
        return text
    }

    public static func make(tag: String, sequence: Int, length: Int, rich: Bool) -> String {
        "\(tag):\(sequence):\(length):\(rich ? "r" : "p"):" + payload(sequence: sequence, length: length, rich: rich)
    }

    /// The tag and sequence number of a soak message, and whether its payload is intact; `nil` if it is
    /// not a soak message at all.
    public static func parse(_ message: String) -> (tag: Substring, sequence: Int, intact: Bool)? {
        let parts = message.split(separator: ":", maxSplits: 4, omittingEmptySubsequences: false)
        guard parts.count == 5, let sequence = Int(parts[1]), let length = Int(parts[2]), parts[3] == "r" || parts[3] == "p" else {
            return nil
        }
        return (parts[0], sequence, payloadMatches(parts[4], sequence: sequence, length: length, rich: parts[3] == "r"))
    }

    static let plainUTF8 = plain.map { Array($0.utf8) }
    static let richUTF8 = rich.map { Array($0.utf8) }

    /// Whether `text` is ``payload(sequence:length:rich:)``, compared byte by byte without building it
    /// (the soak checks millions of messages on a client that must keep up).
    static func payloadMatches(_ text: Substring, sequence: Int, length: Int, rich: Bool) -> Bool {
        let pieces = rich ? richUTF8 : plainUTF8
        var utf8 = text.utf8.makeIterator()
        for offset in 0..<length {
            for byte in pieces[(sequence &+ offset) % pieces.count] {
                guard utf8.next() == byte else { return false }
            }
        }
        return utf8.next() == nil
    }
}

/// One row of the soak's table: what the sessions of one transport (and one client, and one kind of
/// traffic) sent and got back.
public struct SoakRow: Codable, Sendable, Hashable {
    public var transport: String
    public var client: String
    /// Session lives started (each worker reconnects after a life ends).
    public var sessions = 0
    public var openFailures = 0
    /// Sessions the server closed before the client did (their messages are left out of sent…lost).
    public var closedByServer = 0
    /// Sessions the client dropped on purpose, without a close (left out of sent…lost too).
    public var aborted = 0
    public var closeReasons: [String: Int] = [:]
    /// On sessions that stayed open: messages sent, accepted (every send acknowledged: a refused send
    /// ends a SockJS client's session), delivered back, and never delivered.
    public var sent = 0
    public var accepted = 0
    public var delivered = 0
    public var lost = 0
    /// On every session, open or not.
    public var duplicated = 0
    public var reordered = 0
    public var altered = 0

    public init(transport: String, client: String) {
        self.transport = transport
        self.client = client
    }

    /// Adds one session life. `expected`: messages sent that should come back; `stayedOpen`: the client
    /// ended it politely (then its messages count).
    mutating func add(check: SoakSequenceCheck, expected: Int, stayedOpen: Bool) {
        duplicated += check.duplicated
        reordered += check.reordered
        altered += check.altered
        guard stayedOpen else { return }
        sent += expected
        accepted += expected
        delivered += check.delivered
        lost += check.lost(expected: expected)
    }
}

/// What one soak driver run found: a row per transport and kind of traffic.
public struct SoakReport: Codable, Sendable {
    public var driver: String
    public var rows: [SoakRow]
}

/// The load of `sockway soak`: thousands of concurrent sessions on every transport against a server's
/// echo and broadcast endpoints, every message numbered, each session living a while and reconnecting.
///
/// Echo workers play roles in turn by index: steady senders, bursts faster than the server's pacing
/// lets through, slow readers (sockets read at a fixed rate, so the server's writes back up), abrupt
/// aborts (connections dropped without a close), and short lives that reconnect at once. Chat members
/// stay for the whole run and check that every member's messages reach every other member in order.
public struct SoakRunner: Sendable {
    public struct Options: Sendable {
        /// Server root, `http://127.0.0.1:PORT`.
        public var target: String
        public var echoPath = "/echo"
        public var chatPath = "/chat"
        /// Seconds of load; then every session drains and closes.
        public var duration: Double = 60
        /// Concurrent echo workers per transport.
        public var sessionsPerTransport = 100
        /// Chat members per transport.
        public var chatMembersPerTransport = 3
        /// SockJS transports: the soak's echo and chat endpoints are SockJS ones.
        public var transports: [SockwayClientTransport] = SockwayClientTransport.sockJS
        /// Messages in one burst, and seconds between bursts.
        public var burstMessages = 2500
        public var burstInterval: Double = 5
        /// Slow readers' read rate.
        public var slowReaderBytesPerSecond = 32 * 1024
        /// How long a life waits for its last echoes after it stops sending.
        public var drainTimeout: Double = 30

        public init(target: String) { self.target = target }
    }

    enum Role {
        case steady, burst, slowReader, abort, reconnect, rich
    }

    /// Roles by worker index: steady senders are the bulk; one worker in ten bursts.
    static func role(of worker: Int) -> Role {
        switch worker % 10 {
        case 0: .burst
        case 1, 2: .slowReader
        case 3: .abort
        case 4, 5: .reconnect
        case 6: .rich
        default: .steady
        }
    }

    public let options: Options

    public init(options: Options) { self.options = options }

    public func run(log: @escaping @Sendable (String) -> Void = { _ in }) async -> SoakReport {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: ProcessStats.usableCPUs())
        let rows = NIOLockedValueBox<[String: SoakRow]>([:])
        let start = ContinuousClock.now
        let deadline = start + .milliseconds(Int64(options.duration * 1000))
        let options = self.options

        // Chat members first: all in the room before anyone speaks.
        let chat = SoakChat(options: options, group: group)
        await chat.open()
        log("chat: \(chat.memberCount) members open")

        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await chat.talk(until: deadline) }
            for transport in options.transports {
                for worker in 0..<options.sessionsPerTransport {
                    tasks.addTask {
                        // Staggered over the first two seconds.
                        let stagger = Double(worker) / Double(max(1, options.sessionsPerTransport)) * 2
                        try? await Task.sleep(for: .milliseconds(Int64(stagger * 1000)))
                        let row = await EchoWorker(
                            options: options,
                            transport: transport,
                            index: worker,
                            role: Self.role(of: worker),
                            group: group
                        ).run(until: deadline)
                        rows.withLockedValue { rows in
                            var merged = rows[transport.rawValue] ?? SoakRow(transport: transport.rawValue, client: "sockway")
                            merged.merge(row)
                            rows[transport.rawValue] = merged
                        }
                    }
                }
            }
        }
        var result = options.transports.compactMap { transport in rows.withLockedValue { $0[transport.rawValue] } }
        result += await chat.finish()
        try? await group.shutdownGracefully()
        return SoakReport(driver: "SockwayClient (Swift)", rows: result)
    }
}

extension SoakRow {
    mutating func merge(_ other: SoakRow) {
        sessions += other.sessions
        openFailures += other.openFailures
        closedByServer += other.closedByServer
        aborted += other.aborted
        for (reason, count) in other.closeReasons { closeReasons[reason, default: 0] += count }
        sent += other.sent
        accepted += other.accepted
        delivered += other.delivered
        lost += other.lost
        duplicated += other.duplicated
        reordered += other.reordered
        altered += other.altered
    }

    mutating func countClose(_ reason: SockJSCloseReason) {
        closeReasons["\(reason.code) \(reason.reason)", default: 0] += 1
    }
}

/// One session life's receiving side: fed on the session's loop, read by the worker.
final class SoakLife: Sendable {
    private struct State {
        var check = SoakSequenceCheck()
        var closed: SockJSCloseReason?
        var endingByClient = false
        var lastArrival = ContinuousClock.now
    }
    let tag: String
    private let state = NIOLockedValueBox(State())

    init(tag: String) { self.tag = tag }

    func attach(to session: SockwayClientSession) {
        session.onEvent { [self] event in
            switch event {
            case .messages(let messages):
                state.withLockedValue { state in
                    state.lastArrival = .now
                    for message in messages {
                        guard let parsed = SoakMessage.parse(message), parsed.tag == tag else {
                            state.check.received(sequence: -1, intact: false)
                            continue
                        }
                        state.check.received(sequence: parsed.sequence, intact: parsed.intact)
                    }
                }
            case .closed(let reason):
                state.withLockedValue { $0.closed = reason }
            }
        }
    }

    func endingByClient() { state.withLockedValue { $0.endingByClient = true } }

    var check: SoakSequenceCheck { state.withLockedValue { $0.check } }

    /// The server's close, if the session ended before the client ended it.
    var closedByServer: SockJSCloseReason? {
        state.withLockedValue { $0.endingByClient ? nil : $0.closed }
    }

    /// Waits until `expected` messages are back, the session closed, or nothing arrived for `timeout`.
    func drain(expected: Int, timeout: Double) async {
        while true {
            let (done, idle) = state.withLockedValue { state in
                (state.check.delivered >= expected || state.closed != nil, ContinuousClock.now - state.lastArrival)
            }
            if done || idle > .milliseconds(Int64(timeout * 1000)) { return }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    func noteSendStart() { state.withLockedValue { $0.lastArrival = .now } }
}

/// One echo worker: session lives one after another until the deadline.
struct EchoWorker {
    let options: SoakRunner.Options
    let transport: SockwayClientTransport
    let index: Int
    let role: SoakRunner.Role
    let group: any EventLoopGroup

    func run(until deadline: ContinuousClock.Instant) async -> SoakRow {
        var row = SoakRow(transport: transport.rawValue, client: "sockway")
        var generation = 0
        var random = SystemRandomNumberGenerator()
        while ContinuousClock.now < deadline {
            generation += 1
            let configuration = SockwayClientConfiguration(
                transports: [transport],
                connectTimeout: .seconds(10),
                receiveBytesPerSecond: role == .slowReader ? options.slowReaderBytesPerSecond : nil,
                eventLoopGroup: group
            )
            let session: SockwayClientSession
            do {
                session = try await SockwayClient.connect(to: options.target + options.echoPath, configuration: configuration)
            } catch {
                row.openFailures += 1
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            row.sessions += 1
            let life = SoakLife(tag: "\(transport.rawValue)-w\(index)g\(generation)")
            life.attach(to: session)
            let lifetime: Double =
                switch role {
                case .reconnect: Double.random(in: 1...3, using: &random)
                case .abort: Double.random(in: 2...6, using: &random)
                case .burst: Double.random(in: 10...20, using: &random)
                default: Double.random(in: 8...20, using: &random)
                }
            let lifeEnd = min(deadline, .now + .milliseconds(Int64(lifetime * 1000)))
            var sent = 0
            var nextBurst = ContinuousClock.now
            while ContinuousClock.now < lifeEnd, life.closedByServer == nil {
                switch role {
                case .burst where ContinuousClock.now >= nextBurst:
                    let messages = (0..<options.burstMessages).map { offset in
                        SoakMessage.make(tag: life.tag, sequence: sent + offset, length: 280, rich: false)
                    }
                    sent += messages.count
                    session.send(contentsOf: messages)
                    nextBurst = .now + .milliseconds(Int64(options.burstInterval * 1000))
                case .slowReader:
                    // About 48 KiB/s against a 32 KiB/s reader.
                    session.send(contentsOf: (0..<5).map { offset in SoakMessage.make(tag: life.tag, sequence: sent + offset, length: 1000, rich: false) })
                    sent += 5
                default:
                    session.send(SoakMessage.make(tag: life.tag, sequence: sent, length: Int.random(in: 48...240, using: &random), rich: role == .rich))
                    sent += 1
                }
                let pause: Int64 = role == .slowReader ? 100 : Int64.random(in: 200...600, using: &random)
                try? await Task.sleep(for: .milliseconds(pause))
            }
            if role == .abort {
                life.endingByClient()
                session.abort()
                row.aborted += 1
                row.add(check: life.check, expected: sent, stayedOpen: false)
                continue
            }
            life.noteSendStart()
            let drainTimeout = role == .slowReader ? options.drainTimeout * 2 : options.drainTimeout
            await life.drain(expected: sent, timeout: drainTimeout)
            if let reason = life.closedByServer {
                FileHandle.standardError.write(Data("soak: \(life.tag) (\(role)) closed by the server: \(reason.code) \(reason.reason), sent \(sent), delivered \(life.check.delivered)\n".utf8))
                row.closedByServer += 1
                row.countClose(reason)
                row.add(check: life.check, expected: sent, stayedOpen: false)
                continue
            }
            life.endingByClient()
            session.close()
            let check = life.check
            if check.lost(expected: sent) > 0 || check.duplicated + check.reordered + check.altered > 0 {
                // What a failing soak needs to be understood.
                FileHandle.standardError.write(
                    Data("soak: \(life.tag) (\(role)) sent \(sent), delivered \(check.delivered), first missing \(check.missing(expected: sent).prefix(8)), duplicated \(check.duplicated), reordered \(check.reordered), altered \(check.altered)\n".utf8)
                )
            }
            row.add(check: check, expected: sent, stayedOpen: true)
        }
        return row
    }
}

/// The chat members: every message of every member must reach every member, in order, once.
final class SoakChat: Sendable {
    private struct Member {
        var transport: SockwayClientTransport
        var session: SockwayClientSession
        var tag: String
        var sent = 0
    }

    private struct Inbox {
        var bySender: [Substring: SoakSequenceCheck] = [:]
        var foreign = 0
        var closed: SockJSCloseReason?
        var endingByClient = false
    }

    private let options: SoakRunner.Options
    private let group: any EventLoopGroup
    private let members = NIOLockedValueBox<[Member]>([])
    private let inboxes = NIOLockedValueBox<[String: Inbox]>([:])
    private let openFailures = NIOLockedValueBox<[String: Int]>([:])

    init(options: SoakRunner.Options, group: any EventLoopGroup) {
        self.options = options
        self.group = group
    }

    var memberCount: Int { members.withLockedValue { $0.count } }

    func open() async {
        await withTaskGroup(of: Void.self) { tasks in
            for transport in options.transports {
                for index in 0..<options.chatMembersPerTransport {
                    tasks.addTask { [self] in
                        let tag = "c\(transport.rawValue)\(index)"
                        let configuration = SockwayClientConfiguration(transports: [transport], connectTimeout: .seconds(10), eventLoopGroup: group)
                        guard let session = try? await SockwayClient.connect(to: options.target + options.chatPath, configuration: configuration) else {
                            openFailures.withLockedValue { $0[transport.rawValue, default: 0] += 1 }
                            return
                        }
                        inboxes.withLockedValue { $0[tag] = Inbox() }
                        session.onEvent { [self] event in
                            inboxes.withLockedValue { inboxes in
                                switch event {
                                case .messages(let messages):
                                    for message in messages {
                                        guard let parsed = SoakMessage.parse(message) else {
                                            inboxes[tag]!.foreign += 1
                                            continue
                                        }
                                        inboxes[tag]!.bySender[parsed.tag, default: SoakSequenceCheck()].received(sequence: parsed.sequence, intact: parsed.intact)
                                    }
                                case .closed(let reason):
                                    inboxes[tag]!.closed = reason
                                }
                            }
                        }
                        members.withLockedValue { $0.append(Member(transport: transport, session: session, tag: tag)) }
                    }
                }
            }
        }
    }

    /// Every member sends two messages a second until the deadline.
    func talk(until deadline: ContinuousClock.Instant) async {
        while ContinuousClock.now < deadline {
            members.withLockedValue { members in
                for index in members.indices {
                    members[index].session.send(
                        SoakMessage.make(tag: members[index].tag, sequence: members[index].sent, length: 64, rich: index % 2 == 0)
                    )
                    members[index].sent += 1
                }
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }

    /// Waits for the last messages, closes every member, and gives a row per transport: for each
    /// member that stayed open, every message of every sender that stayed open.
    func finish() async -> [SoakRow] {
        let everyone = members.withLockedValue { $0 }
        for _ in 0..<Int(options.drainTimeout * 10) {
            let complete = inboxes.withLockedValue { inboxes in
                everyone.allSatisfy { receiver in
                    guard let inbox = inboxes[receiver.tag], inbox.closed == nil else { return true }
                    return everyone.allSatisfy { sender in (inbox.bySender[Substring(sender.tag)]?.delivered ?? 0) >= sender.sent }
                }
            }
            if complete { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
        let final = inboxes.withLockedValue { inboxes in
            for member in everyone { inboxes[member.tag]?.endingByClient = true }
            return inboxes
        }
        for member in everyone { member.session.close() }
        let failures = openFailures.withLockedValue { $0 }
        var rows: [String: SoakRow] = [:]
        let openSenders = everyone.filter { final[$0.tag]?.closed == nil }
        for receiver in everyone {
            var row = rows[receiver.transport.rawValue] ?? SoakRow(transport: receiver.transport.rawValue, client: "sockway (chat)")
            row.sessions += 1
            guard let inbox = final[receiver.tag] else { continue }
            if let reason = inbox.closed {
                row.closedByServer += 1
                row.countClose(reason)
            }
            for sender in openSenders {
                let check = inbox.bySender[Substring(sender.tag)] ?? SoakSequenceCheck()
                row.add(check: check, expected: sender.sent, stayedOpen: inbox.closed == nil)
            }
            row.altered += inbox.foreign
            rows[receiver.transport.rawValue] = row
        }
        for (transport, count) in failures {
            rows[transport, default: SoakRow(transport: transport, client: "sockway (chat)")].openFailures += count
        }
        return options.transports.compactMap { rows[$0.rawValue] }
    }
}
