import Foundation

/// What one reconciliation found and did, for logs, `volumed reconcile [--json]` and
/// `POST /admin/force-sync`.
///
/// `planned` is every repair reconcile decided on (in a dry run: what it would do);
/// `applied` the ones that committed. A planned repair that did not commit (its volume got
/// busy, its row changed meanwhile, or it failed) is in `unresolved` instead, with the reason.
public struct ReconcileReport: Codable, Sendable {
    public var dryRun: Bool
    public var startedAt: Date
    public var finishedAt: Date
    /// The appliance whose disks and exports were checked; nil: CloudStack and tables only.
    public var applianceVMId: String?
    /// How many volumes were looked at (mapped, recorded in `volumes`, or attached to the appliance).
    public var volumesChecked: Int
    public var planned: [ReconcileAction]
    public var applied: [ReconcileAction]
    public var unresolved: [ReconcileFinding]

    public init(dryRun: Bool, startedAt: Date, applianceVMId: String?) {
        self.dryRun = dryRun
        self.startedAt = startedAt
        self.finishedAt = startedAt
        self.applianceVMId = applianceVMId
        self.volumesChecked = 0
        self.planned = []
        self.applied = []
        self.unresolved = []
    }

    /// Findings an operator has to look at: everything unresolved except volumes left alone
    /// because an operation was running on them or ran while the pass looked (the next pass
    /// looks at those again).
    public var needsAttention: [ReconcileFinding] {
        unresolved.filter { $0.kind != .busy && $0.kind != .changedDuringReconcile }
    }

    /// One line for logs.
    public var summary: String {
        let deferred = unresolved.count - needsAttention.count
        return (dryRun ? "dry run: " : "")
            + "\(volumesChecked) volumes checked, \(planned.count) repairs planned, \(applied.count) applied, "
            + "\(needsAttention.count) unresolved, \(deferred) deferred (busy)"
    }

    enum CodingKeys: String, CodingKey {
        case dryRun = "dry_run"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case applianceVMId = "appliance_vm_id"
        case volumesChecked = "volumes_checked"
        case planned, applied, unresolved
    }

    /// Nulls are written out, so readers always find every key.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(dryRun, forKey: .dryRun)
        try container.encode(startedAt, forKey: .startedAt)
        try container.encode(finishedAt, forKey: .finishedAt)
        try container.encode(applianceVMId, forKey: .applianceVMId)
        try container.encode(volumesChecked, forKey: .volumesChecked)
        try container.encode(planned, forKey: .planned)
        try container.encode(applied, forKey: .applied)
        try container.encode(unresolved, forKey: .unresolved)
    }

    /// The report as JSON (snake_case keys, ISO-8601 times), as the CLI and the HTTP API print it.
    public func json(pretty: Bool = true) throws -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

/// One line of a report: what kind of repair or finding, the volume, and a sentence.
/// `ReconcileAction` and `ReconcileFinding` are this with their own kinds.
public struct ReconcileItem<Kind: RawRepresentable & Codable & Sendable & Equatable>: Codable, Sendable, Equatable
where Kind.RawValue == String {
    public var kind: Kind
    /// Nil only for an export entry whose name names no volume, or a failure of the whole export step.
    public var volumeId: String?
    /// A sentence saying what is wrong and what the repair does (or what a human should do).
    public var message: String

    public init(kind: Kind, volumeId: String?, message: String) {
        self.kind = kind
        self.volumeId = volumeId
        self.message = message
    }

    enum CodingKeys: String, CodingKey {
        case kind
        case volumeId = "volume_id"
        case message
    }

    /// `volume_id` is written out when null, so readers always find every key.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .kind)
        try container.encode(volumeId, forKey: .volumeId)
        try container.encode(message, forKey: .message)
    }
}

/// One repair: what reconcile changes (or, in a dry run, would change) and why.
public typealias ReconcileAction = ReconcileItem<ReconcileActionKind>

/// Something reconcile saw but does not repair on its own: a human (or a queued operation)
/// has to decide. The message names the cause and what to do.
public typealias ReconcileFinding = ReconcileItem<ReconcileFindingKind>

public enum ReconcileActionKind: String, Codable, Sendable, CaseIterable {
    /// CloudStack shows the volume detached: its `device_mappings` row (and its active
    /// exports) are removed.
    case removeStaleMapping = "remove_stale_mapping"
    /// Attached to the appliance outside volumed: an `appliance` mapping (and a
    /// `volumes` row if missing) is written.
    case adoptVolume = "adopt_volume"
    /// The by-id link resolves to another device than recorded: `device_path` follows it.
    case updateDevicePath = "update_device_path"
    /// An NBD export entry without an active `vm_export_mappings` row: withdrawn.
    case removeExport = "remove_export"
    /// An active export whose entry is missing or points at the wrong device: published again.
    case recreateExport = "recreate_export"
    /// An active export row holding a kernel name (`/dev/vdX`): rewritten to the by-id path.
    case rewriteExportPath = "rewrite_export_path"
    /// An active export whose by-id link no longer leads to the disk the attach verified
    /// (re-pointed, or a different size): its entry withdrawn until the link is right again.
    case withdrawExport = "withdraw_export"
}

public enum ReconcileFindingKind: String, Codable, Sendable, CaseIterable {
    /// A pending or executing operation holds the volume; reconcile left it alone.
    case busy
    /// `volumes` lists the volume, CloudStack no longer knows it.
    case volumeUnknownToCloudStack = "volume_unknown_to_cloudstack"
    /// `device_mappings` has a row for a volume CloudStack no longer knows.
    case mappingOfUnknownVolume = "mapping_of_unknown_volume"
    /// CloudStack shows the volume attached to another VM than `device_mappings` records.
    case attachedToOtherVM = "attached_to_other_vm"
    /// Attached to this appliance per CloudStack, but no by-id link resolves.
    case byIdLinkMissing = "by_id_link_missing"
    /// The device behind the by-id link is not the size CloudStack reports: not adopted.
    case sizeMismatch = "size_mismatch"
    /// The mapping says `remote` although the VM is this appliance.
    case modeMismatch = "mode_mismatch"
    /// CloudStack or the by-id directory could not be read for this volume.
    case checkFailed = "check_failed"
    /// A planned repair did not commit: the volume's state changed after reconcile looked.
    case changedDuringReconcile = "changed_during_reconcile"
    /// A planned repair failed; the message says why.
    case repairFailed = "repair_failed"
    /// A CloudStack volume named like a failed create, owned by no operation and no
    /// `volumes` row: possibly left by a createVolume whose reply was lost.
    case untrackedVolume = "untracked_volume"
    /// CloudStack shows the volume Attaching or Detaching with no job running on it (left by a
    /// management-server restart): attaches are refused until an admin resets it.
    case volumeStuckInTransition = "volume_stuck_in_transition"
}

/// Another reconcile (the periodic one on some worker, a CLI run or a force-sync) holds the
/// reconcile lock on this database; only one runs at a time.
public struct ReconcileAlreadyRunning: Error, CustomStringConvertible, Sendable {
    public init() {}

    public var description: String {
        "another reconcile is running on this database (a worker's periodic pass, volumed reconcile or POST /admin/force-sync); "
            + "wait for it to finish and try again"
    }
}
