import CloudStackSimulator
import Foundation
@testable import Operations
@testable import CloudStack
import TestSupport
import Testing

/// What the API key's account role changes: the job classes CloudStack reports (admin keys see
/// `…CmdByAdmin`), and commands the role does not allow.
@Suite struct CloudStackAccountRoleTests {
    /// Jobs of an admin key run the admin classes; a failed one is still named by its API
    /// command in the error (and its metric label), not "asyncJob".
    @Test func anAdminKeysFailedJobIsNamedByItsCommand() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: SimulatorConfiguration.customerVMID)
            // Attaching an attached volume fails inside the job (431).
            let jobId = try await h.client.attachVolume(id: volumeId, virtualMachineId: SimulatorConfiguration.customerVMID)
            let job = try await h.client.queryAsyncJobResult(jobId: jobId)
            #expect(job.command == "org.apache.cloudstack.api.command.admin.volume.AttachVolumeCmdByAdmin")
            let error = try #require(await expectCloudStackError { _ = try await h.client.waitForJob(jobId: jobId, timeout: .seconds(10)) })
            #expect(error.command == "attachVolume")
            #expect(error.code == "cloudstack_volume_in_use")
            #expect(error.message.contains("for attachVolume"), "\(error.message)")
        }
    }

    /// A user key's jobs run the user classes.
    @Test func aUserKeysJobsRunTheUserClasses() async throws {
        var faults = SimulatorFaults()
        faults.accountRole = .user
        try await HandlerHarness.with(faults: faults) { h in
            let vm = try await h.testVM(state: "Running", rootVolume: true)
            let result = try await h.client.waitForJob(jobId: try await h.client.stopVirtualMachine(id: vm), timeout: .seconds(10))
            #expect(result.command == "org.apache.cloudstack.api.command.user.vm.StopVMCmd")
        }
    }

    @Test(arguments: [
        ("org.apache.cloudstack.api.command.user.volume.AttachVolumeCmd", "attachVolume"),
        ("org.apache.cloudstack.api.command.admin.volume.AttachVolumeCmdByAdmin", "attachVolume"),
        ("org.apache.cloudstack.api.command.admin.volume.DetachVolumeCmdByAdmin", "detachVolume"),
        ("org.apache.cloudstack.api.command.admin.volume.CreateVolumeCmdByAdmin", "createVolume"),
        ("org.apache.cloudstack.api.command.user.vm.StopVMCmd", "stopVirtualMachine"),
        ("org.apache.cloudstack.api.command.admin.vm.StopVMCmdByAdmin", "stopVirtualMachine"),
        ("org.apache.cloudstack.api.command.admin.vm.DestroyVMCmdByAdmin", "destroyVirtualMachine"),
        ("org.apache.cloudstack.api.command.admin.vm.StartVMCmdByAdmin", "startVirtualMachine"),
    ])
    func jobClassesOfEitherSpellingAreReadAsTheirCommand(_ javaClass: String, _ command: String) {
        #expect(CloudStackCommandClass.apiCommand(ofJavaClass: javaClass) == command)
        #expect(CloudStackCommandClass.runs(command, javaClass: javaClass))
        #expect(!CloudStackCommandClass.runs(command == "attachVolume" ? "detachVolume" : "attachVolume", javaClass: javaClass))
    }

    /// A command the role does not allow: the static role checker's 401 and the dynamic one's
    /// 432 both say the command is not available to this account, not "check your keys".
    @Test(arguments: [SimulatorRoleChecker.staticRoles, .dynamic])
    func aCommandTheRoleLacksIsReportedAsNotAvailableToTheAccount(_ checker: SimulatorRoleChecker) async throws {
        var faults = SimulatorFaults()
        faults.unavailableCommands = ["attachVolume"]
        faults.roleChecker = checker
        try await HandlerHarness.with(faults: faults) { h in
            let volumeId = try await h.cloudVolume()
            let error = try #require(await expectCloudStackError {
                _ = try await h.client.attachVolume(id: volumeId, virtualMachineId: SimulatorConfiguration.customerVMID)
            })
            #expect(error.httpStatus == (checker == .dynamic ? 432 : 401))
            #expect(error.code == "cloudstack_unsupported_command")
            #expect(!error.isTransient)
            #expect(error.message.contains("command not available to this account"), "\(error.message)")
            #expect(!error.message.contains("CLOUDSTACK_SECRET_KEY"), "\(error.message)")

            let row = try await h.runOnFreshWorker("attach", volume: volumeId, vm: SimulatorConfiguration.customerVMID)
            #expect(row.status == "failed")
            #expect(row.errorCode == "cloudstack_unsupported_command")
            #expect(row.error?.contains("command not available to this account") == true, "\(row.error ?? "")")
            #expect(await h.sideEffects(volumeId).attachVolume == 0)
        }
    }
}
