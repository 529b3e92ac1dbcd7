import Primitives
import Foundation
import Worker

/// The NBD settings of CONTRACT §7, read from the environment (flags override them by
/// assigning the properties afterwards).
public struct ExportBackendSettings: Sendable, Equatable {
    /// `VOLUMED_NBD_BACKEND`: `nbdkit` (default) or `nbd-server`.
    public var kind: NBDBackendKind
    /// `VOLUMED_NBD_EXPORT_DIR`: nbdkit's `dir=`.
    public var exportDirectory: String
    /// `VOLUMED_NBD_CONFIG_DIR`: nbd-server's `includedir`.
    public var configDirectory: String
    /// `VOLUMED_NBD_PID_FILE`: the nbd-server to reload.
    public var pidFile: String
    /// `VOLUMED_NBD_PORT`: what peers connect to, recorded in every export mapping.
    public var port: Int

    public static let defaultExportDirectory = "/var/lib/volumed/exports"
    public static let defaultConfigDirectory = "/etc/nbd-server/conf.d"
    public static let defaultPidFile = "/run/nbd-server.pid"
    public static let defaultPort = 10809

    public init(
        kind: NBDBackendKind = .nbdkit,
        exportDirectory: String = defaultExportDirectory,
        configDirectory: String = defaultConfigDirectory,
        pidFile: String = defaultPidFile,
        port: Int = defaultPort
    ) {
        self.kind = kind
        self.exportDirectory = exportDirectory
        self.configDirectory = configDirectory
        self.pidFile = pidFile
        self.port = port
    }

    /// Reads the `VOLUMED_NBD_*` variables; unset or empty ones take their defaults. Bad
    /// values fail with `invalid_configuration` naming the variable and the allowed values.
    public init(environment: [String: String]) throws {
        func value(_ name: String) -> String? {
            guard let text = environment[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            return text
        }
        self.init()
        if let text = value("VOLUMED_NBD_BACKEND") {
            guard let kind = NBDBackendKind(rawValue: text) else {
                throw Self.invalid(
                    "VOLUMED_NBD_BACKEND must be one of \(NBDBackendKind.allCases.map(\.rawValue).joined(separator: ", ")) "
                        + "(got \(quotedForMessage(text)))")
            }
            self.kind = kind
        }
        if let text = value("VOLUMED_NBD_PORT") {
            guard let port = Int(text), (1...65535).contains(port) else {
                throw Self.invalid("VOLUMED_NBD_PORT must be a TCP port number between 1 and 65535 (got \(quotedForMessage(text)))")
            }
            self.port = port
        }
        exportDirectory = try Self.absolutePath(value("VOLUMED_NBD_EXPORT_DIR"), setting: "VOLUMED_NBD_EXPORT_DIR") ?? exportDirectory
        configDirectory = try Self.absolutePath(value("VOLUMED_NBD_CONFIG_DIR"), setting: "VOLUMED_NBD_CONFIG_DIR") ?? configDirectory
        pidFile = try Self.absolutePath(value("VOLUMED_NBD_PID_FILE"), setting: "VOLUMED_NBD_PID_FILE") ?? pidFile
    }

    /// Checks values set by flags too: the same rules as the environment.
    public func validate() throws {
        guard (1...65535).contains(port) else {
            throw Self.invalid("VOLUMED_NBD_PORT must be a TCP port number between 1 and 65535 (got \(port))")
        }
        _ = try Self.absolutePath(exportDirectory, setting: "VOLUMED_NBD_EXPORT_DIR")
        _ = try Self.absolutePath(configDirectory, setting: "VOLUMED_NBD_CONFIG_DIR")
        _ = try Self.absolutePath(pidFile, setting: "VOLUMED_NBD_PID_FILE")
    }

    /// A relative path would depend on the directory volumed happens to start in, and
    /// nbdkit (another process) would resolve it elsewhere.
    private static func absolutePath(_ path: String?, setting: String) throws -> String? {
        guard let path else { return nil }
        guard path.hasPrefix("/"), !path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw invalid("\(setting) must be an absolute path without control characters (got \(quotedForMessage(path)))")
        }
        return path
    }

    static func invalid(_ message: String) -> QueueFailure {
        QueueFailure(code: "invalid_configuration", message: message, isTransient: false)
    }
}

/// Builds the export backend the settings name, checking at start-up what would otherwise
/// fail only at the first export: the directory it writes, and for nbd-server its version
/// (3.24's reload corrupts exports, see `NbdServerVersion.firstSafeReload`).
public enum ExportBackendFactory {
    /// `nbdServerExecutable` is the nbd-server whose version is checked (`$PATH` lookup).
    public static func makeBackend(
        _ settings: ExportBackendSettings, nbdServerExecutable: String = "nbd-server"
    ) async throws -> any NBDExportBackend {
        try settings.validate()
        switch settings.kind {
        case .nbdkit:
            let backend = NbdkitDirectoryBackend(exportDirectory: settings.exportDirectory, port: settings.port)
            try ExportDirectory(path: settings.exportDirectory, setting: "VOLUMED_NBD_EXPORT_DIR", reader: "the dir= nbdkit serves")
                .requireExisting()
            return backend
        case .nbdServer:
            let version = try await NbdServerVersion.installed(executable: nbdServerExecutable)
            try NbdServerVersion.requireSafeReload(version)
            try ExportDirectory(path: settings.configDirectory, setting: "VOLUMED_NBD_CONFIG_DIR", reader: "nbd-server's includedir")
                .requireExisting()
            return NbdServerConfBackend(
                configDirectory: settings.configDirectory, pidFile: settings.pidFile, port: settings.port,
                serverExecutable: nbdServerExecutable)
        }
    }
}
