/// Everything that can go wrong talking to CloudStack, with a stable `code` for the
/// `error_code` column and a `message` that names the cause and the fix.
///
/// `isTransient` decides whether the queue retries. The classification, by CloudStack
/// `errorcode` (apache/cloudstack `api/src/main/java/org/apache/cloudstack/api/ApiErrorCode.java`)
/// or transport failure:
///
/// | cause                                   | code                                | transient |
/// |-----------------------------------------|-------------------------------------|-----------|
/// | connect refused/reset, DNS, TLS, timeout | `cloudstack_unreachable`            | yes |
/// | 401 UNAUTHORIZED (bad key, signature, expired) | `cloudstack_auth_failed`      | no  (needs new credentials or a fixed clock) |
/// | 401 "The given command '…' either does not exist, is not available for user." (ApiServer.commandAvailable, the role lacks the command) | `cloudstack_unsupported_command` | no |
/// | 429 API_LIMIT_EXCEED                    | `cloudstack_rate_limited`           | yes |
/// | 430 MALFORMED_PARAMETER_ERROR           | `cloudstack_parameter_error`        | no  |
/// | 431 PARAM_ERROR (generic)               | `cloudstack_parameter_error`        | no  |
/// | 431 "…entity does not exist…", "Unable to find volume with ID…" | `cloudstack_not_found` | no |
/// | 431 "…not attached to any VM." (attach/delete of an attached volume) | `cloudstack_volume_in_use` | no |
/// | 431 "The specified volume is not attached to a VM." | `cloudstack_volume_not_attached` | no |
/// | 431 "…maximum number of data disks…"    | `cloudstack_vm_disk_limit`          | no  |
/// | 431 "Volume state must be in Allocated, Ready or in Uploaded state" (a volume left Attaching/Detaching, or destroyed) | `cloudstack_volume_state_invalid` | no |
/// | 431 "Root volume detach can happen only when vm is in states: Stopped or Destroyed" | `cloudstack_vm_not_stopped` | no |
/// | 431 "unable to find a virtual machine with id …" (an expunged VM) | `cloudstack_not_found` | no |
/// | 432 UNSUPPORTED_ACTION_ERROR (e.g. "The API [...] does not exist or is not available for the account …") | `cloudstack_unsupported_command` | no |
/// | 530 INTERNAL_ERROR                      | `cloudstack_internal_error`         | yes: usually an agent/hypervisor hiccup |
/// | 530 "Parameter expunge can be passed by Admin only…" (UserVmManagerImpl.destroyVm) | `cloudstack_expunge_not_permitted` | no: the caller destroys without expunge |
/// | 530 "…Could not detach volume after sending the command and waiting for [N] milliseconds…" (KVM's wait.detach.device) | `cloudstack_detach_timeout` | yes: the guest may release the disk later |
/// | 530 whose text is a parameter complaint (e.g. "deviceId should be 1,2,4-7", "deviceId 4 is used by VM") | `cloudstack_parameter_error` | no: VolumeApiServiceImpl throws plain RuntimeExceptions for these, which surface as 530 |
/// | 531 ACCOUNT_ERROR (permission denied)    | `cloudstack_permission_denied`      | no  |
/// | 532 ACCOUNT_RESOURCE_LIMIT_ERROR        | `cloudstack_resource_limit`         | no  (an operator must raise the limit) |
/// | 533 INSUFFICIENT_CAPACITY_ERROR         | `cloudstack_insufficient_capacity`  | yes |
/// | 534 RESOURCE_UNAVAILABLE_ERROR          | `cloudstack_unavailable`            | yes |
/// | 535 RESOURCE_ALLOCATION_ERROR           | `cloudstack_allocation_failed`      | no  (thrown for account limits) |
/// | 536 RESOURCE_IN_USE_ERROR               | `cloudstack_resource_in_use`        | no  |
/// | other HTTP 5xx without a CloudStack body | `cloudstack_http_error`            | yes |
/// | other HTTP 4xx without a CloudStack body | `cloudstack_http_error`            | no  |
/// | 200 with a body we cannot decode        | `cloudstack_bad_response`           | no  |
/// | async job failed (jobstatus 2)          | the specific code above when the text is known, else `cloudstack_job_failed`; transient as its errorcode |
/// | async job failed without a `jobresult` (job GC cancel: jobresultcode 0; management-server restart: 530) | `cloudstack_job_abandoned` | yes (the step looks at the volume or VM first) |
/// | queryAsyncJobResult 431 "…entity does not exist…" (the job was purged after `job.expire.minutes`) | `cloudstack_job_purged` | yes (the step looks at the volume or VM first) |
/// | async job cancelled (jobstatus 3)       | `cloudstack_job_cancelled`          | yes |
/// | async job still pending at our deadline | `cloudstack_job_timeout`            | yes (resume waiting on the checkpointed job id) |
public struct CloudStackError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The stable codes, one per row of the table above: the raw value goes to `error_code`.
    public enum Code: String, Sendable, CaseIterable {
        case unreachable = "cloudstack_unreachable"
        case authFailed = "cloudstack_auth_failed"
        case unsupportedCommand = "cloudstack_unsupported_command"
        case rateLimited = "cloudstack_rate_limited"
        case parameterError = "cloudstack_parameter_error"
        case notFound = "cloudstack_not_found"
        case volumeInUse = "cloudstack_volume_in_use"
        case volumeNotAttached = "cloudstack_volume_not_attached"
        case vmDiskLimit = "cloudstack_vm_disk_limit"
        case volumeStateInvalid = "cloudstack_volume_state_invalid"
        case vmNotStopped = "cloudstack_vm_not_stopped"
        case internalError = "cloudstack_internal_error"
        case expungeNotPermitted = "cloudstack_expunge_not_permitted"
        case detachTimeout = "cloudstack_detach_timeout"
        case permissionDenied = "cloudstack_permission_denied"
        case resourceLimit = "cloudstack_resource_limit"
        case insufficientCapacity = "cloudstack_insufficient_capacity"
        case unavailable = "cloudstack_unavailable"
        case allocationFailed = "cloudstack_allocation_failed"
        case resourceInUse = "cloudstack_resource_in_use"
        case httpError = "cloudstack_http_error"
        case badResponse = "cloudstack_bad_response"
        case jobFailed = "cloudstack_job_failed"
        case jobAbandoned = "cloudstack_job_abandoned"
        case jobPurged = "cloudstack_job_purged"
        case jobCancelled = "cloudstack_job_cancelled"
        case jobTimeout = "cloudstack_job_timeout"
    }

    /// The typed code; `code` is its raw value.
    public var kind: Code
    /// A sentence for humans: what happened and what to do about it.
    public var message: String
    /// Whether retrying the same operation later can succeed.
    public var isTransient: Bool
    /// The API command that failed, e.g. `attachVolume`.
    public var command: String?
    /// HTTP status of the reply, when there was one.
    public var httpStatus: Int?
    /// CloudStack's `errorcode` (ApiErrorCode: 401, 431, 530 …).
    public var errorCode: Int?
    /// CloudStack's `cserrorcode` (CSExceptionErrorCode: 4350 InvalidParameterValueException, 9999 …).
    public var csErrorCode: Int?
    /// CloudStack's `errortext`, verbatim (secrets scrubbed).
    public var errorText: String?
    /// The async job this error belongs to, when it came from `queryAsyncJobResult`.
    public var jobId: String?

    public init(
        code: Code,
        message: String,
        isTransient: Bool,
        command: String? = nil,
        httpStatus: Int? = nil,
        errorCode: Int? = nil,
        csErrorCode: Int? = nil,
        errorText: String? = nil,
        jobId: String? = nil
    ) {
        self.kind = code
        self.message = message
        self.isTransient = isTransient
        self.command = command
        self.httpStatus = httpStatus
        self.errorCode = errorCode
        self.csErrorCode = csErrorCode
        self.errorText = errorText
        self.jobId = jobId
    }

    /// Stable snake_case code, written to `volume_operations.error_code`.
    public var code: String { kind.rawValue }

    public var description: String { "\(code): \(message)" }

    /// CloudStack itself refused the request (its own `errorcode` in the reply, not a job's):
    /// no job was started, so the request may be sent again. Anything else — no reply, a
    /// reply that could not be read, a proxy's bare 5xx — leaves open that it was accepted.
    public var provesRequestRefused: Bool { errorCode != nil && jobId == nil }
}

extension CloudStackError {
    /// Classifies a CloudStack error envelope (sync `{"<cmd>response":{"errorcode":…}}`,
    /// `errorresponse`, or a failed job's `jobresult`) per the table above.
    static func fromAPIError(
        command: String,
        httpStatus: Int?,
        errorCode: Int,
        csErrorCode: Int?,
        errorText: String,
        jobId: String? = nil
    ) -> CloudStackError {
        let (code, isTransient, advice) = classify(errorCode: errorCode, errorText: errorText)
        let origin = jobId.map { "CloudStack async job \($0) for \(command)" } ?? "CloudStack \(command)"
        let finalCode = (jobId != nil && code == genericCode(for: errorCode)) ? .jobFailed : code
        return CloudStackError(
            code: finalCode,
            message: "\(origin) failed with error \(errorCode): \(errorText) — \(advice)",
            isTransient: isTransient,
            command: command,
            httpStatus: httpStatus,
            errorCode: errorCode,
            csErrorCode: csErrorCode,
            errorText: errorText,
            jobId: jobId
        )
    }

    static func authenticationFailed(command: String, httpStatus: Int, errorText: String, csErrorCode: Int?) -> CloudStackError {
        CloudStackError(
            code: .authFailed,
            message: "CloudStack rejected the request signature (HTTP \(httpStatus)) for \(command): check CLOUDSTACK_API_KEY and "
                + "CLOUDSTACK_SECRET_KEY, and that this host's clock is right (signed requests expire); CloudStack answers a "
                + "command it does not have at all the same way, so if other commands work, this CloudStack lacks \(command)",
            isTransient: false,
            command: command,
            httpStatus: httpStatus,
            errorCode: 401,
            csErrorCode: csErrorCode,
            errorText: errorText
        )
    }

    /// A job CloudStack itself failed without running the command to its end, so there is no
    /// `jobresult`: AsyncJobManagerImpl's GC task cancels a job that blocked its queue longer than
    /// `job.cancel.threshold.minutes` with `completeAsyncJob(FAILED, 0, "Job is cancelled as it has
    /// been blocking others for too long")`, and `cleanupLeftOverJobs` fails the jobs of a restarted
    /// management server with 530 and "job cancelled because of management server restart or
    /// shutdown" (apache/cloudstack `framework/jobs/src/main/java/org/apache/cloudstack/framework/jobs/impl/AsyncJobManagerImpl.java`).
    /// Both texts are plain strings, which `ApiSerializerHelper.fromSerializedString` cannot read
    /// back, so `AsyncJobJoinDaoImpl.newAsyncJobResponse` leaves `jobresult` out
    /// (`server/src/main/java/com/cloud/api/query/dao/AsyncJobJoinDaoImpl.java`). The command may
    /// have done its work or not (a GC-cancelled job's thread is not stopped): transient, and the
    /// step looks at the volume or VM before sending anything again.
    static func jobEndedWithoutResult(command: String, jobId: String, resultCode: Int) -> CloudStackError {
        let cause = resultCode == 530
            ? "failed by a management-server restart (jobresultcode 530)"
            : "cancelled by CloudStack's job GC for blocking others longer than job.cancel.threshold.minutes (jobresultcode \(resultCode))"
        return CloudStackError(
            code: .jobAbandoned,
            message: "CloudStack async job \(jobId) for \(command) ended without a result, \(cause); "
                + "the operation will be retried after looking at the volume or VM",
            isTransient: true,
            command: command,
            errorCode: resultCode,
            jobId: jobId)
    }

    /// queryAsyncJobResult answered 431 "…entity does not exist…" for a job id volumed started:
    /// CloudStack deletes jobs `job.expire.minutes` (default 1440) after they end (the GC task of
    /// AsyncJobManagerImpl, `expungeAsyncJob`), and ParamProcessWorker then no longer resolves the
    /// `jobid`. The job is long over; transient, and the step derives its outcome from the volume
    /// or VM.
    static func jobPurged(jobId: String, errorText: String?) -> CloudStackError {
        CloudStackError(
            code: .jobPurged,
            message: "CloudStack no longer knows async job \(jobId) (it deletes jobs job.expire.minutes after they end); "
                + "the operation will be retried after looking at the volume or VM",
            isTransient: true,
            command: "queryAsyncJobResult",
            errorCode: 431,
            errorText: errorText,
            jobId: jobId)
    }

    /// The job's outcome is unknown (`cloudstack_job_abandoned`, `cloudstack_job_purged`): the
    /// step treats it like a request whose answer was lost (see `CloudStackStep`).
    public var leavesOutcomeUnknown: Bool {
        kind == .jobAbandoned || kind == .jobPurged
    }

    /// ApiServer.commandAvailable (apache/cloudstack `server/src/main/java/com/cloud/api/ApiServer.java`):
    /// a PermissionDeniedException from the role checker (StaticRoleBasedAPIAccessChecker) becomes
    /// 401 "The given command '…' either does not exist, is not available for user."; an
    /// UnavailableCommandException (DynamicRoleBasedAPIAccessChecker, "The API [...] does not exist
    /// or is not available for the account …") becomes 432.
    static func isCommandUnavailableText(_ lowercasedText: String) -> Bool {
        lowercasedText.contains("either does not exist, is not available for user")
    }

    private static let commandUnavailableAdvice =
        "command not available to this account: the API key's account role does not allow it (or this CloudStack lacks it); "
        + "grant the role the command or use a key whose role has it"

    /// The code a bare errorcode maps to when the text adds nothing more specific.
    private static func genericCode(for errorCode: Int) -> Code {
        classify(errorCode: errorCode, errorText: "").code
    }

    private static func classify(errorCode: Int, errorText: String) -> (code: Code, isTransient: Bool, advice: String) {
        let text = errorText.lowercased()
        switch errorCode {
        case 401:
            if isCommandUnavailableText(text) {
                return (.unsupportedCommand, false, commandUnavailableAdvice)
            }
            return (.authFailed, false, "check CLOUDSTACK_API_KEY, CLOUDSTACK_SECRET_KEY and the clock")
        case 429:
            return (.rateLimited, true, "CloudStack's API rate limit was hit; the operation will be retried")
        case 430, 431:
            if text.contains("entity does not exist") || text.contains("please specify a valid user vm")
                || text.contains("unable to find volume with id") || text.contains("unable to find a virtual machine with id")
            {
                return (.notFound, false, "the referenced volume, VM, zone or offering does not exist in CloudStack")
            }
            if text.contains("not attached to any vm") {
                return (.volumeInUse, false, "the volume is attached to a VM; detach it first")
            }
            if text.contains("not attached to a vm") {
                return (.volumeNotAttached, false, "the volume is already detached")
            }
            if text.contains("volume state must be in allocated, ready or in uploaded state") {
                // VolumeApiServiceImpl.getAndCheckVolumeInfo: the volume is Attaching/Detaching
                // (left so by a management-server restart) or being destroyed.
                return (.volumeStateInvalid, false,
                        "the volume is in a state CloudStack does not attach from (see its state in listVolumes); a volume left "
                            + "Attaching or Detaching with no job running needs a CloudStack admin to reset it "
                            + "(updateVolume state=Ready) before the operation is enqueued again")
            }
            if text.contains("maximum number of data disks") {
                return (.vmDiskLimit, false, "detach a data disk from that VM or use another VM")
            }
            if text.contains("root volume detach can happen only when vm is in states") {
                return (.vmNotStopped, false, "stop the VM first: a root disk (device 0) is attached or detached only while it is Stopped")
            }
            return (.parameterError, false, "fix the request parameters")
        case 432:
            return (.unsupportedCommand, false, commandUnavailableAdvice)
        case 530:
            if text.contains("parameter expunge can be passed by admin only") {
                return (.expungeNotPermitted, false,
                        "the API key's account may not expunge VMs (not an admin, and allow.user.expunge.recover.vm is off)")
            }
            if text.contains("could not detach volume after sending the command") {
                // KVMStorageProcessor.attachOrDetachDevice: the guest did not release the disk
                // within wait.detach.device; CloudStack still records the volume attached.
                return (.detachTimeout, true,
                        "the VM's guest did not release the disk within the KVM agent's wait.detach.device; the volume is still "
                            + "attached in CloudStack and the detach will be retried")
            }
            if looksLikeParameterComplaint(text) {
                return (.parameterError, false, "fix the request parameters")
            }
            return (.internalError, true, "CloudStack had an internal error; the operation will be retried")
        case 531:
            return (.permissionDenied, false, "grant the API key's account access to the resource")
        case 532:
            return (.resourceLimit, false, "raise the account's resource limit in CloudStack")
        case 533:
            return (.insufficientCapacity, true, "CloudStack lacks capacity right now; the operation will be retried")
        case 534:
            return (.unavailable, true, "a CloudStack resource is unavailable; the operation will be retried")
        case 535:
            return (.allocationFailed, false, "CloudStack could not allocate the resource; check the account's limits")
        case 536:
            return (.resourceInUse, false, "the resource is in use; free it first")
        default:
            if errorCode >= 500 {
                return (.httpError, true, "CloudStack answered with a server error; the operation will be retried")
            }
            return (.httpError, false, "CloudStack refused the request")
        }
    }

    /// Texts of RuntimeExceptions that VolumeApiServiceImpl (getDeviceId, attach checks)
    /// throws for bad input; ApiAsyncJobDispatcher reports them as 530 although retrying
    /// cannot help.
    private static func looksLikeParameterComplaint(_ text: String) -> Bool {
        let markers = ["deviceid should be", "is used by vm", "all device ids are used", "please specify", "invalid parameter",
                       "is already attached", "not supported", "unable to execute api command"]
        return markers.contains { text.contains($0) }
    }
}
