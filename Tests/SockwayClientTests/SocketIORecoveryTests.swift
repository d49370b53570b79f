import NIOCore
import SockwayClient
import SockwayServer
import SockwayTestSupport
import Testing

/// The room messages (`room-message` events of the demo service) among `packets`: text and offset.
private func roomMessages(_ packets: [String]) -> [(text: String, offset: String)] {
    packets.compactMap { packet in
        guard let event = SocketIOTestClient.event(packet), event.first as? String == "room-message", event.count == 3,
            let text = event[1] as? String, let offset = event[2] as? String
        else { return nil }
        return (text, offset)
    }
}

/// Connects to the main namespace (with `auth`), joins `room` unless nil; returns the CONNECT
/// reply's sid and pid.
private func connect(_ client: SocketIOTestClient, auth: String = "", joining room: String? = "r") async throws -> (sid: String, pid: String?) {
    client.send("40" + auth)
    let reply = try #require(await client.waitFor(1).first.flatMap(SocketIOTestClient.connectReply))
    if let room {
        client.send(#"4217["join","\#(room)"]"#)
        await client.waitUntil { $0.contains(#"4317["\#(room)"]"#) }
    }
    return reply
}

private func waitUntilClosed(_ client: SocketIOTestClient) async {
    for _ in 0..<500 where client.session.closeReason == nil { try? await Task.sleep(for: .milliseconds(10)) }
}

/// Socket.IO's connection state recovery against one Sockway node: a client that lost its connection
/// comes back with its private session id and last offset (as socket.io-client 4.6+ does).
@Suite struct SocketIORecoveryTests {
    // The client gets its socket id and rooms back, then every room message it missed, once and in
    // order, then the live ones; every event carries an offset.
    @Test(arguments: SockwayClientTransport.engineIO)
    func aClientThatLostItsConnectionGetsWhatItMissed(transport: SockwayClientTransport) async throws {
        try await withDemoServer(socketIORecovery: SocketIORecovery()) { port in
            let sender = try await SocketIOTestClient(port: port)
            _ = try await connect(sender, joining: nil)
            let first = try await SocketIOTestClient(port: port, transport: transport)
            let (sid, pid) = try await connect(first)
            let privateID = try #require(pid)
            sender.send(#"42["to-room","r","m1"]"#)
            let seen = try #require(roomMessages(await first.waitUntil { roomMessages($0).count == 1 }).first)
            #expect(seen.text == "m1")
            first.close()
            await waitUntilClosed(first)
            try await Task.sleep(for: .milliseconds(100))  // the server sees the transport close
            for text in ["m2", "m3"] { sender.send(#"42["to-room","r","\#(text)"]"#) }
            try await Task.sleep(for: .milliseconds(100))

            let second = try await SocketIOTestClient(port: port, transport: transport)
            let reply = try await connect(second, auth: #"{"pid":"\#(privateID)","offset":"\#(seen.offset)"}"#, joining: nil)
            #expect(reply.sid == sid)
            #expect(reply.pid == privateID)
            _ = await second.waitUntil { roomMessages($0).count == 2 }
            sender.send(#"42["to-room","r","m4"]"#)
            let after = roomMessages(await second.waitUntil { roomMessages($0).count == 3 })
            try await Task.sleep(for: .milliseconds(200))  // nothing more may come
            let all = roomMessages(second.packets)
            #expect(all.map(\.text) == ["m2", "m3", "m4"])
            #expect(after.map(\.offset) == all.map(\.offset))
            #expect(Set(all.map(\.offset)).count == 3 && !all.map(\.offset).contains(seen.offset))
            // The CONNECT reply came first.
            #expect(second.packets.first.flatMap(SocketIOTestClient.connectReply)?.sid == sid)
            second.close()
            sender.close()
        }
    }

    // A client that saw no event yet (no offset) gets what was broadcast since it joined.
    @Test func aClientWithoutAnOffsetGetsWhatFollowedItsJoining() async throws {
        try await withDemoServer(socketIORecovery: SocketIORecovery()) { port in
            let sender = try await SocketIOTestClient(port: port)
            sender.send("40/chat,")
            await sender.waitFor(1)
            sender.send(#"42/chat,["chat","before"]"#)
            await sender.waitFor(2)
            let first = try await SocketIOTestClient(port: port)
            first.send("40/chat,")
            let reply = try #require(await first.waitFor(1).first.flatMap(SocketIOTestClient.connectReply))
            first.close()
            await waitUntilClosed(first)
            try await Task.sleep(for: .milliseconds(100))
            sender.send(#"42/chat,["chat","while away"]"#)
            await sender.waitFor(3)
            let second = try await SocketIOTestClient(port: port)
            second.send(#"40/chat,{"pid":"\#(reply.pid ?? "")"}"#)
            let packets = await second.waitFor(2)
            #expect(SocketIOTestClient.connectReply(packets[0])?.sid == reply.sid)
            #expect(packets.count == 2 && packets[1].hasPrefix(#"42/chat,["chat","while away",""#))
            second.close()
            sender.close()
        }
    }

    // Not recovered, and told so by a new socket id and private id: an unknown private id, an offset
    // that is not one of the stream's, a client that left by itself, a client back after the window.
    @Test func clientsThatCannotRecoverGetANewSocket() async throws {
        let window = Duration.milliseconds(1500)
        try await withDemoServer(socketIORecovery: SocketIORecovery(maxDisconnectionDuration: window)) { port in
            func lostAndBack(offset: String?, leave: Bool = false, wait: Duration = .milliseconds(100)) async throws -> Bool {
                let first = try await SocketIOTestClient(port: port)
                let (sid, pid) = try await connect(first)
                let offsetSeen = SocketIOTestClient.event(first.packets[1])?.last as? String
                if leave { first.send("41") }
                first.close()
                await waitUntilClosed(first)
                try await Task.sleep(for: wait)
                let second = try await SocketIOTestClient(port: port)
                let offsetField = offset.map { #","offset":"\#($0)""# } ?? #","offset":"\#(offsetSeen ?? "")""#
                let reply = try await connect(second, auth: #"{"pid":"\#(pid ?? "")"\#(offsetField)}"#, joining: nil)
                second.close()
                #expect((reply.sid == sid) == (reply.pid == pid))
                return reply.sid == sid
            }
            #expect(try await lostAndBack(offset: nil))
            #expect(try await !lostAndBack(offset: "nope"))
            #expect(try await !lostAndBack(offset: "0000000000000000:1"))
            #expect(try await !lostAndBack(offset: nil, leave: true))
            #expect(try await !lostAndBack(offset: nil, wait: window * 2))

            let stranger = try await SocketIOTestClient(port: port)
            let reply = try await connect(stranger, auth: #"{"pid":"not-a-session","offset":"x:1"}"#, joining: nil)
            #expect(reply.pid != "not-a-session" && reply.pid != nil)
            stranger.close()
        }
    }

    // Without recovery: no private id, no offsets (what the protocol suite expects).
    @Test func withoutRecoveryEventsCarryNoOffset() async throws {
        try await withDemoServer { port in
            let client = try await SocketIOTestClient(port: port)
            let reply = try await connect(client, auth: #"{"token":"1"}"#, joining: nil)
            #expect(reply.pid == nil)
            #expect(await client.waitFor(2)[1] == #"42["auth",{"token":"1"}]"#)
            client.close()
        }
    }
}

/// Sockway's own Socket.IO client (`SocketIOClient`) resumes the same way: private session id and last
/// offset on reconnecting, by itself.
@Suite(.timeLimit(.minutes(1))) struct SocketIOClientRecoveryTests {
    /// Events until one matches `last` (that one included), skipping `auth` echoes.
    private func events(from client: SocketIOClient, through last: (SocketIOClientEvent) -> Bool) async -> [SocketIOClientEvent] {
        var seen: [SocketIOClientEvent] = []
        while let event = await client.next() {
            if case .event("auth", _) = event { continue }
            seen.append(event)
            if last(event) { break }
        }
        return seen
    }

    @Test(arguments: SockwayClientTransport.engineIO)
    func theSwiftClientRecoversByItself(transport: SockwayClientTransport) async throws {
        try await withDemoServer(socketIORecovery: SocketIORecovery()) { port in
            let sender = try await SocketIOTestClient(port: port)
            sender.send("40")
            await sender.waitFor(1)
            let client = SocketIOClient(url: "http://127.0.0.1:\(port)/socket.io", transport: transport)
            await client.emit("join", ["r"])
            guard case .connected(let id, recovered: false) = await client.next() else {
                Issue.record("not connected")
                return
            }
            try await Task.sleep(for: .milliseconds(100))  // joined
            sender.send(#"42["to-room","r","m1"]"#)
            let first = await events(from: client) { $0 == .event(name: "room-message", arguments: ["m1"]) }
            #expect(first == [.event(name: "room-message", arguments: ["m1"])])
            await client.emit("disconnect-me")
            let lost = await events(from: client) { if case .disconnected = $0 { true } else { false } }
            #expect(lost.count == 1)
            for text in ["m2", "m3"] { sender.send(#"42["to-room","r","\#(text)"]"#) }
            try await Task.sleep(for: .milliseconds(200))
            let back = await events(from: client) { $0 == .event(name: "room-message", arguments: ["m3"]) }
            #expect(back == [
                .connected(id: id, recovered: true),
                .event(name: "room-message", arguments: ["m2"]),
                .event(name: "room-message", arguments: ["m3"]),
            ])
            #expect(await client.recovered)
            sender.send(#"42["to-room","r","m4"]"#)
            let live = await events(from: client) { if case .event("room-message", _) = $0 { true } else { false } }
            #expect(live == [.event(name: "room-message", arguments: ["m4"])])
            await client.close()
            #expect(await client.next() == nil)
            sender.close()
        }
    }
}
