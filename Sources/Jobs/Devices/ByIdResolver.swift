import Primitives

/// Finds a CloudStack volume as a local block device through its stable
/// `/dev/disk/by-id` link, and waits for that link to appear or disappear.
///
/// Waiting uses inotify on a `DedicatedThread`: no polling interval to tune, and the wait
/// ends as soon as the awaiting task is cancelled.
public struct ByIdResolver: Sendable {
    /// The directory holding the links (`VOLUMED_BY_ID_DIR`).
    public let directory: String
    /// The waits in progress, shared by every copy of this resolver (for health checks).
    public let activity = ByIdWaitActivity()
    private let metrics = DeviceMetrics()
    /// Whether a link may resolve to a regular file where a block device is expected
    /// (`VOLUMED_ALLOW_FILE_DEVICES`): only for the simulator's hot-plug emulation, whose
    /// "disks" are backing files (tests, `volumed demo`, benchmarks). Off in production, so a
    /// link re-pointed at `/etc/shadow` is never exported or recorded.
    public let allowsRegularFiles: Bool

    /// The environment variable that turns `allowsRegularFiles` on (`1` or `true`).
    public static let allowFileDevicesVariable = "VOLUMED_ALLOW_FILE_DEVICES"

    public init(directory: String = "/dev/disk/by-id", allowsRegularFiles: Bool = false) {
        self.allowsRegularFiles = allowsRegularFiles
        // Trailing slashes would double up in every path and error message.
        var trimmed = directory
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.directory = trimmed
    }

    /// Link names udev may create for the volume, in the order they are tried:
    /// virtio-blk first (CloudStack's default bus), then the names SCSI buses produce
    /// (the CloudStack CSI drivers try the same three). On KVM a hot-plugged disk takes the
    /// bus of the VM's first disk (`KVMStorageProcessor.attachOrDetachDisk`), so an appliance
    /// deployed with a virtio-scsi root disk gets `scsi-0QEMU_QEMU_HARDDISK_<serial>` links.
    ///
    /// The serial is spelled in lower case here; a link is matched whatever its case (see
    /// `LinkInspection.entries(in:namedLike:)`), and the link found is what gets recorded.
    public func candidateLinkNames(volumeId: String) throws(DeviceError) -> [String] {
        let serial = try DiskSerial.serial(forVolumeId: volumeId)
        return ["virtio-\(serial)", "scsi-0QEMU_QEMU_HARDDISK_\(serial)", "scsi-\(serial)"]
    }

    public func candidateLinkPaths(volumeId: String) throws(DeviceError) -> [String] {
        try candidateLinkNames(volumeId: volumeId).map { directory + "/" + $0 }
    }

    /// The device behind the first candidate link that resolves, or nil when none does
    /// (no link yet, or a link whose target udev has not created yet).
    public func currentDevice(volumeId: String) throws(DeviceError) -> ResolvedDevice? {
        try currentDevice(volumeId: volumeId, listing: listing())
    }

    /// As `currentDevice(volumeId:)`, finding the links in `listing` (read once for many volumes).
    public func currentDevice(volumeId: String, listing: ByIdDirectoryListing) throws(DeviceError) -> ResolvedDevice? {
        try Self.firstResolved(among: listing.entries(namedLike: candidateLinkNames(volumeId: volumeId))).device
    }

    /// The by-id directory's entries now, for resolving many volumes with one read of it.
    public func listing() -> ByIdDirectoryListing {
        ByIdDirectoryListing(reading: directory)
    }

    /// The volume's links that exist now (any case, dangling ones too), in candidate order.
    public func presentLinkPaths(volumeId: String) throws(DeviceError) -> [String] {
        presentLinks(names: try candidateLinkNames(volumeId: volumeId))
    }

    private func presentLinks(names: [String]) -> [String] {
        LinkInspection.entries(in: directory, namedLike: names)
    }

    /// Re-resolves `byIdPath` (the link recorded at attach) now, and returns the device only
    /// when it is a block device (a regular file only with `allowsRegularFiles`) of exactly
    /// `expectedSize` bytes, the size recorded at attach. What export serves and reconcile
    /// records must be the disk that was verified, not wherever the link points today.
    public func verifiedDevice(byIdPath: String, volumeId: String, expectedSize: Int64?) throws(DeviceError) -> ResolvedDevice {
        let device: ResolvedDevice
        switch try LinkInspection.state(ofLink: byIdPath) {
        case .resolved(let resolved):
            device = resolved
        case .absent, .dangling:
            throw DeviceError(.deviceMismatch,
                              "the by-id link \(byIdPath) of volume \(volumeId) does not resolve to a device now; "
                                + "check that the volume is still attached to this appliance (volumed reconcile)")
        }
        guard LinkInspection.isBlockDevice(device.devicePath)
            || (allowsRegularFiles && LinkInspection.isRegularFile(device.devicePath))
        else {
            throw DeviceError(.deviceMismatch,
                              "the by-id link \(byIdPath) of volume \(volumeId) resolves to \(device.devicePath), which is not a block "
                                + "device; refusing to use it: someone re-pointed the link, restore it (udevadm trigger) or re-attach the volume")
        }
        if let expectedSize, device.sizeBytes != UInt64(max(expectedSize, 0)) {
            throw DeviceError(.deviceMismatch,
                              "the by-id link \(byIdPath) of volume \(volumeId) resolves to \(device.devicePath) of \(device.sizeBytes) "
                                + "bytes, but the volume was attached with \(expectedSize) bytes; refusing to use it: check that the "
                                + "link belongs to this volume (rescan the disk after a resize, or re-attach it)")
        }
        return device
    }

    /// Returns as soon as a candidate link resolves to an existing device.
    ///
    /// Throws `device_link_timeout` naming the paths it waited for, `CancellationError`
    /// when the task is cancelled.
    public func waitForDevice(volumeId: String, timeout: Duration) async throws -> ResolvedDevice {
        try await measured(kind: "appear") { try await untimedWaitForDevice(volumeId: volumeId, timeout: timeout) }
    }

    private func untimedWaitForDevice(volumeId: String, timeout: Duration) async throws -> ResolvedDevice {
        let names = try candidateLinkNames(volumeId: volumeId)
        let links = try candidateLinkPaths(volumeId: volumeId)
        if let device = try Self.firstResolved(among: presentLinks(names: names)).device { return device }

        let deadline = ContinuousClock.now + timeout
        let directory = self.directory
        return try await DedicatedThread.run(name: "volumed-by-id-wait") { cancellation in
            let watch = try InotifyWatch()
            var lastDangling: [String: String] = [:]
            while true {
                // Watch first, then look: a link created between the look and the wait
                // still wakes the wait.
                try watch.watchDirectoryOrAncestor(directory)
                for target in lastDangling.values {
                    try watch.watchDirectoryOrAncestor(parentDirectory(of: target))
                }
                let scan = try Self.firstResolved(among: LinkInspection.entries(in: directory, namedLike: names))
                if let device = scan.device { return device }
                if !scan.dangling.isEmpty && scan.dangling != lastDangling {
                    // A link appeared before its target: watch where the target will
                    // appear, then look again before sleeping.
                    lastDangling = scan.dangling
                    continue
                }
                lastDangling = scan.dangling
                if ContinuousClock.now >= deadline {
                    throw Self.linkTimeout(links: links, dangling: scan.dangling, directory: directory, timeout: timeout)
                }
                _ = try watch.waitForChange(until: Self.nextLook(deadline), cancellation: cancellation)
            }
        }
    }

    /// Returns once none of the candidate links exists any more (after a detach).
    ///
    /// Throws `device_removal_timeout` naming the link still present.
    public func waitForRemoval(volumeId: String, timeout: Duration) async throws {
        try await measured(kind: "removal") { try await untimedWaitForRemoval(volumeId: volumeId, timeout: timeout) }
    }

    private func untimedWaitForRemoval(volumeId: String, timeout: Duration) async throws {
        let names = try candidateLinkNames(volumeId: volumeId)
        if presentLinks(names: names).isEmpty { return }

        let deadline = ContinuousClock.now + timeout
        let directory = self.directory
        try await DedicatedThread.run(name: "volumed-by-id-removal") { cancellation in
            let watch = try InotifyWatch()
            while true {
                try watch.watchDirectoryOrAncestor(directory)
                let present = LinkInspection.entries(in: directory, namedLike: names)
                if present.isEmpty { return }
                if try watch.waitForChange(until: Self.nextLook(deadline), cancellation: cancellation) == .timedOut,
                   ContinuousClock.now >= deadline {
                    throw DeviceError(
                        .deviceRemovalTimeout,
                        "by-id link \(present.joined(separator: ", ")) is still present after \(secondsText(timeout)); "
                            + "the guest has not released the disk: check that the detach finished in CloudStack "
                            + "and that nothing on this appliance holds the device open (mounts, nbd clients)"
                    )
                }
            }
        }
    }

    /// Counts the wait as in progress and records how long it took and how it ended
    /// (`volumed_by_id_wait_seconds`).
    private func measured<T: Sendable>(kind: String, _ wait: () async throws -> T) async throws -> T {
        let started = ContinuousClock.now
        activity.begin()
        defer { activity.end() }
        func record(_ outcome: String) {
            metrics.byIdWait(kind: kind, outcome: outcome, seconds: (ContinuousClock.now - started).seconds)
        }
        do {
            let value = try await wait()
            record("found")
            return value
        } catch let error as DeviceError where error.kind == .deviceLinkTimeout || error.kind == .deviceRemovalTimeout {
            record("timeout")
            throw error
        } catch is CancellationError {
            record("cancelled")
            throw CancellationError()
        } catch {
            record("error")
            throw error
        }
    }

    /// inotify wakes the wait; a look at least once a second as well is the safety net for
    /// an event that raced a watch being re-armed (a directory tree created in quick
    /// succession was seen to slip through, rarely, under load), as the queue keeps a
    /// fallback poll beside LISTEN.
    private static func nextLook(_ deadline: ContinuousClock.Instant) -> ContinuousClock.Instant {
        min(deadline, ContinuousClock.now + .seconds(1))
    }

    // MARK: - Scanning

    private struct Scan {
        var device: ResolvedDevice?
        /// Candidate link → the target it points at that does not exist yet.
        var dangling: [String: String] = [:]
    }

    private static func firstResolved(among links: [String]) throws(DeviceError) -> Scan {
        var scan = Scan()
        for link in links {
            switch try LinkInspection.state(ofLink: link) {
            case .resolved(let device):
                scan.device = device
                return scan
            case .dangling(let target):
                scan.dangling[link] = target
            case .absent:
                continue
            }
        }
        return scan
    }

    // MARK: - Messages

    private static func linkTimeout(
        links: [String], dangling: [String: String], directory: String, timeout: Duration
    ) -> DeviceError {
        if let (link, target) = dangling.sorted(by: { $0.key < $1.key }).first {
            return DeviceError(
                .deviceLinkTimeout,
                "by-id link \(link) appeared but its target \(target) did not within \(secondsText(timeout)); "
                    + "udev has not finished creating the device node: check that udev is running (udevadm settle)"
            )
        }
        let directoryNote = LinkInspection.resolvedPath(of: directory) == nil ? " (the directory \(directory) does not exist)" : ""
        return DeviceError(
            .deviceLinkTimeout,
            "no by-id link \(links[0]) appeared within \(secondsText(timeout)) "
                + "(also looked for \(links.dropFirst().joined(separator: " and ")))\(directoryNote); "
                + "check that the volume is attached to this appliance VM (VOLUMED_APPLIANCE_VM_ID), "
                + "that udev is running, and that VOLUMED_BY_ID_DIR names the right directory"
        )
    }
}
