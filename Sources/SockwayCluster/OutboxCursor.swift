/// One node's place in one stream of a shared outbox, and the rules for moving it: what to read,
/// what to deliver, what was lost. Sans-I/O; the PostgreSQL bus feeds it what its queries return.
///
/// An outbox stream is a table of publications with offsets 1, 2, 3, … under an epoch (new when the
/// stream's history is lost). A node delivers each offset once, in order: it remembers the last one
/// it delivered and reads only what comes after. Notifications only say "the stream's top is now T";
/// a lost notification costs a delay (the next one, or the periodic check, carries a newer top), never
/// a publication.
public struct OutboxCursor: Sendable, Hashable {
    /// The history being followed; `nil` until the stream has been seen to exist.
    public private(set) var epoch: String?
    /// The last offset delivered (or skipped) in ``epoch``.
    public private(set) var offset: UInt64
    /// Own publications already delivered on this node (while the outbox was away), to be skipped
    /// when they come back through the outbox: their offsets once known, lowest first.
    private var preDelivered: [ClosedRange<UInt64>] = []

    /// A cursor at the end of the stream as it is now (`epoch` `nil` if it does not exist yet): a new
    /// subscriber receives what is published from now on.
    public init(epoch: String?, top: UInt64) {
        self.epoch = epoch
        self.offset = epoch == nil ? 0 : top
    }

    /// What to do after learning the stream's top.
    public enum Observation: Sendable, Hashable {
        /// Nothing new.
        case upToDate
        /// Read the publications after `offset` in `epoch`.
        case read(epoch: String, after: UInt64)
    }

    /// The stream's history is `epoch` and reaches `top` (from a notification, a query or an own
    /// publication). A new epoch means the history this node followed is gone: it follows the new
    /// one from its start (everything in it was published after the loss).
    public mutating func observed(epoch: String, top: UInt64) -> (Observation, historyLost: Bool) {
        var lost = false
        if self.epoch != epoch {
            lost = self.epoch != nil
            self.epoch = epoch
            offset = 0
            preDelivered.removeAll()
        }
        return (top > offset ? .read(epoch: epoch, after: offset) : .upToDate, lost)
    }

    /// The result of reading rows.
    public struct Accepted: Sendable, Hashable {
        /// Indices into the rows passed to ``accept(epoch:offsets:)``, to deliver in this order.
        public var deliver: [Int] = []
        /// Offsets missing before a row: trimmed from the outbox before this node read them.
        public var missed: UInt64 = 0
    }

    /// Rows read from `epoch`, with these offsets in ascending order: which to deliver. Rows at or
    /// below the cursor were already delivered; a jump past the next offset means rows were trimmed.
    public mutating func accept(epoch: String, offsets: [UInt64]) -> Accepted {
        var result = Accepted()
        guard epoch == self.epoch else { return result }
        for (index, rowOffset) in offsets.enumerated() where rowOffset > offset {
            if rowOffset > offset + 1 { result.missed += rowOffset - offset - 1 }
            offset = rowOffset
            while let range = preDelivered.first, range.upperBound < rowOffset { preDelivered.removeFirst() }
            if let range = preDelivered.first, range.contains(rowOffset) { continue }
            result.deliver.append(index)
        }
        return result
    }

    /// What to do after an own publication of `count` rows was committed at `first` in `epoch`.
    public enum Publication: Sendable, Hashable {
        /// Deliver them now (they follow the cursor directly); the cursor is past them.
        case deliverNow
        /// Others' rows come before them (or they were delivered already): read from the cursor.
        case read(epoch: String, after: UInt64)
        /// Already delivered and directly after the cursor: nothing to do; the cursor is past them.
        case nothing
    }

    /// An own publication was committed. `alreadyDelivered` when this node delivered it at once,
    /// while the outbox was away.
    public mutating func published(
        epoch: String,
        first: UInt64,
        count: UInt64,
        alreadyDelivered: Bool
    ) -> (Publication, historyLost: Bool) {
        let last = first + count - 1
        var lost = false
        if self.epoch == nil || self.epoch == epoch, first == offset + 1 {
            self.epoch = epoch
            offset = last
            return (alreadyDelivered ? .nothing : .deliverNow, false)
        }
        if self.epoch != epoch {
            lost = self.epoch != nil
            self.epoch = epoch
            offset = 0
            preDelivered.removeAll()
        }
        if alreadyDelivered { preDelivered.append(first...last) }
        return (.read(epoch: epoch, after: offset), lost)
    }

    /// After reading everything up to `top`: offsets still below it were trimmed before this node
    /// read them. Returns how many, and moves past them.
    public mutating func caughtUp(epoch: String, top: UInt64) -> UInt64 {
        guard epoch == self.epoch, top > offset else { return 0 }
        defer { offset = top }
        return top - offset
    }
}
