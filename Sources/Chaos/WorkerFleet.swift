import DevServices
import Foundation
import Logging

/// The real `volumed worker` processes of a chaos run, one slot per worker (2 on appliance A,
/// 1 on B by default). A slot's process may be SIGKILLed at any time; it is started again at
/// once as a new process (a new worker name), as a supervisor would.
actor WorkerFleet {
    private struct Slot {
        let name: String
        let appliance: ChaosAppliance
        var process: ChildProcess?
    }

    private let world: ChaosWorld
    private let logger: Logger
    private var slots: [Slot] = []
    private(set) var kills = 0
    private(set) var starts = 0
    /// Processes that ended without being killed (e.g. they started while PostgreSQL was down).
    private(set) var exitsOnTheirOwn = 0
    private var stopping = false

    init(world: ChaosWorld, logger: Logger) {
        self.world = world
        self.logger = logger
        for (appliance, count) in zip(world.appliances, world.configuration.workersPerAppliance) {
            for number in 1...count {
                slots.append(Slot(name: "worker-\(appliance.label.lowercased())\(number)", appliance: appliance, process: nil))
            }
        }
    }

    var workerCount: Int { slots.count }

    func startAll() throws {
        for index in slots.indices { try start(index) }
    }

    /// SIGKILLs one random worker — among those whose pid is in `busy` when any is — waits for
    /// it to die, and starts its replacement.
    func killOne(preferring busy: Set<pid_t> = []) async throws {
        let holding = slots.indices.filter { slots[$0].process.map { busy.contains($0.pid) } ?? false }
        guard !stopping, let index = (holding.isEmpty ? Array(slots.indices) : holding).randomElement(),
              let process = slots[index].process else { return }
        process.send(SIGKILL)
        _ = await process.waitForExit()
        ChaosInterruption.workers.withLock { _ = $0.pids.remove(process.pid) }
        kills += 1
        logger.debug("killed a worker", metadata: ["slot": "\(slots[index].name)", "pid": "\(process.pid)"])
        try start(index)
    }

    /// Starts again the workers that ended on their own.
    func reviveExited() throws {
        guard !stopping else { return }
        for index in slots.indices where slots[index].process?.hasExited == true {
            let pid = slots[index].process!.pid
            ChaosInterruption.workers.withLock { _ = $0.pids.remove(pid) }
            exitsOnTheirOwn += 1
            logger.notice("a worker exited on its own; starting it again", metadata: ["slot": "\(slots[index].name)"])
            try start(index)
        }
    }

    /// SIGTERM to every worker (they finish or release their operations), then waits.
    /// Returns the slots whose last process did not exit cleanly.
    func stopAll() async -> [String] {
        stopping = true
        for slot in slots { slot.process?.send(SIGTERM) }
        var unclean: [String] = []
        for slot in slots {
            guard let process = slot.process else { continue }
            let status = await process.waitForExit()
            ChaosInterruption.workers.withLock { _ = $0.pids.remove(process.pid) }
            if status != 0 { unclean.append("\(slot.name) exited with \(status)") }
        }
        return unclean
    }

    private func start(_ index: Int) throws {
        let slot = slots[index]
        let appliance = slot.appliance
        let configuration = world.configuration
        let log = world.logDirectory.appendingPathComponent("\(slot.name).log").path
        slots[index].process = try ChildProcess(
            executable: URL(fileURLWithPath: configuration.volumedExecutable),
            arguments: ["worker", "--lease-seconds", "\(configuration.leaseSeconds)"],
            outputPath: log,
            environment: [
                "DATABASE_URL": world.databaseURL,
                "CLOUDSTACK_API_URL": world.simulator.apiURL,
                "CLOUDSTACK_API_KEY": ChaosWorld.apiKey,
                "CLOUDSTACK_SECRET_KEY": ChaosWorld.secretKey,
                "VOLUMED_APPLIANCE_VM_ID": appliance.vmID,
                "VOLUMED_BY_ID_DIR": appliance.byIDDirectory.path, "VOLUMED_ALLOW_FILE_DEVICES": "1",
                "VOLUMED_NBD_EXPORT_DIR": appliance.exportDirectory.path,
                "VOLUMED_NBD_PORT": "\(appliance.nbdkit.port)",
                "VOLUMED_CONCURRENCY": "\(configuration.workerConcurrency)",
                "VOLUMED_CLOUDSTACK_JOB_TIMEOUT": "\(configuration.jobTimeoutSeconds)",
                // The audit judges what the handlers did, not what a reconcile pass repaired.
                "VOLUMED_RECONCILE_INTERVAL": "0",
                "VOLUMED_LOG_LEVEL": "info",
            ])
        if let process = slots[index].process {
            // Registered under the lock an interruption takes, so a worker started during one is killed too.
            let interrupted = ChaosInterruption.workers.withLock { state in
                state.pids.insert(process.pid)
                return state.interrupted
            }
            if interrupted { process.send(SIGKILL) }
        }
        starts += 1
    }
}
