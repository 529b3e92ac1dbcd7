import Foundation

/// Everything a simulator instance starts with. The inventory is fixed so tests and
/// demos can name things: one zone, a custom-size disk offering (`customDiskOfferingID`) and a
/// fixed-size one (`fixedDiskOfferingID`, `fixedDiskOfferingSizeGB`), the appliance VM
/// (`applianceVMID`, Running, with a ROOT disk) and two other VMs:
///
/// | id | name | state | disks |
/// |----|------|-------|-------|
/// | `SimulatorConfiguration.customerVMID` (`9a6e2c1d-3b4f-4a5e-8d7c-1f2e3d4c5b6a`) | `customer-vm-01` | Running | ROOT |
/// | `SimulatorConfiguration.testFailoverVMID` (`4c8b1e2f-6d3a-4f5b-9e7c-0a1b2c3d4e5f`) | `test-failover-vm` | Stopped | none (awaits an attach as root, device 0) |
///
/// More VMs are added at run time (`CloudStackSimulator.addVirtualMachine`, `POST /sim/vms`).
public struct SimulatorConfiguration: Sendable {
    public static let zoneID = "1b7c4d9e-2f3a-4b5c-8d6e-7f8091a2b3c4"
    public static let zoneName = "sim-zone-1"
    public static let customDiskOfferingID = "6f5e4d3c-2b1a-4098-8765-43210fedcba9"
    /// A disk offering whose size is fixed: createVolume refuses a `size` with it.
    public static let fixedDiskOfferingID = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"
    public static let fixedDiskOfferingSizeGB: Int64 = 5
    public static let customerVMID = "9a6e2c1d-3b4f-4a5e-8d7c-1f2e3d4c5b6a"
    public static let testFailoverVMID = "4c8b1e2f-6d3a-4f5b-9e7c-0a1b2c3d4e5f"
    public static let defaultApplianceVMID = "2d3e4f50-6172-4839-a4b5-c6d7e8f90a1b"

    public var host: String
    /// 0 picks a free port; `CloudStackSimulator.port` tells which.
    public var port: Int
    public var apiKey: String
    public var secretKey: String
    public var applianceVMID: String
    /// Where hot-plugged appliance disks appear as `virtio-<serial>` links (udev's
    /// `/dev/disk/by-id`). Nil turns hot-plug emulation off.
    public var byIDDirectory: URL?
    /// Where the sparse backing files of appliance disks live.
    public var diskDirectory: URL?
    /// The bus of the appliance's first disk, which hot-plugged disks join: `.scsi` makes
    /// their links `scsi-0QEMU_QEMU_HARDDISK_<serial>` (`SimulatorDiskBus`,
    /// `cloudstack-sim --appliance-disk-bus`).
    public var applianceDiskBus: SimulatorDiskBus = .virtio
    /// How long an async job stays `jobstatus 0` before it runs.
    public var asyncDelay: Duration
    /// Data disks one VM may hold (the hypervisor capability `max_data_volumes_limit`,
    /// 6 when unset).
    public var maxDataVolumesPerVM: Int
    /// The global setting `default.page.size` (500 unless configured; -1 for no limit): the
    /// largest `pagesize` a list command accepts and the rows it answers without one
    /// (`ListPaging`).
    public var defaultPageSize = 500
    public var faults: SimulatorFaults
    /// Appliance VMs besides `applianceVMID`, each with hot-plug into its own directories
    /// (several appliances under one CloudStack, as the chaos suite runs them).
    public var additionalAppliances: [SimulatorAppliance] = []

    public init(
        host: String = "127.0.0.1",
        port: Int = 0,
        apiKey: String,
        secretKey: String,
        applianceVMID: String = SimulatorConfiguration.defaultApplianceVMID,
        byIDDirectory: URL? = nil,
        diskDirectory: URL? = nil,
        asyncDelay: Duration = .milliseconds(200),
        maxDataVolumesPerVM: Int = 6,
        faults: SimulatorFaults = SimulatorFaults()
    ) {
        self.host = host
        self.port = port
        self.apiKey = apiKey
        self.secretKey = secretKey
        self.applianceVMID = applianceVMID
        self.byIDDirectory = byIDDirectory
        self.diskDirectory = diskDirectory
        self.asyncDelay = asyncDelay
        self.maxDataVolumesPerVM = maxDataVolumesPerVM
        self.faults = faults
    }
}

/// Faults injected into `/client/api` calls (never into `/sim/*`). Settable at start and
/// at runtime (`CloudStackSimulator.setFaults`, `POST /sim/faults`).
public struct SimulatorFaults: Codable, Sendable, Equatable {
    /// Fraction (0…1) of API calls answered with `errorCode` before doing anything, in
    /// CloudStack's error shape (`{"<cmd>response":{"errorcode":530,"cserrorcode":9999,…}}`,
    /// HTTP status = errorcode) — what a management server with a failing DB or agent
    /// returns. No state changes on such a call.
    public var failRate: Double
    /// The errorcode (and HTTP status) of injected failures; 530 INTERNAL_ERROR by default.
    public var errorCode: Int
    /// Fraction (0…1) of newly started async jobs that stay `jobstatus 0` and do not apply
    /// their effect: forever, or for `stuckDelayMs` when that is set.
    public var stuckRate: Double
    /// How long a stuck job hangs before it runs after all (a slow management server rather
    /// than a lost job); nil: forever.
    public var stuckDelayMs: Int?
    /// Milliseconds added before answering every API call.
    public var latencyMs: Int
    /// Fraction (0…1) of calls to commands that change state (create, attach, detach and
    /// delete a volume; stop, start and destroy a VM) that are carried out and then answered
    /// with a bare `502 Bad Gateway` page instead of CloudStack's reply — a proxy in front
    /// of the management server that gave up waiting. The caller cannot tell whether the
    /// command took effect (an async command's job is running).
    public var replyLostRate: Double
    /// Late udev links (SimulatedCloud+LateLinks.swift): milliseconds between an attach job
    /// succeeding and the disk's by-id link appearing on the appliance.
    public var linkCreateDelayMs: Int = 0
    /// Milliseconds between a detach job succeeding and the by-id link going away.
    public var linkRemoveDelayMs: Int = 0
    /// Up to this many milliseconds more, drawn afresh for each link created or removed.
    public var linkDelayJitterMs: Int = 0
    /// New volumes get upper-case UUIDs, as volumes whose id an admin set with
    /// `updateVolume customid=…` have; their disk serial (and by-id link) is upper case too.
    public var upperCaseVolumeIDs: Bool = false
    /// listVolumes orders volumes created in the same second at random, afresh for each
    /// request, as MySQL may (its `created` is whole seconds, and rows equal in the ORDER BY
    /// column come back in any order, differently from one LIMIT to the next): a paged
    /// listing then misses some volumes and lists others twice.
    public var shuffleSameSecondVolumes: Bool = false
    // Job endings, account role and command access (SimulatedCloud+JobEndings.swift,
    // SimulatedCloud+AccountRole.swift):
    /// Fraction (0…1) of newly started async jobs that AsyncJobManagerImpl's GC cancels for
    /// blocking their queue too long: at their due time they fail with `jobresultcode` 0 and no
    /// `jobresult`, their effect not applied.
    public var jobGCCancelRate: Double = 0
    /// Fraction (0…1) of newly started async jobs that a management-server restart fails
    /// (`cleanupLeftOverJobs`): `jobresultcode` 530, no `jobresult`, effect not applied, the VM's
    /// transitional state rolled back.
    public var jobRestartCancelRate: Double = 0
    /// `job.expire.minutes`, in seconds: a job that ended this long ago is deleted, and
    /// queryAsyncJobResult for it answers 431 "…entity does not exist…". Nil: never.
    public var jobExpireSeconds: Int?
    /// The role of the API key's account: `admin` (root admin: jobs run the `…CmdByAdmin` classes,
    /// expunge allowed) or `user` (jobs run the user classes; `destroyVirtualMachine expunge=true`
    /// fails with 530, as with `allow.user.expunge.recover.vm` off).
    public var accountRole: SimulatorAccountRole = .admin
    /// API commands the account's role does not allow: answered before the signature check
    /// as ApiServer.commandAvailable does (`roleChecker` decides how).
    public var unavailableCommands: [String] = []
    /// Which role checker answers an unavailable command: `dynamic` (432, the default one) or
    /// `static` (401 "The given command '…' either does not exist, is not available for user.").
    public var roleChecker: SimulatorRoleChecker = .dynamic
    /// CloudStack's global settings `custom.diskoffering.size.min` / `.max` (GB, defaults 1 and
    /// 1024): the sizes createVolume accepts with a customized offering.
    public var customDiskSizeMinGB: Int = 1
    public var customDiskSizeMaxGB: Int = 1024
    /// Fraction (0…1) of detachVolume jobs from an appliance whose guest does not release the
    /// disk within the KVM agent's `wait.detach.device`: the job fails with 530 "…Could not
    /// detach volume after sending the command and waiting for [10000] milliseconds…", the
    /// volume stays attached in CloudStack and its by-id link stays (SimulatedCloud+DetachTimeouts.swift).
    public var detachTimeoutRate: Double = 0
    /// How long after such a failed job the guest releases the disk after all (its by-id link
    /// goes; the next detachVolume then succeeds); nil: the guest never releases it.
    public var detachReleaseMs: Int?
    /// How long async jobs of a command stay `jobstatus 0`, drawn uniformly per job from the
    /// command's range (`{"attachVolume": {"min_ms": 2000, "max_ms": 10000}}`); commands left
    /// out use `SimulatorConfiguration.asyncDelay`. Real jobs take seconds and vary with the
    /// hypervisor agent (issue 16 measures polling against attach 2–10 s, create 1–5 s); a
    /// fixed delay hides what a poll schedule costs (SimulatedCloud+JobDurations.swift).
    public var jobDurationsMs: [String: SimulatorDurationRange] = [:]
    // Webhooks (SimulatedCloud+Webhooks.swift): what `createWebhook` registers, and faults.
    /// Where events are POSTed (`createWebhook payloadurl`); nil: no webhook.
    public var webhookPayloadURL: String?
    /// The webhook's `secretkey`: deliveries carry `X-CS-Signature`; nil or empty: none.
    public var webhookSecretKey: String?
    /// Fraction (0…1) of events never delivered (every try failed, or the event bus dropped it).
    public var webhookLossRate: Double = 0
    /// Fraction (0…1) of events delivered twice (a try whose 200 CloudStack did not see).
    public var webhookDuplicateRate: Double = 0

    public init(failRate: Double = 0, errorCode: Int = 530, stuckRate: Double = 0, latencyMs: Int = 0, stuckDelayMs: Int? = nil,
                replyLostRate: Double = 0, customDiskSizeMinGB: Int = 1, customDiskSizeMaxGB: Int = 1024,
                detachTimeoutRate: Double = 0, detachReleaseMs: Int? = nil) {
        self.failRate = failRate
        self.errorCode = errorCode
        self.stuckRate = stuckRate
        self.latencyMs = latencyMs
        self.stuckDelayMs = stuckDelayMs
        self.replyLostRate = replyLostRate
        self.customDiskSizeMinGB = customDiskSizeMinGB
        self.customDiskSizeMaxGB = customDiskSizeMaxGB
        self.detachTimeoutRate = detachTimeoutRate
        self.detachReleaseMs = detachReleaseMs
    }

    enum CodingKeys: String, CodingKey {
        case failRate = "fail_rate"
        case errorCode = "error_code"
        case stuckRate = "stuck_rate"
        case latencyMs = "latency_ms"
        case stuckDelayMs = "stuck_delay_ms"
        case replyLostRate = "reply_lost_rate"
        case linkCreateDelayMs = "link_create_delay_ms"
        case linkRemoveDelayMs = "link_remove_delay_ms"
        case linkDelayJitterMs = "link_delay_jitter_ms"
        case upperCaseVolumeIDs = "upper_case_volume_ids"
        case shuffleSameSecondVolumes = "shuffle_same_second_volumes"
        case jobGCCancelRate = "job_gc_cancel_rate"
        case jobRestartCancelRate = "job_restart_cancel_rate"
        case jobExpireSeconds = "job_expire_seconds"
        case accountRole = "account_role"
        case unavailableCommands = "unavailable_commands"
        case roleChecker = "role_checker"
        case customDiskSizeMinGB = "custom_disk_size_min_gb"
        case customDiskSizeMaxGB = "custom_disk_size_max_gb"
        case detachTimeoutRate = "detach_timeout_rate"
        case detachReleaseMs = "detach_release_ms"
        case jobDurationsMs = "job_durations_ms"
        case webhookPayloadURL = "webhook_payload_url"
        case webhookSecretKey = "webhook_secret_key"
        case webhookLossRate = "webhook_loss_rate"
        case webhookDuplicateRate = "webhook_duplicate_rate"
    }

    /// Partial updates: fields absent from the JSON keep their current value.
    func updated(with json: Data) throws -> SimulatorFaults {
        let patch = try JSONDecoder().decode(Patch.self, from: json)
        var copy = self
        if let value = patch.failRate { copy.failRate = value }
        if let value = patch.errorCode { copy.errorCode = value }
        if let value = patch.stuckRate { copy.stuckRate = value }
        if let value = patch.latencyMs { copy.latencyMs = value }
        if let value = patch.stuckDelayMs { copy.stuckDelayMs = value }
        if let value = patch.replyLostRate { copy.replyLostRate = value }
        if let value = patch.linkCreateDelayMs { copy.linkCreateDelayMs = value }
        if let value = patch.linkRemoveDelayMs { copy.linkRemoveDelayMs = value }
        if let value = patch.linkDelayJitterMs { copy.linkDelayJitterMs = value }
        if let value = patch.upperCaseVolumeIDs { copy.upperCaseVolumeIDs = value }
        if let value = patch.shuffleSameSecondVolumes { copy.shuffleSameSecondVolumes = value }
        if let value = patch.jobGCCancelRate { copy.jobGCCancelRate = value }
        if let value = patch.jobRestartCancelRate { copy.jobRestartCancelRate = value }
        if let value = patch.jobExpireSeconds { copy.jobExpireSeconds = value }
        if let value = patch.accountRole { copy.accountRole = try SimulatorAccountRole.parse(value, field: "account_role") }
        if let value = patch.unavailableCommands { copy.unavailableCommands = value }
        if let value = patch.roleChecker { copy.roleChecker = try SimulatorRoleChecker.parse(value, field: "role_checker") }
        if let value = patch.customDiskSizeMinGB { copy.customDiskSizeMinGB = value }
        if let value = patch.customDiskSizeMaxGB { copy.customDiskSizeMaxGB = value }
        if let value = patch.detachTimeoutRate { copy.detachTimeoutRate = value }
        if let value = patch.detachReleaseMs { copy.detachReleaseMs = value }
        if patch.clearsDetachRelease { copy.detachReleaseMs = nil }
        if let value = patch.jobDurationsMs { copy.jobDurationsMs = value }
        if let value = patch.webhookPayloadURL { copy.webhookPayloadURL = value.isEmpty ? nil : value }
        if let value = patch.webhookSecretKey { copy.webhookSecretKey = value.isEmpty ? nil : value }
        if let value = patch.webhookLossRate { copy.webhookLossRate = value }
        if let value = patch.webhookDuplicateRate { copy.webhookDuplicateRate = value }
        try copy.validate()
        return copy
    }

    public struct Invalid: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Rates are fractions and times are not negative; the message names the field.
    public func validate() throws {
        for (field, rate) in [("fail_rate", failRate), ("stuck_rate", stuckRate), ("reply_lost_rate", replyLostRate),
                              ("job_gc_cancel_rate", jobGCCancelRate), ("job_restart_cancel_rate", jobRestartCancelRate),
                              ("detach_timeout_rate", detachTimeoutRate), ("webhook_loss_rate", webhookLossRate),
                              ("webhook_duplicate_rate", webhookDuplicateRate)]
        where !(0...1).contains(rate) {
            throw Invalid(description: "\(field) must be between 0 and 1 (got \(rate))")
        }
        guard latencyMs >= 0, (stuckDelayMs ?? 0) >= 0 else {
            throw Invalid(description: "latency_ms and stuck_delay_ms must not be negative")
        }
        for (field, milliseconds) in [
            ("link_create_delay_ms", linkCreateDelayMs), ("link_remove_delay_ms", linkRemoveDelayMs),
            ("link_delay_jitter_ms", linkDelayJitterMs),
        ]
        where !(0...Self.maximumLinkDelayMs).contains(milliseconds) {
            throw Invalid(description: "\(field) must be between 0 and \(Self.maximumLinkDelayMs) (got \(milliseconds))")
        }
        if let seconds = jobExpireSeconds, seconds < 1 {
            throw Invalid(description: "job_expire_seconds must be at least 1 (got \(seconds)); leave it out to keep jobs forever")
        }
        guard (detachReleaseMs ?? 0) >= 0 else {
            throw Invalid(description: "detach_release_ms must not be negative (null: the guest never releases the disk)")
        }
        try SimulatorDurationRange.validate(jobDurationsMs, field: "job_durations_ms")
        if let url = webhookPayloadURL, !(url.hasPrefix("http://") || url.hasPrefix("https://")) || URL(string: url)?.host == nil {
            // WebhookServiceImpl refuses a payload URL that is not an http(s) URL.
            throw Invalid(description: "webhook_payload_url must be an http:// or https:// URL (got \(url)); \"\" removes the webhook")
        }
        guard customDiskSizeMinGB >= 1, customDiskSizeMinGB <= customDiskSizeMaxGB else {
            throw Invalid(description: "custom_disk_size_min_gb must be at least 1 and at most custom_disk_size_max_gb "
                + "(got \(customDiskSizeMinGB) and \(customDiskSizeMaxGB))")
        }
    }

    private struct Patch: Decodable {
        var failRate: Double?
        var errorCode: Int?
        var stuckRate: Double?
        var latencyMs: Int?
        var stuckDelayMs: Int?
        var replyLostRate: Double?
        var linkCreateDelayMs: Int?
        var linkRemoveDelayMs: Int?
        var linkDelayJitterMs: Int?
        var upperCaseVolumeIDs: Bool?
        var shuffleSameSecondVolumes: Bool?
        var jobGCCancelRate: Double?
        var jobRestartCancelRate: Double?
        var jobExpireSeconds: Int?
        var accountRole: String?
        var unavailableCommands: [String]?
        var roleChecker: String?
        var customDiskSizeMinGB: Int?
        var customDiskSizeMaxGB: Int?
        var detachTimeoutRate: Double?
        var detachReleaseMs: Int?
        var jobDurationsMs: [String: SimulatorDurationRange]?
        var webhookPayloadURL: String?
        var webhookSecretKey: String?
        var webhookLossRate: Double?
        var webhookDuplicateRate: Double?
        /// `"detach_release_ms": null` sets "never" (absent keeps the current value).
        var clearsDetachRelease = false
        /// The same field names as `SimulatorFaults` itself.
        typealias CodingKeys = SimulatorFaults.CodingKeys

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            failRate = try container.decodeIfPresent(Double.self, forKey: .failRate)
            errorCode = try container.decodeIfPresent(Int.self, forKey: .errorCode)
            stuckRate = try container.decodeIfPresent(Double.self, forKey: .stuckRate)
            latencyMs = try container.decodeIfPresent(Int.self, forKey: .latencyMs)
            stuckDelayMs = try container.decodeIfPresent(Int.self, forKey: .stuckDelayMs)
            replyLostRate = try container.decodeIfPresent(Double.self, forKey: .replyLostRate)
            customDiskSizeMinGB = try container.decodeIfPresent(Int.self, forKey: .customDiskSizeMinGB)
            customDiskSizeMaxGB = try container.decodeIfPresent(Int.self, forKey: .customDiskSizeMaxGB)
            detachTimeoutRate = try container.decodeIfPresent(Double.self, forKey: .detachTimeoutRate)
            detachReleaseMs = try container.decodeIfPresent(Int.self, forKey: .detachReleaseMs)
            if container.contains(.detachReleaseMs) {
                clearsDetachRelease = try container.decodeNil(forKey: .detachReleaseMs)
            }
            linkCreateDelayMs = try container.decodeIfPresent(Int.self, forKey: .linkCreateDelayMs)
            linkRemoveDelayMs = try container.decodeIfPresent(Int.self, forKey: .linkRemoveDelayMs)
            linkDelayJitterMs = try container.decodeIfPresent(Int.self, forKey: .linkDelayJitterMs)
            upperCaseVolumeIDs = try container.decodeIfPresent(Bool.self, forKey: .upperCaseVolumeIDs)
            shuffleSameSecondVolumes = try container.decodeIfPresent(Bool.self, forKey: .shuffleSameSecondVolumes)
            jobGCCancelRate = try container.decodeIfPresent(Double.self, forKey: .jobGCCancelRate)
            jobRestartCancelRate = try container.decodeIfPresent(Double.self, forKey: .jobRestartCancelRate)
            jobExpireSeconds = try container.decodeIfPresent(Int.self, forKey: .jobExpireSeconds)
            accountRole = try container.decodeIfPresent(String.self, forKey: .accountRole)
            unavailableCommands = try container.decodeIfPresent([String].self, forKey: .unavailableCommands)
            roleChecker = try container.decodeIfPresent(String.self, forKey: .roleChecker)
            jobDurationsMs = try container.decodeIfPresent([String: SimulatorDurationRange].self, forKey: .jobDurationsMs)
            webhookPayloadURL = try container.decodeIfPresent(String.self, forKey: .webhookPayloadURL)
            webhookSecretKey = try container.decodeIfPresent(String.self, forKey: .webhookSecretKey)
            webhookLossRate = try container.decodeIfPresent(Double.self, forKey: .webhookLossRate)
            webhookDuplicateRate = try container.decodeIfPresent(Double.self, forKey: .webhookDuplicateRate)
        }
    }

    /// An hour: udev is late by seconds; a link that never comes is a longer delay than any wait.
    public static let maximumLinkDelayMs = 3_600_000
}

/// The API key's account role, as `SimulatorFaults.accountRole` sets it.
public enum SimulatorAccountRole: String, Codable, Sendable, CaseIterable, SimulatorSettingValue {
    case admin, user
}

/// Which of CloudStack's API access checkers refuses an unavailable command.
public enum SimulatorRoleChecker: String, Codable, Sendable, CaseIterable, SimulatorSettingValue {
    /// DynamicRoleBasedAPIAccessChecker (the default since 4.9): UnavailableCommandException, 432.
    case dynamic
    /// StaticRoleBasedAPIAccessChecker (commands.properties): PermissionDeniedException, 401.
    case staticRoles = "static"
}

/// A setting spelled as one of a few words; a wrong word is refused naming the field and the choices.
public protocol SimulatorSettingValue: RawRepresentable, CaseIterable where RawValue == String {}

extension SimulatorSettingValue {
    public static func parse(_ text: String, field: String) throws -> Self {
        guard let value = Self(rawValue: text) else {
            let choices = allCases.map(\.rawValue).joined(separator: " or ")
            throw SimulatorFaults.Invalid(description: "\(field) must be \(choices) (got \(text))")
        }
        return value
    }
}
