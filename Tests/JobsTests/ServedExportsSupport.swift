import NBD
import DevServices
import Foundation
import Operations
import Schema
import Worker

extension HandlerHarness {
    /// A real nbdkit serving an export directory beside the by-id directory, and the worker
    /// handlers whose export, unexport and forced-detach steps publish there; nbdkit is stopped
    /// afterwards, also when `body` throws.
    func withServedExports(
        _ body: (_ nbdkit: NbdkitServer, _ handlers: [OperationType: any OperationHandler]) async throws -> Void
    ) async throws {
        let exports = byIDDirectory.deletingLastPathComponent().appendingPathComponent("exports").path
        try FileManager.default.createDirectory(atPath: exports, withIntermediateDirectories: true)
        let nbdkit = try await NbdkitServer.start(exportDirectory: exports)
        let backend = NbdkitDirectoryBackend(exportDirectory: exports, host: nbdkit.host, port: nbdkit.port)
        var environment = self.environment
        environment.exportRemover = BackendExportRemover(backend: backend)
        do {
            try await body(nbdkit, environment.handlers(exportBackend: backend))
        } catch {
            await nbdkit.stop()
            throw error
        }
        await nbdkit.stop()
    }
}
