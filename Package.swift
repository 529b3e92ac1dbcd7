// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "volumed",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "volumed", targets: ["volumed"]),
        .executable(name: "volumed-dev", targets: ["volumed-dev"]),
        .executable(name: "cloudstack-sim", targets: ["cloudstack-sim"]),
        .executable(name: "volumed-bench", targets: ["volumed-bench"]),
        .library(name: "VolumeClient", targets: ["VolumeClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.34.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // Migrations: numbered SQL files in migrations/ are embedded into Schema at build time.
        .executableTarget(name: "EmbedMigrationsTool", path: "Sources/EmbedMigrationsTool"),
        .plugin(name: "EmbedMigrations", capability: .buildTool(), dependencies: ["EmbedMigrationsTool"]),

        // Schema: migrations runner, row types, the SQL of the queue.
        .target(
            name: "Schema",
            dependencies: [
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            plugins: ["EmbedMigrations"]
        ),
        // Worker: the queue runtime (claim loop, leases, rescuer, completer, wake-ups).
        .target(
            name: "Worker",
            dependencies: [
                "Primitives", "Schema",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // Primitives: small value rules every subsystem shares (volume UUIDs, durations and
        // untrusted text in messages); no dependencies.
        .target(name: "Primitives"),
        // CloudStack: the signed API client, its models and errors, its metrics.
        .target(
            name: "CloudStack",
            dependencies: [
                "Primitives",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Sources/Jobs/CloudStack"
        ),
        // Devices: the by-id resolver (a disk's stable link, checked and waited for) and its metrics.
        .target(
            name: "Devices",
            dependencies: ["Primitives", .product(name: "Metrics", package: "swift-metrics")],
            path: "Sources/Jobs/Devices"
        ),
        // NBD: the export backends (nbdkit, nbd-server) and the NBD handshake check.
        .target(
            name: "NBD",
            dependencies: [
                "Primitives", "Devices", "Worker",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Sources/Jobs/NBD"
        ),
        // Operations: one handler per operation type, the CloudStack steps they share, reconcile.
        .target(
            name: "Operations",
            dependencies: [
                "Primitives", "CloudStack", "Devices", "NBD", "Worker", "Schema",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "Sources/Jobs/Operations"
        ),
        // VolumeClient: enqueue and race-free waiting, for orchestrators written in Swift.
        .target(
            name: "VolumeClient",
            dependencies: [
                "Schema",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // DevServices: throwaway PostgreSQL and NBD servers for tests, the demo and benchmarks.
        .target(
            name: "DevServices",
            dependencies: [.product(name: "Logging", package: "swift-log")]
        ),
        // The CloudStack API simulator, as a library (tests run it in-process) and an executable.
        .target(
            name: "CloudStackSimulator",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                // Webhook deliveries (SimulatedCloud+Webhooks.swift).
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .executableTarget(
            name: "cloudstack-sim",
            dependencies: [
                "CloudStackSimulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
        // HTTPAPI: the original Volume Daemon's REST API (CONTRACT §8) and the Prometheus endpoint.
        .target(
            name: "HTTPAPI",
            dependencies: [
                "Schema", "Worker", "CloudStack", "Devices", "NBD", "Operations", "VolumeClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                // The HTTP/1 channel's configuration (idle timeout, extra handlers) and the
                // request parts those handlers see.
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Daemon: the long-running services of `volumed worker` and `volumed serve`, composed once.
        .target(
            name: "Daemon",
            dependencies: [
                "Schema", "Worker", "CloudStack", "NBD", "Operations", "HTTPAPI", "VolumeClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "volumed",
            dependencies: [
                "Primitives", "Schema", "Worker", "CloudStack", "Devices", "NBD", "Operations", "VolumeClient", "Daemon", "HTTPAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // volumed-dev: the development tool (the demo: throwaway PostgreSQL, simulator, nbdkit,
        // a worker); kept out of the shipped `volumed`, which links no simulator.
        .executableTarget(
            name: "volumed-dev",
            dependencies: [
                "Schema", "Worker", "CloudStack", "Operations", "VolumeClient", "DevServices", "CloudStackSimulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Chaos: workers SIGKILLed, PostgreSQL restarted, CloudStack failing; the audit that
        // proves nothing was lost or repeated (volumed-bench chaos, scripts/chaos, ChaosTests).
        .target(
            name: "Chaos",
            dependencies: [
                "Primitives", "Schema", "VolumeClient", "DevServices", "CloudStackSimulator",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "volumed-bench",
            dependencies: [
                "Primitives", "Schema", "Worker", "VolumeClient", "DevServices", "CloudStack", "Devices", "NBD", "Operations", "CloudStackSimulator", "Chaos",
                "HTTPAPI",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Shared test set-up: a throwaway PostgreSQL with a migrated template, worker harness.
        .target(
            name: "TestSupport",
            dependencies: [
                "Schema", "Worker", "DevServices",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/TestSupport"
        ),
        .testTarget(
            name: "QueueTests",
            dependencies: ["Schema", "Worker", "VolumeClient", "DevServices", "TestSupport"]
        ),
        .testTarget(
            name: "HTTPAPITests",
            dependencies: [
                "HTTPAPI", "Daemon", "CloudStack", "Devices", "NBD", "Operations", "Primitives", "Worker", "Schema", "CloudStackSimulator", "DevServices", "VolumeClient", "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "JobsTests",
            dependencies: ["CloudStack", "Devices", "NBD", "Operations", "Primitives", "Worker", "Schema", "CloudStackSimulator", "DevServices", "VolumeClient", "TestSupport"]
        ),
        .testTarget(
            name: "ChaosTests",
            dependencies: [
                "Chaos", "CloudStack", "Operations", "CloudStackSimulator",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
