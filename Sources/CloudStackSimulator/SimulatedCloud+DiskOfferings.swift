import Foundation

/// The two kinds of disk offering and createVolume's size rules, as apache/cloudstack
/// `server/src/main/java/com/cloud/storage/VolumeApiServiceImpl.java` (`allocVolume`,
/// `validateCustomDiskOfferingSizeRange`) applies them before the volume row exists:
///
/// 1. `size` ≤ 0 → "Disk size must be larger than 0";
/// 2. a customized offering without `size` → "This disk offering requires a custom size specified";
///    with a size outside `custom.diskoffering.size.min/max` (global settings, 1 and 1024 GB by
///    default; here `SimulatorFaults.customDiskSizeMinGB/MaxGB`) → "Volume size: N GB is out of
///    allowed range. Min: A. Max: B";
/// 3. a fixed offering with `size` → "This disk offering does not allow custom size";
/// 4. a fixed offering's volume gets the offering's `disksize`.
///
/// All are InvalidParameterValueExceptions: synchronous 431 / cserrorcode 4350.
/// `listDiskOfferings` reports `disksize` (GB, 0 for custom) and `iscustomized`
/// (DiskOfferingResponse); the min/max are global configuration, not part of the offering.
extension SimulatedCloud {
    struct DiskOffering: Sendable {
        var id: String
        var name: String
        var displayText: String
        /// GB; 0 for a customized offering.
        var diskSizeGB: Int64
        var isCustomized: Bool
    }

    static let diskOfferings = [
        DiskOffering(id: SimulatorConfiguration.customDiskOfferingID, name: ResponseRendering.customOfferingName,
                     displayText: "Custom Disk", diskSizeGB: 0, isCustomized: true),
        DiskOffering(id: SimulatorConfiguration.fixedDiskOfferingID, name: "Small",
                     displayText: "Small Disk, \(SimulatorConfiguration.fixedDiskOfferingSizeGB) GB",
                     diskSizeGB: SimulatorConfiguration.fixedDiskOfferingSizeGB, isCustomized: false),
    ]

    static func diskOffering(_ id: String) -> DiskOffering? {
        diskOfferings.first { $0.id == id.lowercased() }
    }

    /// ListDiskOfferingsCmd: every offering, or the one `id` names (an unknown id is a 431
    /// from ParamProcessWorker).
    func listDiskOfferings(_ parameters: RequestParameters) throws -> JSONValue {
        var selected = Self.diskOfferings
        if let id = parameters["id"], !id.isEmpty {
            guard let offering = Self.diskOffering(id) else {
                throw APIFailure.unknownEntity(command: "listDiskOfferings", parameter: "id", value: id)
            }
            selected = [offering]
        }
        return ResponseRendering.list(
            itemName: "diskoffering", selected.map { ResponseRendering.diskOffering($0, created: offeringCreated) })
    }

    /// The volume size in bytes createVolume allocates for `offering` and the `size`
    /// parameter (GB), or the refusal allocVolume throws.
    func allocatedSizeBytes(offering: DiskOffering, sizeText: String?) throws -> Int64 {
        var sizeGB: Int64?
        if let sizeText, !sizeText.isEmpty {
            guard let value = Int64(sizeText) else {
                throw APIFailure(
                    errorCode: APIErrorCode.paramError, csErrorCode: CSErrorCode.serverAPIException,
                    errorText: "Unable to execute API command createvolume due to invalid value \(sizeText) for parameter size")
            }
            guard value > 0 else { throw APIFailure.invalidParameter("Disk size must be larger than 0") }
            sizeGB = value
        }
        if offering.isCustomized {
            guard let sizeGB else {
                throw APIFailure.invalidParameter("This disk offering requires a custom size specified")
            }
            let (minimum, maximum) = (Int64(faults.customDiskSizeMinGB), Int64(faults.customDiskSizeMaxGB))
            guard (minimum...maximum).contains(sizeGB) else {
                throw APIFailure.invalidParameter("Volume size: \(sizeGB) GB is out of allowed range. Min: \(minimum). Max: \(maximum)")
            }
            return sizeGB * Self.bytesPerGB
        }
        if sizeGB != nil {
            throw APIFailure.invalidParameter("This disk offering does not allow custom size")
        }
        return offering.diskSizeGB * Self.bytesPerGB
    }
}
