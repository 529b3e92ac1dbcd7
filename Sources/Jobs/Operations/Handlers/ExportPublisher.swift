import Devices
import NBD
import Foundation
import Logging
import Worker

/// Putting a volume's NBD export on the wire and checking it answers: the one implementation
/// behind the `export` operation and an appliance `attach` that asks for an export.
///
/// Both steps are safe to repeat (a retry or a rescued operation runs them again): publishing
/// re-points the entry atomically and the handshake only reads. Neither writes a row: the
/// caller writes `vm_export_mappings` in the transaction that completes its operation, so a
/// row never exists for an export that was not checked.
public struct ExportPublisher: Sendable {
    public let backend: any NBDExportBackend
    /// Where the handshake check connects: the appliance itself, whatever address the NBD
    /// server listens on for peers.
    public let checkHost: String
    public let checkTimeout: Duration

    public init(backend: any NBDExportBackend, checkHost: String = "127.0.0.1", checkTimeout: Duration = .seconds(5)) {
        self.backend = backend
        self.checkHost = checkHost
        self.checkTimeout = checkTimeout
    }

    /// Publishes `exportName` for `devicePath` and checks a client can open it and is served
    /// `expectedSize` bytes, the size of the disk the caller just verified behind the link (it
    /// could have been re-pointed between that check and the publish); a failed check
    /// withdraws the entry (nothing records it yet, so it must not keep serving).
    func publishChecked(exportName: String, devicePath: String, expectedSize: UInt64, context: OperationContext) async throws {
        try context.checkCancellation()
        try await backend.publish(exportName: exportName, devicePath: devicePath)
        do {
            try await checkServes(exportName: exportName, devicePath: devicePath, expectedSize: expectedSize, context: context)
            context.logger.info("export published", metadata: ["export": "\(exportName)", "device": "\(devicePath)", "size": "\(expectedSize)"])
        } catch {
            try? await backend.remove(exportName: exportName)
            throw error
        }
    }

    /// A client opens the export and is served exactly `expectedSize` bytes.
    private func checkServes(exportName: String, devicePath: String, expectedSize: UInt64, context: OperationContext) async throws {
        let size = try await NBDHandshake.check(host: checkHost, port: backend.port, exportName: exportName, timeout: checkTimeout)
        guard size == expectedSize else {
            throw DeviceError(.deviceMismatch,
                              "export \(exportName) serves \(size) bytes through \(devicePath), but the verified disk has "
                                + "\(expectedSize); the by-id link changed while exporting: check it and export again")
        }
    }

    /// An export an active row already records: its entry is recreated when it went missing
    /// (an operator cleaned the directory, a restore), then checked. The row is the truth,
    /// the entry follows it.
    func ensureServing(exportName: String, devicePath: String, expectedSize: UInt64, context: OperationContext) async throws {
        let entries = try await backend.listExports()
        if !entries.contains(where: { $0.name == exportName }) {
            context.logger.notice("active export had no backend entry; recreating it",
                                  metadata: ["export": "\(exportName)", "device": "\(devicePath)"])
            try await backend.publish(exportName: exportName, devicePath: devicePath)
        }
        try await checkServes(exportName: exportName, devicePath: devicePath, expectedSize: expectedSize, context: context)
    }
}
