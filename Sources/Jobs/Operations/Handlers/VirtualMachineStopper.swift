import CloudStack
import Worker

/// Bringing a test-failover VM to `Stopped` before its disks come off: CloudStack detaches a
/// root disk only from a stopped VM (VolumeApiServiceImpl.validateRootVolumeDetachAttach), and
/// a stopped guest has flushed its writes. The stop job's id is a value the caller stores in
/// its own checkpoint, so a resumed operation waits on that job instead of stopping twice.
struct VirtualMachineStopper: Sendable {
    let environment: JobsEnvironment

    /// The stopVirtualMachine job, checkpointed before waiting on it.
    typealias Progress = JobProgress

    /// Returns once `vmId` is `Stopped` (or `Destroyed`, which CloudStack detaches from too),
    /// within `environment.vmStopTimeout`.
    ///
    /// - Stopped: nothing is sent.
    /// - Running: one stopVirtualMachine (forced when `force`), its job id saved before waiting;
    ///   sent through `AsyncJobRequest`, so after a worker died with the request unanswered the
    ///   stop job CloudStack lists on the VM is adopted instead of stopping again.
    /// - Stopping or Starting (another stop or start under way): waited on without sending
    ///   anything, unless `force`, which sends one forced stop (the fix for a VM stuck Stopping).
    /// - Past the deadline: `test_vm_stop_timeout`, a permanent failure naming the state; the
    ///   caller has detached nothing yet.
    func stop(
        vmId: String, volumeId: String, force: Bool, resume: Progress?, context: OperationContext,
        save: @Sendable (Progress) async throws -> Void
    ) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: environment.vmStopTimeout)
        var jobId = resume?.jobId
        let request = AsyncJobRequest(environment: environment, command: "stopVirtualMachine")
        // An unanswered stopVirtualMachine is looked for once, at the first listing.
        var unanswered = resume
        var pollInterval = Duration.milliseconds(100)
        while true {
            try context.checkCancellation()
            if let pending = jobId {
                try await waitOnStop(jobId: pending, vmId: vmId, until: deadline, save: save)
            }
            guard let vm = try await environment.cloudStack.virtualMachine(id: vmId) else {
                throw VolumeOperationFailure.vmNotFound(vmId, detail: "listVirtualMachines returned nothing for the test VM")
            }
            if let adopted = try await request.adoptPendingJob(
                resume: unanswered, pendingJobId: vm.pendingJobId, on: "VM \(vmId)", context: context, save: save)
            {
                jobId = adopted.jobId
                unanswered = nil
                continue
            }
            unanswered = nil
            switch vm.state {
            case "Stopped", "Destroyed":
                return
            case "Running" where jobId == nil, "Stopping" where jobId == nil && force, "Starting" where jobId == nil && force:
                context.logger.info("stopping the test VM", metadata: ["vm_id": "\(vmId)", "state": "\(vm.state)", "forced": "\(force)"])
                let started = try await request.send(Progress(), save: save) {
                    try await environment.cloudStack.stopVirtualMachine(id: vmId, forced: force)
                }
                jobId = started
                continue
            case "Running", "Stopping", "Starting", "Migrating":
                let remaining = clock.now.duration(to: deadline)
                guard remaining > .zero else {
                    throw VolumeOperationFailure.testVMStopTimeout(
                        vmId: vmId, state: vm.state, waited: environment.vmStopTimeout, volumeId: volumeId)
                }
                context.logger.debug("waiting for the test VM to stop", metadata: ["vm_id": "\(vmId)", "state": "\(vm.state)"])
                try await Task.sleep(for: min(pollInterval, remaining))
                pollInterval = min(pollInterval * 2, .seconds(2))
            default:
                throw VolumeOperationFailure.testVMUnstoppable(vmId: vmId, state: vm.state, volumeId: volumeId)
            }
        }
    }

    /// Waits on the stop job until the deadline. A job still running then is left to the
    /// state check (which reports the timeout); a job that failed is accepted when the VM is
    /// stopped anyway, else forgotten (the retry may stop anew, the job being over) and its
    /// error stands.
    private func waitOnStop(
        jobId: String, vmId: String, until deadline: ContinuousClock.Instant, save: @Sendable (Progress) async throws -> Void
    ) async throws {
        let remaining = ContinuousClock.now.duration(to: deadline)
        guard remaining > .zero else { return }
        do {
            _ = try await environment.cloudStack.waitForJob(jobId: jobId, timeout: remaining)
        } catch let error as CloudStackError where error.jobId == jobId {
            if error.code == "cloudstack_job_timeout" { return }
            if try await environment.cloudStack.virtualMachine(id: vmId)?.state == "Stopped" { return }
            // An unknown outcome keeps the unanswered mark: the retry looks at the VM first.
            try await save(error.leavesOutcomeUnknown ? Progress(requestUnanswered: true) : Progress())
            throw error
        }
    }
}
