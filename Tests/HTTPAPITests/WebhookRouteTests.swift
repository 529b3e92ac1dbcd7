import CloudStackSimulator
import Daemon
import DevServices
import Foundation
import HTTPAPI
import ServiceLifecycle
import TestSupport
import Testing

/// CloudStack webhooks: the simulator delivers them as WebhookDeliveryThread does, and
/// `POST /cloudstack/webhook` of `volumed serve` takes them as a wake-up only.
@Suite("CloudStack webhooks")
struct WebhookRouteTests {
    static let secret = "webhook-test-secret"
    static let path = "/cloudstack/webhook"

    /// Base64(HMAC-SHA256(payload, secret)) computed by openssl, independently of volumed.
    static func opensslSignature(_ payload: String, secret: String) async throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("webhook-\(UUID().uuidString).json")
        try Data(payload.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let output = try await ProcessRunner.run(
            ["/bin/sh", "-c", #"openssl dgst -sha256 -hmac "$KEY" -binary "$FILE" | base64 -w0"#],
            environment: ["KEY": secret, "FILE": file.path])
        return output.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func deliver(_ world: APIWorld, _ payload: String, signature: String?) async throws -> APIWorld.Answer {
        var headers = [("X-CS-Event-ID", UUID().uuidString.lowercased()), ("X-CS-Event", "VOLUME.CREATE")]
        if let signature { headers.append(("X-CS-Signature", signature)) }
        // CloudStack sends no bearer token: the signature is the route's authentication.
        return try await world.send(.POST, Self.path, json: payload, headers: headers, authorization: .some(nil))
    }

    @Test("the route answers 200 to a good signature (no bearer token needed), 401 to a wrong or missing one, and 503 when no secret is set")
    func signatures() async throws {
        let payload = #"{"entity":"Volume","entityuuid":"6e4c1f0a-0000-4000-8000-000000000001","event":"VOLUME.CREATE","status":"Completed"}"#
        try await APIWorld.with(token: "api-token", webhookSecret: Self.secret) { world in
            let good = try await deliver(world, payload, signature: try await Self.opensslSignature(payload, secret: Self.secret))
            #expect(good.status == 200, "\(good.text)")
            // A duplicate is harmless: the same answer, nothing kept.
            let again = try await deliver(world, payload, signature: try await Self.opensslSignature(payload, secret: Self.secret))
            #expect(again.status == 200)
            let wrong = try await deliver(world, payload, signature: try await Self.opensslSignature(payload, secret: "another"))
            #expect(wrong.status == 401)
            #expect(!wrong.text.contains(Self.secret))
            let tampered = try await deliver(world, payload.replacingOccurrences(of: "0001", with: "0002"),
                                             signature: try await Self.opensslSignature(payload, secret: Self.secret))
            #expect(tampered.status == 401)
            #expect(try await deliver(world, payload, signature: nil).status == 401)
            #expect(try await deliver(world, payload, signature: "not base64 at all").status == 401)
            #expect(try await world.operationCount() == 0)
        }
        try await APIWorld.with { world in
            let off = try await deliver(world, payload, signature: try await Self.opensslSignature(payload, secret: Self.secret))
            #expect(off.status == 503)
            #expect(off.text.contains("VOLUMED_WEBHOOK_SECRET"))
        }
    }

    @Test("the simulator posts each completed event with CloudStack's headers, payload fields and HMAC-SHA256 signature")
    func simulatorDeliveryShape() async throws {
        try await APIWorld.with(webhookSecret: Self.secret) { world in
            var faults = await world.simulator.faults()
            faults.webhookPayloadURL = world.baseURL + Self.path
            faults.webhookSecretKey = Self.secret
            await world.simulator.setFaults(faults)
            let volume = try await world.cloudVolume()
            let delivery = try #require(await world.simulator.webhookDeliveries().first { $0.entityUUID == volume })
            #expect(delivery.event == "VOLUME.CREATE")
            let fields = try #require(jsonObject(delivery.payload))
            #expect(fields["event"] as? String == "VOLUME.CREATE")
            #expect(fields["status"] as? String == "Completed")
            #expect(fields["entity"] as? String == "Volume")
            #expect(fields["entityuuid"] as? String == volume)
            #expect(fields["eventDateTime"] is String && fields["account"] is String)
            #expect(delivery.signature == (try await Self.opensslSignature(delivery.payload, secret: Self.secret)))
            try await eventually(timeout: .seconds(5), "the delivery to be answered") {
                await world.simulator.webhookDeliveries().first { $0.entityUUID == volume }?.answers == [200]
            }
            // Duplication: the same event, the same body and signature, delivered twice.
            faults.webhookDuplicateRate = 1
            await world.simulator.setFaults(faults)
            let twice = try await world.cloudVolume()
            try await eventually(timeout: .seconds(5), "both copies to be answered") {
                await world.simulator.webhookDeliveries().first { $0.entityUUID == twice }?.answers == [200, 200]
            }
            faults.webhookDuplicateRate = 0
            // A receiver with another secret refuses every try.
            faults.webhookSecretKey = "not-the-receivers"
            await world.simulator.setFaults(faults)
            let second = try await world.cloudVolume()
            try await eventually(timeout: .seconds(5), "the refused delivery to be tried") {
                await world.simulator.webhookDeliveries().first { $0.entityUUID == second }?.answers == [401]
            }
        }
    }

    @Test("POST /sim/faults refuses a payload URL that is not http(s) and a loss rate outside 0…1, naming the field")
    func simulatorSettings() async throws {
        var faults = SimulatorFaults()
        faults.webhookPayloadURL = "ftp://example.org/hook"
        #expect(throws: SimulatorFaults.Invalid.self) { try faults.validate() }
        faults.webhookPayloadURL = "http://127.0.0.1:1/cloudstack/webhook"
        faults.webhookLossRate = 1.5
        do {
            try faults.validate()
            Issue.record("a loss rate of 1.5 was accepted")
        } catch {
            #expect("\(error)".contains("webhook_loss_rate"))
        }
    }

    /// Creates a volume through `volumed serve` whose createVolume job takes 3.2 s: the first
    /// such job in the process polls at once and then 50, 100 … 1600, 2000 ms apart, so without
    /// a wake-up its end is seen by the poll at 5.15 s.
    func timedCreate(lossRate: Double) async throws -> (seconds: Double, woke: Bool) {
        let result = TimedCreateOutcome()
        try await APIWorld.with(.serve, webhookSecret: Self.secret) { world in
            await result.set(try await timeCreate(in: world, lossRate: lossRate))
        }
        return await result.value
    }

    /// Has the simulator deliver webhooks to `world`'s API (losing `lossRate` of them), creates
    /// a volume whose createVolume job takes 3.2 s, and returns how long it took to complete and
    /// whether its delivery was answered 200.
    func timeCreate(in world: APIWorld, lossRate: Double) async throws -> (seconds: Double, woke: Bool) {
        var faults = await world.simulator.faults()
        faults.webhookPayloadURL = world.baseURL + Self.path
        faults.webhookSecretKey = Self.secret
        faults.webhookLossRate = lossRate
        faults.jobDurationsMs = ["createVolume": SimulatorDurationRange(minMs: 3200, maxMs: 3200)]
        await world.simulator.setFaults(faults)
        let started = ContinuousClock.now
        let create = try await world.post("/api/v1/volumes", createBody()).object()
        let id = try #require(create["id"] as? String)
        #expect(try await world.finished(id) == "completed")
        let elapsed = ContinuousClock.now - started
        let volume = try #require(try await world.db.scalar("SELECT volume_id FROM volume_operations WHERE id = '\(id)'"))
        let delivery = await world.simulator.webhookDeliveries().first { $0.entityUUID == volume }
        return (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
                delivery?.answers == [200])
    }

    @Test("a delivery wakes the waiting handler, which sees the job ended at once; a lost one leaves the fallback poll")
    func wakeUpEndToEnd() async throws {
        let woken = try await timedCreate(lossRate: 0)
        #expect(woken.woke)
        #expect(woken.seconds < 4.6, "noticed after \(woken.seconds) s; the fallback poll comes at 5.15 s")
        let lost = try await timedCreate(lossRate: 1)
        #expect(!lost.woke)
        #expect(lost.seconds >= 5.0, "a lost delivery leaves the planned poll: \(lost.seconds) s")
    }
}

extension WebhookRouteTests {
    /// As `timedCreate`, but the operation runs in another volumed process than the one that
    /// receives the deliveries: the HTTP API alone takes them, and a worker with its own
    /// CloudStack client (its own `JobWakeups`, as in a separate `volumed worker` process) runs
    /// the create; the delivery reaches it only through PostgreSQL.
    func timedCreateInAnotherProcess(lossRate: Double) async throws -> (seconds: Double, woke: Bool) {
        let result = TimedCreateOutcome()
        try await APIWorld.with(.apiOnly, webhookSecret: Self.secret) { world in
            let nbdkit = try await NbdkitServer.start(exportDirectory: world.exportDirectory.path)
            let worker = try await APIWorld.workerServices(database: world.db.url, simulator: world.simulator,
                                                           byID: world.byIDDirectory, exports: world.exportDirectory,
                                                           nbdPort: nbdkit.port)
            let group = ServiceGroup(configuration: .init(services: worker.services, logger: testLogger))
            let running = Task { try await worker.run(group) }
            defer { Task { await nbdkit.stop() } }
            let timing: Result<(seconds: Double, woke: Bool), any Error>
            do { timing = .success(try await timeCreate(in: world, lossRate: lossRate)) } catch { timing = .failure(error) }
            await group.triggerGracefulShutdown()
            try await running.value
            await result.set(try timing.get())
        }
        return await result.value
    }

    @Test("a delivery to one volumed process wakes the waiting handler of another, through PostgreSQL")
    func wakeUpAcrossProcesses() async throws {
        let woken = try await timedCreateInAnotherProcess(lossRate: 0)
        #expect(woken.woke)
        #expect(woken.seconds < 4.6, "noticed after \(woken.seconds) s; the fallback poll comes at 5.15 s")
        let lost = try await timedCreateInAnotherProcess(lossRate: 1)
        #expect(!lost.woke)
        #expect(lost.seconds >= 5.0, "a lost delivery leaves the planned poll: \(lost.seconds) s")
    }
}

/// What `timedCreate`'s world hands back.
actor TimedCreateOutcome {
    var value: (seconds: Double, woke: Bool) = (0, false)
    func set(_ value: (seconds: Double, woke: Bool)) { self.value = value }
}
