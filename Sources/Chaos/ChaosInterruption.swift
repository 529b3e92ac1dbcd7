import Foundation
import Synchronization

/// What to do when a run is interrupted (Ctrl-C, SIGTERM): the worker processes have no
/// parent watch of their own, so they are SIGKILLed here; the throwaway PostgreSQL stops at
/// the process's exit (`atexit`) and nbdkit runs with `--exit-with-parent`.
public enum ChaosInterruption {
    /// The pids of the running worker processes, and whether the run was interrupted (then
    /// `WorkerFleet` starts no more).
    static let workers = Mutex<(pids: Set<pid_t>, interrupted: Bool)>(([], false))

    /// SIGKILLs every worker process of the run in progress; none is started afterwards.
    public static func killWorkers() {
        let pids = workers.withLock { state in
            state.interrupted = true
            return Array(state.pids)
        }
        for pid in pids { kill(pid, SIGKILL) }
    }
}
