import NBD
import DevServices
import Foundation
import Glibc
import Operations
import Synchronization
import TestSupport
import Testing

/// An export directory volumed cannot write fails the operation, not the worker.
///
/// The backend is configured with a path that is first a broken or unwritable directory
/// and then, through a symlink re-pointed by the test, the directory nbdkit serves: the
/// same worker must then complete an export.
@Suite("export directory failures")
struct ExportDirectoryFailureTests {
    @Test("a missing export directory fails the export naming the directory; the worker keeps running")
    func missingDirectory() async throws {
        try await assertDirectoryFailure(code: "export_directory_missing", expected: "does not exist") { _ in nil }
    }

    @Test("an unwritable export directory fails the export naming the directory; the worker keeps running")
    func unwritableDirectory() async throws {
        try await assertDirectoryFailure(code: "export_directory_unwritable", expected: "give the volumed user write access") { appliance in
            // root ignores mode bits: use a directory the kernel refuses entries in (sysfs).
            if getuid() == 0 { return "/sys" }
            let readOnly = try appliance.scratch.makeDirectory("read-only")
            chmod(readOnly, 0o555)
            return readOnly
        }
    }

    /// `broken` returns where the configured path points first (nil: nowhere).
    private func assertDirectoryFailure(
        code: String, expected: String, broken: @escaping @Sendable (NBDTestAppliance) throws -> String?
    ) async throws {
        let configured = LockedPath()
        try await ExportWorld.run(backend: { appliance in
            let path = appliance.scratch.child("configured-exports")
            if let target = try broken(appliance) { try makeSymlink(path, to: target) }
            configured.set(path)
            return NbdkitDirectoryBackend(exportDirectory: path, port: appliance.server.port)
        }) { world in
            let path = try #require(configured.value)
            let volume = randomVolumeId()
            try await world.attach(volume)

            let failed = try await world.export(volume)
            #expect(failed.status == "failed")
            #expect(failed.errorCode == code)
            #expect(failed.error?.contains("export directory \(path)") == true, "\(failed)")
            #expect(failed.error?.contains(expected) == true, "\(failed)")
            #expect(failed.error?.contains("VOLUMED_NBD_EXPORT_DIR") == true, "\(failed)")
            #expect(try await world.db.scalar("SELECT attempts::text FROM volume_operations WHERE id = '\(failed.id)'") == "1",
                    "a directory problem needs an operator; retrying cannot help")
            #expect(try await world.db.count("SELECT count(*)::text FROM vm_export_mappings") == 0)
            #expect(try world.exportDirectoryEntries().isEmpty)

            // The operator fixes the setting; the same worker exports without a restart.
            try repointSymlink(path, to: world.appliance.exports)
            let fixed = try await world.export(volume)
            #expect(fixed.status == "completed", "\(fixed)")
            #expect(try await world.mapping("migration-vol-\(volume)")?.status == "active")
        }
    }
}

/// The path the backend closure chose, handed to the test body.
final class LockedPath: Sendable {
    private let storage = Mutex<String?>(nil)
    func set(_ path: String) { storage.withLock { $0 = path } }
    var value: String? { storage.withLock { $0 } }
}
