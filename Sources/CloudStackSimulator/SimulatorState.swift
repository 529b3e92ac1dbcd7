/// A point-in-time copy of the simulated cloud, as `CloudStackSimulator.state()` returns
/// it and `GET /sim/state` serves it (same field names).
public struct SimulatorState: Codable, Sendable, Equatable {
    public struct Volume: Codable, Sendable, Equatable {
        public var id: String
        public var name: String
        /// `ROOT` or `DATADISK`.
        public var type: String
        /// Bytes.
        public var size: Int64
        public var state: String
        public var virtualmachineid: String?
        public var deviceid: Int?
    }

    public struct VirtualMachine: Codable, Sendable, Equatable {
        public var id: String
        public var name: String
        /// `Running`, `Stopping`, `Stopped`, `Starting`, `Destroyed` or `Expunging`.
        public var state: String
        /// Fault injection: a stop that is not forced leaves it `Stopping` forever.
        public var sticksInStopping: Bool

        enum CodingKeys: String, CodingKey {
            case id, name, state
            case sticksInStopping = "sticks_in_stopping"
        }
    }

    public struct Job: Codable, Sendable, Equatable {
        public var id: String
        /// The API command that started it, e.g. `attachVolume`.
        public var command: String
        /// 0 pending, 1 succeeded, 2 failed.
        public var status: Int
        /// The volume a volume job works on.
        public var volumeid: String?
        /// The VM a VM job (stop, start, destroy) works on.
        public var virtualmachineid: String?
        /// True when fault injection made the job hang.
        public var stuck: Bool
        /// True when CloudStack failed the job itself without running it (job GC cancel,
        /// management-server restart): its request took no effect.
        public var abandoned: Bool = false
        /// True when the job was deleted after `job_expire_seconds`.
        public var purged: Bool = false
        /// How long it stayed (or stays) pending, in milliseconds.
        public var durationMs: Int = 0
        /// queryAsyncJobResult calls that asked for it.
        public var queries: Int = 0

        enum CodingKeys: String, CodingKey {
            case id, command, status, volumeid, virtualmachineid, stuck, abandoned, purged
            case durationMs = "duration_ms"
            case queries
        }
    }

    /// How many requests with a side effect CloudStack accepted for one volume: the proof
    /// a retry did not repeat work.
    public struct SideEffects: Codable, Sendable, Equatable {
        public var createVolume: Int = 0
        public var attachVolume: Int = 0
        public var detachVolume: Int = 0
        public var deleteVolume: Int = 0
        public var resizeVolume: Int = 0
        /// Of `detachVolume`, the ones whose job failed because the guest held the disk (a KVM
        /// detach timeout, `detachTimeoutRate`): accepted, but without effect.
        public var detachTimedOut: Int = 0

        public init(createVolume: Int = 0, attachVolume: Int = 0, detachVolume: Int = 0, deleteVolume: Int = 0,
                    detachTimedOut: Int = 0, resizeVolume: Int = 0) {
            self.resizeVolume = resizeVolume
            self.createVolume = createVolume
            self.attachVolume = attachVolume
            self.detachVolume = detachVolume
            self.deleteVolume = deleteVolume
            self.detachTimedOut = detachTimedOut
        }

        enum CodingKeys: String, CodingKey {
            case createVolume = "create_volume"
            case attachVolume = "attach_volume"
            case detachVolume = "detach_volume"
            case deleteVolume = "delete_volume"
            case detachTimedOut = "detach_timed_out"
            case resizeVolume = "resize_volume"
        }
    }

    /// How many requests with a side effect CloudStack accepted for one VM.
    public struct VirtualMachineSideEffects: Codable, Sendable, Equatable {
        public var stopVirtualMachine: Int = 0
        public var startVirtualMachine: Int = 0
        public var destroyVirtualMachine: Int = 0
        public var recoverVirtualMachine: Int = 0

        public init(stopVirtualMachine: Int = 0, startVirtualMachine: Int = 0, destroyVirtualMachine: Int = 0,
                    recoverVirtualMachine: Int = 0) {
            self.stopVirtualMachine = stopVirtualMachine
            self.startVirtualMachine = startVirtualMachine
            self.destroyVirtualMachine = destroyVirtualMachine
            self.recoverVirtualMachine = recoverVirtualMachine
        }

        enum CodingKeys: String, CodingKey {
            case stopVirtualMachine = "stop_virtual_machine"
            case startVirtualMachine = "start_virtual_machine"
            case destroyVirtualMachine = "destroy_virtual_machine"
            case recoverVirtualMachine = "recover_virtual_machine"
        }
    }

    /// Existing volumes (deleted ones are gone, as `listVolumes` shows).
    public var volumes: [Volume]
    public var virtualmachines: [VirtualMachine]
    public var jobs: [Job]
    /// Keyed by volume id; kept after the volume is deleted.
    public var sideEffects: [String: SideEffects]
    /// Keyed by VM id; kept after the VM is expunged.
    public var vmSideEffects: [String: VirtualMachineSideEffects]
    /// API calls received per command (including rejected and fault-injected ones).
    public var requestCounts: [String: Int]
    public var faults: SimulatorFaults

    enum CodingKeys: String, CodingKey {
        case volumes, virtualmachines, jobs
        case sideEffects = "side_effects"
        case vmSideEffects = "vm_side_effects"
        case requestCounts = "request_counts"
        case faults
    }

    public func volume(_ id: String) -> Volume? { volumes.first { $0.id == id } }
    public func sideEffects(for volumeID: String) -> SideEffects { sideEffects[volumeID] ?? SideEffects() }
    /// Existing VMs (expunged ones are gone, as `listVirtualMachines` shows).
    public func virtualMachine(_ id: String) -> VirtualMachine? { virtualmachines.first { $0.id == id } }
    public func vmSideEffects(for vmID: String) -> VirtualMachineSideEffects {
        vmSideEffects[vmID] ?? VirtualMachineSideEffects()
    }
}
