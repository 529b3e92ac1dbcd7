import ArgumentParser
import CloudStackSimulator
import Foundation
import Logging

/// `cloudstack-sim`: serves the CloudStack API simulator until SIGINT/SIGTERM.
struct CloudStackSim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloudstack-sim",
        abstract: "A CloudStack API simulator for volumed's tests, demos and benchmarks.",
        discussion: """
            Serves /client/api (GET or POST form, signed like CloudStack), /sim/state, /sim/faults, \
            POST /sim/vms (add a VM: {"name","state","id"?,"root_volume"?,"sticks_in_stopping"?}) and \
            POST /sim/vms/{id} (set its faults: {"sticks_in_stopping": true}) and POST /sim/volumes/{id} (leave a volume \
            as a management-server restart does: {"state": "Attaching"|"Detaching"}, or reset it: "Ready"|"Allocated").
            Fixed inventory: zone \(SimulatorConfiguration.zoneID), custom disk offering \
            \(SimulatorConfiguration.customDiskOfferingID), fixed \(SimulatorConfiguration.fixedDiskOfferingSizeGB) GB disk offering \
            \(SimulatorConfiguration.fixedDiskOfferingID), the appliance VM (--appliance-vm-id, Running), \
            customer-vm-01 \(SimulatorConfiguration.customerVMID) (Running) and test-failover-vm \
            \(SimulatorConfiguration.testFailoverVMID) (Stopped, no root disk).
            """
    )

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on; 0 picks a free one (printed at start).") var port = 8080
    @Option(name: .customLong("api-key"), help: "The API key clients must sign with.") var apiKey: String
    @Option(name: .customLong("secret-key"), help: "The secret key clients must sign with.") var secretKey: String
    @Option(name: .customLong("appliance-vm-id"), help: "UUID of the appliance VM whose attached disks appear in --by-id-dir.")
    var applianceVMID = SimulatorConfiguration.defaultApplianceVMID
    @Option(name: .customLong("by-id-dir"), help: "Directory where hot-plugged appliance disks appear as by-id links (virtio-<serial>).")
    var byIDDirectory: String?
    @Option(name: .customLong("appliance-disk-bus"),
            help: "Bus of the appliance's first disk, which hot-plugged disks join: virtio (links virtio-<serial>) or scsi (links scsi-0QEMU_QEMU_HARDDISK_<serial>).")
    var applianceDiskBus = "virtio"
    @Option(name: .customLong("disk-dir"), help: "Directory for the sparse backing files of appliance disks.")
    var diskDirectory: String?
    @Option(name: .customLong("async-delay-ms"), help: "How long async jobs stay pending.") var asyncDelayMs = 200
    @Option(name: .customLong("fail-rate"), help: "Fraction (0-1) of API calls answered with --error-code.") var failRate = 0.0
    @Option(name: .customLong("error-code"), help: "errorcode and HTTP status of injected failures.") var errorCode = 530
    @Option(name: .customLong("stuck-rate"), help: "Fraction (0-1) of async jobs that never finish.") var stuckRate = 0.0
    @Option(name: .customLong("latency-ms"), help: "Milliseconds added to every API call.") var latencyMs = 0
    @Option(name: .customLong("default-page-size"),
            help: "CloudStack's default.page.size: the most rows a list answers without page, and the largest pagesize; -1 for no limit.")
    var defaultPageSize = 500
    @Option(name: .customLong("reply-lost-rate"),
            help: "Fraction (0-1) of state-changing calls that run but are answered with a bare 502, as by a proxy that gave up.")
    var replyLostRate = 0.0
    @Option(name: .customLong("link-create-delay-ms"), help: "Milliseconds between an attach job succeeding and the disk's by-id link appearing (late udev).")
    var linkCreateDelayMs = 0
    @Option(name: .customLong("link-remove-delay-ms"), help: "Milliseconds between a detach job succeeding and the by-id link going away.")
    var linkRemoveDelayMs = 0
    @Option(name: .customLong("link-delay-jitter-ms"), help: "Up to this many milliseconds more for each link created or removed, drawn each time.")
    var linkDelayJitterMs = 0
    @Flag(name: .customLong("upper-case-volume-ids"),
          help: "New volumes get upper-case UUIDs (as set by an admin's updateVolume customid), so their disk serials and by-id links are upper case.")
    var upperCaseVolumeIDs = false
    @Flag(name: .customLong("shuffle-same-second-volumes"),
          help: "listVolumes orders volumes created in the same second at random for each request, as MySQL may: pages miss some and repeat others.")
    var shuffleSameSecondVolumes = false
    @Option(name: .customLong("stuck-delay-ms"),
            help: "How long a stuck job hangs before it finishes after all (a management server slower than the client's timeout); unset: forever.")
    var stuckDelayMs: Int?
    @Option(name: .customLong("job-gc-cancel-rate"),
            help: "Fraction (0-1) of async jobs the job GC cancels: failed with jobresultcode 0 and no jobresult, effect not applied.")
    var jobGCCancelRate = 0.0
    @Option(name: .customLong("job-restart-cancel-rate"),
            help: "Fraction (0-1) of async jobs a management-server restart fails: jobresultcode 530, no jobresult, effect not applied.")
    var jobRestartCancelRate = 0.0
    @Option(name: .customLong("job-expire-seconds"),
            help: "job.expire.minutes, in seconds: ended jobs are deleted after this and queryAsyncJobResult answers 431; unset: never.")
    var jobExpireSeconds: Int?
    @Option(name: .customLong("account-role"),
            help: "The API key's account role: admin (jobs run the ...CmdByAdmin classes) or user (user classes; expunge refused).")
    var accountRole = "admin"
    @Option(name: .customLong("unavailable-commands"),
            help: "Comma-separated API commands the account's role does not allow.")
    var unavailableCommands = ""
    @Option(name: .customLong("role-checker"),
            help: "How an unavailable command is refused: dynamic (432) or static (401 \"The given command ... is not available for user\").")
    var roleChecker = "dynamic"
    @Option(name: .customLong("custom-disk-size-min-gb"),
            help: "CloudStack's custom.diskoffering.size.min: the smallest size (GB) createVolume accepts with a custom offering.")
    var customDiskSizeMinGB = 1
    @Option(name: .customLong("custom-disk-size-max-gb"),
            help: "CloudStack's custom.diskoffering.size.max: the largest size (GB) createVolume accepts with a custom offering.")
    var customDiskSizeMaxGB = 1024
    @Option(name: .customLong("detach-timeout-rate"),
            help: "Fraction (0-1) of detaches from an appliance that fail like KVM's wait.detach.device timeout (530), the disk still held.")
    var detachTimeoutRate = 0.0
    @Option(name: .customLong("detach-release-ms"),
            help: "After such a timeout, the guest releases the disk (its by-id link goes) this many ms later; absent: never.")
    var detachReleaseMs: Int?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "info"

    func validate() throws {
        guard (0...1).contains(failRate), (0...1).contains(stuckRate), (0...1).contains(replyLostRate),
              (0...1).contains(detachTimeoutRate)
        else {
            throw ValidationError("--fail-rate, --stuck-rate, --reply-lost-rate and --detach-timeout-rate must be between 0 and 1")
        }
        guard (detachReleaseMs ?? 0) >= 0 else {
            throw ValidationError("--detach-release-ms must not be negative (leave it out for a guest that never releases the disk)")
        }
        guard defaultPageSize >= 1 || defaultPageSize == -1 else {
            throw ValidationError("--default-page-size must be at least 1, or -1 for no limit (got \(defaultPageSize))")
        }
        guard customDiskSizeMinGB >= 1, customDiskSizeMinGB <= customDiskSizeMaxGB else {
            throw ValidationError("--custom-disk-size-min-gb must be at least 1 and at most --custom-disk-size-max-gb")
        }
        do {
            _ = try faults()
        } catch let invalid as SimulatorFaults.Invalid {
            // The same checks as POST /sim/faults, named as flags.
            throw ValidationError("--" + invalid.description.replacingOccurrences(of: "_", with: "-"))
        }
        guard (byIDDirectory == nil) == (diskDirectory == nil) else {
            throw ValidationError("--by-id-dir and --disk-dir go together: hot-plug emulation needs both")
        }
        guard asyncDelayMs >= 0, latencyMs >= 0 else {
            throw ValidationError("--async-delay-ms and --latency-ms must not be negative")
        }
        guard SimulatorDiskBus(rawValue: applianceDiskBus) != nil else {
            throw ValidationError("--appliance-disk-bus must be virtio or scsi (got \(applianceDiskBus))")
        }
    }

    /// The faults the flags ask for, checked as `POST /sim/faults` checks them.
    func faults() throws -> SimulatorFaults {
        var faults = SimulatorFaults(failRate: failRate, errorCode: errorCode, stuckRate: stuckRate, latencyMs: latencyMs,
                                     stuckDelayMs: stuckDelayMs, replyLostRate: replyLostRate,
                                     customDiskSizeMinGB: customDiskSizeMinGB, customDiskSizeMaxGB: customDiskSizeMaxGB,
                                     detachTimeoutRate: detachTimeoutRate, detachReleaseMs: detachReleaseMs)
        faults.jobGCCancelRate = jobGCCancelRate
        faults.jobRestartCancelRate = jobRestartCancelRate
        faults.jobExpireSeconds = jobExpireSeconds
        faults.accountRole = try SimulatorAccountRole.parse(accountRole, field: "account_role")
        faults.unavailableCommands = unavailableCommands.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        faults.roleChecker = try SimulatorRoleChecker.parse(roleChecker, field: "role_checker")
        faults.linkCreateDelayMs = linkCreateDelayMs
        faults.linkRemoveDelayMs = linkRemoveDelayMs
        faults.linkDelayJitterMs = linkDelayJitterMs
        faults.upperCaseVolumeIDs = upperCaseVolumeIDs
        faults.shuffleSameSecondVolumes = shuffleSameSecondVolumes
        try faults.validate()
        return faults
    }

    func run() async throws {
        try await serve()
    }

    func serve() async throws {
        var logger = Logger(label: "cloudstack-sim")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        var configuration = SimulatorConfiguration(
            host: host,
            port: port,
            apiKey: apiKey,
            secretKey: secretKey,
            applianceVMID: applianceVMID,
            byIDDirectory: byIDDirectory.map { URL(fileURLWithPath: $0) },
            diskDirectory: diskDirectory.map { URL(fileURLWithPath: $0) },
            asyncDelay: .milliseconds(asyncDelayMs),
            faults: try faults()
        )
        configuration.applianceDiskBus = SimulatorDiskBus(rawValue: applianceDiskBus) ?? .virtio
        configuration.defaultPageSize = defaultPageSize
        let simulator = try await CloudStackSimulator.start(configuration, logger: logger, handleSignals: true)
        // Scripts read this line to learn the port when --port 0 was given.
        FileHandle.standardOutput.write(Data("cloudstack-sim listening on \(simulator.apiURL)\n".utf8))
        try await simulator.waitUntilStopped()
    }
}

// main.swift cannot use @main, and a plain `run()` call here would resolve to the
// synchronous ParsableCommand default; call the async entry point by its own name.
do {
    let command = try CloudStackSim.parse()
    try await command.serve()
} catch {
    CloudStackSim.exit(withError: error)
}
