import Benchmark
import NIOCore
import NIOWebSocket
import SockwaySockJS
import SockwayWebSocket

// The WebSocket per-message paths of Sockway's own frame handling: permessage-deflate compression of
// outbound SockJS frames, reading inbound frames (`WebSocketFrameReader`), the inbound `frameReceived`
// path (unmask, inflate, UTF-8 validation, state), and writing an outbound server frame
// (`WebSocketFrameWriter`); plus, for comparison, NIO's `unmaskedData` and the `WebSocketFrame` that
// NIO's encoder took before the server wrote frames itself. Same conventions as SockJSCodec: setup
// (codecs, zlib streams, buffers) happens before `startMeasurement()`, each sample runs 1000 operations,
// the `*` metrics are per operation, and only mallocCountTotal is guarded by Thresholds/ (exactly).
// Names use `_`, never spaces or `/` (see SockJSCodec.swift and README.md).

/// The average compressed size per message in a sample (bytes, not scaled): reported next to the
/// throughput so the ratio each mode achieves is visible. Recorded after `stopMeasurement()`.
let compressedBytes = BenchmarkMetric.custom("compressedBytes", polarity: .prefersSmaller, useScalingFactor: false)

/// The codec the server builds for a client that offers plain `permessage-deflate` (what browsers send).
func negotiatedCodec(_ configuration: PerMessageDeflateConfiguration, resources: PerMessageDeflateResources = .init()) -> PerMessageDeflateCodec {
    guard let parameters = PerMessageDeflateNegotiation.negotiate(offers: ["permessage-deflate"], configuration: configuration) else {
        fatalError("permessage-deflate was not negotiated")
    }
    return PerMessageDeflateCodec(parameters: parameters, configuration: configuration, resources: resources)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .mallocCountTotal],
        warmupIterations: 3,
        scalingFactor: .kilo,
        maxDuration: .seconds(1),
        maxIterations: 10_000,
        thresholds: [
            .mallocCountTotal: .init(
                relative: BenchmarkThresholds.Relative.strict,
                absolute: BenchmarkThresholds.Absolute.strict
            )
        ]
    )
    var compressionConfiguration = Benchmark.defaultConfiguration
    compressionConfiguration.metrics.append(compressedBytes)

    let pools: [(name: String, frames: [ByteBuffer])] = [
        ("49B", [Inputs.smallFrame]),
        ("300B", Inputs.chatFrames),
        ("4KiB", Inputs.historyFrames),
    ]
    let modes: [(name: String, configuration: PerMessageDeflateConfiguration)] = [
        // The default: a compressor per connection (15-bit window, memLevel 8), context takeover.
        ("perConnection", .init(compression: .perConnection(windowBits: 15, memoryLevel: 8))),
        // One compressor per event loop, reset after every message.
        ("shared", .init(compression: .sharedPerEventLoop)),
    ]

    // 1a. The threshold check that keeps small frames uncompressed.
    let small = Inputs.smallFrame
    Benchmark("PerMessageDeflate.shouldCompress_49B") { benchmark in
        let codec = negotiatedCodec(.init())
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(codec.shouldCompress(byteCount: small.readableBytes))
        }
        benchmark.stopMeasurement()
    }

    // 1b. PerMessageDeflateCodec.compress(_:into:), output buffer reused (clear() per op). The 49 B frame
    // is compressed although `shouldCompress` says no, to show what the threshold saves.
    for mode in modes {
        for pool in pools {
            let frames = pool.frames
            let configuration = mode.configuration
            Benchmark("PerMessageDeflate.compress_\(mode.name)_\(pool.name)", configuration: compressionConfiguration) { benchmark in
                var codec = negotiatedCodec(configuration)
                var output = ByteBuffer()
                output.reserveCapacity(16 * 1024)
                // Creates the zlib stream (one-off: ~270 KB, several mallocs) outside the measurement.
                _ = try codec.compress(frames[0], into: &output)
                var index = 0
                var total = 0
                var uncompressed = 0
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    output.clear()
                    let compressed = try codec.compress(frames[index], into: &output)
                    total += compressed ? output.readableBytes : frames[index].readableBytes
                    uncompressed += compressed ? 0 : 1
                    index = index + 1 == frames.count ? 0 : index + 1
                }
                benchmark.stopMeasurement()
                let iterations = benchmark.scaledIterations.count
                benchmark.measurement(compressedBytes, total / iterations)
                precondition(uncompressed == 0 || uncompressed == iterations, "compressed some but not all")
            }
        }
    }

    // 1c. The server's real outbound path: WebSocketConnectionStateMachine.prepareOutbound, which
    // allocates a fresh output buffer per message (SockwayWebSocketHandler.writeText, headroom 10).
    for mode in modes {
        for pool in pools.dropFirst() {
            let frames = pool.frames
            let configuration = mode.configuration
            Benchmark("PerMessageDeflate.prepareOutbound_\(mode.name)_\(pool.name)", configuration: compressionConfiguration) { benchmark in
                var machine = WebSocketConnectionStateMachine(compression: negotiatedCodec(configuration))
                let allocator = ByteBufferAllocator()
                precondition(machine.prepareOutbound(frames[0], allocator: allocator, headroom: 10).compressed)
                var index = 0
                var total = 0
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    let (data, compressed) = machine.prepareOutbound(frames[index], allocator: allocator, headroom: 10)
                    precondition(compressed)
                    total += data.readableBytes
                    index = index + 1 == frames.count ? 0 : index + 1
                }
                benchmark.stopMeasurement()
                benchmark.measurement(compressedBytes, total / benchmark.scaledIterations.count)
            }
        }
    }

    // 2. The real inbound path for a compressed message: frameReceived of a masked RSV1 text frame
    // (unmask, inflate with the loop's shared inflater, UTF-8 validation). The client compresses each
    // message on its own (client_no_context_takeover is always agreed), so every payload is made by a
    // fresh compressor.
    for pool in pools {
        let frames = pool.frames.map { plain -> WebSocketFrame in
            var codec = negotiatedCodec(.init())
            var compressed = ByteBuffer()
            precondition(try! codec.compress(plain, into: &compressed))
            return Inputs.maskedFrame(compressed, compressed: true)
        }
        let expected = pool.frames
        Benchmark("WebSocketInbound.frameReceived_deflated_\(pool.name)") { benchmark in
            var machine = WebSocketConnectionStateMachine(compression: negotiatedCodec(.init()))
            // Creates the shared inflater outside the measurement, and checks the round trip.
            for (frame, plain) in zip(frames, expected) {
                guard case .text(let text) = machine.frameReceived(frame), text == plain else { fatalError("inflate failed") }
            }
            var index = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(machine.frameReceived(frames[index]))
                index = index + 1 == frames.count ? 0 : index + 1
            }
        }
    }

    // 2b/3. The same path for uncompressed masked text frames (no RSV1): unmask, UTF-8, state. The
    // state machine has no codec; with one the path is the same apart from the RSV1 check.
    let textSamples: [(name: String, frames: [ByteBuffer])] = [
        ("20B", [ByteBuffer(string: Inputs.ascii20)]),
        ("49B", [Inputs.smallFrame]),
        ("300B", Inputs.chatFrames),
        ("1KiB", [ByteBuffer(string: Inputs.ascii1K)]),
        ("4KiB", Inputs.historyFrames),
    ]
    for sample in textSamples {
        let frames = sample.frames.map { Inputs.maskedFrame($0, compressed: false) }
        let expected = sample.frames
        Benchmark("WebSocketInbound.frameReceived_text_\(sample.name)") { benchmark in
            var machine = WebSocketConnectionStateMachine()
            for (frame, plain) in zip(frames, expected) {
                guard case .text(let text) = machine.frameReceived(frame), text == plain else { fatalError("unmask failed") }
            }
            var index = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(machine.frameReceived(frames[index]))
                index = index + 1 == frames.count ? 0 : index + 1
            }
        }
    }

    // 2c. Unmasking alone, the part of frameReceived that grows with the frame size: NIO's
    // `WebSocketFrame.unmaskedData` (a copy, then a byte-at-a-time XOR; no longer used by the server,
    // kept for comparison) against `fastUnmaskedData` (XOR eight bytes at a time while copying), which
    // frameReceived now calls.
    let maskedText1K = Inputs.maskedFrame(ByteBuffer(string: Inputs.ascii1K), compressed: false)
    precondition(maskedText1K.fastUnmaskedData == maskedText1K.unmaskedData)
    Benchmark("WebSocketInbound.unmaskedData_1KiB") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(maskedText1K.unmaskedData)
        }
    }
    Benchmark("WebSocketInbound.fastUnmaskedData_1KiB") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(maskedText1K.fastUnmaskedData)
        }
    }

    // 2d. Reading a frame off the connection as SockwayWebSocketHandler.channelRead does: one read
    // holding exactly one masked text frame, `WebSocketFrameReader.append` then `next()` (header
    // parse, payload sliced, not copied, reader left empty). `readerNextUnmask` also unmasks the
    // payload with `fastUnmaskedData`, as frameReceived does next.
    let wireSamples: [(name: String, payload: ByteBuffer)] = [
        ("20B", ByteBuffer(string: Inputs.ascii20)),
        ("1KiB", ByteBuffer(string: Inputs.ascii1K)),
    ]
    for sample in wireSamples {
        let wire = Inputs.maskedWireFrame(sample.payload)
        let expected = sample.payload
        let maxFrameSize = 64 * 1024
        do {
            var reader = WebSocketFrameReader(maxFrameSize: maxFrameSize)
            reader.append(wire)
            guard let frame = try reader.next(), frame.fin, frame.opcode == .text, frame.fastUnmaskedData == expected,
                  reader.bufferedBytes == 0 else { fatalError("read failed") }
        } catch {
            fatalError("read failed: \(error)")
        }
        Benchmark("WebSocketInbound.readerNext_\(sample.name)") { benchmark in
            var reader = WebSocketFrameReader(maxFrameSize: maxFrameSize)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                reader.append(wire)
                blackHole(try reader.next())
            }
        }
        Benchmark("WebSocketInbound.readerNextUnmask_\(sample.name)") { benchmark in
            var reader = WebSocketFrameReader(maxFrameSize: maxFrameSize)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                reader.append(wire)
                blackHole(try reader.next()!.fastUnmaskedData)
            }
        }
    }

    // 3b. An outbound SockJS message frame as SockwayWebSocketHandler.write builds it (compression
    // off): a buffer of the estimated frame size plus `WebSocketFrameWriter.headroom` (10) bytes before
    // it, the SockJS frame written after the headroom, then `WebSocketFrameWriter.frame`, which puts
    // the WebSocket header in that headroom and returns the bytes that go to the channel. (`frame`
    // borrows the payload, so the caller still holds its storage and the first `setInteger` copies it:
    // 2 mallocs more than a truly in-place write; see README.md.)
    let outbound: [(name: String, message: String)] = [("20B", Inputs.ascii20), ("1KiB", Inputs.ascii1K)]
    for sample in outbound {
        let frame = SockJSFrame.messages([sample.message])
        Benchmark("WebSocketOutbound.writerFrame_\(sample.name)") { benchmark in
            let allocator = ByteBufferAllocator()
            let headroom = WebSocketFrameWriter.headroom
            for _ in benchmark.scaledIterations {
                var buffer = allocator.buffer(capacity: frame.estimatedByteCount + headroom)
                buffer.moveWriterIndex(forwardBy: headroom)
                buffer.moveReaderIndex(forwardBy: headroom)
                frame.write(into: &buffer)
                blackHole(WebSocketFrameWriter.frame(opcode: .text, payload: consume buffer, allocator: allocator))
            }
        }
    }

    // 3c. For comparison, what the server did before it wrote frames itself: the same buffer, then a
    // NIO `WebSocketFrame` for NIO's `WebSocketFrameEncoder` (the encoder's own work is not measured).
    for sample in outbound {
        let frame = SockJSFrame.messages([sample.message])
        Benchmark("WebSocketOutbound.nioFrame_\(sample.name)") { benchmark in
            let allocator = ByteBufferAllocator()
            let headroom = 10
            for _ in benchmark.scaledIterations {
                var buffer = allocator.buffer(capacity: frame.estimatedByteCount + headroom)
                buffer.moveWriterIndex(forwardBy: headroom)
                buffer.moveReaderIndex(forwardBy: headroom)
                frame.write(into: &buffer)
                blackHole(WebSocketFrame(fin: true, opcode: .text, data: buffer))
            }
        }
    }
}
