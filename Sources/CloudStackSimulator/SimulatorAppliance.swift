import Foundation

/// An appliance VM besides `SimulatorConfiguration.applianceVMID`: several migration
/// appliances under one CloudStack, each seeing only the disks attached to it, in its own
/// by-id directory (`SimulatorConfiguration.additionalAppliances`).
public struct SimulatorAppliance: Sendable {
    public var vmID: String
    public var name: String
    /// Where disks attached to this VM appear as by-id links (`virtio-<serial>`, or
    /// `scsi-0QEMU_QEMU_HARDDISK_<serial>` on SCSI).
    public var byIDDirectory: URL
    /// Where the sparse backing files of this VM's disks live.
    public var diskDirectory: URL
    /// The bus of this VM's first disk, which its hot-plugged disks join (`SimulatorDiskBus`).
    public var diskBus: SimulatorDiskBus

    public init(vmID: String, name: String, byIDDirectory: URL, diskDirectory: URL, diskBus: SimulatorDiskBus = .virtio) {
        self.vmID = vmID
        self.name = name
        self.byIDDirectory = byIDDirectory
        self.diskDirectory = diskDirectory
        self.diskBus = diskBus
    }
}
