import Primitives
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Synchronization

/// A CloudStack API client for the volume operations volumed performs.
///
/// Every call is signed (see `CloudStackSigner`), sent with `response=json`, and bounded
/// by `configuration.requestTimeout`. Reads go out as GET; state-changing commands as a
/// POST form, which CloudStack accepts everywhere and requires when
/// `enforce.post.requests.and.timestamps` is on (ApiServer.java).
///
/// Async commands return as soon as CloudStack has accepted them, with the job id, so the
/// caller can checkpoint it before waiting (`waitForJob`) — a rescued operation then waits
/// on the same job instead of repeating the side effect.
public final class CloudStackClient: Sendable {
    public let configuration: CloudStackConfiguration
    private let httpClient: HTTPClient
    private let logger: Logger
    private let signer: CloudStackSigner
    private let metrics = CloudStackMetrics()
    /// Durations of the jobs this client saw end, per command: where `waitForJob` polls.
    package let jobDurations = JobDurationHistory()
    /// Jobs this process started and has not waited for yet: their command and start.
    private let startedJobs = Mutex<[String: StartedJob]>([:])
    /// Webhook deliveries wake this client's waits through it (`JobWakeups`).
    package let wakeups = JobWakeups()

    private struct StartedJob {
        var command: String
        var at: ContinuousClock.Instant
        /// The volume or VM the job works on: what a webhook delivery names.
        var entity: String
    }

    /// Remembered jobs beyond this are forgotten oldest first (started, never waited on).
    private static let startedJobsLimit = 4096

    /// Largest reply accepted; list replies for a whole cloud stay well below this.
    private static let maximumResponseBytes = 32 * 1024 * 1024

    public init(configuration: CloudStackConfiguration, httpClient: HTTPClient, logger: Logger) {
        self.configuration = configuration
        self.httpClient = httpClient
        self.logger = logger
        self.signer = CloudStackSigner(apiKey: configuration.apiKey, secretKey: configuration.secretKey)
    }

    // MARK: Sync commands

    public func listZones() async throws -> [CloudStackZone] {
        try await list("listZones", [], as: CloudStackZone.self)
    }

    /// Every offering, or the one `id` names (an unknown id: 431, `cloudstack_not_found`).
    public func listDiskOfferings(id: String? = nil) async throws -> [CloudStackDiskOffering] {
        try await list("listDiskOfferings", id.map { [("id", $0)] } ?? [], as: CloudStackDiskOffering.self)
    }

    /// `listall=true` so an admin key sees VMs of every account, not only its own.
    public func listVirtualMachines(id: String? = nil) async throws -> [CloudStackVirtualMachine] {
        var parameters: [(name: String, value: String)] = [("listall", "true")]
        if let id { parameters.append(("id", id)) }
        return try await list("listVirtualMachines", parameters, as: CloudStackVirtualMachine.self)
    }

    /// An empty array when nothing matches (CloudStack then answers `{"listvolumesresponse":{}}`).
    public func listVolumes(id: String? = nil, virtualMachineId: String? = nil) async throws -> [CloudStackVolume] {
        var parameters: [(name: String, value: String)] = [("listall", "true")]
        if let id { parameters.append(("id", id)) }
        if let virtualMachineId { parameters.append(("virtualmachineid", virtualMachineId)) }
        return try await list("listVolumes", parameters, as: CloudStackVolume.self)
    }

    /// Deletes a detached volume. CloudStack refuses attached volumes with 431
    /// (`cloudstack_volume_in_use`).
    public func deleteVolume(id: String) async throws {
        let body = try await call("deleteVolume", [("id", id)], method: .post, as: SuccessBody.self)
        guard body.success else {
            throw CloudStackError(
                code: .badResponse,
                message: "CloudStack deleteVolume answered success=false for volume \(id)"
                    + (body.displaytext.map { ": \($0)" } ?? "") + "; check the volume in CloudStack",
                isTransient: false,
                command: "deleteVolume"
            )
        }
    }

    // MARK: Async commands (start only)

    /// Starts creating a data volume of `sizeGB` GiB (CloudStack's `size` is in GB and it
    /// multiplies by 1024³). The volume exists, `Allocated`, as soon as this returns. `sizeGB`
    /// nil sends no `size`: what a fixed-size offering needs (CloudStack refuses a `size` with
    /// it, and requires one with a customized offering).
    public func createVolume(name: String, zoneId: String, diskOfferingId: String, sizeGB: Int?) async throws -> (volumeId: String, jobId: String) {
        var parameters: [(name: String, value: String)] = [("name", name), ("zoneid", zoneId), ("diskofferingid", diskOfferingId)]
        if let sizeGB { parameters.append(("size", String(sizeGB))) }
        let body = try await call("createVolume", parameters, method: .post, as: AsyncCreateBody.self)
        noteStarted(jobId: body.jobid, command: "createVolume", entity: body.id)
        return (body.id, body.jobid)
    }

    /// Starts attaching a volume; returns the job id. `deviceId` 0 attaches as the root
    /// disk (stopped VMs only); nil lets CloudStack pick the next free slot.
    public func attachVolume(id: String, virtualMachineId: String, deviceId: Int? = nil) async throws -> String {
        var parameters: [(name: String, value: String)] = [("id", id), ("virtualmachineid", virtualMachineId)]
        if let deviceId { parameters.append(("deviceid", String(deviceId))) }
        return try await startJob("attachVolume", parameters)
    }

    /// Starts detaching a volume from whatever VM holds it; returns the job id.
    public func detachVolume(id: String) async throws -> String {
        try await startJob("detachVolume", [("id", id)])
    }

    /// Starts resizing a volume to `sizeGB` (GiB; CloudStack shifts it by 30 bits); returns
    /// the job id. Never sends `shrinkok`: a smaller size fails the job.
    public func resizeVolume(id: String, sizeGB: Int) async throws -> String {
        try await startJob("resizeVolume", [("id", id), ("size", String(sizeGB))])
    }

    /// Starts stopping a VM; returns the job id. `forced` marks it Stopped even when the
    /// hypervisor cannot be told (StopVMCmd). Stopping a stopped VM succeeds.
    public func stopVirtualMachine(id: String, forced: Bool = false) async throws -> String {
        var parameters: [(name: String, value: String)] = [("id", id)]
        if forced { parameters.append(("forced", "true")) }
        return try await startJob("stopVirtualMachine", parameters)
    }

    /// Starts destroying a VM; returns the job id. CloudStack detaches its data disks first;
    /// its ROOT volume goes with it. `expunge` removes it at once instead of after
    /// `expunge.delay` (DestroyVMCmd).
    public func destroyVirtualMachine(id: String, expunge: Bool = false) async throws -> String {
        var parameters: [(name: String, value: String)] = [("id", id)]
        if expunge { parameters.append(("expunge", "true")) }
        return try await startJob("destroyVirtualMachine", parameters)
    }

    /// Recovers a Destroyed (not yet expunged) VM to Stopped, synchronously (RecoverVMCmd),
    /// and returns it. CloudStack refuses any other state with 431.
    public func recoverVirtualMachine(id: String) async throws -> CloudStackVirtualMachine {
        try await call("recoverVirtualMachine", [("id", id)], method: .post, as: RecoveredVirtualMachineBody.self).virtualmachine
    }

    /// Sends an async command and remembers when its job started, for `waitForJob`'s plan.
    /// The entity is the `id` parameter (the volume, or the VM of a VM command).
    package func startJob(_ command: String, _ parameters: [(name: String, value: String)]) async throws -> String {
        let jobId = try await call(command, parameters, method: .post, as: AsyncJobStartBody.self).jobid
        noteStarted(jobId: jobId, command: command, entity: parameters.first { $0.name == "id" }?.value ?? "")
        return jobId
    }

    private func noteStarted(jobId: String, command: String, entity: String) {
        let now = ContinuousClock.now
        startedJobs.withLock { jobs in
            if jobs.count >= Self.startedJobsLimit, let oldest = jobs.min(by: { $0.value.at < $1.value.at })?.key {
                jobs[oldest] = nil
            }
            jobs[jobId] = StartedJob(command: command, at: now, entity: entity)
        }
    }

    // MARK: Async jobs

    /// One look at a job. A failed job is returned (status `.failed`), not thrown; use
    /// `waitForJob` to turn outcomes into errors.
    ///
    /// A job CloudStack no longer knows throws the transient `cloudstack_job_purged`
    /// (`CloudStackError.jobPurged`): jobs are deleted `job.expire.minutes` after they end.
    public func queryAsyncJobResult(jobId: String) async throws -> AsyncJobResult {
        let body: AsyncJobBody
        do {
            body = try await call("queryAsyncJobResult", [("jobid", jobId)], method: .get, as: AsyncJobBody.self)
        } catch let error as CloudStackError where error.kind == .notFound {
            throw CloudStackError.jobPurged(jobId: jobId, errorText: error.errorText)
        }
        guard let status = AsyncJobResult.Status(rawValue: body.jobstatus) else {
            throw CloudStackError(
                code: .badResponse,
                message: "CloudStack reported unknown jobstatus \(body.jobstatus) for job \(jobId); expected 0, 1, 2 or 3",
                isTransient: false,
                command: "queryAsyncJobResult",
                jobId: jobId
            )
        }
        return AsyncJobResult(
            jobId: body.jobid,
            status: status,
            resultCode: body.jobresultcode ?? 0,
            resultType: body.jobresulttype,
            volume: body.jobresult?.volume,
            virtualMachine: body.jobresult?.virtualmachine,
            success: body.jobresult?.success,
            errorCode: body.jobresult?.errorcode,
            errorText: body.jobresult?.errortext.map(scrub),
            command: body.cmd,
            instanceId: body.jobinstanceid
        )
    }

    /// Polls a job until it ends: returns the result on success; throws the job's error
    /// on failure (`CloudStackError`, classified like a sync error), `cloudstack_job_cancelled`
    /// on cancellation, and the transient `cloudstack_job_timeout` once `timeout` passes.
    ///
    /// A job this client started, of a command with enough history, is polled at the times
    /// `jobDurations` plans (where its command's jobs usually end, gaps of at most 1.5 s); any
    /// other job at once and then at an interval starting at `initialPollInterval` and
    /// doubling up to `maximumPollInterval`. A webhook delivery naming the job's volume or VM
    /// (`wakeups`) makes it look at once; while deliveries arrive, the planned polls shrink to
    /// a slow fallback (`JobPollSchedule.fallback`). Transient errors while polling are retried until
    /// the deadline (polling has no side effect). Honors task cancellation.
    public func waitForJob(
        jobId: String,
        timeout: Duration,
        initialPollInterval: Duration = .milliseconds(50),
        maximumPollInterval: Duration = .seconds(2)
    ) async throws -> AsyncJobResult {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        let started = startedJobs.withLock { $0.removeValue(forKey: jobId) }
        let plan = started.flatMap { jobDurations.plan(for: $0.command) }
        // A job this process started can be woken by a webhook delivery; while deliveries
        // arrive, polling is only the slow fallback.
        let fallback = started != nil && wakeups.isLive
        var schedule = fallback
            ? JobPollSchedule.fallback(startedAt: started!.at, plan: plan)
            : JobPollSchedule(startedAt: started?.at ?? clock.now, plan: plan,
                              initialInterval: initialPollInterval, maximumInterval: maximumPollInterval)
        var lastTransientError: CloudStackError?
        var lastPending: ContinuousClock.Instant?
        // A job started elsewhere (a rescued operation) learns its entity from its first look.
        var wait = started.map { wakeups.begin(entity: $0.entity) }
        defer { if let wait { wakeups.end(wait) } }
        var woken = false
        func pause(until instant: ContinuousClock.Instant) async throws {
            if let wait { woken = try await wakeups.sleep(wait, until: instant) } else { try await Task.sleep(until: instant, clock: clock) }
        }
        if let first = schedule.firstPoll, first > clock.now {
            try await pause(until: min(first, deadline))
        }
        while true {
            try Task.checkCancellation()
            let polledAt = clock.now
            do {
                let result = try await queryAsyncJobResult(jobId: jobId)
                lastTransientError = nil
                switch result.status {
                case .succeeded:
                    // The fallback's sparse looks say little about when the job ended (and,
                    // taken as durations, would stretch the plan): only a woken look counts.
                    if let started, !fallback || woken {
                        // It ended between the last pending look and this one: take the middle.
                        // With no pending look (or a woken one), this one is all we know (half
                        // of it would drag the plan's first poll earlier with every job it catches).
                        let ended = woken ? polledAt : lastPending.map { $0.advanced(by: (polledAt - $0) / 2) } ?? polledAt
                        jobDurations.record(command: started.command, duration: ended - started.at)
                    }
                    return result
                case .failed:
                    let command = Self.commandName(fromJavaClass: result.command)
                    // No `jobresult` at all: CloudStack failed the job itself (job GC, restart),
                    // not the command; its outcome is for the volume or VM to tell.
                    let error = result.errorCode == nil && result.errorText == nil
                        ? CloudStackError.jobEndedWithoutResult(command: command, jobId: jobId, resultCode: result.resultCode)
                        : CloudStackError.fromAPIError(
                            command: command,
                            httpStatus: nil,
                            errorCode: result.errorCode ?? result.resultCode,
                            csErrorCode: nil,
                            errorText: result.errorText ?? "no error text",
                            jobId: jobId
                        )
                    metrics.error(command: error.command ?? "asyncJob", code: error.code)
                    throw error
                case .cancelled:
                    throw CloudStackError(
                        code: .jobCancelled,
                        message: "CloudStack async job \(jobId) was cancelled before it finished; the operation will be retried",
                        isTransient: true,
                        command: Self.commandName(fromJavaClass: result.command),
                        errorText: result.errorText,
                        jobId: jobId
                    )
                case .pending:
                    lastPending = polledAt
                    if wait == nil, let entity = result.instanceId, !entity.isEmpty { wait = wakeups.begin(entity: entity) }
                }
            } catch let error as CloudStackError where error.isTransient && error.jobId == nil {
                lastTransientError = error
                logger.debug("transient error polling CloudStack job", metadata: ["job_id": "\(jobId)", "error": "\(error.code)"])
            }
            let remaining = clock.now.duration(to: deadline)
            if remaining <= .zero {
                throw CloudStackError(
                    code: .jobTimeout,
                    message: "CloudStack async job \(jobId) did not finish within \(timeout)"
                        + (lastTransientError.map { " (last poll failed: \($0.code))" } ?? "")
                        + "; it may still complete, so the retry resumes waiting on the same job id",
                    isTransient: true,
                    command: "queryAsyncJobResult",
                    jobId: jobId
                )
            }
            try await pause(until: min(schedule.next(after: polledAt, now: clock.now), deadline))
        }
    }

    /// `…user.volume.AttachVolumeCmd` and `…admin.volume.AttachVolumeCmdByAdmin` → `attachVolume`
    /// (`CloudStackCommandClass`), for error messages and metric labels.
    private static func commandName(fromJavaClass javaClass: String?) -> String {
        CloudStackCommandClass.apiCommand(ofJavaClass: javaClass) ?? "asyncJob"
    }

    // MARK: Transport

    enum Method { case get, post }

    /// Every row, page by page. A list command without `page` answers at most
    /// `default.page.size` rows (500 unless configured) while `count` is the total
    /// (apache/cloudstack `api/.../BaseListCmd.java`, `getPageSizeVal`); so the first page's
    /// length is the server's page size, and the rest follow as `page=2…` with that
    /// `pagesize`. Rows created or removed meanwhile may shift a row across a page
    /// boundary (missed or listed twice): callers that must see a given row look it up on
    /// its own when the listing lacks it.
    private func list<Item: Decodable & Sendable>(_ command: String, _ parameters: [(name: String, value: String)], as: Item.Type) async throws -> [Item] {
        let first = try await firstPage(command, parameters, as: Item.self)
        return try await first.items + pages(after: first, command, parameters)
    }

    private func firstPage<Item: Decodable & Sendable>(_ command: String, _ parameters: [(name: String, value: String)], as: Item.Type)
        async throws -> ListPage<Item> {
        let body = try await call(command, parameters, method: .get, as: ListBody<Item>.self)
        return ListPage(items: body.items, count: body.count)
    }

    /// The rows after the first page: `page=2…` with the first page's length as `pagesize`.
    private func pages<Item: Decodable & Sendable>(after first: ListPage<Item>, _ command: String, _ parameters: [(name: String, value: String)])
        async throws -> [Item] {
        let pageSize = first.items.count
        var (items, total, page, last) = ([Item](), first.count, 1, first.items)
        while first.items.count + items.count < total, last.count == pageSize, pageSize > 0 {
            page += 1
            let next = try await call(
                command, parameters + [("page", String(page)), ("pagesize", String(pageSize))], method: .get, as: ListBody<Item>.self)
            items += next.items
            (total, last) = (next.count, next.items)
        }
        return items
    }

    // MARK: Volumes page by page

    /// The first page of every volume the key sees (`listall=true`): what reading the rest
    /// would cost (`pagesLeft`) tells a caller whether to read it or ask for a few volumes by id.
    public func firstPageOfVolumes() async throws -> ListPage<CloudStackVolume> {
        try await firstPage("listVolumes", [("listall", "true")], as: CloudStackVolume.self)
    }

    /// The volumes after `first` (`firstPageOfVolumes`), one call per page.
    public func volumes(after first: ListPage<CloudStackVolume>) async throws -> [CloudStackVolume] {
        try await pages(after: first, "listVolumes", [("listall", "true")])
    }

    /// Sends one command and records its latency and, when it fails, its error code
    /// (`volumed_cloudstack_request_duration_seconds`, `volumed_cloudstack_errors_total`).
    private func call<Body: Decodable>(
        _ command: String,
        _ parameters: [(name: String, value: String)],
        method: Method,
        as: Body.Type
    ) async throws -> Body {
        let started = ContinuousClock.now
        defer { metrics.call(command: command, seconds: (ContinuousClock.now - started).seconds) }
        do {
            return try await exchange(command, parameters, method: method, as: Body.self)
        } catch let error as CloudStackError {
            metrics.error(command: command, code: error.code)
            throw error
        }
    }

    /// Signs and sends one command, maps error envelopes and transport failures to
    /// `CloudStackError`, and decodes the body under the single top-level key.
    private func exchange<Body: Decodable>(
        _ command: String,
        _ parameters: [(name: String, value: String)],
        method: Method,
        as: Body.Type
    ) async throws -> Body {
        let expires = configuration.useSignatureVersion3
            ? Date().addingTimeInterval(configuration.signatureLifetime.seconds) : nil
        let signed = signer.signedQuery(command: command, parameters: parameters, expires: expires)

        var request: HTTPClientRequest
        switch method {
        case .get:
            request = HTTPClientRequest(url: configuration.apiURL + "?" + signed.query)
            request.method = .GET
        case .post:
            request = HTTPClientRequest(url: configuration.apiURL)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: signed.query))
        }
        request.headers.add(name: "Accept", value: "application/json")

        let started = ContinuousClock.now
        let status: Int
        let data: Data
        do {
            let response = try await httpClient.execute(request, timeout: .nanoseconds(configuration.requestTimeout.nanoseconds))
            status = Int(response.status.code)
            let buffer = try await response.body.collect(upTo: Self.maximumResponseBytes)
            data = Data(buffer.readableBytesView)
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw CloudStackError(
                code: .unreachable,
                message: "CloudStack at \(configuration.redactedAPIURL) could not be reached for \(command) "
                    + "(\(scrub(String(describing: error)))): check CLOUDSTACK_API_URL and the network; the operation will be retried",
                isTransient: true,
                command: command
            )
        }
        logger.debug(
            "cloudstack call",
            metadata: ["command": "\(command)", "http_status": "\(status)", "duration": "\(ContinuousClock.now - started)"]
        )
        return try decode(data, status: status, command: command, signature: signed.signature, as: Body.self)
    }

    private func decode<Body: Decodable>(_ data: Data, status: Int, command: String, signature: String, as: Body.Type) throws -> Body {
        let scrubAll = { (text: String) in
            self.scrub(text)
                .replacingOccurrences(of: signature, with: "<redacted>")
                .replacingOccurrences(of: CloudStackSigner.javaURLEncode(signature), with: "<redacted>")
        }
        let decoder = JSONDecoder()
        guard let (key, probe) = try? CloudStackEnvelope.head(data, decoder: decoder) else {
            let snippet = scrubAll(String(decoding: data.prefix(200), as: UTF8.self))
            if status != 200 {
                let isTransient = status >= 500 || status == 429
                throw CloudStackError(
                    code: status == 401 ? .authFailed : .httpError,
                    message: "CloudStack answered \(command) with HTTP \(status) and no CloudStack error body (\(snippet)): "
                        + (isTransient ? "the operation will be retried" : "check CLOUDSTACK_API_URL points at /client/api"),
                    isTransient: isTransient,
                    command: command,
                    httpStatus: status
                )
            }
            throw CloudStackError(
                code: .badResponse,
                message: "CloudStack answered \(command) with a body that is not a one-key JSON object (\(snippet)): "
                    + "check CLOUDSTACK_API_URL points at the CloudStack API",
                isTransient: false,
                command: command,
                httpStatus: status
            )
        }
        if let probe, let errorCode = probe.errorcode {
            let text = scrubAll(probe.errortext ?? "no error text")
            if errorCode == 401 || status == 401, !CloudStackError.isCommandUnavailableText(text.lowercased()) {
                throw CloudStackError.authenticationFailed(command: command, httpStatus: status, errorText: text, csErrorCode: probe.cserrorcode)
            }
            throw CloudStackError.fromAPIError(
                command: command, httpStatus: status, errorCode: errorCode, csErrorCode: probe.cserrorcode, errorText: text
            )
        }
        guard status == 200 else {
            throw CloudStackError(
                code: .httpError,
                message: "CloudStack answered \(command) with HTTP \(status) under \(key) but no errorcode; "
                    + (status >= 500 ? "the operation will be retried" : "check the CloudStack version"),
                isTransient: status >= 500 || status == 429,
                command: command,
                httpStatus: status
            )
        }
        do {
            return try CloudStackEnvelope.body(data, as: Body.self, decoder: decoder)
        } catch {
            throw CloudStackError(
                code: .badResponse,
                message: "CloudStack's \(key) for \(command) could not be decoded (\(error)); check the CloudStack version is supported",
                isTransient: false,
                command: command,
                httpStatus: status
            )
        }
    }

    /// Removes the secret key and any credentials of `CLOUDSTACK_API_URL` from text that
    /// came from the server or the transport, in case either echoes them.
    private func scrub(_ text: String) -> String {
        var text = text.replacingOccurrences(of: configuration.apiURL, with: configuration.redactedAPIURL)
        for secret in configuration.secretsInMessages {
            text = text
                .replacingOccurrences(of: secret, with: "<redacted>")
                .replacingOccurrences(of: CloudStackSigner.javaURLEncode(secret), with: "<redacted>")
        }
        return text
    }
}
