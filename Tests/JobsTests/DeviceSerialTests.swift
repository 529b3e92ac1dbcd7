import Devices
import Operations
import Testing

@Suite("Disk serial (CloudStack diskUuidToSerial)")
struct DeviceSerialTests {
    @Test(
        "the serial is the UUID without dashes, first 20 characters",
        arguments: [
            ("b3bb9310-1b59-4f62-97e8-2c3f0a1d9e44", "b3bb93101b594f6297e8"),
            ("60338035-92fb-4d27-98d4-b60ad4b38b87", "6033803592fb4d2798d4"),
            ("ab2c18f6-00a6-43f8-9fe0-efecb3165dd7", "ab2c18f600a643f89fe0"),
            // CloudStack ids are lower-case; an upper-case spelling names the same volume.
            ("AB2C18F6-00A6-43F8-9FE0-EFECB3165DD7", "ab2c18f600a643f89fe0"),
        ]
    )
    func serialVectors(volumeId: String, expected: String) throws {
        #expect(try DiskSerial.serial(forVolumeId: volumeId) == expected)
    }

    @Test(
        "anything but a UUID is refused with invalid_volume_id",
        arguments: [
            "",
            "not-a-uuid",
            "b3bb93101b594f6297e82c3f0a1d9e44",
            "b3bb9310-1b59-4f62-97e8-2c3f0a1d9e4",
            "b3bb9310-1b59-4f62-97e8-2c3f0a1d9e44x",
            "../../../etc/passwd",
            "b3bb9310-1b59-4f62-97e8-2c3f0a1d9e4/",
            "g3bb9310-1b59-4f62-97e8-2c3f0a1d9e44",
        ]
    )
    func invalidIds(volumeId: String) {
        let error = #expect(throws: DeviceError.self) { try DiskSerial.serial(forVolumeId: volumeId) }
        #expect(error?.kind == .invalidVolumeId)
        #expect(error?.isTransient == false)
        #expect(error?.message.contains("listVolumes") == true)
    }

    @Test("the resolver tries virtio, then both SCSI spellings")
    func candidateOrder() throws {
        let resolver = ByIdResolver(directory: "/dev/disk/by-id/")
        #expect(
            try resolver.candidateLinkPaths(volumeId: "b3bb9310-1b59-4f62-97e8-2c3f0a1d9e44") == [
                "/dev/disk/by-id/virtio-b3bb93101b594f6297e8",
                "/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_b3bb93101b594f6297e8",
                "/dev/disk/by-id/scsi-b3bb93101b594f6297e8",
            ]
        )
    }
}
