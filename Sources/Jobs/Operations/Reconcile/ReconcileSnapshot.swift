import Devices
import CloudStack
import Foundation
import Logging
import PostgresNIO
import Schema

/// What CloudStack says about one volume.
enum CloudStackLookup: Sendable {
    case found(CloudStackVolume)
    /// `listVolumes` lists nothing for the id (deleted and expunged), or CloudStack does not
    /// know the id at all.
    case unknown
    /// Could not be asked (a permanent error for this id only); the message says why.
    case failed(String)
}

/// What the by-id directory says about one volume.
enum DeviceLookup: Sendable {
    case resolved(ResolvedDevice)
    /// No candidate link resolves; `expected` is the virtio link udev would create.
    case missing(expected: String)
    case failed(String)
}

/// Everything one reconcile pass compares, read once before any repair: the tables, the
/// volumes with unfinished operations, CloudStack's view and the by-id directory.
struct ReconcileSnapshot: Sendable {
    /// The database clock before CloudStack was read. An operation on a volume that finished
    /// after this may have changed what CloudStack showed us, so repairs skip such volumes.
    var since: Date
    /// Volumes a failed create may have left in CloudStack that nothing tracks.
    var untracked: [CloudStackVolume] = []
    /// The `device_mappings` rows as read: repairs change only a row still as these say.
    var mappings: [DeviceMapping] = []
    /// The `volumes` rows volumed still considers alive (not marked `Deleted`).
    var recorded: [VolumeRecord] = []
    /// Volumes with a pending or executing operation: never touched by reconcile.
    var busy: Set<String> = []
    var cloudStack: [String: CloudStackLookup] = [:]
    /// Data disks CloudStack shows attached to the appliance (its ROOT disk excluded).
    var onAppliance: [CloudStackVolume] = []
    var devices: [String: DeviceLookup] = [:]

    /// Every volume id the pass looked at.
    var volumeIds: Set<String> {
        Set(mappings.map(\.volumeId)).union(recorded.map(\.volumeId)).union(onAppliance.map(\.id.value))
    }
}

extension Reconciler {
    /// Reads the tables first (after noting `since`), then CloudStack, then the by-id links.
    /// Busy volumes are not looked up: nothing will be done to them.
    func takeSnapshot() async throws -> ReconcileSnapshot {
        var snapshot = ReconcileSnapshot(since: try await databaseNow())
        snapshot.mappings = try await database.decodedRows(DeviceMappingsTable.all(), logger: logger) { try DeviceMapping(row: $0) }
        let recordedSizes = Dictionary(snapshot.mappings.compactMap { mapping in mapping.sizeBytes.map { (mapping.volumeId, $0) } }) {
            first, _ in first
        }
        snapshot.recorded = try await database.decodedRows(VolumesTable.live(), logger: logger, VolumeRecord.init)
        snapshot.busy = Set(try await database.decodedRows(QueueSQL.busyVolumes(), logger: logger) { try $0.decode(String.self) })

        let wanted = Set(snapshot.mappings.map(\.volumeId)).union(snapshot.recorded.map(\.volumeId)).subtracting(snapshot.busy)
        let unfinishedCreates = Set(try await database.decodedRows(QueueSQL.namesOfUnfinishedCreates(), logger: logger) {
            try $0.decode(String.self)
        })
        // One listing, page by page, instead of one `listVolumes id=` per volume: a pass over
        // a thousand volumes makes a handful of calls, not a thousand. In a cloud with far more
        // volumes than volumed's, the pages after the first cost more than asking for the
        // volumes it lacks by id: whichever takes fewer calls is done.
        var listed: [String: CloudStackVolume] = [:]
        if !wanted.isEmpty || !unfinishedCreates.isEmpty {
            let first = try await environment.cloudStack.firstPageOfVolumes()
            let onFirstPage = Set(first.items.map(\.id.value))
            let unlisted = wanted.count { !onFirstPage.contains($0.lowercased()) }
            var volumes = first.items
            if !unfinishedCreates.isEmpty || first.pagesLeft <= unlisted {
                volumes += try await environment.cloudStack.volumes(after: first)
            }
            // A row listed twice (moved across a page boundary meanwhile) is the same volume.
            listed = Dictionary(volumes.map { ($0.id.value, $0) }) { first, _ in first }
        }
        for volumeId in wanted.sorted() {
            if let volume = listed[volumeId.lowercased()] {
                snapshot.cloudStack[volumeId] = .found(volume)
            } else {
                // Deleted, unknown, or moved across a page boundary by a volume created or
                // removed meanwhile: asked for alone, it gets the answer it always got.
                snapshot.cloudStack[volumeId] = try await lookUp(volumeId)
            }
        }
        snapshot.untracked = try await untrackedVolumes(named: unfinishedCreates, among: Array(listed.values))
        if let appliance = environment.applianceVMId {
            snapshot.onAppliance = try await environment.cloudStack.listVolumes(virtualMachineId: appliance)
                .filter { $0.type.uppercased() != "ROOT" && environment.isAppliance($0.virtualmachineid) }
            for volume in snapshot.onAppliance where snapshot.cloudStack[volume.id.value] == nil {
                snapshot.cloudStack[volume.id.value] = .found(volume)
            }
            let local = snapshot.mappings.filter { environment.isAppliance($0.vmId) }.map(\.volumeId)
                + snapshot.onAppliance.map(\.id.value)
            let links = environment.resolver.listing()
            for volumeId in Set(local).subtracting(snapshot.busy).sorted() {
                snapshot.devices[volumeId] = lookUpDevice(volumeId, recordedSize: recordedSizes[volumeId], links: links)
            }
        }
        return snapshot
    }

    /// CloudStack answers an unknown id with 431 "…entity does not exist…"
    /// (apache/cloudstack server/src/main/java/com/cloud/api/dispatch/ParamProcessWorker.java,
    /// `translateUuidToInternalId`, which searches removed entities too), and a removed one
    /// with an empty list. Both mean CloudStack no longer has the volume. Transient errors
    /// end the pass: a half-seen cloud must not drive repairs.
    private func lookUp(_ volumeId: String) async throws -> CloudStackLookup {
        do {
            guard let volume = try await environment.cloudStack.volume(id: CloudStackID(volumeId)) else { return .unknown }
            return .found(volume)
        } catch let error as CloudStackError where error.kind == .notFound {
            return .unknown
        } catch let error as CloudStackError where !error.isTransient {
            return .failed(error.message)
        }
    }

    /// The device behind the volume's by-id link, accepted only as `ByIdResolver.verifiedDevice`
    /// accepts it: a block device (a regular file only with the test/demo setting) and, for a
    /// mapped volume, of the size recorded at attach. A link re-pointed elsewhere is a
    /// `check_failed` finding, never a repair that records it.
    private func lookUpDevice(_ volumeId: String, recordedSize: Int64?, links: ByIdDirectoryListing) -> DeviceLookup {
        do {
            if let device = try environment.resolver.currentDevice(volumeId: volumeId, listing: links) {
                return .resolved(try environment.resolver.verifiedDevice(
                    byIdPath: device.byIdPath, volumeId: volumeId, expectedSize: recordedSize))
            }
            return .missing(expected: try environment.resolver.candidateLinkPaths(volumeId: volumeId)[0])
        } catch {
            return .failed(error.message)
        }
    }

    /// CloudStack volumes named as a failed or cancelled create asked, that no `volumes` row
    /// and no operation owns: what a createVolume whose reply was lost may have left behind.
    private func untrackedVolumes(named names: Set<String>, among listed: [CloudStackVolume]) async throws -> [CloudStackVolume] {
        guard !names.isEmpty else { return [] }
        let candidates = listed.filter {
            names.contains($0.name) && $0.type.uppercased() == "DATADISK" && !ReconcilePlanner.goneStates.contains($0.state)
        }
        guard !candidates.isEmpty else { return [] }
        let tracked = Set(try await database.decodedRows(VolumesTable.tracked(among: candidates.map(\.id.value)), logger: logger) {
            try $0.decode(String.self)
        })
        return candidates.filter { !tracked.contains($0.id.value) }
    }

    private func databaseNow() async throws -> Date {
        let rows = try await database.decodedRows("SELECT clock_timestamp()", logger: logger) { try $0.decode(Date.self) }
        return rows.first ?? Date()
    }
}
