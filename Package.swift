// swift-tools-version:6.0
import PackageDescription

let strictSwift6: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "sockway",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sockway", targets: ["sockway"]),
        .library(name: "SockwayServer", targets: ["SockwayServer"]),
        .library(name: "SockwayClient", targets: ["SockwayClient"]),
        .library(name: "SockwayCore", targets: ["SockwayCore"]),
        .library(name: "SockwaySockJS", targets: ["SockwaySockJS"]),
        .library(name: "SockwayEngineIO", targets: ["SockwayEngineIO"]),
        .library(name: "SockwaySocketIO", targets: ["SockwaySocketIO"]),
        .library(name: "SockwayWebSocket", targets: ["SockwayWebSocket"]),
        .library(name: "SockwayHTTP", targets: ["SockwayHTTP"]),
        .library(name: "SockwayBridge", targets: ["SockwayBridge"]),
        .library(name: "SockwayConfigFile", targets: ["SockwayConfigFile"]),
        .library(name: "SockwayPrometheus", targets: ["SockwayPrometheus"]),
        .library(name: "SockwayHummingbird", targets: ["SockwayHummingbird"]),
        .library(name: "SockwayCluster", targets: ["SockwayCluster"]),
        .library(name: "SockwayPostgres", targets: ["SockwayPostgres"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin.git", from: "1.5.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // Layer 0: system zlib (apt zlib1g-dev), with shims for its init macros.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // Layer 1: sans-I/O cores.
        .target(
            name: "SockwayZlib",
            dependencies: ["CZlib", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSwift6
        ),
        // The session rules every protocol family shares: phases, receivers, the outbox, the send contract.
        .target(
            name: "SockwayCore",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSwift6
        ),
        .target(
            name: "SockwaySockJS",
            dependencies: ["SockwayCore", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSwift6
        ),
        .target(
            name: "SockwayEngineIO",
            dependencies: ["SockwayCore", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSwift6
        ),
        .target(
            name: "SockwaySocketIO",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSwift6
        ),
        // A strict HTTP/1.1 request parser: the one place where a request's bounds and framing are read.
        .target(
            name: "SockwayHTTP",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSwift6
        ),
        .target(
            name: "SockwayWebSocket",
            dependencies: [
                "SockwayZlib",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: strictSwift6
        ),
        // Shared by the server and the client: the bounded queue behind `messages`.
        .target(
            name: "SockwayAsync",
            dependencies: [.product(name: "NIOConcurrencyHelpers", package: "swift-nio")],
            swiftSettings: strictSwift6
        ),
        // Layer 2: the broadcast bus rooms and groups publish through (in-process by default), its
        // publication format and the per-stream cursor rules every cluster implementation follows.
        .target(
            name: "SockwayCluster",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strictSwift6
        ),
        // The bus across nodes: an outbox in PostgreSQL, LISTEN/NOTIFY to wake the nodes (postgres-nio).
        .target(
            name: "SockwayPostgres",
            dependencies: [
                "SockwayCluster",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift6
        ),
        // Layer 2: NIO adapters and the public embedding API.
        .target(
            name: "SockwayServer",
            dependencies: [
                "SockwayAsync",
                "SockwayCluster",
                "SockwayCore",
                "SockwayEngineIO",
                "SockwayHTTP",
                "SockwaySockJS",
                "SockwaySocketIO",
                "SockwayWebSocket",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSwift6
        ),
        // `/metrics` in Prometheus's text format, on its own port, from swift-metrics' Prometheus backend.
        .target(
            name: "SockwayPrometheus",
            dependencies: [
                "SockwayServer",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift6
        ),
        // SockJS and Engine.IO endpoints mounted in a Hummingbird 2 application's router, on its server.
        .target(
            name: "SockwayHummingbird",
            dependencies: [
                "SockwayServer",
                "SockwayCore",
                "SockwaySockJS",
                "SockwayEngineIO",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift6
        ),
        // Endpoints whose sessions are carried to an existing WebSocket or TCP service, one connection each.
        .target(
            name: "SockwayBridge",
            dependencies: [
                "SockwayCore",
                "SockwayServer",
                "SockwayWebSocket",
                "SockwayEngineIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift6
        ),
        // The client: every SockJS transport, sockjs-client's fallback, traffic counted at its sockets.
        .target(
            name: "SockwayClient",
            dependencies: [
                "SockwaySocketIO",
                "SockwayAsync",
                "SockwayEngineIO",
                "SockwaySockJS",
                "SockwayWebSocket",
                "SockwayZlib",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSwift6
        ),
        // `sockway bench`: every transport side by side, against Sockway or any SockJS server.
        .target(
            name: "SockwayBench",
            dependencies: [
                "SockwayClient",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strictSwift6
        ),
        // Layer 4: the command line.
        // `--config FILE`: a YAML file's keys turned into the command's own arguments, checked against its definition.
        .target(
            name: "SockwayConfigFile",
            dependencies: [
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSwift6
        ),
        .executableTarget(
            name: "sockway",
            dependencies: [
                "SockwayServer",
                "SockwayBridge",
                "SockwayWebSocket",
                "SockwayBench",
                "SockwayConfigFile",
                "SockwayPrometheus",
                "SockwayCluster",
                "SockwayPostgres",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift6
        ),
        // Test helpers shared by several test targets.
        .target(
            name: "SockwayTestSupport",
            dependencies: [
                "SockwayClient",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/SockwayTestSupport",
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "SockwayConfigFileTests",
            dependencies: ["SockwayConfigFile", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "SockwayClusterTests",
            dependencies: ["SockwayCluster", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "SockwayPostgresTests",
            dependencies: [
                "SockwayTestSupport",
                "SockwayPostgres",
                "SockwayCluster",
                "SockwayServer",
                "SockwayClient",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "SockwaySockJSTests",
            dependencies: ["SockwaySockJS"],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "SockwayEngineIOTests",
            dependencies: ["SockwayEngineIO", "SockwayCore", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "SockwaySocketIOTests",
            dependencies: ["SockwaySocketIO", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "SockwayHTTPTests",
            dependencies: ["SockwayHTTP", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio")],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "SockwayWebSocketTests",
            dependencies: ["SockwayWebSocket", "SockwayZlib"],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "SockwayBenchTests",
            dependencies: [
                "SockwayTestSupport",
                "SockwayBench",
                "SockwayClient",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "SockwayClientTests",
            dependencies: [
                "SockwayTestSupport",
                "SockwayClient",
                "SockwayServer",
                "SockwaySockJS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "SockwayBridgeTests",
            dependencies: [
                "SockwayTestSupport",
                "SockwayBridge",
                "SockwayCore",
                "SockwayServer",
                "SockwayClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "SockwayPrometheusTests",
            dependencies: [
                "SockwayPrometheus",
                "SockwayServer",
                "SockwayClient",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "SockwayHummingbirdTests",
            dependencies: [
                "SockwayHummingbird",
                "SockwayServer",
                "SockwaySockJS",
                "SockwayClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "SockwayServerTests",
            dependencies: [
                "SockwayServer",
                "SockwaySockJS",
                "SockwayZlib",
                "SockwayEngineIO",
                "SockwaySocketIO",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift6
        ),
    ]
)
