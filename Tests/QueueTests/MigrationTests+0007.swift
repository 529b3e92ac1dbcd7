import Foundation
import PostgresNIO
import Schema
import TestSupport
import Testing

/// Migration 0007 (operation types in a table) on a database at 0006 with rows of every
/// kind, and the rules and routing read from the table afterwards.
extension MigrationTests {
    @Test func upgradingFrom0006KeepsEveryRowAndTheRulesAndRoutingComeFromTheTypesTable() async throws {
        let text = try await TestCluster.shared.emptyDatabase()
        let url = try DatabaseURL(text)
        try await PostgresClient.withRunning(url, maximumConnections: 6, logger: testLogger) { client in
            let db = TestDatabase(urlText: text, url: url, client: client)
            try await Migrator(migrations: Array(Migration.embedded.prefix(6)), logger: testLogger).migrate(client)
            let (attached, elsewhere) = (randomVolumeId(), randomVolumeId())
            let otherAppliance = UUID().uuidString.lowercased()
            // Under 0006: one row of each type, one of them executing under a claim, one completed.
            try await db.query("INSERT INTO volumed_appliances (vm_id) VALUES ('\(applianceVM)'), ('\(otherAppliance)')")
            try await db.query("""
                INSERT INTO device_mappings (volume_id, vm_id, operation_mode, by_id_path, size_bytes)
                VALUES ('\(elsewhere)', '\(otherAppliance)', 'appliance', '/dev/disk/by-id/virtio-x', 1073741824)
                """)
            try await db.query("""
                INSERT INTO volume_operations (type, volume_id, vm_id, request) VALUES
                    ('create', NULL, NULL, '{"name": "v", "size": 1073741824}'),
                    ('attach', '\(attached)', '\(applianceVM)', '{}'),
                    ('export', '\(randomVolumeId())', '\(applianceVM)', '{}'),
                    ('unexport', '\(randomVolumeId())', NULL, '{}'),
                    ('delete', '\(randomVolumeId())', NULL, '{}'),
                    ('cleanup', '\(randomVolumeId())', '\(applianceVM)', '{}'),
                    ('detach', '\(elsewhere)', NULL, '{}')
                """)
            let claimed = try await db.query(
                "SELECT id::text FROM volume_operations_claim_with_token('old', '\(applianceVM)', 1, 60000)")
            #expect(claimed.count == 1)
            let cancelled = try await insertOperation(db, volume: randomVolumeId())
            #expect(try await db.scalar("SELECT volume_operation_cancel('\(cancelled)')") == "cancelled")
            let before = try await db.query("SELECT id || ' ' || seq || ' ' || type || ' ' || status FROM volume_operations ORDER BY seq")

            try await Migrator(logger: testLogger).migrate(client)

            #expect(try await db.query("SELECT id || ' ' || seq || ' ' || type || ' ' || status FROM volume_operations ORDER BY seq") == before)
            #expect(try await db.query("SELECT type || ' ' || runs_on FROM volume_operation_types ORDER BY type") == [
                "attach registered_vm", "cleanup vm_appliance", "create any_worker", "delete volume_appliance",
                "detach volume_appliance", "export volume_appliance", "resize volume_appliance", "unexport volume_appliance",
            ])

            // The rules clients saw as CHECKs, under the same names, now read from the table.
            await expectRejected(db, "INSERT INTO volume_operations (type, volume_id) VALUES ('defragment', '\(volumeA)')",
                                 constraint: "volume_operations_type_known")
            await expectRejected(db, "INSERT INTO volume_operations (type) VALUES ('resize')",
                                 constraint: "volume_operations_volume_id_required")
            await expectRejected(db, "INSERT INTO volume_operations (type, volume_id) VALUES ('export', '\(volumeA)')",
                                 constraint: "volume_operations_vm_id_required")
            await expectRejected(db, "UPDATE volume_operations SET volume_id = NULL WHERE type = 'unexport'",
                                 constraint: "volume_operations_volume_id_required")
            await expectRejected(db, "DELETE FROM volume_operation_types WHERE type = 'detach'",
                                 constraint: "volume_operations_type_known")

            // Routing from the table: the other appliance's volume stays for its worker; the
            // rest (the create, the attach to this appliance, …) are this worker's.
            let resize = try await db.scalar("""
                INSERT INTO volume_operations (type, volume_id, request) VALUES ('resize', '\(elsewhere)', '{"size": 2147483648}')
                RETURNING id::text
                """)!
            let mine = try await db.query(
                "SELECT type FROM volume_operations_claim_with_token('new', '\(applianceVM)', 100, 60000) ORDER BY type")
            #expect(mine == ["attach", "cleanup", "delete", "export", "unexport"])
            #expect(try await db.query(
                "SELECT type FROM volume_operations_claim_with_token('other', '\(otherAppliance)', 100, 60000)") == ["detach"])
            #expect(try await db.scalar("SELECT status FROM volume_operations WHERE id = '\(resize)'") == "pending",
                    "behind the detach of the same volume")

            // A new type is one row: accepted at once, and routed as the row says (here: on the
            // appliance its vm_id names, which no CASE of 0005 would have done).
            try await db.query("INSERT INTO volume_operation_types VALUES ('defragment', true, false, 'vm_appliance')")
            let defragment = try await insertOperation(db, type: "defragment", volume: randomVolumeId(), vm: otherAppliance)
            #expect(try await db.query("SELECT id::text FROM volume_operations_claim_with_token('new', '\(applianceVM)', 100, 60000)").isEmpty)
            #expect(try await db.query("SELECT id::text FROM volume_operations_claim_with_token('other', '\(otherAppliance)', 100, 60000)")
                    == [defragment.uuidString.lowercased()])
        }
    }
}
