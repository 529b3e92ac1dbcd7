import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// A CloudStack management server stand-in for tests, demos and benchmarks: the real API
/// wire format at `/client/api`, signature checks, async jobs, KVM-style hot-plug of
/// appliance disks into a by-id directory, fault injection, and `/sim/state` to see what
/// CloudStack "saw".
///
/// ```swift
/// let sim = try await CloudStackSimulator.start(SimulatorConfiguration(apiKey: "k", secretKey: "s"))
/// defer { Task { await sim.stop() } }
/// // point a client at sim.apiURL …
/// let state = await sim.state()
/// ```
public final class CloudStackSimulator: Sendable {
    public let configuration: SimulatorConfiguration
    /// The bound port (the real one when the configuration asked for 0).
    public let port: Int
    private let cloud: SimulatedCloud
    private let serviceGroup: ServiceGroup
    private let serverTask: Task<Void, any Error>

    /// `http://host:port`, for the `/sim/*` endpoints.
    public var baseURL: String { "http://\(configuration.host):\(port)" }
    /// The API endpoint, as `CLOUDSTACK_API_URL` expects it.
    public var apiURL: String { baseURL + "/client/api" }

    private init(
        configuration: SimulatorConfiguration, port: Int, cloud: SimulatedCloud, serviceGroup: ServiceGroup, serverTask: Task<Void, any Error>
    ) {
        self.configuration = configuration
        self.port = port
        self.cloud = cloud
        self.serviceGroup = serviceGroup
        self.serverTask = serverTask
    }

    /// Starts serving and returns once the listening socket is bound.
    /// - Parameter handleSignals: shut down gracefully on SIGINT/SIGTERM (for the
    ///   executable; tests call `stop()` instead).
    public static func start(
        _ configuration: SimulatorConfiguration,
        logger: Logger = Logger(label: "cloudstack-sim"),
        handleSignals: Bool = false
    ) async throws -> CloudStackSimulator {
        let cloud = try SimulatedCloud(configuration: configuration, logger: logger)
        let router = Router()
        APIRoutes.add(to: router, cloud: cloud)
        ControlRoutes.add(to: router, cloud: cloud)

        let (boundPorts, boundPortSink) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
            onServerRunning: { channel in
                boundPortSink.yield(channel.localAddress?.port ?? configuration.port)
                boundPortSink.finish()
            },
            logger: logger
        )
        // Our own group (not app.runService) so stop() can shut down gracefully: idle
        // keep-alive connections are closed instead of cancelled mid-wait.
        let serviceGroup = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [app],
                gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [],
                logger: logger
            )
        )
        let serverTask = Task {
            defer { boundPortSink.finish() }
            try await serviceGroup.run()
        }
        var ports = boundPorts.makeAsyncIterator()
        guard let port = await ports.next() else {
            if Task.isCancelled {
                // The caller gave up (the stream ends at once for a cancelled task): take the
                // server down rather than leave it running unowned.
                serverTask.cancel()
                _ = try? await serverTask.value
                throw CancellationError()
            }
            // The server ended before binding: surface why.
            try await serverTask.value
            throw SimulatorStartError(message: "cloudstack-sim stopped before listening on \(configuration.host):\(configuration.port)")
        }
        logger.info("cloudstack-sim listening", metadata: ["api_url": "http://\(configuration.host):\(port)/client/api"])
        return CloudStackSimulator(configuration: configuration, port: port, cloud: cloud, serviceGroup: serviceGroup, serverTask: serverTask)
    }

    /// A consistent copy of volumes, VMs, jobs, side-effect counters and faults.
    public func state() async -> SimulatorState {
        await cloud.snapshot()
    }

    /// Every event published to the webhook so far, with the receiver's answers.
    public func webhookDeliveries() async -> [SimulatorWebhookDelivery] {
        await cloud.webhookDeliveries
    }

    public func faults() async -> SimulatorFaults {
        await cloud.currentFaults()
    }

    /// Replaces the injected faults; applies to calls that arrive afterwards.
    public func setFaults(_ faults: SimulatorFaults) async {
        await cloud.setFaults(faults)
    }

    /// Adds a VM to the inventory (a test-failover VM, a VM whose stop hangs, …) and
    /// returns it; `POST /sim/vms` does the same.
    public func addVirtualMachine(_ spec: SimulatorVirtualMachineSpec) async throws -> SimulatorState.VirtualMachine {
        try await cloud.addVirtualMachine(spec)
    }

    /// Changes one VM's injected faults; `POST /sim/vms/{id}` does the same.
    @discardableResult
    public func setVirtualMachineFaults(id: String, _ faults: SimulatorVirtualMachineFaults) async throws -> SimulatorState.VirtualMachine {
        try await cloud.setVirtualMachineFaults(id: id, faults)
    }

    /// Sets a volume's state as a management-server restart leaves it (`Attaching`,
    /// `Detaching`) or an admin resets it; `POST /sim/volumes/{id}` does the same.
    @discardableResult
    public func setVolumeState(id: String, _ change: SimulatorVolumeState) async throws -> SimulatorState.Volume {
        try await cloud.setVolumeState(id: id, change)
    }

    /// Where the by-id link of a volume hot-plugged into the appliance appears (on the
    /// appliance's bus, in the case of the volume's UUID).
    public func byIDLinkPath(forVolumeID volumeID: String) -> String? {
        cloud.byIDLinkPath(forVolumeID: volumeID, onVM: configuration.applianceVMID)
    }

    /// The same for any appliance (`additionalAppliances` included); nil for a VM without hot-plug.
    public func byIDLinkPath(forVolumeID volumeID: String, onVM vmID: String) -> String? {
        cloud.byIDLinkPath(forVolumeID: volumeID, onVM: vmID)
    }

    /// The KVM disk serial CloudStack gives a volume (`diskUuidToSerial`).
    public static func diskSerial(forVolumeID volumeID: String) -> String {
        HotPlugEmulator.serial(forVolumeID: volumeID)
    }

    /// Stops serving and cancels pending job timers.
    public func stop() async {
        await serviceGroup.triggerGracefulShutdown()
        _ = try? await serverTask.value
        await cloud.shutdown()
    }

    /// Waits until the server ends (signal or `stop()`).
    public func waitUntilStopped() async throws {
        try await serverTask.value
        await cloud.shutdown()
    }
}

public struct SimulatorStartError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
