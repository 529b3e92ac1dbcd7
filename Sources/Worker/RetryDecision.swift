/// Retry or fail: the one rule for an attempt that ended without success, whether its handler
/// threw (`QueueWorker.settle`) or its worker stopped renewing the lease (`Rescuer`, for which
/// a lost lease is a transient failure). A transient failure goes back to pending while the
/// operation has attempts left (`attempts` counts the attempt that just ended: the claim
/// counted it); anything else fails for good.
func shouldRetry(transient: Bool, attempts: Int, maxAttempts: Int) -> Bool {
    transient && attempts < maxAttempts
}
