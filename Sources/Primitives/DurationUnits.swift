import Foundation

/// The one place a `Duration` becomes a number or a phrase: metrics and timeouts read it as
/// seconds or milliseconds, error messages and the console print it.
extension Duration {
    /// Fractional seconds, for metrics and `TimeInterval` APIs.
    package var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// Whole milliseconds, rounded down (PostgreSQL intervals, poll settings).
    package var wholeMilliseconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }

    /// Whole milliseconds rounded up, so a wait never ends a hair before its deadline and spins.
    package var roundedUpMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
    }

    /// Whole nanoseconds, for NIO's `TimeAmount`.
    package var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000
    }
}

/// A timeout as error messages print it: `30 s`, `0.4 s`.
package func secondsText(_ duration: Duration) -> String {
    let (whole, attoseconds) = duration.components
    if attoseconds == 0 { return "\(whole) s" }
    return "\((duration.seconds * 1000).rounded() / 1000) s"
}

/// An age or an elapsed time as people read it at a glance: `4s`, `2m 05s`, `3h 12m`, `2d 4h`.
public func ageText(_ seconds: Double) -> String {
    let total = max(0, Int(seconds.rounded(.down)))
    let (days, hours, minutes, secs) = (total / 86_400, total % 86_400 / 3600, total % 3600 / 60, total % 60)
    if days > 0 { return "\(days)d \(hours)h" }
    if hours > 0 { return "\(hours)h \(String(format: "%02d", minutes))m" }
    if minutes > 0 { return "\(minutes)m \(String(format: "%02d", secs))s" }
    return "\(secs)s"
}
