import Foundation

/// resizeVolume, as apache/cloudstack does it:
///
/// - `api/src/main/java/org/apache/cloudstack/api/command/user/volume/ResizeVolumeCmd.java`:
///   a BaseAsyncCmd; `id` (required, UUID: ParamProcessWorker refuses an unknown one
///   synchronously, 431), `size` (LONG, GB), `shrinkok`, `diskofferingid`, `miniops`/`maxiops`.
///   Everything else runs inside the job, and `execute()` turns the service's
///   InvalidParameterValueException into ServerApiException(UNSUPPORTED_ACTION_ERROR): the job
///   fails with 432; other exceptions (CloudRuntimeException) with 530.
/// - `server/src/main/java/com/cloud/storage/VolumeApiServiceImpl.java` `resizeVolume`, in its
///   order: the volume must exist ("No such volume"), be Ready or Allocated; with `size` and no
///   new offering, its offering must be customizable (or the volume ROOT: 4.15's rule, the
///   stricter one; later versions refuse only "strict" offerings) and the size within
///   `custom.diskoffering.size.min/max` (validateCustomDiskOfferingSizeRange); `size << 30`
///   bytes; a smaller size without `shrinkok` is refused. An Allocated volume only has its
///   row updated; a Ready one is resized on its storage, and a KVM guest sees its disk grow
///   (virsh blockresize): here the attached appliance's backing file, so the by-id device
///   shows the new size.
///
/// Not modelled (volumed never sends them): `diskofferingid`, `miniops`/`maxiops`; they are
/// refused rather than ignored, so the simulator is never more forgiving than CloudStack.
extension SimulatedCloud {
    func resizeVolume(_ parameters: RequestParameters) throws -> JSONValue {
        let command = "resizeVolume"
        let index = try resolveVolume(command, parameter: "id", parameters["id"] ?? "")
        for unsupported in ["diskofferingid", "miniops", "maxiops"] where !(parameters[unsupported] ?? "").isEmpty {
            throw APIFailure.invalidParameter("cloudstack-sim does not implement resizeVolume's \(unsupported)")
        }
        var sizeGB: Int64?
        if let text = parameters["size"], !text.isEmpty {
            guard let value = Int64(text) else {
                throw APIFailure(
                    errorCode: APIErrorCode.paramError, csErrorCode: CSErrorCode.serverAPIException,
                    errorText: "Unable to execute API command resizevolume due to invalid value \(text) for parameter size")
            }
            sizeGB = value
        }
        let shrinkOK = parameters["shrinkok"]?.lowercased() == "true"
        let volumeID = volumes[index].id
        recordSideEffect(volumeID) { $0.resizeVolume += 1 }
        let job = startJob(command, action: .resizeVolume(volumeID: volumeID, sizeGB: sizeGB, shrinkOK: shrinkOK))
        return .object([("jobid", .string(job.id))])
    }

    /// The job's half: VolumeApiServiceImpl.resizeVolume's checks, then the effect.
    func resize(volumeID: String, sizeGB: Int64?, shrinkOK: Bool) throws -> JSONValue {
        func refused(_ text: String) -> JobFailure { JobFailure(errorCode: APIErrorCode.unsupportedAction, errorText: text) }
        guard let index = volumeIndex(volumeID), !volumes[index].removed else { throw refused("No such volume") }
        let volume = volumes[index]
        guard volume.state == "Ready" || volume.state == "Allocated" else {
            throw refused("Volume should be in ready or allocated state before attempting a resize. Volume \(volume.id) is in state \(volume.state).")
        }
        var newSize = volume.sizeBytes
        if let sizeGB {
            let offering = volume.diskOfferingID.flatMap(Self.diskOffering)
            if offering?.isCustomized != true && volume.type != "ROOT" {
                throw refused("To change a volume's size without providing a new disk offering, its current disk offering must be "
                    + "customizable or it must be a root volume (if providing a disk offering, make sure it is different from the current disk offering).")
            }
            if offering?.isCustomized == true {
                let (minimum, maximum) = (Int64(faults.customDiskSizeMinGB), Int64(faults.customDiskSizeMaxGB))
                guard (minimum...maximum).contains(sizeGB) else {
                    throw refused("Volume size: \(sizeGB) GB is out of allowed range. Min: \(minimum). Max: \(maximum)")
                }
            }
            newSize = sizeGB << 30
        }
        if volume.sizeBytes > newSize && !shrinkOK {
            throw refused("Going from existing size of \(volume.sizeBytes) to size of \(newSize) would shrink the volume."
                + "Need to sign off by supplying the shrinkok parameter with value of true.")
        }
        if volume.state == "Ready", let vmID = volume.virtualMachineID, let hotPlug = hotPlug(forVM: vmID) {
            do {
                try hotPlug.resizeBackingFile(volumeID: volume.id, sizeBytes: newSize)
            } catch {
                throw JobFailure.internalError("Failed to resize volume \(volume.name); \(error)")
            }
        }
        volumes[index].sizeBytes = newSize
        return renderVolume(volumes[index])
    }
}
