import Primitives
import CloudStack
import Foundation
import Schema
import Worker

extension OperationType {
    public static let create: OperationType = "create"
}

/// `create`: a new data volume in CloudStack (`CreateVolume`, never two for one operation),
/// its `volumes` row committed with the completed status.
public struct CreateHandler: EnvironmentOperationHandler {
    static let type = OperationType.create
    static let firstStep = "asking CloudStack to create the volume"
    static let checkpointedSteps: [(key: String?, command: String)] = [(nil, "createVolume")]

    static func describe(_ checkpoint: [String: Any], stepText: String?) -> String? {
        if checkpoint["request_unanswered"] as? Bool == true {
            return "createVolume sent without an answer; looking for the volume CloudStack may have made"
        }
        return stepText ?? (checkpoint["volume_id"] as? String).map { "volume \($0) created; recording it" }
    }

    let environment: OperationEnvironment

    public init(environment: OperationEnvironment) {
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
        let create = CreateVolume(environment: environment, context: context, request: request)
        let volume: CloudStackVolume
        do {
            volume = try await create.run(in: .checkpoint(of: context))
        } catch let error as any OperationFailure where error.isTransient && operation.attempts >= operation.maxAttempts {
            // The last attempt: the queue gives up after this. A createVolume whose reply
            // was lost (now or in an earlier attempt) may have made a volume: adopt it, or
            // say in the error what is left in CloudStack.
            try await create.lastAttemptRecovery(failure: error)
            volume = try await create.run(in: .checkpoint(of: context))
        }
        let operationId = operation.id
        return try .completed(Response(volumeId: volume.id.value, sizeBytes: volume.size), volumeId: volume.id.value) { connection in
            try await connection.query(
                VolumesTable.upsert(
                    volumeId: volume.id.value, name: request.name, sizeBytes: volume.size, zoneId: request.zoneId,
                    diskOfferingId: request.diskOfferingId, state: volume.state, operationId: operationId),
                logger: context.logger)
        }
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

/// createVolume as a `CloudStackStep`. Its object is the volume the request makes: none
/// before the request, so an unanswered createVolume is resolved by the one unowned volume
/// of the request's name, size and zone (adopted as `volume_id`, without a job) instead of a
/// pending job. A job that ended without success counts when the volume exists and is
/// usable; otherwise the step starts over (the checkpoint is emptied, even after a job whose
/// outcome is unknown: the volume it made, if any, is not usable).
struct CreateVolume: CloudStackAction {
    let environment: OperationEnvironment
    let context: OperationContext
    let request: CreateHandler.Request

    var command: String { "createVolume" }
    var object: String { "volume named \(quotedForMessage(request.name))" }

    func look(_ progress: StepProgress) async throws -> CloudStackVolume? {
        guard let volumeId = progress.volumeId else { return nil }
        return try await environment.cloudStack.volume(id: volumeId)
    }

    func decide(_ volume: CloudStackVolume?, _ progress: StepProgress) async throws -> StepNext<CloudStackVolume> {
        if let volumeId = progress.volumeId {
            guard let volume else {
                // The volume we started (or adopted) is gone: start over on the retry.
                return .fail(VolumeOperationFailure(
                    code: "volume_vanished",
                    message: "volume \(volumeId) created by this operation no longer exists in CloudStack; the create will be retried",
                    isTransient: true), saving: StepProgress())
            }
            return .done(volume)
        }
        if progress.requestUnanswered == true, let adopted = try await unownedVolume() {
            context.logger.notice("adopting the volume an unanswered createVolume made", metadata: ["volume_id": "\(adopted.id)"])
            return .look(saving: StepProgress(volumeId: adopted.id))
        }
        let size = try await sizeParameter()
        return .send(StepProgress()) {
            let (volumeId, jobId) = try await environment.cloudStack.createVolume(
                name: request.name, zoneId: request.zoneId, diskOfferingId: request.diskOfferingId, sizeGB: size)
            return AcceptedRequest(jobId: jobId, volumeId: CloudStackID(volumeId))
        }
    }

    func ended(_ ending: JobEnding, _ progress: StepProgress) async throws -> StepNext<CloudStackVolume> {
        switch ending {
        case .succeeded(let result):
            if let volume = result.volume, volume.id == progress.volumeId { return .done(volume) }
            return .look()
        case .failed(let error):
            if let volumeId = progress.volumeId, let volume = try await environment.cloudStack.volume(id: volumeId), Self.isUsable(volume) {
                context.logger.notice("create job failed but the volume exists; keeping it",
                                      metadata: ["volume_id": "\(volumeId)", "error": "\(error.code)"])
                return .done(volume)
            }
            return .fail(error, saving: StepProgress())
        }
    }

    /// Before the queue gives up on a create whose request may have been carried out: the one
    /// unowned volume of the request's name, size and zone is adopted (saved as `volume_id`,
    /// for the step to finish with); with none, the failure says so; when CloudStack cannot
    /// even be asked, the failure names what to look for. The message never promises a retry.
    func lastAttemptRecovery(failure: any OperationFailure) async throws {
        let cause = withoutRetryPromise(failure.message)
        // Without the mark CloudStack refused the request itself: nothing was made.
        guard (try? context.checkpoint(as: StepProgress.self))??.requestUnanswered == true else { throw failure }
        let mayExist: Bool
        do {
            if let adopted = try await unownedVolume() {
                context.logger.notice("last attempt: adopting the volume an unanswered createVolume made",
                                      metadata: ["volume_id": "\(adopted.id)"])
                try await context.saveCheckpoint(StepProgress(volumeId: adopted.id))
                return
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

    /// createVolume's `size` for the request's offering: the size in GB for a customized
    /// offering; nil (no `size` sent) for a fixed one, whose size must be the request's.
    /// CloudStack refuses a `size` with a fixed offering ("This disk offering does not allow
    /// custom size", VolumeApiServiceImpl.allocVolume) and would otherwise make a volume of
    /// the offering's size, whatever the caller asked for.
    private func sizeParameter() async throws -> Int? {
        guard let offering = try await environment.cloudStack.listDiskOfferings(id: request.diskOfferingId).first else {
            throw VolumeOperationFailure(
                code: CloudStackError.Code.notFound.rawValue,
                message: "disk offering \(request.diskOfferingId) is not listed by CloudStack; check the request's disk_offering_id")
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
                    + "(\(quotedForMessage(offering.name))) has a fixed size of \(fixedGB) GB (\(fixedGB * CreateHandler.bytesPerGiB) bytes); "
                    + "pass \"size\": \(fixedGB * CreateHandler.bytesPerGiB) or choose a disk offering with a custom size")
        }
        return nil
    }

    /// After a createVolume whose reply was lost: the one detached volume with the requested
    /// name, size and zone that neither `volumes` nor another create operation claims.
    private func unownedVolume() async throws -> CloudStackVolume? {
        let size = Int64(request.sizeGB) * CreateHandler.bytesPerGiB
        let candidates = try await environment.cloudStack.listVolumes().filter {
            $0.name == request.name && $0.size == size && $0.zoneid == CloudStackID(request.zoneId) && $0.type == "DATADISK"
                && !$0.isAttached && Self.isUsable($0)
        }
        guard !candidates.isEmpty else { return nil }
        let owned = try await ownedVolumeIds(among: candidates.map(\.id.value))
        let unowned = candidates.filter { !owned.contains($0.id.value) }
        guard unowned.count <= 1 else {
            throw VolumeOperationFailure(
                code: "create_ambiguous",
                message: "an earlier attempt's createVolume got no answer, and CloudStack now has \(unowned.count) unowned volumes "
                    + "named \(quotedForMessage(request.name)) (\(unowned.map(\.id.value).joined(separator: ", "))); "
                    + "delete the extra ones in CloudStack and enqueue the create again")
        }
        return unowned.first
    }

    private func ownedVolumeIds(among ids: [String]) async throws -> Set<String> {
        let owned = try await context.database.decodedRows(
            VolumesTable.ownedByOtherCreates(among: ids, excluding: context.operation.id), logger: context.logger) { try $0.decode(String.self) }
        return Set(owned)
    }

    static func isUsable(_ volume: CloudStackVolume) -> Bool {
        !["Destroy", "Expunging", "Expunged", "Error"].contains(volume.state)
    }
}
