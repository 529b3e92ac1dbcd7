import Foundation
import Primitives
import Synchronization

/// How long this process has seen CloudStack's async jobs take, per command, and the poll
/// times that follow from it: polls go where jobs of that command usually end, not at a fixed
/// clock.
///
/// Real jobs take seconds (issue 16: attach 2–10 s, create 1–5 s). A fixed 2 s poll (exoscale's
/// `cs`: `_jobresult` polls at once, then sleeps `poll_interval`, cs/client.py) spends its calls
/// evenly from the start, most of them before any job can have ended, and notices up to 2 s
/// late. Here the first poll waits until the shortest duration seen, later ones follow the
/// history's quantiles (or even gaps) no more than `maximumGap` apart, as many as fit in the
/// calls a 2 s poll would have made on the same history (`plan(for:)`). Memory only: a
/// new process starts with today's doubling schedule until it has `minimumSamples` jobs.
package final class JobDurationHistory: Sendable {
    /// Durations kept per command; older ones drop out, so the plan follows a changed cloud.
    static let capacity = 128
    /// Fewer samples than this: no plan (the doubling schedule).
    package static let minimumSamples = 8
    /// The largest gap between two polls: the latest a job's end is noticed, below a 2 s poll's.
    static let maximumGap: Duration = .milliseconds(1500)
    /// Polls closer than this are merged.
    static let minimumGap: Duration = .milliseconds(50)
    /// The budget: a plan makes no more calls, on average over the history, than polling at
    /// once and then every `referenceInterval` would (`cs`'s default `poll_interval` 2.0).
    static let referenceInterval: Duration = .seconds(2)
    /// The share of that budget a plan may spend: the history's durations are estimates (the
    /// middle between two looks), so real jobs cost a little more than the plan computes.
    static let budgetShare = 0.95
    /// The most quantile steps a candidate plan has.
    static let maximumSteps = 32

    private let samples = Mutex<[String: [Double]]>([:])

    package init() {}

    /// Notes how long a successful job of `command` took (seconds since it was started).
    package func record(command: String, duration: Duration) {
        let seconds = max(0, duration.seconds)
        samples.withLock { all in
            var list = all[command, default: []]
            list.append(seconds)
            if list.count > Self.capacity { list.removeFirst(list.count - Self.capacity) }
            all[command] = list
        }
    }

    /// Poll times after the job's start, ascending; nil while `command` has fewer than
    /// `minimumSamples` durations. After the last time `JobPollSchedule` backs off to `maximumGap`.
    package func plan(for command: String) -> [Duration]? {
        guard let list = samples.withLock({ $0[command] }), list.count >= Self.minimumSamples else { return nil }
        return Self.plan(durations: list).map { .nanoseconds(Int64(($0 * 1e9).rounded())) }
    }

    /// Of the candidate plans — the history's quantiles 0, 1/k … 1 for k up to `maximumSteps`,
    /// and even gaps from the shortest duration to the longest — those with no gap above
    /// `maximumGap` and mean calls over `durations` within `budgetShare` of a
    /// `referenceInterval` poll's; of these the one that notices the end soonest on average.
    /// None qualifies (a spread too wide for the budget): even gaps of `maximumGap`.
    static func plan(durations: [Double]) -> [Double] {
        let sorted = durations.sorted()
        let budget = sorted.reduce(0) { $0 + referenceCalls($1) } / Double(sorted.count) * budgetShare
        let cap = maximumGap.seconds
        var candidates = (1...maximumSteps).map { quantiles(sorted, steps: $0) }
        var gap = cap
        while gap >= minimumGap.seconds {
            candidates.append(evenlySpaced(sorted, gap: gap))
            gap *= 0.9
        }
        var best: (plan: [Double], delay: Double)?
        for candidate in candidates {
            guard zip(candidate, candidate.dropFirst()).allSatisfy({ $1 - $0 <= cap + 1e-9 }),
                  meanCalls(candidate, sorted) <= budget else { continue }
            let delay = meanDelay(candidate, sorted)
            if best == nil || delay < best!.delay { best = (candidate, delay) }
        }
        return best?.plan ?? evenlySpaced(sorted, gap: cap)
    }

    /// Calls a poll at once and then every `referenceInterval` makes for a job of `duration`.
    static func referenceCalls(_ duration: Double) -> Double {
        1 + (duration / referenceInterval.seconds).rounded(.up)
    }

    /// The quantiles 0, 1/steps … 1 of `sorted`, merged when closer than `minimumGap`.
    static func quantiles(_ sorted: [Double], steps: Int) -> [Double] {
        var result: [Double] = []
        for step in 0...steps {
            let time = sorted[Int((Double(step) / Double(steps) * Double(sorted.count - 1)).rounded())]
            if let last = result.last, time - last < minimumGap.seconds { continue }
            result.append(time)
        }
        return result
    }

    /// From the shortest duration, every `gap` until one at or past the longest.
    static func evenlySpaced(_ sorted: [Double], gap: Double) -> [Double] {
        var result = [sorted[0]]
        while result.last! < sorted[sorted.count - 1] { result.append(result.last! + gap) }
        return result
    }

    /// The mean time from each duration's end to the first of `times` at or after it.
    static func meanDelay(_ times: [Double], _ durations: [Double]) -> Double {
        durations.reduce(0.0) { sum, duration in
            sum + ((times.first { $0 >= duration } ?? duration) - duration)
        } / Double(durations.count)
    }

    /// The mean number of polls `times` (then every `maximumGap`) needs to see each duration end.
    static func meanCalls(_ times: [Double], _ durations: [Double]) -> Double {
        let total = durations.reduce(0.0) { sum, duration in
            if let index = times.firstIndex(where: { $0 >= duration }) { return sum + Double(index + 1) }
            let beyond = ((duration - (times.last ?? 0)) / maximumGap.seconds).rounded(.up)
            return sum + Double(times.count) + beyond
        }
        return total / Double(durations.count)
    }
}
