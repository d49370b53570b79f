#if os(Linux)
import NIOCore
import NIOPosix
import Testing

@testable import SockwayServer

/// `TCPProgress` reads the kernel's view of a socket: what the peer has not taken yet, and what it has.
@Suite struct TCPProgressTests {
    // A peer that does not read leaves bytes outstanding; once it has read them all, none are, and the
    // acknowledged count has grown by what was written.
    @Test func outstandingBytesFollowWhatThePeerReads() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let accepted = group.next().makePromise(of: (any Channel).self)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                accepted.succeed(channel)
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let client = try LoopbackClient(port: server.localAddress!.port!)
        let channel = try await accepted.futureResult.get()
        let size = 4 << 20
        channel.writeAndFlush(ByteBuffer(repeating: UInt8(ascii: "x"), count: size), promise: nil)
        try await Task.sleep(for: .milliseconds(200))
        let stalled = try await TCPProgress.read(channel).get()
        #expect(stalled.bytesOutstanding > 0)
        _ = await blocking { client.read { $0.utf8.count >= size } }
        var drained = try await TCPProgress.read(channel).get()
        for _ in 0..<50 where drained.bytesOutstanding > 0 {
            try await Task.sleep(for: .milliseconds(20))
            drained = try await TCPProgress.read(channel).get()
        }
        #expect(drained.bytesOutstanding == 0)
        #expect(drained.bytesAcked >= UInt64(size))
        #expect(drained.bytesAcked > stalled.bytesAcked)
        try await channel.close()
        try await server.close()
        try await group.shutdownGracefully()
    }
}
#endif
