import Foundation

/// An appliance VM besides `SimulatorConfiguration.applianceVMID`: several migration
/// appliances under one CloudStack, each seeing only the disks attached to it, in its own
/// by-id directory (`SimulatorConfiguration.additionalAppliances`).
public struct SimulatorAppliance: Sendable {
    public var vmID: String
    public var name: String
    /// Where disks attached to this VM appear as `virtio-<serial>` links.
    public var byIDDirectory: URL
    /// Where the sparse backing files of this VM's disks live.
    public var diskDirectory: URL

    public init(vmID: String, name: String, byIDDirectory: URL, diskDirectory: URL) {
        self.vmID = vmID
        self.name = name
        self.byIDDirectory = byIDDirectory
        self.diskDirectory = diskDirectory
    }
}
