@testable import Operations
@testable import CloudStack
import AsyncHTTPClient
import CloudStackSimulator
import Foundation
import TestSupport
import Testing

/// Failures, as CloudStack reports them and as the client classifies them.
@Suite("CloudStack errors")
struct CloudStackErrorTests {
    @Test("a wrong secret key is cloudstack_auth_failed, permanent, HTTP 401, and never echoes the secret")
    func wrongSecret() async throws {
        let wrongSecret = "definitely-wrong-secret"
        try await CloudStackHarness.with(clientSecretKey: wrongSecret) { harness in
            let error = try #require(await expectCloudStackError { _ = try await harness.client.listZones() })
            #expect(error.code == "cloudstack_auth_failed")
            #expect(!error.isTransient)
            #expect(error.httpStatus == 401)
            #expect(error.errorCode == 401)
            #expect(error.errorText == "unable to verify user credentials and/or request signature")
            #expect(error.message.contains("CLOUDSTACK_SECRET_KEY"))
            for text in [error.description, error.message, String(reflecting: error)] {
                #expect(!text.contains(wrongSecret))
                #expect(!text.contains(CloudStackHarness.secretKey))
            }
        }
    }

    @Test("an expired signatureVersion 3 request is rejected with 401")
    func expiredSignature() async throws {
        try await CloudStackHarness.with(signatureLifetime: .seconds(-60)) { harness in
            let error = try #require(await expectCloudStackError { _ = try await harness.client.listZones() })
            #expect(error.code == "cloudstack_auth_failed")
            #expect(error.httpStatus == 401)
            #expect(!error.isTransient)
        }
    }

    @Test("the 401 body is CloudStack's: one key, errorcode 401, no cserrorcode")
    func unauthorizedBody() async throws {
        try await CloudStackHarness.with { harness in
            let raw = try await harness.rawRequest([("command", "listZones"), ("response", "json")], secretKey: "other")
            #expect(raw.status == 401)
            #expect(raw.body == #"{"listzonesresponse":{"uuidList":[],"errorcode":401,"errortext":"unable to verify user credentials and/or request signature"}}"#)
        }
    }

    @Test("attaching to a VM that does not exist fails synchronously with cloudstack_not_found")
    func attachToMissingVM() async throws {
        try await CloudStackHarness.with { harness in
            let volume = try await harness.createVolume()
            let missingVM = "00000000-0000-4000-8000-00000000abcd"
            let error = try #require(await expectCloudStackError {
                _ = try await harness.client.attachVolume(id: volume.id.value, virtualMachineId: missingVM)
            })
            #expect(error.code == "cloudstack_not_found")
            #expect(error.httpStatus == 431)
            #expect(error.errorCode == 431)
            #expect(!error.isTransient)
            #expect(error.errorText?.hasPrefix("Unable to execute API command attachvolume due to invalid value. Invalid parameter virtualmachineid value=\(missingVM)") == true)
            #expect(await harness.simulator.state().sideEffects(for: volume.id.value).attachVolume == 0)
        }
    }

    @Test("attaching an attached volume: the job fails 431 with CloudStack's text")
    func attachAttached() async throws {
        try await CloudStackHarness.with { harness in
            let volume = try await harness.createVolume()
            _ = try await harness.attach(volume.id.value, to: SimulatorConfiguration.customerVMID)
            let jobID = try await harness.client.attachVolume(id: volume.id.value, virtualMachineId: harness.applianceVMID)
            let error = try #require(await expectCloudStackError {
                _ = try await harness.client.waitForJob(jobId: jobID, timeout: .seconds(5))
            })
            #expect(error.code == "cloudstack_volume_in_use")
            #expect(error.errorCode == 431)
            #expect(error.errorText == "Please specify a volume that is not attached to any VM.")
            #expect(error.jobId == jobID)
            #expect(!error.isTransient)
            #expect(error.command == "attachVolume")
            #expect(!FileManager.default.fileExists(atPath: harness.byIDLink(for: volume.id.value).path))
        }
    }

    @Test("detaching a detached volume: the job fails 431 with CloudStack's text")
    func detachDetached() async throws {
        try await CloudStackHarness.with { harness in
            let volume = try await harness.createVolume()
            let jobID = try await harness.client.detachVolume(id: volume.id.value)
            let error = try #require(await expectCloudStackError {
                _ = try await harness.client.waitForJob(jobId: jobID, timeout: .seconds(5))
            })
            #expect(error.code == "cloudstack_volume_not_attached")
            #expect(error.errorCode == 431)
            #expect(error.errorText == "The specified volume is not attached to a VM.")
            #expect(!error.isTransient)
        }
    }

    @Test("deleting an attached volume fails synchronously with 431/4350")
    func deleteAttached() async throws {
        try await CloudStackHarness.with { harness in
            let volume = try await harness.createVolume()
            _ = try await harness.attach(volume.id.value, to: harness.applianceVMID)
            let error = try #require(await expectCloudStackError { try await harness.client.deleteVolume(id: volume.id.value) })
            #expect(error.code == "cloudstack_volume_in_use")
            #expect(error.httpStatus == 431)
            #expect(error.errorCode == 431)
            #expect(error.csErrorCode == 4350)
            #expect(error.errorText == "Please specify a volume that is not attached to any VM.")
            #expect(try await harness.client.listVolumes(id: volume.id.value).count == 1)
            #expect(FileManager.default.fileExists(atPath: harness.byIDLink(for: volume.id.value).path))
        }
    }

    @Test("the seventh data disk on one VM fails 431 with the data-disk limit text")
    func dataDiskLimit() async throws {
        try await CloudStackHarness.with(asyncDelay: .milliseconds(5)) { harness in
            for _ in 0..<6 {
                let volume = try await harness.createVolume()
                _ = try await harness.attach(volume.id.value, to: SimulatorConfiguration.customerVMID)
            }
            let seventh = try await harness.createVolume()
            let jobID = try await harness.client.attachVolume(id: seventh.id.value, virtualMachineId: SimulatorConfiguration.customerVMID)
            let error = try #require(await expectCloudStackError {
                _ = try await harness.client.waitForJob(jobId: jobID, timeout: .seconds(5))
            })
            #expect(error.code == "cloudstack_vm_disk_limit")
            #expect(error.errorCode == 431)
            #expect(error.errorText == "The specified VM already has the maximum number of data disks (6) attached. Please specify another VM.")
        }
    }

    @Test("fail-rate 1 makes every call a transient 530, and nothing is created")
    func injectedFailures() async throws {
        try await CloudStackHarness.with(faults: SimulatorFaults(failRate: 1)) { harness in
            let error = try #require(await expectCloudStackError { _ = try await harness.client.listZones() })
            #expect(error.code == "cloudstack_internal_error")
            #expect(error.isTransient)
            #expect(error.httpStatus == 530)
            #expect(error.errorCode == 530)

            let createError = try #require(await expectCloudStackError {
                _ = try await harness.client.createVolume(
                    name: "never", zoneId: SimulatorConfiguration.zoneID,
                    diskOfferingId: SimulatorConfiguration.customDiskOfferingID, sizeGB: 1
                )
            })
            #expect(createError.isTransient)
            let state = await harness.simulator.state()
            #expect(!state.volumes.contains { $0.name == "never" })
            #expect(state.jobs.isEmpty)

            // Faults change at runtime, and /sim/* is never faulted.
            await harness.simulator.setFaults(SimulatorFaults(failRate: 0))
            #expect(try await harness.client.listZones().count == 1)
        }
    }

    @Test("an injected 534 is cloudstack_unavailable and transient")
    func injectedUnavailable() async throws {
        try await CloudStackHarness.with(faults: SimulatorFaults(failRate: 1, errorCode: 534)) { harness in
            let error = try #require(await expectCloudStackError { _ = try await harness.client.listZones() })
            #expect(error.code == "cloudstack_unavailable")
            #expect(error.isTransient)
            #expect(error.httpStatus == 534)
        }
    }

    @Test("a stuck job makes waitForJob throw the transient cloudstack_job_timeout naming the job")
    func stuckJobTimesOut() async throws {
        try await CloudStackHarness.with(faults: SimulatorFaults(stuckRate: 1)) { harness in
            let (volumeID, jobID) = try await harness.client.createVolume(
                name: "stuck", zoneId: SimulatorConfiguration.zoneID,
                diskOfferingId: SimulatorConfiguration.customDiskOfferingID, sizeGB: 1
            )
            let started = ContinuousClock.now
            let error = try #require(await expectCloudStackError {
                _ = try await harness.client.waitForJob(jobId: jobID, timeout: .milliseconds(300))
            })
            #expect(ContinuousClock.now - started >= .milliseconds(300))
            #expect(error.code == "cloudstack_job_timeout")
            #expect(error.isTransient)
            #expect(error.jobId == jobID)
            #expect(error.message.contains(jobID))
            let state = await harness.simulator.state()
            #expect(state.jobs.first { $0.id == jobID }?.stuck == true)
            #expect(state.jobs.first { $0.id == jobID }?.status == 0)
            #expect(state.sideEffects(for: volumeID).createVolume == 1)
        }
    }

    @Test("waitForJob stops promptly when its task is cancelled")
    func waitRespectsCancellation() async throws {
        try await CloudStackHarness.with(faults: SimulatorFaults(stuckRate: 1)) { harness in
            let jobID = try await harness.client.detachVolume(id: try await harness.createVolumeIgnoringStuck())
            let client = harness.client
            let waiter = Task { try await client.waitForJob(jobId: jobID, timeout: .seconds(60)) }
            try await Task.sleep(for: .milliseconds(100))
            let cancelledAt = ContinuousClock.now
            waiter.cancel()
            await #expect(throws: CancellationError.self) { _ = try await waiter.value }
            #expect(ContinuousClock.now - cancelledAt < .seconds(3))
        }
    }

    @Test("an unreachable endpoint is cloudstack_unreachable and transient")
    func unreachable() async throws {
        // Bind a simulator, note its port, stop it: nothing listens there any more.
        let url = try await CloudStackHarness.with { $0.simulator.apiURL }
        let client = CloudStackClient(
            configuration: CloudStackConfiguration(apiURL: url, apiKey: "k", secretKey: "unreachable-secret", requestTimeout: .seconds(1)),
            httpClient: HTTPClient.shared,
            logger: LogRecorder().logger()
        )
        let error = try #require(await expectCloudStackError { _ = try await client.listZones() })
        #expect(error.code == "cloudstack_unreachable")
        #expect(error.isTransient)
        #expect(!error.message.contains("unreachable-secret"))
    }

    @Test("credentials written into CLOUDSTACK_API_URL never reach a message (issue 12 item 10)")
    func urlCredentialsRedacted() async throws {
        let url = try await CloudStackHarness.with { $0.simulator.apiURL }
            .replacingOccurrences(of: "http://", with: "http://proxyuser:pr%40xy-pass@")
        let configuration = CloudStackConfiguration(apiURL: url, apiKey: "k", secretKey: "s", requestTimeout: .seconds(1))
        let client = CloudStackClient(configuration: configuration, httpClient: HTTPClient.shared, logger: LogRecorder().logger())
        let error = try #require(await expectCloudStackError { _ = try await client.listZones() })
        #expect(error.code == "cloudstack_unreachable")
        for text in [error.message, "\(error)", String(reflecting: error), "\(configuration)", configuration.redactedAPIURL] {
            #expect(!text.contains("pr%40xy-pass") && !text.contains("pr@xy-pass") && !text.contains("proxyuser"), "\(text)")
        }
        #expect(error.message.contains("http://<redacted>@127.0.0.1:"), "\(error.message)")
    }

    /// ApiServer.verifyRequest refuses a command it has no class for before it looks at the
    /// key, with a bare `false`, which ApiServlet answers as a signature failure.
    @Test("unknown commands get the signature failure's 401; a missing response=json gets XML")
    func wireShapes() async throws {
        try await CloudStackHarness.with { harness in
            let unknown = try await harness.rawRequest([("command", "listFoos"), ("response", "json")])
            #expect(unknown.status == 401)
            #expect(unknown.body.contains("unable to verify user credentials and/or request signature"))
            #expect(unknown.body.contains(#""errorcode":401"#))

            let missing = try await harness.rawRequest([("command", "attachVolume"), ("id", "x"), ("response", "json")])
            #expect(missing.status == 431)
            #expect(missing.body.contains("Unable to execute API command attachvolume due to missing parameter virtualmachineid"))

            let xml = try await harness.rawRequest([("command", "listZones")])
            #expect(xml.status == 200)
            #expect(xml.contentType?.hasPrefix("text/xml") == true)
            #expect(xml.body.hasPrefix("<?xml"))
            #expect(xml.body.contains("<listzonesresponse"))
            #expect(xml.body.contains("<id>\(SimulatorConfiguration.zoneID)</id>"))
        }
    }

    @Test("/sim/faults accepts JSON at runtime and /sim/state reports it")
    func controlEndpoints() async throws {
        try await CloudStackHarness.with { harness in
            var request = HTTPClientRequest(url: harness.simulator.baseURL + "/sim/faults")
            request.method = .POST
            request.body = .bytes(.init(string: #"{"fail_rate":1,"error_code":534}"#))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
            #expect(response.status.code == 200)
            _ = try await response.body.collect(upTo: 1 << 16)

            // A rate outside 0…1 is refused naming the field, and changes nothing.
            var invalid = HTTPClientRequest(url: harness.simulator.baseURL + "/sim/faults")
            invalid.method = .POST
            invalid.body = .bytes(.init(string: #"{"fail_rate":0,"reply_lost_rate":2}"#))
            let refused = try await HTTPClient.shared.execute(invalid, timeout: .seconds(5))
            #expect(refused.status.code == 400)
            let refusal = String(buffer: try await refused.body.collect(upTo: 1 << 16))
            #expect(refusal.contains("reply_lost_rate must be between 0 and 1"), "\(refusal)")
            // So are the job endings, the role and the role checker.
            for (body, complaint) in [
                (#"{"job_gc_cancel_rate":1.5}"#, "job_gc_cancel_rate must be between 0 and 1"),
                (#"{"job_restart_cancel_rate":-1}"#, "job_restart_cancel_rate must be between 0 and 1"),
                (#"{"job_expire_seconds":0}"#, "job_expire_seconds must be at least 1"),
                (#"{"account_role":"root"}"#, "account_role must be admin or user"),
                (#"{"role_checker":"acl"}"#, "role_checker must be dynamic or static"),
            ] {
                var bad = HTTPClientRequest(url: harness.simulator.baseURL + "/sim/faults")
                bad.method = .POST
                bad.body = .bytes(.init(string: body))
                let answer = try await HTTPClient.shared.execute(bad, timeout: .seconds(5))
                #expect(answer.status.code == 400, "\(body)")
                let text = String(buffer: try await answer.body.collect(upTo: 1 << 16))
                #expect(text.contains(complaint), "\(body): \(text)")
            }

            let stateText = try await harness.get(harness.simulator.baseURL + "/sim/state").body
            let state = try JSONDecoder().decode(SimulatorState.self, from: Data(stateText.utf8))
            #expect(state.faults == SimulatorFaults(failRate: 1, errorCode: 534))
            #expect(state.virtualmachines.count == 3)
            let error = try #require(await expectCloudStackError { _ = try await harness.client.listZones() })
            #expect(error.httpStatus == 534)
        }
    }

    // MARK: Classification and decoding without a server

    @Test("530 is transient unless its text is a parameter complaint; 536 and 532 are permanent")
    func classificationTable() {
        let transient = CloudStackError.fromAPIError(command: "attachVolume", httpStatus: 530, errorCode: 530, csErrorCode: 9999, errorText: "Failed to attach volume: agent unavailable")
        #expect(transient.isTransient && transient.code == "cloudstack_internal_error")
        let deviceID = CloudStackError.fromAPIError(command: "attachVolume", httpStatus: nil, errorCode: 530, csErrorCode: nil, errorText: "deviceId should be 1,2,4-7", jobId: "j")
        #expect(!deviceID.isTransient && deviceID.code == "cloudstack_parameter_error")
        #expect(!CloudStackError.fromAPIError(command: "x", httpStatus: 536, errorCode: 536, csErrorCode: nil, errorText: "in use").isTransient)
        #expect(!CloudStackError.fromAPIError(command: "x", httpStatus: 532, errorCode: 532, csErrorCode: nil, errorText: "limit").isTransient)
        #expect(CloudStackError.fromAPIError(command: "x", httpStatus: 429, errorCode: 429, csErrorCode: nil, errorText: "slow down").isTransient)
        let genericJob = CloudStackError.fromAPIError(command: "attachVolume", httpStatus: nil, errorCode: 530, csErrorCode: nil, errorText: "boom", jobId: "j1")
        #expect(genericJob.code == "cloudstack_job_failed" && genericJob.isTransient)
    }

    @Test("deleteVolume's success flag decodes from true and from \"true\"")
    func successFlagDecoding() throws {
        #expect(try JSONDecoder().decode(SuccessBody.self, from: Data(#"{"success":true}"#.utf8)).success)
        #expect(try JSONDecoder().decode(SuccessBody.self, from: Data(#"{"success":"true"}"#.utf8)).success)
        #expect(try !JSONDecoder().decode(SuccessBody.self, from: Data(#"{"success":"false"}"#.utf8)).success)
    }

    @Test("an empty list body decodes as no items")
    func emptyListDecoding() throws {
        #expect(try JSONDecoder().decode(ListBody<CloudStackVolume>.self, from: Data("{}".utf8)).items.isEmpty)
    }
}

extension CloudStackHarness {
    /// With every job stuck, a volume still exists (Allocated) from the sync half of
    /// createVolume; returns its id without waiting.
    func createVolumeIgnoringStuck() async throws -> String {
        try await client.createVolume(
            name: "stuck", zoneId: SimulatorConfiguration.zoneID,
            diskOfferingId: SimulatorConfiguration.customDiskOfferingID, sizeGB: 1
        ).volumeId
    }
}
