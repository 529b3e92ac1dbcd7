import Foundation
import Logging

/// One reply of the API: HTTP status, the single top-level key, and the body under it.
struct APIReply: Sendable {
    var status: Int
    var responseKey: String
    var body: JSONValue
    /// The command ran, but its reply is replaced by a proxy's bare 502 (`replyLostRate`).
    var replyLost = false
}

/// The simulated management server: inventory, async jobs, fault injection and the
/// side-effect ledger, all behind one actor so every command sees a consistent world.
actor SimulatedCloud {
    let configuration: SimulatorConfiguration
    let logger: Logger
    let verifier: SignatureVerifier
    let hotPlug: HotPlugEmulator?
    /// Hot-plug of `configuration.additionalAppliances`, by VM id (SimulatedCloud+Appliances.swift).
    let additionalHotPlugs: [String: HotPlugEmulator]
    let offeringCreated = Date()

    var virtualMachines: [SimulatedVirtualMachine] = []
    var volumes: [SimulatedVolume] = []
    var jobs: [SimulatedJob] = []
    var sideEffects: [String: SimulatorState.SideEffects] = [:]
    var vmSideEffects: [String: SimulatorState.VirtualMachineSideEffects] = [:]
    var requestCounts: [String: Int] = [:]
    var faults: SimulatorFaults
    var jobTimers: [String: Task<Void, Never>] = [:]
    /// Every event published to the webhook, in order (SimulatedCloud+Webhooks.swift).
    var webhookDeliveries: [SimulatorWebhookDelivery] = []
    /// Late by-id link events by volume id (SimulatedCloud+LateLinks.swift).
    var pendingLinkEvents: [String: PendingLinkEvent] = [:]
    var nextLinkEventToken = 0
    /// Disks a guest has not released after a timed-out detach (SimulatedCloud+DetachTimeouts.swift).
    var heldDevices: [String: HeldDevice] = [:]
    var nextInternalID = 100
    var nextVMInternalID = 10

    init(configuration: SimulatorConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        self.verifier = SignatureVerifier(apiKey: configuration.apiKey, secretKey: configuration.secretKey)
        self.faults = configuration.faults
        if let byID = configuration.byIDDirectory, let disks = configuration.diskDirectory {
            let emulator = HotPlugEmulator(byIDDirectory: byID, diskDirectory: disks, bus: configuration.applianceDiskBus)
            try emulator.prepareDirectories()
            self.hotPlug = emulator
        } else {
            self.hotPlug = nil
        }
        self.additionalHotPlugs = try Self.prepareHotPlugs(configuration.additionalAppliances)
        // The fixed inventory (see SimulatorConfiguration) and any further appliances (Running,
        // with a ROOT disk); tests add more through /sim/vms.
        let appliances = configuration.additionalAppliances.map {
            SimulatorVirtualMachineSpec(id: $0.vmID, name: $0.name, state: "Running")
        }
        let inventory = [
            SimulatorVirtualMachineSpec(id: configuration.applianceVMID, name: "migration-appliance", state: "Running"),
            SimulatorVirtualMachineSpec(id: SimulatorConfiguration.customerVMID, name: "customer-vm-01", state: "Running"),
            SimulatorVirtualMachineSpec(id: SimulatorConfiguration.testFailoverVMID, name: "test-failover-vm", state: "Stopped"),
        ] + appliances
        for spec in inventory {
            let (vm, root) = Self.materialize(
                spec, vmInternalID: nextVMInternalID, rootInternalID: nextInternalID, now: Date())
            nextVMInternalID += 1
            virtualMachines.append(vm)
            if let root {
                volumes.append(root)
                nextInternalID += 1
            }
        }
    }

    /// CloudStack's `size` parameter is GB and it multiplies by 1024³ (VolumeApiServiceImpl).
    static let bytesPerGB: Int64 = 1024 * 1024 * 1024

    // MARK: Entry point

    /// Handles one `/client/api` request in ApiServlet's order: command lookup and role check,
    /// signature (401), injected faults, required parameters (431), then the command.
    func handle(_ parameters: RequestParameters) -> APIReply {
        let command = parameters["command"]
        requestCounts[command ?? "<none>", default: 0] += 1
        let spec = command.flatMap { Self.commands[$0] }
        let responseKey = command.map { spec != nil ? "\($0.lowercased())response" : "errorresponse" } ?? "errorresponse"

        purgeExpiredJobs()
        // ApiServer.verifyRequest: a command with no class fails before anything else, as a bare
        // `false`, which ApiServlet answers with the signature failure; the role check
        // (commandAvailable) comes before the signature check (SimulatedCloud+AccountRole.swift).
        guard let command, let spec else {
            return failureReply(.signatureRejected, responseKey: responseKey)
        }
        if let refusal = unavailableCommandRefusal(command) {
            return failureReply(refusal, responseKey: responseKey)
        }
        guard verifier.verify(parameters, now: Date()) else {
            return failureReply(.signatureRejected, responseKey: responseKey)
        }
        if faults.failRate > 0, Double.random(in: 0..<1) < faults.failRate {
            logger.debug("injecting failure", metadata: ["command": "\(command)", "errorcode": "\(faults.errorCode)"])
            return failureReply(.injected(errorCode: faults.errorCode), responseKey: responseKey)
        }
        for required in spec.requiredParameters where (parameters[required] ?? "").isEmpty {
            return failureReply(.missingParameter(command: command, parameter: required), responseKey: responseKey)
        }
        do {
            let body = try run(command, parameters)
            if spec.changesState, faults.replyLostRate > 0, Double.random(in: 0..<1) < faults.replyLostRate {
                logger.debug("losing the reply of a command that ran", metadata: ["command": "\(command)"])
                return APIReply(status: 502, responseKey: responseKey, body: body, replyLost: true)
            }
            return APIReply(status: 200, responseKey: responseKey, body: body)
        } catch let failure as APIFailure {
            return failureReply(failure, responseKey: responseKey)
        } catch {
            return failureReply(
                APIFailure(errorCode: APIErrorCode.internalError, csErrorCode: CSErrorCode.serverAPIException, errorText: "\(error)"),
                responseKey: responseKey
            )
        }
    }

    private func failureReply(_ failure: APIFailure, responseKey: String) -> APIReply {
        APIReply(status: failure.errorCode, responseKey: failure.usesErrorResponseKey ? "errorresponse" : responseKey, body: failure.body())
    }

    struct CommandSpec: Sendable {
        var requiredParameters: [String]
        /// Creates, changes or removes something (the commands `replyLostRate` applies to).
        var changesState = false
    }

    /// The commands this simulator implements and the parameters their Cmd classes mark
    /// `required = true` (apache/cloudstack `api/.../command/user/volume/*Cmd.java`).
    /// createVolume's `zoneid` is optional in CloudStack (it can come from a snapshot or
    /// VM); volumed always passes it, so the simulator requires it.
    static let commands: [String: CommandSpec] = [
        "listZones": CommandSpec(requiredParameters: []),
        "listDiskOfferings": CommandSpec(requiredParameters: []),
        "listVirtualMachines": CommandSpec(requiredParameters: []),
        "listVolumes": CommandSpec(requiredParameters: []),
        "createVolume": CommandSpec(requiredParameters: ["zoneid"], changesState: true),
        "attachVolume": CommandSpec(requiredParameters: ["id", "virtualmachineid"], changesState: true),
        "detachVolume": CommandSpec(requiredParameters: [], changesState: true),
        "deleteVolume": CommandSpec(requiredParameters: ["id"], changesState: true),
        "resizeVolume": CommandSpec(requiredParameters: ["id"], changesState: true),
        // StopVMCmd, StartVMCmd, DestroyVMCmd (api/.../command/user/vm/): `id` is required.
        "stopVirtualMachine": CommandSpec(requiredParameters: ["id"], changesState: true),
        "startVirtualMachine": CommandSpec(requiredParameters: ["id"], changesState: true),
        "destroyVirtualMachine": CommandSpec(requiredParameters: ["id"], changesState: true),
        // RecoverVMCmd (api/.../command/user/vm/RecoverVMCmd.java): sync, `id` required.
        "recoverVirtualMachine": CommandSpec(requiredParameters: ["id"], changesState: true),
        "queryAsyncJobResult": CommandSpec(requiredParameters: ["jobid"]),
    ]

    private func run(_ command: String, _ parameters: RequestParameters) throws -> JSONValue {
        switch command {
        case "listZones": return listZones()
        case "listDiskOfferings": return try listDiskOfferings(parameters)
        case "listVirtualMachines": return try listVirtualMachines(parameters)
        case "listVolumes": return try listVolumes(parameters)
        case "createVolume": return try createVolume(parameters)
        case "attachVolume": return try attachVolume(parameters)
        case "detachVolume": return try detachVolume(parameters)
        case "deleteVolume": return try deleteVolume(parameters)
        case "resizeVolume": return try resizeVolume(parameters)
        case "stopVirtualMachine": return try stopVirtualMachine(parameters)
        case "startVirtualMachine": return try startVirtualMachine(parameters)
        case "destroyVirtualMachine": return try destroyVirtualMachine(parameters)
        case "recoverVirtualMachine": return try recoverVirtualMachine(parameters)
        case "queryAsyncJobResult": return try queryAsyncJobResult(parameters)
        default: throw APIFailure.unknownCommand(command)
        }
    }

    // MARK: Control surface

    func setFaults(_ newFaults: SimulatorFaults) {
        faults = newFaults
    }

    func currentFaults() -> SimulatorFaults { faults }

    func snapshot() -> SimulatorState {
        purgeExpiredJobs()
        return SimulatorState(
            volumes: volumes.filter { !$0.removed }.map {
                SimulatorState.Volume(
                    id: $0.id, name: $0.name, type: $0.type, size: $0.sizeBytes, state: $0.state,
                    virtualmachineid: $0.virtualMachineID, deviceid: $0.deviceID
                )
            },
            virtualmachines: virtualMachines.filter { !$0.removed }.map {
                SimulatorState.VirtualMachine(id: $0.id, name: $0.name, state: $0.state, sticksInStopping: $0.sticksInStopping)
            },
            jobs: jobs.map {
                SimulatorState.Job(
                    id: $0.id, command: $0.apiCommand, status: $0.status, volumeid: $0.action.volumeID,
                    virtualmachineid: $0.action.virtualMachineID, stuck: $0.stuck,
                    abandoned: $0.abandonment != nil && $0.status == 2, purged: $0.purged,
                    durationMs: Int($0.duration.components.seconds * 1000 + $0.duration.components.attoseconds / 1_000_000_000_000_000),
                    queries: $0.queries)
            },
            sideEffects: sideEffects,
            vmSideEffects: vmSideEffects,
            requestCounts: requestCounts,
            faults: faults
        )
    }

    /// Stops pending job timers; used when the server shuts down.
    func shutdown() {
        for timer in jobTimers.values { timer.cancel() }
        jobTimers.removeAll()
        cancelLinkEvents()
    }

    // MARK: Lookups shared by the commands

    func vmIndex(_ id: String) -> Int? { virtualMachines.firstIndex { $0.id == id } }
    /// Case-insensitive, as CloudStack's lookups are: `volumes.uuid` is a `varchar(40)` in a
    /// `DEFAULT CHARSET=utf8` table (apache/cloudstack `setup/db/create-schema.sql`), whose
    /// default collation (`utf8_general_ci`) compares without case. It matters for volumes
    /// with an upper-case id (`SimulatorFaults.upperCaseVolumeIDs`).
    func volumeIndex(_ id: String) -> Int? { volumes.firstIndex { $0.id.caseInsensitiveCompare(id) == .orderedSame } }

    /// ParamProcessWorker resolves UUID parameters before the command runs; unknown ones
    /// fail the whole request with 431. Removed volumes still resolve.
    func resolveVolume(_ command: String, parameter: String, _ value: String) throws -> Int {
        guard let index = volumeIndex(value) else {
            throw APIFailure.unknownEntity(command: command, parameter: parameter, value: value)
        }
        return index
    }

    func resolveVM(_ command: String, parameter: String, _ value: String) throws -> Int {
        guard let index = vmIndex(value) else {
            throw APIFailure.unknownEntity(command: command, parameter: parameter, value: value)
        }
        return index
    }

    /// The volume as a job result shows it, or (`listed`) as listVolumes does: with the job
    /// still acting on it, if any.
    /// `pendingJobs` (from `pendingJobs(instanceType:)`) saves a search of every job per
    /// volume when a list renders many.
    func renderVolume(_ volume: SimulatedVolume, listed: Bool = false, pendingJobs: [String: SimulatedJob]? = nil) -> JSONValue {
        let vm = volume.virtualMachineID.flatMap { id in virtualMachines.first { $0.id == id } }
        let offering = volume.diskOfferingID.flatMap(Self.diskOffering)?.name
        let pending = listed ? pendingJobs.map { $0[volume.id] } ?? pendingJob(instanceType: "Volume", id: volume.id) : nil
        return ResponseRendering.volume(volume, vm: vm, offeringName: offering, pendingJob: pending)
    }

    /// The newest job still pending (stuck ones included) whose instance is the given object,
    /// as the list views' `LEFT JOIN async_job … AND job_status = 0` finds it.
    func pendingJob(instanceType: String, id: String) -> SimulatedJob? {
        jobs.last { $0.status == 0 && $0.action.instance.type == instanceType && $0.action.instance.id == id }
    }

    /// `pendingJob(instanceType:id:)` for every object of the type at once, by object id.
    func pendingJobs(instanceType: String) -> [String: SimulatedJob] {
        var pending: [String: SimulatedJob] = [:]
        for job in jobs where job.status == 0 && job.action.instance.type == instanceType {
            pending[job.action.instance.id] = job
        }
        return pending
    }

    func recordSideEffect(_ volumeID: String, _ update: (inout SimulatorState.SideEffects) -> Void) {
        update(&sideEffects[volumeID, default: SimulatorState.SideEffects()])
    }

    func recordVMSideEffect(_ vmID: String, _ update: (inout SimulatorState.VirtualMachineSideEffects) -> Void) {
        update(&vmSideEffects[vmID, default: SimulatorState.VirtualMachineSideEffects()])
    }

}
