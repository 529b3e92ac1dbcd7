import Foundation

/// What the API key's account may do (`SimulatorFaults.accountRole`, `unavailableCommands`,
/// `roleChecker`), as apache/cloudstack decides it.
extension SimulatedCloud {
    /// The job's `cmd`. ApiServer.getCmdClass (`server/src/main/java/com/cloud/api/ApiServer.java`)
    /// gives a root admin the class of an API name whose `@APICommand` has
    /// `responseView = ResponseView.Full`: `…api.command.admin.volume.AttachVolumeCmdByAdmin`,
    /// `…admin.vm.StopVMCmdByAdmin` and so on (every command the simulator runs as a job has one,
    /// `api/src/main/java/org/apache/cloudstack/api/command/admin/{volume,vm}/`); others get the
    /// user class.
    func javaClass(for command: String) -> String {
        guard let userClass = Self.javaClasses[command] else { return command }
        guard faults.accountRole == .admin else { return userClass }
        return userClass.replacingOccurrences(of: ".api.command.user.", with: ".api.command.admin.") + "ByAdmin"
    }

    /// UserVmManagerImpl.destroyVm(DestroyVMCmd) (`server/src/main/java/com/cloud/vm/UserVmManagerImpl.java`),
    /// first thing inside the job: `expunge` from a caller that is not an admin, with
    /// `allow.user.expunge.recover.vm` off (its default), throws PermissionDeniedException, which
    /// ApiAsyncJobDispatcher reports as 530 with the exception's text. Nothing has happened to the VM.
    func checkExpungeAllowed(_ expunge: Bool) throws {
        guard expunge, faults.accountRole != .admin else { return }
        throw JobFailure.internalError("Parameter expunge can be passed by Admin only. Or when the allow.user.expunge.recover.vm key is set.")
    }

    /// ApiServer.verifyRequest calls commandAvailable before it checks the signature; the role
    /// checker's refusal becomes (ApiServer.commandAvailable):
    /// - DynamicRoleBasedAPIAccessChecker (`plugins/acl/dynamic-role-based/…/DynamicRoleBasedAPIAccessChecker.java`):
    ///   UnavailableCommandException "The API [X] does not exist or is not available for the account A." → 432;
    /// - StaticRoleBasedAPIAccessChecker (`plugins/acl/static-role-based/…/StaticRoleBasedAPIAccessChecker.java`):
    ///   PermissionDeniedException → 401 "The given command 'X' either does not exist, is not available for user."
    func unavailableCommandRefusal(_ command: String) -> APIFailure? {
        guard faults.unavailableCommands.contains(command) else { return nil }
        switch faults.roleChecker {
        case .dynamic:
            return APIFailure(
                errorCode: APIErrorCode.unsupportedAction, csErrorCode: CSErrorCode.serverAPIException,
                errorText: "The API [\(command)] does not exist or is not available for the account \(ResponseRendering.account).",
                usesErrorResponseKey: true)
        case .staticRoles:
            return APIFailure(
                errorCode: APIErrorCode.unauthorized, csErrorCode: CSErrorCode.serverAPIException,
                errorText: "The given command '\(command)' either does not exist, is not available for user.")
        }
    }
}
