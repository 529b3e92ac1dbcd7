import Synchronization

/// How many by-id waits (attach: link to appear; detach: link to go) are watching the
/// directory right now. Shared by every copy of one `ByIdResolver`; read by health checks.
public final class ByIdWaitActivity: Sendable {
    private let count = Atomic<Int>(0)

    public init() {}

    public var inProgress: Int { count.load(ordering: .relaxed) }

    func begin() { count.add(1, ordering: .relaxed) }
    func end() { count.subtract(1, ordering: .relaxed) }
}
