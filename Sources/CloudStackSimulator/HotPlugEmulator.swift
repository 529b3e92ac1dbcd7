import Foundation

/// Makes an attach to the appliance VM look, from inside the appliance, like a KVM
/// hot-plug: a block device (here a sparse file) appears and udev links it as
/// `/dev/disk/by-id/virtio-<serial>`, or `scsi-0QEMU_QEMU_HARDDISK_<serial>` on an
/// appliance whose disks are on SCSI (`SimulatorDiskBus`).
///
/// The serial is what apache/cloudstack `LibvirtComputingResource.diskUuidToSerial`
/// computes: the volume UUID without dashes, first 20 characters (virtio-blk serials are
/// limited to 20 bytes), in the case the UUID has (`uuid.replace("-", "")`, no case change).
/// The backing file is named after the volume id and kept across detach/attach so written
/// data persists, as a real volume's does; deleteVolume removes it.
struct HotPlugEmulator: Sendable {
    var byIDDirectory: URL
    var diskDirectory: URL
    var bus: SimulatorDiskBus = .virtio

    static func serial(forVolumeID volumeID: String) -> String {
        String(volumeID.replacingOccurrences(of: "-", with: "").prefix(20))
    }

    func linkURL(forVolumeID volumeID: String) -> URL {
        byIDDirectory.appendingPathComponent(bus.linkName(serial: Self.serial(forVolumeID: volumeID)))
    }

    func backingFileURL(forVolumeID volumeID: String) -> URL {
        diskDirectory.appendingPathComponent(volumeID + ".img")
    }

    func prepareDirectories() throws {
        try FileManager.default.createDirectory(at: byIDDirectory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: diskDirectory, withIntermediateDirectories: true)
    }

    /// Ensures the sparse backing file exists with at least `sizeBytes`, then publishes the
    /// by-id link atomically (temporary name, then rename(2) over the final name, as udev
    /// does), so a watcher never sees a half-made link.
    func plug(volumeID: String, sizeBytes: Int64) throws {
        try prepareBackingFile(volumeID: volumeID, sizeBytes: sizeBytes)
        try publishLink(volumeID: volumeID)
    }

    /// The device half of a hot-plug: the disk exists (its sparse backing file, at least
    /// `sizeBytes`); udev has not linked it yet.
    func prepareBackingFile(volumeID: String, sizeBytes: Int64) throws {
        let backing = backingFileURL(forVolumeID: volumeID)
        let fileManager = FileManager.default
        if !fileManager.fileExists(atPath: backing.path) {
            guard fileManager.createFile(atPath: backing.path, contents: nil) else {
                throw HotPlugError(message: "cannot create backing file \(backing.path)")
            }
        }
        let handle = try FileHandle(forWritingTo: backing)
        defer { try? handle.close() }
        if try handle.seekToEnd() < UInt64(sizeBytes) {
            try handle.truncate(atOffset: UInt64(sizeBytes))
        }
    }

    /// A resize of an attached disk (virsh blockresize): the device takes the new size at once.
    func resizeBackingFile(volumeID: String, sizeBytes: Int64) throws {
        let handle = try FileHandle(forWritingTo: backingFileURL(forVolumeID: volumeID))
        defer { try? handle.close() }
        try handle.truncate(atOffset: UInt64(sizeBytes))
    }

    /// udev's half: the by-id link to the backing file, published atomically.
    func publishLink(volumeID: String) throws {
        let fileManager = FileManager.default
        let backing = backingFileURL(forVolumeID: volumeID)
        let link = linkURL(forVolumeID: volumeID)
        let temporary = byIDDirectory.appendingPathComponent(".\(link.lastPathComponent).tmp-\(UUID().uuidString.prefix(8))")
        try fileManager.createSymbolicLink(atPath: temporary.path, withDestinationPath: backing.path)
        guard rename(temporary.path, link.path) == 0 else {
            let code = errno
            try? fileManager.removeItem(at: temporary)
            throw HotPlugError(message: "cannot rename \(temporary.path) to \(link.path): \(String(cString: strerror(code)))")
        }
    }

    /// Removes the by-id link, as udev does when the device goes away.
    func unplug(volumeID: String) throws {
        let link = linkURL(forVolumeID: volumeID)
        if (try? FileManager.default.destinationOfSymbolicLink(atPath: link.path)) != nil {
            try FileManager.default.removeItem(at: link)
        }
    }

    /// The volume is gone: its data goes too.
    func destroyBackingFile(volumeID: String) throws {
        let backing = backingFileURL(forVolumeID: volumeID)
        if FileManager.default.fileExists(atPath: backing.path) {
            try FileManager.default.removeItem(at: backing)
        }
    }
}

struct HotPlugError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
