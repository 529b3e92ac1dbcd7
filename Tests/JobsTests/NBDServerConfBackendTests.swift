import NBD
import DevServices
import Foundation
import Operations
import Testing

/// The nbd-server backend: the original daemon's one-file-per-export layout, and the
/// refusal to reload an nbd-server with the 3.24 use-after-free.
@Suite("nbd-server conf.d backend")
struct NBDServerConfBackendTests {
    static let volumeId = "b3bb9310-1b59-4f62-97e8-2c3f0a1d9e44"

    @Test("each export is one atomically written <name>.conf with its own section")
    func exportFileLayout() async throws {
        let scratch = try ScratchDirectory("volumed-nbd-conf")
        defer { scratch.remove() }
        let confDir = try scratch.makeDirectory("conf.d")
        let first = try scratch.randomFile("first", count: 4096)
        let second = try scratch.randomFile("second", count: 4096)
        let backend = NbdServerConfBackend(configDirectory: confDir, pidFile: scratch.child("nbd-server.pid"), port: 10809)
        let name = try ExportName.forVolume(Self.volumeId)

        let path = try backend.writeExportFile(exportName: name, devicePath: first.path)
        #expect(path == confDir + "/" + name + ".conf")
        #expect(
            try String(contentsOfFile: path, encoding: .utf8) == """
                [\(name)]
                exportname = \(first.path)
                readonly = false
                multifile = false
                copyonwrite = false

                """
        )
        // Rewriting re-points in place and leaves no temporary file for includedir to trip on.
        try backend.writeExportFile(exportName: name, devicePath: second.path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: confDir) == [name + ".conf"])
        #expect(try await backend.listExports() == [ExportEntry(name: name, targetPath: second.path)])
        #expect(backend.kind == .nbdServer)

        try await backend.remove(exportName: name)
        try await backend.remove(exportName: name)  // idempotent
        #expect(try FileManager.default.contentsOfDirectory(atPath: confDir).isEmpty)

        let hostile = #expect(throws: NBDExportError.self) { try backend.writeExportFile(exportName: "x]\n[generic", devicePath: first.path) }
        #expect(hostile?.kind == .invalidExportName)
        let injected = #expect(throws: NBDExportError.self) { try backend.writeExportFile(exportName: name, devicePath: first.path + "\nreadonly = true") }
        #expect(injected?.kind == .invalidDevicePath)
        #expect(try FileManager.default.contentsOfDirectory(atPath: confDir).isEmpty)
    }

    @Test("the file is what a real nbd-server loads at start: it serves the bytes under the export name")
    func realServerLoadsTheFile() async throws {
        let scratch = try ScratchDirectory("volumed-nbd-real")
        defer { scratch.remove() }
        let confDir = try scratch.makeDirectory("conf.d")
        let disk = try scratch.randomFile("disk", count: 1024 * 1024)
        let link = scratch.child("virtio-b3bb93101b594f6297e8")
        try makeSymlink(link, to: disk.path)
        let backend = NbdServerConfBackend(configDirectory: confDir)
        let name = try ExportName.forVolume(Self.volumeId)
        try backend.writeExportFile(exportName: name, devicePath: link)

        let port = try NbdkitServer.freeLoopbackPort()
        let config = scratch.child("config")
        try "[generic]\nport = \(port)\nlistenaddr = 127.0.0.1\nincludedir = \(confDir)\n".write(toFile: config, atomically: true, encoding: .utf8)
        // -d: stay in the foreground, so the test owns the process and can stop it.
        let server = try ChildProcess(executable: try NbdTools.locate("nbd-server"), arguments: ["-C", config, "-d"])

        let copy: ToolResult
        var size: UInt64?
        do {
            for _ in 0..<100 where size == nil {
                size = try? await NBDHandshake.check(host: "127.0.0.1", port: port, exportName: name, timeout: .seconds(2))
                if size == nil { try await Task.sleep(for: .milliseconds(50)) }
            }
            copy = try await runTool(try NbdTools.nbdcopy().path, ["nbd://127.0.0.1:\(port)/\(name)", "-"])
        } catch {
            server.send(SIGTERM)
            _ = await server.waitForExit()
            throw error
        }
        server.send(SIGTERM)
        _ = await server.waitForExit()
        // The handshake proves nbd-server parsed the file and knows the name; the
        // bytes prove it follows the link to the volume.
        #expect(size != nil, "nbd-server never answered for \(name)")
        try copy.requireSuccess()
        #expect(copy.standardOutput == disk.bytes)
    }

    @Test(
        "versions parse from nbd-server -V",
        arguments: [
            ("This is nbd-server version 3.24", NbdServerVersion(major: 3, minor: 24)),
            ("This is nbd-server version 3.25\n", NbdServerVersion(major: 3, minor: 25)),
            ("This is nbd-server version 3.26.1", NbdServerVersion(major: 3, minor: 26, patch: 1)),
        ]
    )
    func parseVersions(output: String, expected: NbdServerVersion) {
        #expect(NbdServerVersion.parse(output) == expected)
    }

    @Test("output without a version is not mistaken for one")
    func parseGarbage() {
        #expect(NbdServerVersion.parse("nbd-server: unknown option") == nil)
        #expect(NbdServerVersion.parse("") == nil)
    }

    @Test("only 3.25 and later may be reloaded")
    func reloadThreshold() {
        let refused = #expect(throws: NBDExportError.self) { try NbdServerVersion.requireSafeReload(NbdServerVersion(major: 3, minor: 24)) }
        #expect(refused?.kind == .nbdServerVersionUnsupported)
        #expect(throws: Never.self) { try NbdServerVersion.requireSafeReload(NbdServerVersion(major: 3, minor: 25)) }
        #expect(throws: Never.self) { try NbdServerVersion.requireSafeReload(NbdServerVersion(major: 4, minor: 0)) }
    }

    @Test("publishing through the installed nbd-server 3.24 is refused before anything is written")
    func refusesInstalledServer() async throws {
        let scratch = try ScratchDirectory("volumed-nbd-refuse")
        defer { scratch.remove() }
        let confDir = try scratch.makeDirectory("conf.d")
        let disk = try scratch.randomFile("disk", count: 4096)
        let installed = try await NbdServerVersion.installed()
        try #require(installed < NbdServerVersion.firstSafeReload, "this test is about the nbd-server 3.24 that Debian bookworm ships; found \(installed)")

        let backend = NbdServerConfBackend(configDirectory: confDir, pidFile: scratch.child("nbd-server.pid"))
        let error = await #expect(throws: NBDExportError.self) {
            try await backend.publish(exportName: try ExportName.forVolume(Self.volumeId), devicePath: disk.path)
        }
        #expect(error?.kind == .nbdServerVersionUnsupported)
        #expect(error?.isTransient == false)
        #expect(error?.message.contains("nbd-server \(installed) is installed") == true)
        #expect(error?.message.contains("append_new_servers") == true)
        #expect(error?.message.contains("3.25") == true)
        #expect(error?.message.contains("VOLUMED_NBD_BACKEND=nbdkit") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: confDir).isEmpty)
    }

    @Test("a missing nbd-server binary is a clear error, not a crash")
    func missingBinary() async throws {
        let error = await #expect(throws: NBDExportError.self) {
            try await NbdServerVersion.installed(executable: "/nonexistent/nbd-server")
        }
        #expect(error?.kind == .nbdServerVersionUnknown)
        #expect(error?.message.contains("VOLUMED_NBD_BACKEND=nbdkit") == true)
    }
}
