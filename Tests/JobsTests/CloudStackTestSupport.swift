import CloudStack
import AsyncHTTPClient
import CloudStackSimulator
import Foundation
import Operations
import Logging
import Synchronization
import TestSupport
import Testing

/// A running simulator, a client signed with its keys, and temp dirs for hot-plug; torn
/// down after `body` whether it passes or throws.
struct CloudStackHarness: Sendable {
    static let apiKey = "test-api-key"
    static let secretKey = "test-secret-KEY+/=value"

    let simulator: CloudStackSimulator
    let client: CloudStackClient
    let byIDDirectory: URL
    let diskDirectory: URL
    let logs: LogRecorder

    var applianceVMID: String { simulator.configuration.applianceVMID }

    static func with<T: Sendable>(
        asyncDelay: Duration = .milliseconds(20),
        faults: SimulatorFaults = SimulatorFaults(),
        clientSecretKey: String = CloudStackHarness.secretKey,
        signatureLifetime: Duration = .seconds(300),
        defaultPageSize: Int = 500,
        _ body: (CloudStackHarness) async throws -> T
    ) async throws -> T {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cloudstack-tests-\(UUID().uuidString)")
        let byID = root.appendingPathComponent("by-id")
        let disks = root.appendingPathComponent("disks")
        var simLogger = Logger(label: "cloudstack-sim-test")
        simLogger.logLevel = .warning
        var configuration = SimulatorConfiguration(
            apiKey: apiKey, secretKey: secretKey, byIDDirectory: byID, diskDirectory: disks, asyncDelay: asyncDelay, faults: faults)
        configuration.defaultPageSize = defaultPageSize
        let simulator = try await CloudStackSimulator.start(configuration, logger: simLogger)
        let logs = LogRecorder()
        let client = CloudStackClient(
            configuration: CloudStackConfiguration(
                apiURL: simulator.apiURL, apiKey: apiKey, secretKey: clientSecretKey,
                requestTimeout: .seconds(10), signatureLifetime: signatureLifetime
            ),
            httpClient: HTTPClient.shared,
            logger: logs.logger()
        )
        let harness = CloudStackHarness(simulator: simulator, client: client, byIDDirectory: byID, diskDirectory: disks, logs: logs)
        do {
            let result = try await body(harness)
            await simulator.stop()
            try? FileManager.default.removeItem(at: root)
            return result
        } catch {
            await simulator.stop()
            try? FileManager.default.removeItem(at: root)
            throw error
        }
    }

    /// Creates a volume through the client and waits for its job.
    func createVolume(name: String = "vol-\(UUID().uuidString.prefix(6))", sizeGB: Int = 1) async throws -> CloudStackVolume {
        let (volumeID, jobID) = try await client.createVolume(
            name: name, zoneId: SimulatorConfiguration.zoneID,
            diskOfferingId: SimulatorConfiguration.customDiskOfferingID, sizeGB: sizeGB
        )
        let result = try await client.waitForJob(jobId: jobID, timeout: .seconds(10))
        let volume = try #require(result.volume)
        #expect(volume.id.value == volumeID)
        return volume
    }

    func attach(_ volumeID: String, to vmID: String, deviceId: Int? = nil) async throws -> CloudStackVolume {
        let jobID = try await client.attachVolume(id: volumeID, virtualMachineId: vmID, deviceId: deviceId)
        return try #require(try await client.waitForJob(jobId: jobID, timeout: .seconds(10)).volume)
    }

    func detach(_ volumeID: String) async throws -> CloudStackVolume {
        let jobID = try await client.detachVolume(id: volumeID)
        return try #require(try await client.waitForJob(jobId: jobID, timeout: .seconds(10)).volume)
    }

    func byIDLink(for volumeID: String) -> URL {
        byIDDirectory.appendingPathComponent("virtio-" + CloudStackSimulator.diskSerial(forVolumeID: volumeID))
    }

    func backingFile(for volumeID: String) -> URL {
        diskDirectory.appendingPathComponent(volumeID + ".img")
    }

    /// A raw signed request, for wire-level checks the typed client cannot express.
    func rawRequest(_ parameters: [(name: String, value: String)], secretKey: String = CloudStackHarness.secretKey) async throws -> (status: Int, contentType: String?, body: String) {
        let signer = CloudStackSigner(apiKey: Self.apiKey, secretKey: secretKey)
        var all: [(name: String, value: String)] = [("apiKey", Self.apiKey)]
        all.append(contentsOf: parameters)
        let query = CloudStackSigner.canonicalQuery(all) + "&signature=" + CloudStackSigner.javaURLEncode(signer.signature(for: all))
        return try await get(simulator.apiURL + "?" + query)
    }

    func get(_ url: String) async throws -> (status: Int, contentType: String?, body: String) {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), response.headers.first(name: "Content-Type"), String(buffer: body))
    }
}

/// Runs `body` and returns the `CloudStackError` it throws, failing the test otherwise.
func expectCloudStackError(
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async -> CloudStackError? {
    do {
        try await body()
        Issue.record("expected a CloudStackError, got success", sourceLocation: sourceLocation)
        return nil
    } catch let error as CloudStackError {
        return error
    } catch {
        Issue.record("expected a CloudStackError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
