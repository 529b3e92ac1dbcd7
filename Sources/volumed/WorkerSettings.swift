import ArgumentParser
import Foundation
import Worker

/// Worker settings: flags override the environment (CONTRACT §7). Bad values are refused
/// naming the variable and the fix.
struct WorkerOptions: ParsableArguments {
    @Option(help: "The appliance VM this worker runs on (default: $VOLUMED_APPLIANCE_VM_ID).") var applianceVmId: String?
    @Option(help: "Operations run at once (default: $VOLUMED_CONCURRENCY or 16).") var concurrency: Int?
    @Option(help: "CloudStack API endpoint (default: $CLOUDSTACK_API_URL).") var cloudstackApiUrl: String?
    @Option(help: "by-id directory (default: $VOLUMED_BY_ID_DIR or /dev/disk/by-id).") var byIdDir: String?
    @Option(help: "Seconds a worker may stop heartbeating before its operations are rescued.") var leaseSeconds: Int = 30

    var environment: [String: String] { ProcessInfo.processInfo.environment }

    func value(_ flag: String?, _ variable: String) -> String? {
        if let flag, !flag.isEmpty { return flag }
        if let value = environment[variable], !value.isEmpty { return value }
        return nil
    }

    func workerConfiguration() throws -> WorkerConfiguration {
        let concurrencyValue: Int
        if let concurrency {
            concurrencyValue = concurrency
        } else if let text = environment["VOLUMED_CONCURRENCY"], !text.isEmpty {
            guard let parsed = Int(text) else {
                throw ValidationError("VOLUMED_CONCURRENCY must be a whole number of operations (got \(text))")
            }
            concurrencyValue = parsed
        } else {
            concurrencyValue = 16
        }
        let appliance = value(applianceVmId, "VOLUMED_APPLIANCE_VM_ID")
        if let appliance, UUID(uuidString: appliance) == nil {
            throw ValidationError("VOLUMED_APPLIANCE_VM_ID must be the appliance VM's CloudStack UUID (got \(appliance))")
        }
        guard (5...3600).contains(leaseSeconds) else { throw ValidationError("--lease-seconds must be between 5 and 3600") }
        let configuration = WorkerConfiguration(
            applianceVMId: appliance?.lowercased(), concurrency: concurrencyValue, claimBatchSize: min(concurrencyValue, 16),
            leaseDuration: .seconds(leaseSeconds), heartbeatInterval: .seconds(leaseSeconds) / 3)
        do {
            try configuration.validate()
        } catch let failure as QueueFailure {
            throw ValidationError(failure.message)
        }
        return configuration
    }
}
