/// Stuck jobs that end after all (`SimulatorFaults.stuckDelayMs`): a management server so
/// slow that a client gives up waiting while the job still completes later, so a client
/// that waits again on the same job id sees it finish and one that starts over repeats it.
extension SimulatedCloud {
    func releaseStuckJob(_ jobID: String, after delay: Duration) {
        jobTimers[jobID] = Task { [weak self] in
            try? await Task.sleep(for: delay)
            guard !Task.isCancelled else { return }
            await self?.unstick(jobID)
        }
    }

    private func unstick(_ jobID: String) {
        guard let index = jobs.firstIndex(where: { $0.id == jobID }), jobs[index].stuck else { return }
        jobs[index].stuck = false
        runJob(jobID)
    }
}
