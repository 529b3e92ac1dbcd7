import ArgumentParser
import AsyncHTTPClient
import CloudStack
import CloudStackSimulator
import Foundation
import HTTPAPI
import Hummingbird
import Primitives
import ServiceLifecycle
import Synchronization

/// `volumed-bench clock`: how soon volumed notices that a CloudStack async job ended, and how
/// many `queryAsyncJobResult` calls that costs, against the simulator with job durations drawn
/// from a realistic spread; beside the schedules of `cs` and cloudstack-go applied to the same
/// durations.
///
/// Each lane owns a VM and repeats create → attach → detach, waiting on every job with
/// `CloudStackClient.waitForJob` (the handlers' wait). Per job the simulator reports its drawn
/// duration and the queries it answered; the notice delay is the moment `waitForJob` returned
/// minus (the moment the start command returned + the duration). Jobs started before their
/// command had `JobDurationHistory.minimumSamples` finished jobs are the warm-up and are left
/// out (the doubling schedule polls those).
struct ClockBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clock", abstract: "Notice delay and queryAsyncJobResult calls per job, beside cs and cloudstack-go.")

    @Option(help: "Concurrent lanes (one VM each).") var lanes: Int = 24
    @Option(help: "create → attach → detach rounds per lane.") var rounds: Int = 8
    @Option(help: "createVolume job durations, min-max milliseconds.") var createMs: String = "1000-5000"
    @Option(help: "attachVolume job durations, min-max milliseconds.") var attachMs: String = "2000-10000"
    @Option(help: "detachVolume job durations, min-max milliseconds.") var detachMs: String = "2000-10000"
    @Flag(help: "The simulator delivers webhooks to a receiver of POST /cloudstack/webhook that wakes the waits.")
    var webhooks = false
    @Option(help: "With --webhooks: the fraction of events the simulator never delivers.") var webhookLossRate: Double = 0

    func run() async throws {
        let logger = benchLogger()
        var faults = SimulatorFaults()
        faults.webhookLossRate = webhookLossRate
        faults.jobDurationsMs = [
            "createVolume": try Self.range(createMs, "--create-ms"),
            "attachVolume": try Self.range(attachMs, "--attach-ms"),
            "detachVolume": try Self.range(detachMs, "--detach-ms"),
        ]
        try faults.validate()
        let simulator = try await CloudStackSimulator.start(
            SimulatorConfiguration(apiKey: "k", secretKey: "s", faults: faults), logger: logger)
        let httpClient = HTTPClient(eventLoopGroupProvider: .singleton)
        let client = CloudStackClient(
            configuration: CloudStackConfiguration(apiURL: simulator.apiURL, apiKey: "k", secretKey: "s"),
            httpClient: httpClient, logger: logger)
        let recorder = ClockRecorder(client: client)
        var receiver: (group: ServiceGroup, task: Task<Void, any Error>)?
        do {
            if webhooks {
                let (ports, sink) = AsyncStream<Int>.makeStream()
                let app = VolumedAPI.webhookReceiver(secret: "bench-webhook-secret", wakeups: client.wakeups, logger: logger) {
                    sink.yield($0)
                    sink.finish()
                }
                let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
                receiver = (group, Task { try await group.run() })
                var iterator = ports.makeAsyncIterator()
                guard let port = await iterator.next() else { throw BenchError("the webhook receiver did not start") }
                faults.webhookPayloadURL = "http://127.0.0.1:\(port)/cloudstack/webhook"
                faults.webhookSecretKey = "bench-webhook-secret"
                await simulator.setFaults(faults)
            }
            var vms: [String] = []
            for lane in 0..<lanes {
                vms.append(try await simulator.addVirtualMachine(
                    SimulatorVirtualMachineSpec(name: "clock-\(lane)", state: "Running", rootVolume: true)).id)
            }
            let rounds = self.rounds
            try await withThrowingTaskGroup(of: Void.self) { group in
                for vm in vms {
                    group.addTask {
                        for round in 0..<rounds {
                            let volume = try await recorder.timed("createVolume") {
                                let created = try await client.createVolume(
                                    name: "clock-\(round)", zoneId: SimulatorConfiguration.zoneID,
                                    diskOfferingId: SimulatorConfiguration.customDiskOfferingID, sizeGB: 1)
                                return (created.jobId, created.volumeId)
                            }
                            try await recorder.timed("attachVolume") { (try await client.attachVolume(id: volume, virtualMachineId: vm), ()) }
                            try await recorder.timed("detachVolume") { (try await client.detachVolume(id: volume), ()) }
                        }
                    }
                }
                try await group.waitForAll()
            }
        } catch {
            await receiver?.group.triggerGracefulShutdown()
            try? await httpClient.shutdown()
            await simulator.stop()
            throw error
        }
        if let receiver {
            await receiver.group.triggerGracefulShutdown()
            try? await receiver.task.value
        }
        let jobs = Dictionary(uniqueKeysWithValues: await simulator.state().jobs.map { ($0.id, $0) })
        try await httpClient.shutdown()
        await simulator.stop()

        var rows: [ClockRow] = []
        let observed = recorder.waits.withLock { $0 }
        for command in ["createVolume", "attachVolume", "detachVolume", "all"] {
            let mine = observed.filter { command == "all" || $0.command == command }
            guard !mine.isEmpty else { continue }
            var volumed = ClockSamples(), cs = ClockSamples(), go = ClockSamples()
            for wait in mine {
                guard let job = jobs[wait.jobId] else { throw BenchError("the simulator lost job \(wait.jobId)") }
                let duration = Double(job.durationMs) / 1000
                volumed.add(delay: max(0, wait.noticedAfterStart.seconds - duration), calls: job.queries)
                cs.add(PollingClient.cs.notice(duration))
                go.add(PollingClient.cloudstackGo.notice(duration))
            }
            rows.append(ClockRow(command: command, client: webhooks ? "volumed + webhooks" : "volumed", samples: volumed))
            rows.append(ClockRow(command: command, client: "cs (2 s)", samples: cs))
            rows.append(ClockRow(command: command, client: "cloudstack-go", samples: go))
        }
        print("job durations: create \(createMs) ms, attach \(attachMs) ms, detach \(detachMs) ms; \(lanes) lanes × \(rounds) rounds; warm-up jobs left out"
            + (webhooks ? "; webhooks on, loss rate \(webhookLossRate)" : ""))
        print(ClockRow.header)
        for row in rows { print(row.line) }
    }

    static func range(_ text: String, _ option: String) throws -> SimulatorDurationRange {
        let parts = text.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 2 else { throw ValidationError("\(option) must be MIN-MAX in milliseconds, e.g. 2000-10000 (got \(text))") }
        return SimulatorDurationRange(minMs: parts[0], maxMs: parts[1])
    }
}

/// Starts jobs, waits for them as the handlers do, and notes when each was noticed.
final class ClockRecorder: Sendable {
    let client: CloudStackClient
    let waits = Mutex<[ObservedWait]>([])
    private let finished = Mutex<[String: Int]>([:])

    init(client: CloudStackClient) {
        self.client = client
    }

    /// `start` sends the command and returns its job id (and anything else it learnt).
    func timed<T: Sendable>(_ command: String, _ start: () async throws -> (String, T)) async throws -> T {
        let warm = finished.withLock { $0[command, default: 0] } >= JobDurationHistory.minimumSamples
        let (jobId, value) = try await start()
        let started = ContinuousClock.now
        _ = try await client.waitForJob(jobId: jobId, timeout: .seconds(120))
        let noticed = ContinuousClock.now
        finished.withLock { $0[command, default: 0] += 1 }
        if warm { waits.withLock { $0.append(ObservedWait(jobId: jobId, command: command, noticedAfterStart: noticed - started)) } }
        return value
    }
}

struct ObservedWait: Sendable {
    var jobId: String
    var command: String
    /// From the start command's reply to `waitForJob` returning.
    var noticedAfterStart: Duration
}

/// Another client's poll schedule, applied to a job's duration: the polls it would send and
/// how late the first one after the job's end comes. Request latency is left out (it adds the
/// same to every client).
enum PollingClient {
    /// exoscale's cs: `_jobresult` queries at once, then `time.sleep(self.poll_interval)` between
    /// queries (exoscale/cs `cs/client.py`; default `poll_interval` 2.0 s).
    case cs
    /// apache/cloudstack-go `GetAsyncJobResult` (`cloudstack/cloudstack.go`): queries at once,
    /// then sleeps `timer` seconds, `timer` growing by one per query up to 15: polls at 0, 1, 3,
    /// 6, 10, 15, 21 … s.
    case cloudstackGo

    /// (calls, seconds from the job's end to the poll that sees it).
    func notice(_ duration: Double) -> (calls: Int, delay: Double) {
        var time = 0.0, calls = 1, sleep = 0.0
        while time < duration {
            switch self {
            case .cs: sleep = 2
            case .cloudstackGo: sleep = min(sleep + 1, 15)
            }
            time += sleep
            calls += 1
        }
        return (calls, time - duration)
    }
}

struct ClockSamples {
    var delays: [Double] = []
    var calls: [Int] = []

    mutating func add(delay: Double, calls: Int) {
        delays.append(delay)
        self.calls.append(calls)
    }

    mutating func add(_ notice: (calls: Int, delay: Double)) {
        add(delay: notice.delay, calls: notice.calls)
    }
}

struct ClockRow {
    var command: String
    var client: String
    var samples: ClockSamples

    static let header = "| command | client | jobs | notice p50 ms | p90 ms | p99 ms | max ms | calls/job mean | calls/job max |\n"
        + "|---|---|---:|---:|---:|---:|---:|---:|---:|"

    var line: String {
        let sorted = samples.delays.sorted()
        func p(_ q: Double) -> String { String(format: "%.0f", sorted.percentile(q) * 1000) }
        let mean = Double(samples.calls.reduce(0, +)) / Double(samples.calls.count)
        return "| \(command) | \(client) | \(sorted.count) | \(p(0.5)) | \(p(0.9)) | \(p(0.99)) | \(p(1)) | "
            + String(format: "%.2f", mean) + " | \(samples.calls.max() ?? 0) |"
    }
}
