/// The Java command class CloudStack reports as a job's `cmd`, read back as the API command
/// it runs. One place for it, because the class name has two spellings:
///
/// - a user key's job runs `org.apache.cloudstack.api.command.user.volume.AttachVolumeCmd`;
/// - a root admin's runs the admin variant, `org.apache.cloudstack.api.command.admin.volume.AttachVolumeCmdByAdmin`
///   (apache/cloudstack `server/src/main/java/com/cloud/api/ApiServer.java` `getCmdClass`: when an API
///   name has several classes, a root admin gets the one whose `@APICommand` says
///   `responseView = ResponseView.Full`; `api/src/main/java/org/apache/cloudstack/api/command/admin/volume/`
///   and `…/admin/vm/` hold `AttachVolumeCmdByAdmin`, `DetachVolumeCmdByAdmin`, `CreateVolumeCmdByAdmin`,
///   `StopVMCmdByAdmin`, `StartVMCmdByAdmin`, `DestroyVMCmdByAdmin`).
///
/// The VM commands' classes are not named after the API (stopVirtualMachine → StopVMCmd,
/// `api/.../command/user/vm/StopVMCmd.java`), so those are listed.
package enum CloudStackCommandClass {
    /// API command → the simple name of its user class.
    private static let classNames = [
        "stopVirtualMachine": "StopVMCmd",
        "startVirtualMachine": "StartVMCmd",
        "destroyVirtualMachine": "DestroyVMCmd",
        "recoverVirtualMachine": "RecoverVMCmd",
    ]

    /// The simple name of `command`'s user class, e.g. `attachVolume` → `AttachVolumeCmd`.
    static func userClassName(of command: String) -> String {
        classNames[command] ?? (command.prefix(1).uppercased() + command.dropFirst() + "Cmd")
    }

    /// Whether the job class `javaClass` (either spelling) runs `command`.
    package static func runs(_ command: String, javaClass: String?) -> Bool {
        guard let simpleName = simpleUserClassName(javaClass) else { return false }
        return simpleName == userClassName(of: command)
    }

    /// The API command a job class runs: `…user.volume.AttachVolumeCmd` and
    /// `…admin.volume.AttachVolumeCmdByAdmin` → `attachVolume`, `…StopVMCmd` → `stopVirtualMachine`;
    /// nil for a class that is not a command class.
    static func apiCommand(ofJavaClass javaClass: String?) -> String? {
        guard let simpleName = simpleUserClassName(javaClass), simpleName.hasSuffix("Cmd") else { return nil }
        if let listed = classNames.first(where: { $0.value == simpleName }) { return listed.key }
        let base = simpleName.dropLast(3)
        return base.prefix(1).lowercased() + base.dropFirst()
    }

    /// `…AttachVolumeCmdByAdmin` → `AttachVolumeCmd`; `…AttachVolumeCmd` as it is.
    private static func simpleUserClassName(_ javaClass: String?) -> String? {
        guard let last = javaClass?.split(separator: ".").last else { return nil }
        let simpleName = String(last)
        return simpleName.hasSuffix("ByAdmin") ? String(simpleName.dropLast("ByAdmin".count)) : simpleName
    }
}
