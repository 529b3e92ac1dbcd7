import Devices
import Foundation
import Operations
import Testing

/// CloudStack's `diskUuidToSerial` keeps the UUID's case (`uuid.replace("-", "")`), so a
/// volume whose UUID is upper case in CloudStack (an admin's `updateVolume customid=`) gets
/// an upper-case serial and udev an upper-case link, while volumed may hold the id in lower
/// case. The resolver matches link names without case and reports the link it found.
@Suite("by-id links in any case")
struct DeviceLinkCaseTests {
    static let lowerId = "b3bb9310-1b59-4f62-97e8-2c3f0a1d9e44"
    static let upperId = lowerId.uppercased()

    let scratch: ScratchDirectory
    let byId: String
    let resolver: ByIdResolver

    init() throws {
        scratch = try ScratchDirectory("volumed-link-case")
        byId = try scratch.makeDirectory("by-id")
        resolver = ByIdResolver(directory: byId)
    }

    var upperVirtioLink: String { byId + "/virtio-B3BB93101B594F6297E8" }

    @Test("an upper-case link is the volume's disk, whatever the case of the id; the real link name is reported")
    func upperCaseLinkFound() async throws {
        defer { scratch.remove() }
        let disk = try scratch.randomFile("vdh", count: 8192)
        try makeSymlink(upperVirtioLink, to: disk.path)

        for id in [Self.lowerId, Self.upperId] {
            let expected = ResolvedDevice(byIdPath: upperVirtioLink, devicePath: disk.path, sizeBytes: 8192)
            #expect(try resolver.currentDevice(volumeId: id) == expected)
            #expect(try await resolver.waitForDevice(volumeId: id, timeout: .seconds(2)) == expected)
            #expect(try resolver.presentLinkPaths(volumeId: id) == [upperVirtioLink])
        }
    }

    @Test("a SCSI link with an upper-case serial is found too, and a wait wakes when it appears")
    func upperCaseScsiLinkCreatedLater() async throws {
        defer { scratch.remove() }
        let disk = try scratch.randomFile("sdb", count: 4096)
        let link = byId + "/scsi-0QEMU_QEMU_HARDDISK_B3BB93101B594F6297E8"
        async let device = resolver.waitForDevice(volumeId: Self.lowerId, timeout: .seconds(10))
        try await Task.sleep(for: .milliseconds(200))
        try repointSymlink(link, to: disk.path)
        #expect(try await device.byIdPath == link)
    }

    @Test("removal waits for an upper-case link, and names it when it stays")
    func removalOfUpperCaseLink() async throws {
        defer { scratch.remove() }
        let disk = try scratch.randomFile("vdh", count: 4096)
        try makeSymlink(upperVirtioLink, to: disk.path)

        let error = await #expect(throws: DeviceError.self) {
            try await resolver.waitForRemoval(volumeId: Self.lowerId, timeout: .milliseconds(300))
        }
        #expect(error?.kind == .deviceRemovalTimeout)
        #expect(error?.message.contains(upperVirtioLink) == true, "\(error?.message ?? "")")

        let link = upperVirtioLink
        let start = ContinuousClock.now
        async let removed: Void = resolver.waitForRemoval(volumeId: Self.lowerId, timeout: .seconds(10))
        try await Task.sleep(for: .milliseconds(300))
        try removeEntry(link)
        try await removed
        #expect(ContinuousClock.now - start >= .milliseconds(300), "returned before the link went")
    }

    @Test("the lower-case spelling (what DiskSerial derives) comes before other spellings of the same name")
    func canonicalSpellingFirst() throws {
        defer { scratch.remove() }
        let upper = try scratch.randomFile("vdi", count: 4096)
        let lower = try scratch.randomFile("vdj", count: 8192)
        try makeSymlink(upperVirtioLink, to: upper.path)
        try makeSymlink(byId + "/virtio-b3bb93101b594f6297e8", to: lower.path)
        #expect(try resolver.currentDevice(volumeId: Self.upperId)?.devicePath == lower.path)
        #expect(try resolver.presentLinkPaths(volumeId: Self.lowerId) == [byId + "/virtio-b3bb93101b594f6297e8", upperVirtioLink])
    }
}
