import NBD
import DevServices
import Foundation
import Glibc
import Operations
import Testing

/// The default export backend against a real nbdkit on loopback.
@Suite("nbdkit directory backend")
struct NBDNbdkitBackendTests {
    static let volumeA = "b3bb9310-1b59-4f62-97e8-2c3f0a1d9e44"
    static let volumeB = "60338035-92fb-4d27-98d4-b60ad4b38b87"

    @Test("a published export serves the volume's bytes, its size and shows in the listing")
    func publishAndReadBack() async throws {
        let appliance = try await NBDTestAppliance.start()
        do {
            let volume = try appliance.attachVolume(Self.volumeA, bytes: 3 * 1024 * 1024 + 4096)
            let name = try ExportName.forVolume(Self.volumeA)
            try await appliance.backend.publish(exportName: name, devicePath: volume.byIdPath)

            let read = try await appliance.readExport(name)
            #expect(read.count == volume.bytes.count)
            #expect(read == volume.bytes)
            let size = try await NBDHandshake.check(host: "127.0.0.1", port: appliance.server.port, exportName: name)
            #expect(size == UInt64(volume.bytes.count))
            #expect(try await appliance.backend.listExports() == [ExportEntry(name: name, targetPath: volume.byIdPath)])
            #expect(appliance.backend.kind == .nbdkit)
            #expect(appliance.backend.port == appliance.server.port)
        } catch {
            await appliance.stop()
            throw error
        }
        await appliance.stop()
    }

    @Test("the handshake names the export the server does not have")
    func unknownExport() async throws {
        let appliance = try await NBDTestAppliance.start()
        let name = try ExportName.forVolume(Self.volumeB)
        let error = await #expect(throws: NBDExportError.self) {
            try await NBDHandshake.check(host: "127.0.0.1", port: appliance.server.port, exportName: name)
        }
        await appliance.stop()
        #expect(error?.kind == .exportUnknown)
        #expect(error?.message.contains("NBD server at 127.0.0.1:\(appliance.server.port) has no export named \(name)") == true)
        #expect(error?.message.contains("VOLUMED_NBD_EXPORT_DIR") == true)
    }

    @Test("removal hides the export from new clients; other exports and open connections keep reading")
    func removeWhileServing() async throws {
        let appliance = try await NBDTestAppliance.start()
        do {
            let volumeA = try appliance.attachVolume(Self.volumeA, bytes: 8 * 1024 * 1024)
            let volumeB = try appliance.attachVolume(Self.volumeB, bytes: 1024 * 1024)
            let nameA = try ExportName.forVolume(Self.volumeA)
            let nameB = try ExportName.forVolume(Self.volumeB)
            try await appliance.backend.publish(exportName: nameA, devicePath: volumeA.byIdPath)
            try await appliance.backend.publish(exportName: nameB, devicePath: volumeB.byIdPath)

            // A reader that opened A before the removal: one connection, one 64 KiB request
            // at a time, blocked on its stdout pipe until the test reads it.
            let copy = Process()
            copy.executableURL = try NbdTools.nbdcopy()
            copy.arguments = ["--synchronous", "--connections=1", "--request-size=65536", appliance.server.uri(exportName: nameA), "-"]
            let pipe = Pipe()
            copy.standardOutput = pipe
            let (exitStatus, exited) = AsyncStream<Int32>.makeStream()
            copy.terminationHandler = { finished in
                exited.yield(finished.terminationStatus)
                exited.finish()
            }
            try copy.run()
            let reader = pipe.fileHandleForReading
            let head = try await readOffPool { reader.readData(ofLength: 65536) }
            #expect(head.count > 0, "nbdcopy produced no data: it never connected")

            try await appliance.backend.remove(exportName: nameA)
            try await appliance.backend.remove(exportName: nameA)  // idempotent

            let unknown = await #expect(throws: NBDExportError.self) {
                try await NBDHandshake.check(host: "127.0.0.1", port: appliance.server.port, exportName: nameA)
            }
            #expect(unknown?.kind == .exportUnknown)
            #expect(try await appliance.readExport(nameB) == volumeB.bytes)
            #expect(try await appliance.backend.listExports().map(\.name) == [nameB])

            let rest = try await readOffPool { reader.readDataToEndOfFile() }
            var statuses = exitStatus.makeAsyncIterator()
            #expect(await statuses.next() == 0)
            #expect(head.count + rest.count == volumeA.bytes.count)
            #expect(head + rest == volumeA.bytes)
        } catch {
            await appliance.stop()
            throw error
        }
        await appliance.stop()
    }

    @Test("after a re-attach the by-id link points at another device, and the same export serves it")
    func repointedByIdLink() async throws {
        let appliance = try await NBDTestAppliance.start()
        do {
            let name = try ExportName.forVolume(Self.volumeA)
            let before = try appliance.attachVolume(Self.volumeA, bytes: 512 * 1024)
            try await appliance.backend.publish(exportName: name, devicePath: before.byIdPath)
            #expect(try await appliance.readExport(name) == before.bytes)

            // "Reboot": udev re-creates the link towards the device's new node.
            let after = try appliance.attachVolume(Self.volumeA, bytes: 768 * 1024)
            #expect(after.byIdPath == before.byIdPath)
            #expect(try await appliance.readExport(name) == after.bytes)
            #expect(try await NBDHandshake.check(host: "127.0.0.1", port: appliance.server.port, exportName: name) == 768 * 1024)

            // Re-publishing the same name is an atomic re-point, not an error.
            try await appliance.backend.publish(exportName: name, devicePath: after.byIdPath)
            #expect(try await appliance.readExport(name) == after.bytes)
        } catch {
            await appliance.stop()
            throw error
        }
        await appliance.stop()
    }

    @Test("hostile names and unsafe paths are refused and leave nothing behind")
    func hostileInput() async throws {
        let scratch = try ScratchDirectory("volumed-nbd-hostile")
        defer { scratch.remove() }
        let exports = try scratch.makeDirectory("exports")
        let disk = try scratch.randomFile("disk", count: 4096)
        let backend = NbdkitDirectoryBackend(exportDirectory: exports)

        for name in ["../x", "x]", "a\nb", "[generic]", ".hidden", "a/b"] {
            let error = await #expect(throws: NBDExportError.self) { try await backend.publish(exportName: name, devicePath: disk.path) }
            #expect(error?.kind == .invalidExportName)
            let removeError = await #expect(throws: NBDExportError.self) { try await backend.remove(exportName: name) }
            #expect(removeError?.kind == .invalidExportName)
        }
        let relative = await #expect(throws: NBDExportError.self) { try await backend.publish(exportName: "ok", devicePath: "disk") }
        #expect(relative?.kind == .invalidDevicePath)
        let newline = await #expect(throws: NBDExportError.self) { try await backend.publish(exportName: "ok", devicePath: disk.path + "\n[x]") }
        #expect(newline?.kind == .invalidDevicePath)
        let missing = await #expect(throws: NBDExportError.self) { try await backend.publish(exportName: "ok", devicePath: scratch.child("no-such-disk")) }
        #expect(missing?.kind == .exportTargetMissing)
        #expect(missing?.isTransient == true)

        #expect(try FileManager.default.contentsOfDirectory(atPath: exports).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).sorted() == ["disk", "exports"])
    }

    @Test("a missing export directory is a permanent error naming the directory and the setting")
    func missingDirectory() async throws {
        let scratch = try ScratchDirectory("volumed-nbd-missing")
        defer { scratch.remove() }
        let disk = try scratch.randomFile("disk", count: 4096)
        let directory = scratch.child("not-there")
        let backend = NbdkitDirectoryBackend(exportDirectory: directory)

        let error = await #expect(throws: NBDExportError.self) { try await backend.publish(exportName: "migration-vol-x", devicePath: disk.path) }
        #expect(error?.kind == .exportDirectoryMissing)
        #expect(error?.isTransient == false)
        #expect(error?.message.contains("export directory \(directory) does not exist") == true)
        #expect(error?.message.contains("VOLUMED_NBD_EXPORT_DIR") == true)
        let listError = await #expect(throws: NBDExportError.self) { try await backend.listExports() }
        #expect(listError?.kind == .exportDirectoryMissing)
    }

    @Test("an export directory the process may not write is a permanent error naming the fix")
    func unwritableDirectory() async throws {
        let scratch = try ScratchDirectory("volumed-nbd-readonly")
        defer {
            chmod(scratch.child("read-only"), 0o755)
            scratch.remove()
        }
        let disk = try scratch.randomFile("disk", count: 4096)
        // root ignores mode bits, so as root use a directory the kernel itself refuses
        // entries in (sysfs answers EPERM); otherwise a plain read-only directory.
        let directory: String
        if getuid() == 0 {
            directory = "/sys"
        } else {
            directory = try scratch.makeDirectory("read-only")
            chmod(directory, 0o555)
        }
        let backend = NbdkitDirectoryBackend(exportDirectory: directory)
        let error = await #expect(throws: NBDExportError.self) { try await backend.publish(exportName: "volumed-test-export", devicePath: disk.path) }
        #expect(error?.kind == .exportDirectoryUnwritable)
        #expect(error?.isTransient == false)
        #expect(error?.message.contains("export directory \(directory)") == true)
        #expect(error?.message.contains("VOLUMED_NBD_EXPORT_DIR") == true)
        #expect(!FileManager.default.fileExists(atPath: directory + "/volumed-test-export"))
    }

    @Test("a handshake with nothing listening, or with a server that never answers, fails clearly")
    func handshakeFailures() async throws {
        let silent = try SilentListener()
        defer { silent.close() }
        let start = ContinuousClock.now
        let timeout = await #expect(throws: NBDExportError.self) {
            try await NBDHandshake.check(host: "127.0.0.1", port: silent.port, exportName: "migration-vol-x", timeout: .milliseconds(500))
        }
        #expect(timeout?.kind == .handshakeTimeout)
        #expect(timeout?.message.contains("127.0.0.1:\(silent.port)") == true)
        #expect(ContinuousClock.now - start < .seconds(3))

        let closedPort = try NbdkitServer.freeLoopbackPort()
        let refused = await #expect(throws: NBDExportError.self) {
            try await NBDHandshake.check(host: "127.0.0.1", port: closedPort, exportName: "migration-vol-x", timeout: .seconds(2))
        }
        #expect(refused?.kind == .connectionFailed)
        #expect(refused?.isTransient == true)
        #expect(refused?.message.contains("cannot connect to the NBD server at 127.0.0.1:\(closedPort)") == true)
    }
}
