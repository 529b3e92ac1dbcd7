import Foundation
import Operations
import Schema
import TestSupport
import Testing

/// The handlers and the `volume_operation_types` table name the same types, and a type the
/// table knows without a handler here fails clearly.
@Suite struct OperationRegistryTests {
    @Test func everyTypeInTheTableHasAHandlerAndEveryHandlerARow() async throws {
        try await HandlerHarness.with { h in
            let table = try await h.db.query("SELECT type FROM volume_operation_types ORDER BY type")
            #expect(OperationRegistry.types.map(\.rawValue).sorted() == table)
            // Without an NBD backend, export and unexport are left out (and fail as unsupported).
            #expect(Set(h.environment.handlers().keys) == Set(OperationRegistry.types).subtracting([.export, .unexport]))
        }
    }

    @Test func aTypeWithARowAndNoHandlerFailsAsUnsupported() async throws {
        try await HandlerHarness.with { h in
            try await h.db.query("INSERT INTO volume_operation_types VALUES ('defragment', true, false, 'any_worker')")
            let row = try await h.runOnFreshWorker("defragment", volume: randomVolumeId())
            #expect(row.status == "failed" && row.errorCode == "unsupported_type", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(row.error?.contains("'defragment'") == true)
            #expect(row.attempts == 1)
        }
    }
}
