/// When `CloudStackClient.waitForJob` looks at a job next: at the planned times after the
/// job's start (`JobDurationHistory.plan(for:)`), then — a job longer than any seen — at the
/// plan's mean gap doubling up to `JobDurationHistory.maximumGap`; or, with no plan, at once and
/// then at an interval that doubles up to a maximum.
struct JobPollSchedule {
    let startedAt: ContinuousClock.Instant
    let plan: [Duration]?
    private var interval: Duration
    private var maximumInterval: Duration

    init(startedAt: ContinuousClock.Instant, plan: [Duration]?, initialInterval: Duration, maximumInterval: Duration) {
        self.startedAt = startedAt
        self.plan = plan
        if let plan, let first = plan.first, let last = plan.last, plan.count > 1 {
            let meanGap = (last - first) / (plan.count - 1)
            interval = min(max(meanGap, JobDurationHistory.minimumGap), JobDurationHistory.maximumGap)
            self.maximumInterval = JobDurationHistory.maximumGap
        } else if plan != nil {
            interval = JobDurationHistory.minimumGap
            self.maximumInterval = JobDurationHistory.maximumGap
        } else {
            interval = initialInterval
            self.maximumInterval = maximumInterval
        }
    }

    /// The slow fallback while webhooks wake the wait (`JobWakeups.isLive`): one look when the
    /// longest job seen would have ended, then every `fallbackInterval` doubling to four times
    /// it; without a plan, at once and then the same. A lost delivery costs notice time, not calls.
    static func fallback(startedAt: ContinuousClock.Instant, plan: [Duration]?) -> JobPollSchedule {
        var schedule = JobPollSchedule(startedAt: startedAt, plan: plan?.last.map { [$0] },
                                       initialInterval: fallbackInterval, maximumInterval: fallbackInterval * 4)
        schedule.interval = fallbackInterval
        schedule.maximumInterval = fallbackInterval * 4
        return schedule
    }

    static let fallbackInterval: Duration = .seconds(2)

    /// The first look with a plan (none before its shortest duration); nil: look at once.
    var firstPoll: ContinuousClock.Instant? {
        plan?.first.map { startedAt.advanced(by: $0) }
    }

    /// The look after one sent at `polledAt` (answered by `now`): the next planned time at least
    /// `JobDurationHistory.minimumGap` after it, else the doubling interval after `now`.
    mutating func next(after polledAt: ContinuousClock.Instant, now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        if let plan {
            let earliest = polledAt.advanced(by: JobDurationHistory.minimumGap)
            let start = startedAt
            if let time = plan.lazy.map({ start.advanced(by: $0) }).first(where: { $0 >= earliest }) {
                return time
            }
        }
        defer { interval = min(interval * 2, maximumInterval) }
        return now.advanced(by: interval)
    }
}
