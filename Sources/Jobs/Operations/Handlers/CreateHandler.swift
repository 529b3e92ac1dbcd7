import CloudStack
import Primitives
import Foundation
import Schema
import Worker

extension OperationType {
    public static let create: OperationType = "create"
}

/// `create`: a new data volume in CloudStack, recorded in `volumes`.
///
/// Resumable at every step, and never makes a second volume for one operation:
/// 1. before createVolume the checkpoint says a request is in flight; if its reply is lost
///    (transport failure), the retry adopts the one unowned volume of that name and size
///    instead of creating another;
/// 2. the volume id and job id are checkpointed as soon as createVolume answers;
/// 3. a retry or rescue waits on that job; a failed job is judged by listing the volume;
/// 4. the `volumes` row commits with the completed status (and the operation's volume_id).
public struct CreateHandler: EnvironmentOperationHandler {
    static let type = OperationType.create

    let environment: JobsEnvironment

    public init(environment: JobsEnvironment) {
        self.environment = environment
    }

    static let bytesPerGiB: Int64 = 1 << 30
    static let maximumNameLength = 255

    struct Request: Decodable {
        var name: String
        /// Bytes.
        var size: Int64
        var diskOfferingId: String
        var zoneId: String

        enum CodingKeys: String, CodingKey {
            case name, size
            case diskOfferingId = "disk_offering_id"
            case zoneId = "zone_id"
        }

        var sizeGB: Int { CreateHandler.wholeGB(size) }
    }

    /// CloudStack takes whole GB (GiB); a partial GiB is rounded up so the volume is never
    /// smaller than asked (create and resize).
    static func wholeGB(_ bytes: Int64) -> Int {
        Int(bytes / bytesPerGiB + (bytes % bytesPerGiB == 0 ? 0 : 1))
    }

    struct Checkpoint: Codable {
        var volumeId: String?
        var jobId: String?
        /// createVolume was sent and no answer arrived: CloudStack may have created the volume.
        var requestUnanswered: Bool?

        enum CodingKeys: String, CodingKey {
            case volumeId = "volume_id"
            case jobId = "job_id"
            case requestUnanswered = "request_unanswered"
        }
    }

    struct Response: Encodable {
        var volumeId: String
        var sizeBytes: Int64

        enum CodingKeys: String, CodingKey {
            case volumeId = "volume_id"
            case sizeBytes = "size_bytes"
        }
    }

    public func run(_ operation: ClaimedOperation, context: OperationContext) async throws -> OperationOutcome {
        let request = try Self.validatedRequest(operation)
        let checkpoint = try context.checkpoint(as: Checkpoint.self) ?? Checkpoint()
        let started: (volumeId: String, jobId: String?)
        if let volumeId = checkpoint.volumeId {
            started = (volumeId, checkpoint.jobId)
        } else {
            do {
                started = try await start(request, unanswered: checkpoint.requestUnanswered == true, context: context)
            } catch let error as any OperationFailure where error.isTransient && operation.attempts >= operation.maxAttempts {
                // The last attempt: the queue gives up after this. A createVolume whose reply
                // was lost (now or in an earlier attempt) may have made a volume: adopt it, or
                // say in the error what is left in CloudStack.
                started = try await lastAttemptRecovery(request, failure: error, context: context)
            }
        }

        let volume = try await finishedVolume(started.volumeId, jobId: started.jobId, context: context)
        let operationId = operation.id
        return try .completed(Response(volumeId: volume.id, sizeBytes: volume.size), volumeId: volume.id) { connection in
            try await connection.query(
                VolumesTable.upsert(
                    volumeId: volume.id, name: request.name, sizeBytes: volume.size, zoneId: request.zoneId,
                    diskOfferingId: request.diskOfferingId, state: volume.state, operationId: operationId),
                logger: context.logger)
        }
    }

    /// The volume this operation makes: adopted after an unanswered request, else newly
    /// requested. Checkpointed before anything waits on it, so a rescue resumes here.
    private func start(_ request: Request, unanswered: Bool, context: OperationContext) async throws -> (volumeId: String, jobId: String?) {
        let checkpoint: Checkpoint
        let volumeId: String
        if unanswered, let adopted = try await unownedVolume(matching: request, context: context) {
            context.logger.notice("adopting the volume an unanswered createVolume made", metadata: ["volume_id": "\(adopted.id)"])
            (checkpoint, volumeId) = (Checkpoint(volumeId: adopted.id), adopted.id)
        } else {
            let (newVolumeId, jobId) = try await requestVolume(request, context: context)
            (checkpoint, volumeId) = (Checkpoint(volumeId: newVolumeId, jobId: jobId), newVolumeId)
        }
        try await context.saveCheckpoint(checkpoint)
        return (volumeId, checkpoint.jobId)
    }

    /// Before the queue gives up on a create whose request may have been carried out: the one
    /// unowned volume of the request's name, size and zone is adopted (the operation then
    /// completes with it); with none, the failure says so; when CloudStack cannot even be
    /// asked, the failure names what to look for. The message never promises a retry.
    private func lastAttemptRecovery(_ request: Request, failure: any OperationFailure,
                                     context: OperationContext) async throws -> (volumeId: String, jobId: String?) {
        let cause = withoutRetryPromise(failure.message)
        // Without the mark CloudStack refused the request itself: nothing was made.
        guard (try? context.checkpoint(as: Checkpoint.self))??.requestUnanswered == true else { throw failure }
        let mayExist: Bool
        do {
            if let adopted = try await unownedVolume(matching: request, context: context) {
                context.logger.notice("last attempt: adopting the volume an unanswered createVolume made",
                                      metadata: ["volume_id": "\(adopted.id)"])
                let checkpoint = Checkpoint(volumeId: adopted.id)
                try await context.saveCheckpoint(checkpoint)
                return (adopted.id, nil)
            }
            mayExist = false
        } catch let ambiguous as VolumeOperationFailure where ambiguous.code == "create_ambiguous" {
            throw ambiguous
        } catch {
            mayExist = true
        }
        let leftover = mayExist
            ? "a volume named \(quotedForMessage(request.name)) may exist in CloudStack (it could not be listed to check): "
                + "look for it (listVolumes name=\(request.name); volumed reconcile reports it as an untracked volume) and delete it"
            : "no volume named \(quotedForMessage(request.name)) was found in CloudStack, so none was left behind"
        throw VolumeOperationFailure(code: failure.code, message: "\(cause); \(leftover)", isTransient: true)
    }

    /// Sends createVolume. The "in flight" mark is saved first and cleared again only when
    /// CloudStack itself refused the request (it then created nothing); after no reply or an
    /// unreadable one the mark stays, and the retry looks for the volume before creating.
    private func requestVolume(_ request: Request, context: OperationContext) async throws -> (volumeId: String, jobId: String) {
        let size = try await sizeParameter(for: request)
        try context.checkCancellation()
        try await context.saveCheckpoint(Checkpoint(requestUnanswered: true))
        do {
            let (volumeId, jobId) = try await environment.cloudStack.createVolume(
                name: request.name, zoneId: request.zoneId, diskOfferingId: request.diskOfferingId, sizeGB: size)
            return (volumeId, jobId)
        } catch let error as CloudStackError where error.provesRequestRefused {
            try await context.saveCheckpoint(Checkpoint())
            throw error
        }
    }

    /// createVolume's `size` for the request's offering: the size in GB for a customized
    /// offering; nil (no `size` sent) for a fixed one, whose size must be the request's.
    /// CloudStack refuses a `size` with a fixed offering ("This disk offering does not allow
    /// custom size", VolumeApiServiceImpl.allocVolume) and would otherwise make a volume of
    /// the offering's size, whatever the caller asked for.
    private func sizeParameter(for request: Request) async throws -> Int? {
        guard let offering = try await environment.cloudStack.listDiskOfferings(id: request.diskOfferingId).first else {
            throw VolumeOperationFailure(
                code: "cloudstack_not_found",
                message: "disk offering \(request.diskOfferingId) is not listed by CloudStack; check the request's disk_offering_id",
                isTransient: false)
        }
        // An offering without `iscustomized` (older servers) is custom when it has no size.
        let isCustomized = offering.iscustomized ?? ((offering.disksize ?? 0) == 0)
        if isCustomized {
            return request.sizeGB
        }
        let fixedGB = offering.disksize ?? 0
        guard Int64(request.sizeGB) == fixedGB else {
            throw QueueFailure.invalidRequest(
                "field 'size' asks for \(request.size) bytes (\(request.sizeGB) GB), but disk offering \(offering.id) "
                    + "(\(quotedForMessage(offering.name))) has a fixed size of \(fixedGB) GB (\(fixedGB * Self.bytesPerGiB) bytes); "
                    + "pass \"size\": \(fixedGB * Self.bytesPerGiB) or choose a disk offering with a custom size")
        }
        return nil
    }

    /// Waits for the create job (when there is one) and returns the volume as CloudStack
    /// reports it. A job that ended without success counts as done when the volume exists
    /// and is usable; otherwise the job is forgotten so the retry creates afresh.
    private func finishedVolume(_ volumeId: String, jobId: String?, context: OperationContext) async throws -> CloudStackVolume {
        if let jobId {
            switch try await environment.waitForJob(jobId) {
            case .succeeded(let result):
                if let volume = result.volume, volume.id == volumeId { return volume }
            case .ended(let error):
                if let volume = try await environment.cloudStack.volume(id: volumeId), Self.isUsable(volume) {
                    context.logger.notice("create job failed but the volume exists; keeping it",
                                          metadata: ["volume_id": "\(volumeId)", "error": "\(error.code)"])
                    return volume
                }
                try await context.saveCheckpoint(Checkpoint())
                throw error
            }
        }
        guard let volume = try await environment.cloudStack.volume(id: volumeId) else {
            // The volume we started (or adopted) is gone: start over on the retry.
            try await context.saveCheckpoint(Checkpoint())
            throw VolumeOperationFailure(
                code: "volume_vanished",
                message: "volume \(volumeId) created by this operation no longer exists in CloudStack; the create will be retried",
                isTransient: true)
        }
        return volume
    }

    /// After a createVolume whose reply was lost: the one detached volume with the requested
    /// name, size and zone that neither `volumes` nor another create operation claims.
    private func unownedVolume(matching request: Request, context: OperationContext) async throws -> CloudStackVolume? {
        let size = Int64(request.sizeGB) * Self.bytesPerGiB
        let candidates = try await environment.cloudStack.listVolumes().filter {
            $0.name == request.name && $0.size == size && $0.zoneid == request.zoneId && $0.type == "DATADISK"
                && !$0.isAttached && Self.isUsable($0)
        }
        guard !candidates.isEmpty else { return nil }
        let owned = try await ownedVolumeIds(among: candidates.map(\.id), excluding: context.operation.id, context: context)
        let unowned = candidates.filter { !owned.contains($0.id) }
        guard unowned.count <= 1 else {
            throw VolumeOperationFailure(
                code: "create_ambiguous",
                message: "an earlier attempt's createVolume got no answer, and CloudStack now has \(unowned.count) unowned volumes "
                    + "named \(quotedForMessage(request.name)) (\(unowned.map(\.id).joined(separator: ", "))); "
                    + "delete the extra ones in CloudStack and enqueue the create again",
                isTransient: false)
        }
        return unowned.first
    }

    private func ownedVolumeIds(among ids: [String], excluding operationId: UUID, context: OperationContext) async throws -> Set<String> {
        let owned = try await context.database.decodedRows(
            VolumesTable.ownedByOtherCreates(among: ids, excluding: operationId), logger: context.logger) { try $0.decode(String.self) }
        return Set(owned)
    }

    private static func isUsable(_ volume: CloudStackVolume) -> Bool {
        !["Destroy", "Expunging", "Expunged", "Error"].contains(volume.state)
    }

    static func validatedRequest(_ operation: ClaimedOperation) throws -> Request {
        let request = try RequestDecoding.decode(Request.self, from: operation)
        let name = request.name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty else {
            throw QueueFailure.invalidRequest("field 'name' must not be empty")
        }
        guard request.name.count <= maximumNameLength else {
            throw QueueFailure.invalidRequest("field 'name' must be at most \(maximumNameLength) characters (got \(request.name.count))")
        }
        guard request.size >= bytesPerGiB else {
            throw QueueFailure.invalidRequest(
                "field 'size' is in bytes and must be at least 1 GiB (\(bytesPerGiB)); got \(request.size)")
        }
        try RequestDecoding.requireUUID(request.diskOfferingId, field: "disk_offering_id")
        try RequestDecoding.requireUUID(request.zoneId, field: "zone_id")
        try validateMetadata(operation)
        return request
    }

    /// `metadata` is optional and kept only by the caller, but must be an object when given
    /// (as the original daemon's API required).
    private static func validateMetadata(_ operation: ClaimedOperation) throws {
        let object = try JSONSerialization.jsonObject(with: Data(operation.request.utf8)) as? [String: Any]
        guard let metadata = object?["metadata"], !(metadata is NSNull) else { return }
        guard metadata is [String: Any] else {
            throw QueueFailure.invalidRequest("field 'metadata' must be a JSON object when given")
        }
    }
}
