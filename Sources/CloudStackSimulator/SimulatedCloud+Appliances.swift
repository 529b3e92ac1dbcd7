import Foundation

/// Appliance VMs beyond the configured one: each is a Running VM with a ROOT disk, and
/// attaching to it hot-plugs into its own directories.
extension SimulatedCloud {
    /// The hot-plug emulation of the appliance VM `vmID`; nil for any other VM (or when
    /// hot-plug is off).
    nonisolated func hotPlug(forVM vmID: String) -> HotPlugEmulator? {
        vmID == configuration.applianceVMID ? hotPlug : additionalHotPlugs[vmID]
    }

    /// The by-id link path a volume attached to appliance `vmID` gets, on that appliance's
    /// bus; nil for a VM without hot-plug.
    nonisolated func byIDLinkPath(forVolumeID volumeID: String, onVM vmID: String) -> String? {
        hotPlug(forVM: vmID)?.linkURL(forVolumeID: volumeID).path
    }

    /// Every appliance's emulation: a deleted volume's backing file may be in any of them.
    var allHotPlugs: [HotPlugEmulator] {
        [hotPlug].compactMap { $0 } + additionalHotPlugs.values
    }

    static func prepareHotPlugs(_ appliances: [SimulatorAppliance]) throws -> [String: HotPlugEmulator] {
        var emulators: [String: HotPlugEmulator] = [:]
        for appliance in appliances {
            let emulator = HotPlugEmulator(
                byIDDirectory: appliance.byIDDirectory, diskDirectory: appliance.diskDirectory, bus: appliance.diskBus)
            try emulator.prepareDirectories()
            emulators[appliance.vmID] = emulator
        }
        return emulators
    }
}
