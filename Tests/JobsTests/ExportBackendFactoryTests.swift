import NBD
import DevServices
import Foundation
import Operations
import Testing
import Worker

/// Choosing and checking the export backend from `VOLUMED_NBD_*` at start-up.
@Suite("export backend factory")
struct ExportBackendFactoryTests {
    @Test("with nothing set: nbdkit, /var/lib/volumed/exports, port 10809")
    func defaults() throws {
        let settings = try ExportBackendSettings(environment: ["VOLUMED_NBD_PORT": "", "PATH": "/usr/bin"])
        #expect(settings == ExportBackendSettings())
        #expect(settings.kind == .nbdkit)
        #expect(settings.exportDirectory == "/var/lib/volumed/exports")
        #expect(settings.configDirectory == "/etc/nbd-server/conf.d")
        #expect(settings.pidFile == "/run/nbd-server.pid")
        #expect(settings.port == 10809)
    }

    @Test("every variable is read")
    func readsEveryVariable() throws {
        let settings = try ExportBackendSettings(environment: [
            "VOLUMED_NBD_BACKEND": "nbd-server", "VOLUMED_NBD_EXPORT_DIR": "/srv/exports",
            "VOLUMED_NBD_CONFIG_DIR": "/srv/nbd/conf.d", "VOLUMED_NBD_PID_FILE": "/srv/nbd.pid", "VOLUMED_NBD_PORT": "10900",
        ])
        #expect(settings == ExportBackendSettings(
            kind: .nbdServer, exportDirectory: "/srv/exports", configDirectory: "/srv/nbd/conf.d", pidFile: "/srv/nbd.pid", port: 10900))
    }

    @Test("bad values fail naming the variable and what is allowed", arguments: [
        ("VOLUMED_NBD_BACKEND", "qemu-nbd", "VOLUMED_NBD_BACKEND must be one of nbdkit, nbd-server (got \"qemu-nbd\")"),
        ("VOLUMED_NBD_PORT", "0", "VOLUMED_NBD_PORT must be a TCP port number between 1 and 65535 (got \"0\")"),
        ("VOLUMED_NBD_PORT", "65536", "VOLUMED_NBD_PORT must be a TCP port number between 1 and 65535 (got \"65536\")"),
        ("VOLUMED_NBD_PORT", "nbd", "VOLUMED_NBD_PORT must be a TCP port number between 1 and 65535 (got \"nbd\")"),
        ("VOLUMED_NBD_EXPORT_DIR", "exports", "VOLUMED_NBD_EXPORT_DIR must be an absolute path"),
        ("VOLUMED_NBD_CONFIG_DIR", "conf.d", "VOLUMED_NBD_CONFIG_DIR must be an absolute path"),
        ("VOLUMED_NBD_PID_FILE", "nbd.pid", "VOLUMED_NBD_PID_FILE must be an absolute path"),
    ])
    func badValues(variable: String, value: String, message: String) throws {
        let error = #expect(throws: QueueFailure.self) { try ExportBackendSettings(environment: [variable: value]) }
        #expect(error?.code == "invalid_configuration")
        #expect(error?.message.hasPrefix(message) == true, "\(error?.message ?? "")")
    }

    @Test("the nbdkit backend serves the configured directory and port; a missing directory is refused at start-up")
    func nbdkitBackend() async throws {
        let scratch = try ScratchDirectory("volumed-factory")
        defer { scratch.remove() }
        let exports = try scratch.makeDirectory("exports")
        let backend = try await ExportBackendFactory.makeBackend(ExportBackendSettings(exportDirectory: exports, port: 10999))
        let nbdkit = try #require(backend as? NbdkitDirectoryBackend)
        #expect(nbdkit.exportDirectory == exports)
        #expect(nbdkit.port == 10999)

        let missing = scratch.child("missing")
        let error = await #expect(throws: NBDExportError.self) {
            try await ExportBackendFactory.makeBackend(ExportBackendSettings(exportDirectory: missing))
        }
        #expect(error?.kind == .exportDirectoryMissing)
        #expect(error?.message.contains("export directory \(missing) does not exist") == true)
        #expect(error?.message.contains("VOLUMED_NBD_EXPORT_DIR") == true)

        var flagged = ExportBackendSettings(exportDirectory: exports)
        flagged.port = 70000  // a flag's value goes through the same check
        let flagError = await #expect(throws: QueueFailure.self) { try await ExportBackendFactory.makeBackend(flagged) }
        #expect(flagError?.message.contains("VOLUMED_NBD_PORT") == true)
    }

    @Test("the nbd-server backend is refused below 3.25 at start-up, and accepted from 3.25 on")
    func nbdServerVersionGate() async throws {
        let scratch = try ScratchDirectory("volumed-factory-nbd-server")
        defer { scratch.remove() }
        let conf = try scratch.makeDirectory("conf.d")
        let settings = ExportBackendSettings(kind: .nbdServer, configDirectory: conf, pidFile: scratch.child("nbd.pid"), port: 10998)

        // The nbd-server this machine has (Debian bookworm ships 3.24).
        let installed = try await NbdServerVersion.installed()
        if installed < NbdServerVersion.firstSafeReload {
            let refused = await #expect(throws: NBDExportError.self) { try await ExportBackendFactory.makeBackend(settings) }
            #expect(refused?.kind == .nbdServerVersionUnsupported)
            #expect(refused?.message.contains("nbd-server \(installed) is installed") == true)
            #expect(refused?.message.contains("VOLUMED_NBD_BACKEND=nbdkit") == true)
        }

        // Stand-ins printing a given version, so both sides of the gate run on any machine.
        let old = try fakeServer(scratch, name: "nbd-server-3.24", version: "3.24")
        let refused = await #expect(throws: NBDExportError.self) {
            try await ExportBackendFactory.makeBackend(settings, nbdServerExecutable: old)
        }
        #expect(refused?.kind == .nbdServerVersionUnsupported)

        let fixed = try fakeServer(scratch, name: "nbd-server-3.25", version: "3.25")
        let backend = try await ExportBackendFactory.makeBackend(settings, nbdServerExecutable: fixed)
        let nbdServer = try #require(backend as? NbdServerConfBackend)
        #expect(nbdServer.configDirectory == conf)
        #expect(nbdServer.pidFile == scratch.child("nbd.pid"))
        #expect(nbdServer.port == 10998)
        #expect(nbdServer.serverExecutable == fixed)
    }

    /// A script answering `-V` like nbd-server does.
    private func fakeServer(_ scratch: ScratchDirectory, name: String, version: String) throws -> String {
        let path = scratch.child(name)
        try "#!/bin/sh\necho 'This is nbd-server version \(version)'\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }
}
