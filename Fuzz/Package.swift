// swift-tools-version:6.0
import PackageDescription

// libFuzzer targets for Sockway's sans-I/O parsers. Build and run them with `scripts/fuzz` (it passes
// `-sanitize=fuzzer,address -parse-as-library`); each target is one `LLVMFuzzerTestOneInput`.
// A package of its own so that the root package's `swift build`/`swift test` never see these
// executables, which only link with the sanitizer flags.

let strictSwift6: [SwiftSetting] = [.swiftLanguageMode(.v6)]

/// One fuzz target per parser: name, and the Sockway products it exercises.
let fuzzTargets: [(name: String, products: [String])] = [
    ("FuzzSockJSPayload", ["SockwaySockJS"]),
    ("FuzzSockJSRoute", ["SockwaySockJS"]),
    ("FuzzWebSocketFrames", ["SockwayWebSocket"]),
    ("FuzzPerMessageDeflate", ["SockwayWebSocket"]),
    ("FuzzEngineIO", ["SockwayEngineIO"]),
    ("FuzzSocketIO", ["SockwaySocketIO"]),
    ("FuzzHTTPRequest", ["SockwayHTTP"]),
]

let package = Package(
    name: "SockwayFuzz",
    platforms: [.macOS(.v14)],
    products: fuzzTargets.map { .executable(name: $0.name, targets: [$0.name]) },
    dependencies: [
        // The project under test; named, because a path dependency is otherwise known by its folder name.
        .package(name: "sockway", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        // The input cursor and the invariant check every target shares.
        .target(name: "FuzzSupport", dependencies: ["CFuzzerDriver"], swiftSettings: strictSwift6),
        .target(name: "CFuzzerDriver"),
    ]
        + fuzzTargets.map { target in
            .executableTarget(
                name: target.name,
                dependencies: ["FuzzSupport", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio")]
                    + target.products.map { .product(name: $0, package: "sockway") },
                swiftSettings: strictSwift6
            )
        }
)
