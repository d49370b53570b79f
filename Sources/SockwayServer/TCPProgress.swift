#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// How far a client has read what a connection sent it, from the kernel (Linux `TCP_INFO`): a client
/// still downloading a large poll slowly is there, even though its session has no request open.
struct TCPProgress: Sendable, Equatable {
    /// Bytes the client has acknowledged so far.
    var bytesAcked: UInt64
    /// Bytes written to the socket that the client has not acknowledged yet (sent or not).
    var bytesOutstanding: UInt64

    /// The progress of `channel`'s socket; fails where the kernel cannot tell (not a TCP socket, not
    /// Linux).
    static func read(_ channel: any Channel) -> EventLoopFuture<TCPProgress> {
        #if os(Linux)
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(ChannelError.operationUnsupported)
        }
        let future: EventLoopFuture<KernelTCPInfo> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(IPPROTO_TCP),
            name: SocketOptionName(TCP_INFO)
        )
        return future.map { $0.progress }
        #else
        return channel.eventLoop.makeFailedFuture(ChannelError.operationUnsupported)
        #endif
    }
}

#if os(Linux)
/// The head of Linux's `struct tcp_info` (linux/tcp.h), past `tcpi_notsent_bytes` (kernel 4.6), which
/// the C library's older declaration lacks. The kernel copies as much as fits.
struct KernelTCPInfo: Sendable {
    private var storage: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                          UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    init() {}

    var progress: TCPProgress {
        withUnsafeBytes(of: storage) { bytes in
            // Offsets in struct tcp_info: eight u8 fields, then u32 tcpi_rto at 8 … tcpi_total_retrans
            // at 100 (tcpi_snd_mss 16, tcpi_unacked 24, in segments), then u64 tcpi_pacing_rate at 104,
            // tcpi_max_pacing_rate 112, tcpi_bytes_acked 120, tcpi_bytes_received 128, then u32
            // tcpi_segs_out 136, tcpi_segs_in 140, tcpi_notsent_bytes 144.
            let mss = UInt64(bytes.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
            let unackedSegments = UInt64(bytes.loadUnaligned(fromByteOffset: 24, as: UInt32.self))
            let acked = bytes.loadUnaligned(fromByteOffset: 120, as: UInt64.self)
            let notSent = UInt64(bytes.loadUnaligned(fromByteOffset: 144, as: UInt32.self))
            return TCPProgress(bytesAcked: acked, bytesOutstanding: notSent + unackedSegments * max(mss, 1))
        }
    }
}
#endif
