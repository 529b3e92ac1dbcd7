import Primitives
import Devices
import Foundation
import Schema

/// What an operation is doing right now, in words, read from its row: the checkpoint its
/// handler saved (the CloudStack job it waits on, the by-id link it waits for, the step of a
/// cleanup), its status, a pending retry's backoff and a cancel request. The web console and
/// `volumed wait` show it. The words for a running operation are its handler's
/// (`RegisteredOperationHandler.firstStep`, `checkpointedSteps`, `describe`).
public enum OperationStep {
    /// One line, e.g. "waiting on CloudStack job 1f2e… (attachVolume)".
    public static func describe(_ record: OperationRecord, now: Date = Date()) -> String {
        describe(type: record.type, status: record.status, checkpoint: record.checkpoint, volumeId: record.volumeId,
                 attempts: record.attempts, maxAttempts: record.maxAttempts, runAfter: record.runAfter,
                 errorCode: record.errorCode, cancelRequested: record.cancelRequestedAt != nil, now: now)
    }

    public static func describe(
        type: String, status: OperationStatus, checkpoint: String?, volumeId: String?, attempts: Int = 1, maxAttempts: Int = 5,
        runAfter: Date = .distantPast, errorCode: String? = nil, cancelRequested: Bool = false, now: Date = Date()
    ) -> String {
        let step = describeStatus(type: type, status: status, checkpoint: checkpoint, volumeId: volumeId, attempts: attempts,
                                  maxAttempts: maxAttempts, runAfter: runAfter, errorCode: errorCode, now: now)
        guard cancelRequested, status == .executing else { return step }
        return "cancel requested, stops after this step: \(step)"
    }

    private static func describeStatus(
        type: String, status: OperationStatus, checkpoint: String?, volumeId: String?, attempts: Int, maxAttempts: Int,
        runAfter: Date, errorCode: String?, now: Date
    ) -> String {
        switch status {
        case .completed: return "completed"
        case .failed: return "failed" + (errorCode.map { " (\($0))" } ?? "")
        case .cancelled: return "cancelled"
        case .pending:
            let wait = runAfter.timeIntervalSince(now)
            if attempts > 0 {
                let after = errorCode.map { " after \($0)" } ?? ""
                let when = wait >= 1 ? " in \(ageText(wait))" : " now"
                return "attempt \(attempts + 1) of \(maxAttempts) due\(when)\(after)" + resumeNote(checkpoint)
            }
            return wait >= 1 ? "scheduled to start in \(ageText(wait))" : "waiting for a worker"
        case .executing:
            return executingStep(type: type, checkpoint: object(checkpoint), volumeId: volumeId)
        }
    }

    /// What a checkpointed operation resumes with, for a pending retry.
    private static func resumeNote(_ checkpoint: String?) -> String {
        guard let object = object(checkpoint), !object.isEmpty else { return "" }
        return "; resumes from its checkpoint"
    }

    /// The handler's own words (`RegisteredOperationHandler.describe`), given the step under way.
    private static func executingStep(type: String, checkpoint: [String: Any]?, volumeId: String?) -> String {
        guard let handler = OperationRegistry.handlerType(of: type) else { return "running" }
        guard let checkpoint, !checkpoint.isEmpty else { return handler.firstStep }
        let stepText = handler.checkpointedSteps.lazy.compactMap { key, command -> String? in
            let progress: [String: Any]? = if let key { checkpoint[key] as? [String: Any] } else { checkpoint }
            return progress.flatMap { jobStep($0, command: command, volumeId: volumeId) }
        }.first
        return handler.describe(checkpoint, stepText: stepText) ?? handler.firstStep
    }

    /// A `StepProgress`: the job waited on, an unanswered request, or (attach on
    /// the appliance) the by-id link waited for once the job succeeded.
    private static func jobStep(_ progress: [String: Any], command: String, volumeId: String?) -> String? {
        if progress["awaiting_by_id_link"] as? Bool == true {
            let link = volumeId.flatMap { try? DiskSerial.serial(forVolumeId: $0) }.map { "virtio-\($0)" } ?? "of the volume"
            return "waiting for by-id link \(link)"
        }
        if let job = progress["job_id"] as? String {
            let from = (progress["vm_id"] as? String).map { " from VM \($0)" }
                ?? (progress["volume_id"] as? String).map { " for volume \($0)" } ?? ""
            return "waiting on CloudStack job \(job) (\(command)\(from))"
        }
        if progress["request_unanswered"] as? Bool == true {
            return "\(command) sent without an answer; looking for the job CloudStack may be running"
        }
        return nil
    }

    private static func object(_ text: String?) -> [String: Any]? {
        guard let text, let data = text.data(using: .utf8) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }
}
