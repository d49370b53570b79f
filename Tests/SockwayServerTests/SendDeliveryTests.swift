import NIOConcurrencyHelpers
import NIOCore
import SockwayAsync
import SockwaySockJS
import Testing

@testable import SockwayServer

/// The delivery rule of the HTTP send endpoints: a `204` means the messages were handed to the
/// application while the session was open; anything else is a refusal and delivered nothing. Checked
/// under pipelining, several connections, the pacing hold, a late receiver and an application that
/// replies more than it receives.
@Suite struct SendDeliveryTests {
    /// Replies to every message with `copies` copies of it.
    final class RepeatDelegate: SockwaySessionDelegate {
        let copies: Int
        init(copies: Int) { self.copies = copies }
        func session(_ session: SockwaySession, didReceive messages: [String]) {
            for message in messages {
                session.send(contentsOf: Array(repeating: message, count: copies))
            }
        }
    }

    /// One pipelined request's answer: its status, in the order the requests were written.
    static func statuses(_ text: String) -> [Int] {
        var statuses: [Int] = []
        var rest = Substring(text)
        while let range = rest.range(of: "HTTP/1.1 ") {
            rest = rest[range.upperBound...]
            if let status = Int(rest.prefix(3)) { statuses.append(status) }
        }
        return statuses
    }

    /// Messages of every `a` frame in a run of xhr-polling responses.
    static func polledMessages(_ body: String) -> [String] {
        guard body.hasPrefix("a") else { return [] }
        guard case .success(let messages) = parseSendBody(String(body.dropFirst().dropLast())) else { return [] }
        return messages
    }

    static func parseSendBody(_ text: String) -> Result<[String], SockJSPayloadError> {
        do throws(SockJSPayloadError) {
            return .success(try SockJSPayload.parseArray(ByteBuffer(string: text)))
        } catch {
            return .failure(error)
        }
    }

    /// `connections` connections each pipeline `sends` xhr_sends (one message each) into one session
    /// before any receiver attaches; then a receiver polls until everything is answered. Every
    /// acknowledged message's replies arrive, in each connection's order; refused ones deliver nothing;
    /// no request goes unanswered and no connection is dropped.
    func run(connections: Int, sends: Int, copies: Int, maxQueuedMessages: Int, maxHeld: Int = 16) throws -> (accepted: Int, refused: Int) {
        let options = SockwayEndpointOptions(maxHeldSendRequests: maxHeld, maxQueuedMessages: maxQueuedMessages)
        let server = InMemoryServer(endpoints: [.eventLoop("/repeat", options: options) { _ in RepeatDelegate(copies: copies) }])
        let poll = try server.connect()
        try poll.request("POST", "/repeat/000/p/xhr")
        #expect(try poll.readResponse().body == "o\n")

        let senders = try (0..<connections).map { _ in try server.connect() }
        for (index, sender) in senders.enumerated() {
            var text = ""
            for number in 0..<sends {
                let body = "[\"c\(index)-\(number)\"]"
                text += "POST /repeat/000/p/xhr_send HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            }
            try sender.write(text)
        }
        var answers = Array(repeating: [Int](), count: connections)
        var delivered: [String] = []
        for _ in 0..<(connections * sends * copies + 10) {
            for (index, sender) in senders.enumerated() { answers[index] += Self.statuses(try sender.readText()) }
            if answers.allSatisfy({ $0.count == sends }) { break }
            try poll.request("POST", "/repeat/000/p/xhr")
            let response = try poll.readResponse()
            delivered += Self.polledMessages(response.body)
        }
        // What is still queued after the last answer.
        try poll.request("POST", "/repeat/000/p/xhr")
        delivered += Self.polledMessages(try poll.readResponse().body)

        var accepted = 0
        var refused = 0
        for (index, statuses) in answers.enumerated() {
            #expect(statuses.count == sends, "every pipelined request is answered")
            #expect(senders[index].isActive, "no connection is dropped")
            let expected = statuses.enumerated().flatMap { number, status -> [String] in
                status == 204 ? Array(repeating: "c\(index)-\(number)", count: copies) : []
            }
            #expect(delivered.filter { $0.hasPrefix("c\(index)-") } == expected, "connection \(index): exactly the acknowledged messages, in order")
            accepted += statuses.filter { $0 == 204 }.count
            refused += statuses.filter { $0 != 204 }.count
            #expect(statuses.allSatisfy { $0 == 204 || $0 == 503 })
        }
        return (accepted, refused)
    }

    // One connection pipelining far more sends than the outbox holds: all answered 204, in order.
    @Test func pipelinedSendsAreAllDeliveredAndAnswered() throws {
        let result = try run(connections: 1, sends: 200, copies: 1, maxQueuedMessages: 16)
        #expect(result.accepted == 200)
    }

    // Four connections, each pipelining, into one session with a late receiver: every 204 delivered.
    @Test func severalPipeliningConnectionsIntoOneSession() throws {
        let result = try run(connections: 4, sends: 100, copies: 1, maxQueuedMessages: 16)
        #expect(result.accepted == 400)
    }

    // An application that replies three times to each message: the hold paces on what it sends.
    @Test func applicationThatRepliesMoreThanItReceives() throws {
        let result = try run(connections: 3, sends: 60, copies: 3, maxQueuedMessages: 16)
        #expect(result.accepted == 180)
    }

    // More connections than the held-request bound: the excess is refused with 503 (never 204,
    // never a dropped connection), and what was refused is not delivered.
    @Test func floodBeyondTheHoldBoundIsRefusedNotDropped() throws {
        let result = try run(connections: 6, sends: 20, copies: 1, maxQueuedMessages: 4, maxHeld: 2)
        #expect(result.refused > 0)
        #expect(result.accepted + result.refused == 120)
    }
}

/// The async face: a send is held while the application has not read half its inbound bound, and
/// handed over once it has, so a client that sends faster than the application reads is paced instead
/// of losing its session to `1013 "Receive queue full"`.
@Suite struct AsyncInboundPacingTests {
    /// A gate the test opens from outside the handler's task.
    final class Gate: Sendable {
        private let stream: AsyncStream<Void>
        private let continuation: AsyncStream<Void>.Continuation
        init() { (stream, continuation) = AsyncStream.makeStream() }
        func open() { continuation.yield() }
        func wait() async { for await _ in stream { return } }
    }

    @Test func sendWaitsForTheApplicationToRead() async throws {
        let gate = Gate()
        let read = NIOLockedValueBox<[String]>([])
        let options = SockwayEndpointOptions(maxInboundQueuedMessages: 4)
        let endpoint = SockwayEndpoint.async("/slow", options: options) { session in
            await gate.wait()
            for await message in session.messages {
                read.withLockedValue { $0.append(message) }
            }
        }
        try await withLoopbackServer(endpoints: [endpoint]) { _, port, _ in
            let poll = try LoopbackClient(port: port)
            let send = try LoopbackClient(port: port)
            poll.request("POST", "/slow/000/p1/xhr")
            #expect(await blocking { poll.readBody() } == "o\n")
            // Two messages fill half the inbound bound of 4: the next send is held, undelivered.
            send.request("POST", "/slow/000/p1/xhr_send", body: #"["1","2"]"#)
            #expect(await blocking { send.readStatus() } == 204)
            send.request("POST", "/slow/000/p1/xhr_send", body: #"["3","4","5"]"#)
            try await Task.sleep(for: .milliseconds(300))
            #expect(send.hasNothingToRead())
            // Before pacing, these three would have overflowed the bound and closed the session (1013).
            gate.open()
            #expect(await blocking { send.readStatus() } == 204)
            for _ in 0..<100 where read.withLockedValue({ $0.count }) < 5 {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(read.withLockedValue { $0 } == ["1", "2", "3", "4", "5"])
        }
    }
}

@Suite struct InboundQueueDrainTests {
    // Half the bound (messages or bytes) is backed up; the drained callback runs once the consumer
    // has read below half, not before, and at once when the queue is not backed up.
    @Test func drainedCallbackRunsWhenTheConsumerReadsBelowHalf() async {
        let queue = InboundQueue(maxMessages: 4, maxBytes: 1 << 20)
        let calls = NIOLockedValueBox(0)
        queue.whenDrained { calls.withLockedValue { $0 += 1 } }
        #expect(calls.withLockedValue { $0 } == 1)
        #expect(queue.push(["a", "b", "c"]))
        #expect(queue.isBackedUp)
        queue.whenDrained { calls.withLockedValue { $0 += 1 } }
        #expect(await queue.next() == "a")
        #expect(calls.withLockedValue { $0 } == 1)  // two left: still half
        #expect(await queue.next() == "b")
        #expect(calls.withLockedValue { $0 } == 2)
        #expect(!queue.isBackedUp)
        let bytes = InboundQueue(maxMessages: 100, maxBytes: 10)
        #expect(bytes.push(["12345"]))
        #expect(bytes.isBackedUp)
    }
}
