import Primitives
/// Exponential backoff with jitter for transient failures: attempt n waits about
/// `base · 2^(n-1)`, capped, spread ±`jitter` so failed operations do not retry in lockstep.
public struct Backoff: Sendable {
    public var base: Duration
    public var cap: Duration
    /// Fraction of the delay added or removed at random (0…1).
    public var jitter: Double

    public init(base: Duration = .seconds(2), cap: Duration = .seconds(300), jitter: Double = 0.25) {
        self.base = base
        self.cap = cap
        self.jitter = jitter
    }

    /// The delay before the next try, after `attempts` tries so far.
    public func delay(afterAttempt attempts: Int, random: Double = Double.random(in: -1...1)) -> Duration {
        let exponent = max(0, min(attempts - 1, 30))
        let raw = min(base.wholeMilliseconds * (1 << exponent), cap.wholeMilliseconds)
        let jittered = Double(raw) * (1 + jitter * random)
        return .milliseconds(max(0, Int(jittered.rounded())))
    }
}
