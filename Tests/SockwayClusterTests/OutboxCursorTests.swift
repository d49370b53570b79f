import Testing

@testable import SockwayCluster

/// A node's place in an outbox stream: each offset delivered once, in order; gaps and lost histories told.
@Suite struct OutboxCursorTests {
    @Test func aNewSubscriberStartsAtTheTopAndReadsOnlyWhatComesAfter() {
        var cursor = OutboxCursor(epoch: "e1", top: 10)
        #expect(cursor.observed(epoch: "e1", top: 10) == (.upToDate, false))
        #expect(cursor.observed(epoch: "e1", top: 12) == (.read(epoch: "e1", after: 10), false))
        #expect(cursor.accept(epoch: "e1", offsets: [11, 12]) == .init(deliver: [0, 1], missed: 0))
        #expect(cursor.offset == 12)
    }

    @Test func aStreamThatDidNotExistIsFollowedFromItsFirstOffset() {
        var cursor = OutboxCursor(epoch: nil, top: 0)
        #expect(cursor.observed(epoch: "e1", top: 3) == (.read(epoch: "e1", after: 0), false))
        #expect(cursor.accept(epoch: "e1", offsets: [1, 2, 3]).deliver == [0, 1, 2])
    }

    @Test func rowsAtOrBelowTheCursorAreNeverDeliveredTwice() {
        var cursor = OutboxCursor(epoch: "e1", top: 5)
        #expect(cursor.accept(epoch: "e1", offsets: [4, 5, 6, 7]).deliver == [2, 3])
        #expect(cursor.accept(epoch: "e1", offsets: [6, 7]).deliver == [])
    }

    @Test func rowsTrimmedBeforeTheyWereReadAreCountedAsMissed() {
        var cursor = OutboxCursor(epoch: "e1", top: 5)
        #expect(cursor.accept(epoch: "e1", offsets: [9, 10]) == .init(deliver: [0, 1], missed: 3))
        // Everything up to a known top trimmed: nothing to read, all of it missed, and the cursor moves on.
        #expect(cursor.caughtUp(epoch: "e1", top: 14) == 4)
        #expect(cursor.observed(epoch: "e1", top: 14) == (.upToDate, false))
    }

    @Test func aNewEpochMeansTheHistoryWasLostAndTheNewOneIsReadFromItsStart() {
        var cursor = OutboxCursor(epoch: "e1", top: 50)
        #expect(cursor.observed(epoch: "e2", top: 2) == (.read(epoch: "e2", after: 0), true))
        // Rows of the old epoch are not this history's.
        #expect(cursor.accept(epoch: "e1", offsets: [51]).deliver == [])
        #expect(cursor.accept(epoch: "e2", offsets: [1, 2]).deliver == [0, 1])
    }

    @Test func anOwnPublicationRightAfterTheCursorIsDeliveredWithoutReading() {
        var cursor = OutboxCursor(epoch: "e1", top: 7)
        #expect(cursor.published(epoch: "e1", first: 8, count: 3, alreadyDelivered: false) == (.deliverNow, false))
        #expect(cursor.offset == 10)
        // Its notification then finds nothing new.
        #expect(cursor.observed(epoch: "e1", top: 10) == (.upToDate, false))
    }

    @Test func anOwnPublicationBehindOthersIsReadInOrderWithThem() {
        var cursor = OutboxCursor(epoch: "e1", top: 7)
        #expect(cursor.published(epoch: "e1", first: 9, count: 1, alreadyDelivered: false) == (.read(epoch: "e1", after: 7), false))
        #expect(cursor.accept(epoch: "e1", offsets: [8, 9]).deliver == [0, 1])
    }

    @Test func theFirstOwnPublicationCreatesTheStreamsHistory() {
        var cursor = OutboxCursor(epoch: nil, top: 0)
        #expect(cursor.published(epoch: "e9", first: 1, count: 2, alreadyDelivered: false) == (.deliverNow, false))
        #expect(cursor.epoch == "e9")
    }

    @Test func publicationsDeliveredWhileTheOutboxWasAwayAreSkippedWhenTheyComeBack() {
        var cursor = OutboxCursor(epoch: "e1", top: 4)
        // Others wrote 5 and 6 meanwhile; ours became 7 and 8.
        #expect(cursor.published(epoch: "e1", first: 7, count: 2, alreadyDelivered: true) == (.read(epoch: "e1", after: 4), false))
        #expect(cursor.accept(epoch: "e1", offsets: [5, 6, 7, 8, 9]).deliver == [0, 1, 4])
        #expect(cursor.offset == 9)
        // Directly after the cursor: nothing to deliver, nothing to read.
        #expect(cursor.published(epoch: "e1", first: 10, count: 1, alreadyDelivered: true) == (.nothing, false))
        #expect(cursor.offset == 10)
    }
}

extension OutboxCursor.Accepted {
    init(deliver: [Int], missed: UInt64) {
        self.init()
        self.deliver = deliver
        self.missed = missed
    }
}
