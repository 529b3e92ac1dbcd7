import Devices
import Foundation
import Operations
import Testing

/// The resolver against a scratch by-id directory populated the way udev would:
/// links named after the disk serial, pointing at a backing file (the simulator's
/// stand-in for `/dev/vdX`) or, where the host allows it, a real loop block device.
@Suite("by-id resolver")
struct DeviceByIdResolverTests {
    static let volumeId = "b3bb9310-1b59-4f62-97e8-2c3f0a1d9e44"
    static let serial = "b3bb93101b594f6297e8"

    let scratch: ScratchDirectory
    let byId: String
    let resolver: ByIdResolver

    init() throws {
        scratch = try ScratchDirectory("volumed-by-id")
        byId = try scratch.makeDirectory("by-id")
        resolver = ByIdResolver(directory: byId)
    }

    var virtioLink: String { byId + "/virtio-" + Self.serial }

    @Test("a link present before the call resolves to the backing file and its size")
    func linkAlreadyPresent() async throws {
        defer { scratch.remove() }
        let disk = try scratch.randomFile("vdf", count: 123_457)
        try makeSymlink(virtioLink, to: disk.path)

        #expect(try resolver.currentDevice(volumeId: Self.volumeId) == ResolvedDevice(byIdPath: virtioLink, devicePath: disk.path, sizeBytes: 123_457))
        let waited = try await resolver.waitForDevice(volumeId: Self.volumeId, timeout: .seconds(2))
        #expect(waited.byIdPath == virtioLink)
        #expect(waited.devicePath == disk.path)
        #expect(waited.sizeBytes == 123_457)
    }

    @Test("no link: currentDevice is nil")
    func noLink() throws {
        defer { scratch.remove() }
        #expect(try resolver.currentDevice(volumeId: Self.volumeId) == nil)
    }

    @Test("a relative udev-style link (../vdf) resolves through realpath")
    func relativeLink() throws {
        defer { scratch.remove() }
        let disk = try scratch.randomFile("vdf", count: 4096)
        try makeSymlink(virtioLink, to: "../vdf")
        let device = try #require(try resolver.currentDevice(volumeId: Self.volumeId))
        #expect(device.devicePath == disk.path)
        #expect(device.byIdPath == virtioLink)
    }

    @Test("waitForDevice returns when another task creates the link later")
    func linkCreatedLater() async throws {
        defer { scratch.remove() }
        let disk = try scratch.randomFile("vdg", count: 65_536)
        let link = virtioLink
        let start = ContinuousClock.now
        async let device = resolver.waitForDevice(volumeId: Self.volumeId, timeout: .seconds(10))
        try await Task.sleep(for: .milliseconds(300))
        try makeSymlink(link, to: disk.path)

        let found = try await device
        let elapsed = ContinuousClock.now - start
        #expect(found == ResolvedDevice(byIdPath: link, devicePath: disk.path, sizeBytes: 65_536))
        #expect(elapsed >= .milliseconds(300))
        // Woken by inotify, not by the 10 s deadline.
        #expect(elapsed < .seconds(3))
    }

    @Test("a link renamed into place (how udev writes links) wakes the wait")
    func linkRenamedIntoPlace() async throws {
        defer { scratch.remove() }
        let disk = try scratch.randomFile("vdh", count: 1024)
        let link = virtioLink
        async let device = resolver.waitForDevice(volumeId: Self.volumeId, timeout: .seconds(10))
        try await Task.sleep(for: .milliseconds(200))
        try repointSymlink(link, to: disk.path)
        #expect(try await device.devicePath == disk.path)
    }

    @Test("a SCSI-named link is found when there is no virtio link")
    func scsiLink() async throws {
        defer { scratch.remove() }
        let disk = try scratch.randomFile("sdb", count: 2048)
        let scsiLink = byId + "/scsi-0QEMU_QEMU_HARDDISK_" + Self.serial
        async let device = resolver.waitForDevice(volumeId: Self.volumeId, timeout: .seconds(10))
        try await Task.sleep(for: .milliseconds(200))
        try makeSymlink(scsiLink, to: disk.path)
        let found = try await device
        #expect(found.byIdPath == scsiLink)
        #expect(found.devicePath == disk.path)
        #expect(found.sizeBytes == 2048)
    }

    @Test("a link that appears before its target is waited on until the target exists")
    func danglingLinkThenTarget() async throws {
        defer { scratch.remove() }
        let devDirectory = try scratch.makeDirectory("dev")
        let target = devDirectory + "/vdi"
        try makeSymlink(virtioLink, to: target)
        #expect(try resolver.currentDevice(volumeId: Self.volumeId) == nil)

        async let device = resolver.waitForDevice(volumeId: Self.volumeId, timeout: .seconds(10))
        try await Task.sleep(for: .milliseconds(300))
        // Atomically, as a device node appears whole (a plain write would expose an empty file first).
        try Data(count: 8192).write(to: URL(fileURLWithPath: target), options: .atomic)
        let found = try await device
        #expect(found.devicePath == target)
        #expect(found.sizeBytes == 8192)
    }

    @Test("a by-id directory that does not exist yet is waited for through its parent")
    func directoryCreatedLater() async throws {
        defer { scratch.remove() }
        let missing = scratch.child("disk/by-id")
        let resolver = ByIdResolver(directory: missing)
        let disk = try scratch.randomFile("vdj", count: 512)
        async let device = resolver.waitForDevice(volumeId: Self.volumeId, timeout: .seconds(10))
        try await Task.sleep(for: .milliseconds(300))
        _ = try scratch.makeDirectory("disk/by-id")
        try makeSymlink(missing + "/virtio-" + Self.serial, to: disk.path)
        #expect(try await device.devicePath == disk.path)
    }

    @Test("the timeout error names the exact link paths and the fix")
    func timeoutNamesPath() async throws {
        defer { scratch.remove() }
        let start = ContinuousClock.now
        let error = await #expect(throws: DeviceError.self) {
            try await resolver.waitForDevice(volumeId: Self.volumeId, timeout: .milliseconds(400))
        }
        let elapsed = ContinuousClock.now - start
        #expect(error?.kind == .deviceLinkTimeout)
        #expect(error?.isTransient == true)
        #expect(error?.message.contains("no by-id link \(virtioLink) appeared within 0.4 s") == true)
        #expect(error?.message.contains(byId + "/scsi-0QEMU_QEMU_HARDDISK_" + Self.serial) == true)
        #expect(error?.message.contains("VOLUMED_APPLIANCE_VM_ID") == true)
        #expect(elapsed >= .milliseconds(400))
        #expect(elapsed < .seconds(3))
    }

    @Test("a link whose target never appears times out naming the target")
    func danglingTimeout() async throws {
        defer { scratch.remove() }
        let target = scratch.child("dev/vdz")
        try makeSymlink(virtioLink, to: target)
        let error = await #expect(throws: DeviceError.self) {
            try await resolver.waitForDevice(volumeId: Self.volumeId, timeout: .milliseconds(300))
        }
        #expect(error?.kind == .deviceLinkTimeout)
        #expect(error?.message.contains("\(virtioLink) appeared but its target \(target)") == true)
    }

    @Test("cancelling the waiting task ends the wait promptly")
    func cancellation() async throws {
        defer { scratch.remove() }
        let resolver = self.resolver
        let start = ContinuousClock.now
        let waiter = Task { try await resolver.waitForDevice(volumeId: Self.volumeId, timeout: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(200))
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(ContinuousClock.now - start < .seconds(3))
    }

    @Test("waitForRemoval returns when the link goes away, and times out naming it otherwise")
    func removal() async throws {
        defer { scratch.remove() }
        let disk = try scratch.randomFile("vdk", count: 512)
        let link = virtioLink
        try makeSymlink(link, to: disk.path)

        let error = await #expect(throws: DeviceError.self) {
            try await resolver.waitForRemoval(volumeId: Self.volumeId, timeout: .milliseconds(300))
        }
        #expect(error?.kind == .deviceRemovalTimeout)
        #expect(error?.message.contains("by-id link \(link) is still present after 0.3 s") == true)

        let start = ContinuousClock.now
        async let removed: Void = resolver.waitForRemoval(volumeId: Self.volumeId, timeout: .seconds(10))
        try await Task.sleep(for: .milliseconds(300))
        try removeEntry(link)
        try await removed
        #expect(ContinuousClock.now - start < .seconds(3))
        #expect(try resolver.currentDevice(volumeId: Self.volumeId) == nil)
    }

    @Test("a link to something that is neither a disk nor a file is reported, not returned")
    func linkToDirectory() throws {
        defer { scratch.remove() }
        let directory = try scratch.makeDirectory("not-a-disk")
        try makeSymlink(virtioLink, to: directory)
        let error = #expect(throws: DeviceError.self) { try resolver.currentDevice(volumeId: Self.volumeId) }
        #expect(error?.kind == .deviceUnreadable)
        #expect(error?.message.contains(directory) == true)
    }

    @Test(
        "a real block device reports the kernel's size (BLKGETSIZE64)",
        .enabled(if: LoopDevice.canAttach, "needs root and losetup to attach a loop device")
    )
    func blockDeviceSize() async throws {
        defer { scratch.remove() }
        let image = scratch.child("loop.img")
        let size = 3 * 1024 * 1024 + 512
        try Data(count: size).write(to: URL(fileURLWithPath: image))
        let loop = try await LoopDevice.attach(image)
        try makeSymlink(virtioLink, to: loop.path)

        let device = try resolver.currentDevice(volumeId: Self.volumeId)
        await loop.detach()
        #expect(device?.devicePath == loop.path)
        #expect(device?.sizeBytes == UInt64(size))
    }
}

/// A loop block device backed by an image file, for the one test that needs a real
/// block device.
struct LoopDevice {
    static let losetup = "/usr/sbin/losetup"
    let path: String

    static var canAttach: Bool {
        getuid() == 0 && FileManager.default.isExecutableFile(atPath: losetup)
            && FileManager.default.fileExists(atPath: "/dev/loop-control")
    }

    static func attach(_ image: String) async throws -> LoopDevice {
        let result = try await runTool(losetup, ["--find", "--show", image])
        try result.requireSuccess()
        return LoopDevice(path: String(decoding: result.standardOutput, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func detach() async {
        _ = try? await runTool(Self.losetup, ["--detach", path])
    }
}
