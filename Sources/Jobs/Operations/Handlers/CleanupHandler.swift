import CloudStack
import Foundation
import Schema
import Worker

extension OperationType {
    public static let cleanup: OperationType = "cleanup"
}

/// `cleanup`: hands a volume back from a test-failover VM to the appliance this worker runs
/// on (the original daemon's test-failover cleanup).
///
/// Steps, each resumable: recover the test VM when someone destroyed it (not yet expunged:
/// it still holds the volume as ROOT, see `VirtualMachineRecoverer`); stop it (forced when
/// `force`) and wait for `Stopped`;
/// detach the volume from it; attach it to the appliance and wait for its by-id link;
/// destroy (and expunge) the test VM when `delete_vm` and no volume volumed keeps is left on
/// it, or destroy a recovered one again (without expunging, as it was found) when `delete_vm`
/// was not asked for; then the `appliance` mapping is written in the transaction that completes the
/// operation.
/// Each CloudStack step is a `CloudStackStep` in its own key of the checkpoint.
public struct CleanupHandler: EnvironmentOperationHandler {
    static let type = OperationType.cleanup
    static let firstStep = "looking at the volume and the test VM in CloudStack"
    static let checkpointedSteps: [(key: String?, command: String)] = [
        ("stop", "stopVirtualMachine"), ("detach", "detachVolume"), ("attach", "attachVolume"), ("destroy", "destroyVirtualMachine"),
    ]

    static func describe(_ checkpoint: [String: Any], stepText: String?) -> String? {
        if let stepText { return stepText }
        switch checkpoint["step"] as? String {
        case "stopped": return "test VM stopped; detaching the volume from it"
        case "detached": return "detached from the test VM; attaching it back to the appliance"
        case "attached": return "back on the appliance; destroying the test VM"
        case "destroyed", "kept": return "recording the appliance mapping"
        default: return nil
        }
    }

    let environment: OperationEnvironment

    public init(environment: OperationEnvironment) {
        self.environment = environment
    }

    struct Request: Decodable {
        /// The test-failover VM the volume comes off.
        var testVmId: String?
        /// Destroy and expunge the test VM once no volume volumed keeps is left on it.
        var deleteVm: Bool?
        /// Force-stop the test VM, and take down any NBD export of the volume before detaching.
        var force: Bool?

        enum CodingKeys: String, CodingKey {
            case testVmId = "test_vm_id"
            case deleteVm = "delete_vm"
            case force
        }
    }

    /// Progress, for a rescued or retried run. `step` is the last step finished (for
    /// operators reading the row); the job ids are what a resumed run waits on.
    struct Checkpoint: Codable, Sendable {
        var step: String?
        var stop: StepProgress?
        var detach: StepProgress?
        var attach: StepProgress?
        var destroy: StepProgress?
        /// recoverVirtualMachine was (or was about to be) sent: the test VM had been destroyed,
        /// and is destroyed again at the end.
        var recovered: Bool?
    }

    struct Response: Encodable {
        /// The stable by-id path on the appliance.
        var devicePath: String?
        /// The appliance VM the volume is attached to again.
        var vmId: String
        /// What the by-id link resolves to now.
        var realDevice: String?
        var cloudStackDeviceId: Int?
        var testVmId: String
        /// Whether the test VM is destroyed (false when `delete_vm` was not asked for and the
        /// VM was not found destroyed, or other volumes volumed keeps are still on it).
        var testVmDestroyed: Bool
        /// With `delete_vm`: whether it was expunged too. False when CloudStack refused the
        /// expunge to this API key (the VM is `Destroyed`, recoverable until `expunge.delay`).
        var testVmExpunged: Bool?

        enum CodingKeys: String, CodingKey {
            case devicePath = "device_path"
            case vmId = "vm_id"
            case realDevice = "real_device"
            case cloudStackDeviceId = "cloudstack_device_id"
            case testVmId = "test_vm_id"
            case testVmDestroyed = "test_vm_destroyed"
            case testVmExpunged = "test_vm_expunged"
        }
    }

    public func run(_ operation: ClaimedOperation, context: OperationContext) async throws -> OperationOutcome {
        let volumeId = try RequestDecoding.volumeId(of: operation)
        let request = try RequestDecoding.decode(Request.self, from: operation)
        let testVmId = try Self.testVmId(request, operation: operation, appliance: environment.applianceVMId)
        guard let appliance = environment.applianceVMId.map({ CloudStackID($0) }) else {
            throw VolumeOperationFailure.cleanupNeedsAppliance(volumeId: volumeId)
        }
        let force = request.force ?? false
        let progress = try CheckpointWriter(context: context, empty: Checkpoint())

        guard let volume = try await environment.cloudStack.volume(id: volumeId) else {
            throw VolumeOperationFailure.volumeNotFound(volumeId)
        }
        let location = volume.virtualmachineid
        if location != appliance {
            if let location, location != testVmId {
                throw VolumeOperationFailure.attachedToThirdVM(
                    volumeId: volumeId, attachedTo: location, testVmId: testVmId, applianceVmId: appliance)
            }
            if location != nil {
                if try await VirtualMachineRecoverer(environment: environment).recoverIfDestroyed(
                    vmId: testVmId, context: context, markRecovering: { try await progress.update { $0.recovered = true } })
                {
                    try await progress.update { $0.step = "recovered" }
                }
                try await StopVirtualMachine(environment: environment, context: context, vmId: testVmId, volumeId: volumeId, force: force)
                    .run(in: progress.slot(\.stop))
                try await progress.update { $0.step = "stopped"; $0.stop = nil }
                try context.checkCancellation()
                _ = try await DetachVolume(environment: environment, context: context, volumeId: volumeId, force: force, onlyFrom: testVmId)
                    .run(in: progress.slot(\.detach))
                try await progress.update { $0.step = "detached"; $0.detach = nil }
                try context.checkCancellation()
            }
        }
        let attach = AttachVolume(environment: environment, context: context, volumeId: volumeId, vmId: appliance)
        let placement = try await attach.placement(of: try await attach.run(in: progress.slot(\.attach)))
        try await progress.update { $0.step = "attached"; $0.attach = nil }

        var destroyed: DestroyVirtualMachine.Outcome?
        let deleteVm = request.deleteVm ?? false
        // A VM found destroyed was recovered to take the volume off: it is destroyed again, and
        // expunged only when asked (delete_vm).
        if deleteVm || progress.current.recovered == true {
            try context.checkCancellation()
            let outcome = try await DestroyVirtualMachine(environment: environment, context: context, vmId: testVmId, expunge: deleteVm)
                .run(in: progress.slot(\.destroy))
            destroyed = outcome
            try await progress.update { $0.step = outcome.destroyed ? "destroyed" : "kept"; $0.destroy = nil }
        }
        let response = Response(
            devicePath: placement.byIdPath, vmId: appliance.value, realDevice: placement.devicePath,
            cloudStackDeviceId: placement.cloudStackDeviceId, testVmId: testVmId.value, testVmDestroyed: destroyed?.destroyed ?? false,
            testVmExpunged: destroyed.flatMap { $0.destroyed ? $0.expunged : nil })
        return try .completed(response, commit: placement.upsertMapping(context: context))
    }

    /// `test_vm_id`: required, a UUID, and not the appliance itself. A `vm_id` column, when
    /// set, names the appliance the volume goes back to and must be this worker's.
    static func testVmId(_ request: Request, operation: ClaimedOperation, appliance: String?) throws -> CloudStackID {
        guard let testVmId = request.testVmId, !testVmId.isEmpty else {
            throw QueueFailure.invalidRequest(
                "field 'test_vm_id' is missing: a cleanup needs the UUID of the test-failover VM the volume comes off")
        }
        try RequestDecoding.requireUUID(testVmId, field: "test_vm_id")
        let appliance = appliance.map { CloudStackID($0) }
        if let appliance, CloudStackID(testVmId) == appliance {
            throw QueueFailure.invalidRequest(
                "field 'test_vm_id' names the appliance \(appliance) itself; a cleanup hands a volume back from a test VM to the appliance")
        }
        if let target = operation.vmId, let appliance, CloudStackID(target) != appliance {
            throw QueueFailure.invalidRequest(
                "the vm_id column names \(target) as the appliance to return the volume to, but this worker runs on \(appliance); "
                    + "leave vm_id empty or set it to the appliance's VM id")
        }
        return CloudStackID(testVmId)
    }
}
