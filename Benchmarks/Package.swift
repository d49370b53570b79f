// swift-tools-version:6.1
// A separate package so that the root package's `swift build` and `swift test` never resolve or build
// ordo-one/benchmark. Run from this folder: `swift package benchmark` (see README.md).
import PackageDescription

let package = Package(
    name: "sockway-benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "sockway", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // Pinned exactly: the stored thresholds count the harness's view of allocations, so a harness
        // update is a deliberate step followed by `thresholds update`. MallocInterposer is the Swift 6.3+
        // malloc-counting backend (no jemalloc needed).
        .package(url: "https://github.com/ordo-one/benchmark.git", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "SockJSCodec",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SockwaySockJS", package: "sockway"),
                .product(name: "SockwayWebSocket", package: "sockway"),
            ],
            path: "Benchmarks/SockJSCodec",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark"),
            ]
        ),
        .executableTarget(
            name: "WebSocketCodec",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "SockwaySockJS", package: "sockway"),
                .product(name: "SockwayWebSocket", package: "sockway"),
            ],
            path: "Benchmarks/WebSocketCodec",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark"),
            ]
        ),
    ]
)
