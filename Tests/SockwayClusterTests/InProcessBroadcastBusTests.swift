import NIOConcurrencyHelpers
import NIOCore
import Testing

@testable import SockwayCluster

/// The default bus: one process, every subscriber of a stream sees one order.
@Suite struct InProcessBroadcastBusTests {
    private func payload(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    @Test func everySubscriberReceivesEachPublicationWithDenseOffsets() {
        let bus = InProcessBroadcastBus()
        let first = NIOLockedValueBox<[(String, UInt64)]>([])
        let second = NIOLockedValueBox<[String]>([])
        let a = bus.subscribe(to: "room") { delivery in
            first.withLockedValue { $0.append((String(buffer: delivery.payload), delivery.position!.offset)) }
        }
        let b = bus.subscribe(to: "room") { delivery in second.withLockedValue { $0.append(String(buffer: delivery.payload)) } }
        let other = bus.subscribe(to: "elsewhere") { _ in Issue.record("another stream's publication") }
        for text in ["a", "b", "c"] { bus.publish(payload(text), on: "room") }
        #expect(first.withLockedValue { $0.map(\.0) } == ["a", "b", "c"])
        #expect(first.withLockedValue { $0.map(\.1) } == [1, 2, 3])
        #expect(second.withLockedValue { $0 } == ["a", "b", "c"])
        withExtendedLifetime((a, b, other)) {}
    }

    // A value published on a bus without history reaches the subscribers as it is, never encoded; with
    // a retention it is encoded for the history and still handed over as it is.
    @Test func aValueIsHandedOverWithoutEncodingUnlessAHistoryNeedsIt() async {
        for retention in [InProcessBroadcastBus.Retention.none, .init(count: 10, age: .seconds(60))] {
            let bus = InProcessBroadcastBus(retention: retention)
            let seen = NIOLockedValueBox<[(value: String?, payload: String)]>([])
            let encodings = NIOLockedValueBox(0)
            let subscription = bus.subscribe(to: "room") { delivery in
                seen.withLockedValue { $0.append((delivery.value as? String, String(buffer: delivery.payload))) }
            }
            bus.publish("hello", on: "room") {
                encodings.withLockedValue { $0 += 1 }
                return ByteBuffer(string: "encoded hello")
            }
            let kept = retention.count > 0
            #expect(seen.withLockedValue { $0.map(\.value) } == ["hello"])
            #expect(seen.withLockedValue { $0.map(\.payload) } == [kept ? "encoded hello" : ""])
            #expect(encodings.withLockedValue { $0 } == (kept ? 1 : 0))
            withExtendedLifetime(subscription) {}
        }
    }

    // History: whole after a position, unavailable past the ring, for another epoch or over the limit.
    @Test func theHistoryIsTheRetainedTailAfterAPosition() async throws {
        let bus = InProcessBroadcastBus(retention: .init(count: 3, age: .seconds(60)))
        let positions = NIOLockedValueBox<[BroadcastPosition]>([])
        let subscription = bus.subscribe(to: "room") { delivery in positions.withLockedValue { $0.append(delivery.position!) } }
        for text in ["a", "b", "c", "d", "e"] { bus.publish(payload(text), on: "room") }
        let epoch = try #require(positions.withLockedValue { $0.first?.epoch })
        func texts(after offset: UInt64, epoch: String? = nil, limit: Int = 10) async -> [String]? {
            guard case .publications(let deliveries) = await bus.history(of: "room", after: .init(epoch: epoch ?? "", offset: offset), limit: limit) else { return nil }
            return deliveries.map { String(buffer: $0.payload) }
        }
        #expect(await texts(after: 2, epoch: epoch) == ["c", "d", "e"])
        #expect(await texts(after: 4, epoch: epoch) == ["e"])
        #expect(await texts(after: 5, epoch: epoch) == [])
        #expect(await texts(after: 1, epoch: epoch) == nil)  // "b" is gone from the ring
        #expect(await texts(after: 6, epoch: epoch) == nil)
        #expect(await texts(after: 2, epoch: "another") == nil)
        #expect(await texts(after: 2, epoch: epoch, limit: 2) == nil)
        withExtendedLifetime(subscription) {}
    }

    // The session shelf: an open record cannot be taken, a parked one once, a forgotten one never.
    @Test func aParkedSessionIsTakenOnce() async {
        let bus = InProcessBroadcastBus()
        bus.keepSession(ByteBuffer(string: "state"), key: "k", window: .seconds(30))
        #expect(await bus.takeSession(key: "k") == nil)
        bus.parkSession(key: "k")
        #expect(await bus.takeSession(key: "k") == ByteBuffer(string: "state"))
        #expect(await bus.takeSession(key: "k") == nil)
        bus.keepSession(ByteBuffer(string: "state"), key: "gone", window: .seconds(30))
        bus.parkSession(key: "gone")
        bus.forgetSession(key: "gone")
        #expect(await bus.takeSession(key: "gone") == nil)
        bus.keepSession(ByteBuffer(string: "state"), key: "brief", window: .milliseconds(50))
        bus.parkSession(key: "brief")
        try? await Task.sleep(for: .milliseconds(150))
        #expect(await bus.takeSession(key: "brief") == nil)
    }

    @Test func aPublicationMadeInsideADeliveryComesAfterItWithoutRecursion() {
        let bus = InProcessBroadcastBus()
        let seen = NIOLockedValueBox<[String]>([])
        let depth = NIOLockedValueBox(0)
        let subscription = bus.subscribe(to: "room") { delivery in
            let text = String(buffer: delivery.payload)
            let nested = depth.withLockedValue { $0 += 1; return $0 }
            #expect(nested == 1)
            seen.withLockedValue { $0.append(text) }
            if text.count < 3 { bus.publish(ByteBuffer(string: text + "+"), on: "room") }
            depth.withLockedValue { $0 -= 1 }
        }
        bus.publish(payload("x"), on: "room")
        #expect(seen.withLockedValue { $0 } == ["x", "x+", "x++"])
        withExtendedLifetime(subscription) {}
    }

    @Test func concurrentPublishersAreSeenInOneOrderByEverySubscriber() async {
        let bus = InProcessBroadcastBus()
        let first = NIOLockedValueBox<[UInt64]>([])
        let second = NIOLockedValueBox<[String]>([])
        let orderA = NIOLockedValueBox<[String]>([])
        let a = bus.subscribe(to: "s") { delivery in
            first.withLockedValue { $0.append(delivery.position!.offset) }
            orderA.withLockedValue { $0.append(String(buffer: delivery.payload)) }
        }
        let b = bus.subscribe(to: "s") { delivery in second.withLockedValue { $0.append(String(buffer: delivery.payload)) } }
        await withTaskGroup(of: Void.self) { group in
            for publisher in 0..<4 {
                group.addTask {
                    for index in 0..<500 { bus.publish(ByteBuffer(string: "\(publisher)-\(index)"), on: "s") }
                }
            }
        }
        #expect(first.withLockedValue { $0 } == Array(1...2000))
        #expect(orderA.withLockedValue { $0 } == second.withLockedValue { $0 })
        // Each publisher's own messages in the order it sent them.
        let seen = orderA.withLockedValue { $0 }
        for publisher in 0..<4 {
            let own = seen.filter { $0.hasPrefix("\(publisher)-") }
            #expect(own == (0..<500).map { "\(publisher)-\($0)" })
        }
        withExtendedLifetime((a, b)) {}
    }

    @Test func aCancelledSubscriptionReceivesNothingMore() {
        let bus = InProcessBroadcastBus()
        let count = NIOLockedValueBox(0)
        let subscription = bus.subscribe(to: "s") { _ in count.withLockedValue { $0 += 1 } }
        bus.publish(payload("1"), on: "s")
        subscription.cancel()
        bus.publish(payload("2"), on: "s")
        #expect(count.withLockedValue { $0 } == 1)
    }

    @Test func aForgottenStreamComesBackWithANewEpoch() {
        let bus = InProcessBroadcastBus()
        let epochs = NIOLockedValueBox<[String]>([])
        var subscription = bus.subscribe(to: "s") { delivery in epochs.withLockedValue { $0.append(delivery.position!.epoch) } }
        bus.publish(payload("1"), on: "s")
        subscription.cancel()
        subscription = bus.subscribe(to: "s") { delivery in epochs.withLockedValue { $0.append(delivery.position!.epoch) } }
        bus.publish(payload("2"), on: "s")
        let seen = epochs.withLockedValue { $0 }
        #expect(seen.count == 2 && seen[0] != seen[1])
        withExtendedLifetime(subscription) {}
    }
}

/// The publication layout between nodes.
@Suite struct BroadcastWireTests {
    @Test func whatAWriterWritesAReaderReadsBack() throws {
        var writer = BroadcastWriter(kind: 7)
        writer.write(count: 2)
        writer.write("room-1")
        writer.write("é")
        writer.write(bytes: ByteBuffer(bytes: [0, 1, 2]))
        var reader = try BroadcastReader(writer.buffer)
        #expect(reader.kind == 7)
        #expect(try reader.readCount(limit: 10) == 2)
        #expect(try reader.readName() == "room-1")
        #expect(try reader.readName() == "é")
        #expect(try reader.readBytes() == ByteBuffer(bytes: [0, 1, 2]))
        try reader.finish()
    }

    @Test func aPublicationFromANewerReleaseIsRefused() {
        var buffer = ByteBuffer(bytes: [BroadcastWire.version + 1, 1])
        buffer.writeInteger(UInt32(0))
        #expect(throws: BroadcastDecodingError.newerVersion(BroadcastWire.version + 1)) { try BroadcastReader(buffer) }
    }

    @Test func namesThatAreNotUTF8OrTooLongAreRefused() throws {
        var buffer = ByteBuffer(bytes: [BroadcastWire.version, 1])
        buffer.writeInteger(UInt32(2))
        buffer.writeBytes([0xC3, 0x28])  // an invalid two-byte sequence
        var reader = try BroadcastReader(buffer)
        #expect(throws: BroadcastDecodingError.invalidName) { try reader.readName() }

        var writer = BroadcastWriter(kind: 1)
        writer.write(String(repeating: "r", count: BroadcastWire.maxNameBytes + 1))
        var long = try BroadcastReader(writer.buffer)
        #expect(throws: BroadcastDecodingError.invalidName) { try long.readName() }
        #expect(!BroadcastWire.isValidName(""))
        #expect(BroadcastWire.isValidName(String(repeating: "é", count: BroadcastWire.maxNameBytes / 2)))
    }

    @Test func lengthsPastTheEndAndCountsPastTheirLimitAreMalformed() throws {
        var buffer = ByteBuffer(bytes: [BroadcastWire.version, 1])
        buffer.writeInteger(UInt32(1000))
        buffer.writeString("short")
        var reader = try BroadcastReader(buffer)
        #expect(throws: BroadcastDecodingError.malformed) { try reader.readString() }
        var counted = try BroadcastReader(buffer)
        #expect(throws: BroadcastDecodingError.malformed) { try counted.readCount(limit: 999) }
        #expect(throws: BroadcastDecodingError.malformed) { try BroadcastReader(ByteBuffer(bytes: [1])) }
    }
}
