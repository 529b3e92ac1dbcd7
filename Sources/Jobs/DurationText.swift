/// A timeout as error messages print it: `30 s`, `0.4 s`.
func secondsText(_ duration: Duration) -> String {
    let (whole, attoseconds) = duration.components
    if attoseconds == 0 { return "\(whole) s" }
    let value = Double(whole) + Double(attoseconds) / 1e18
    return "\((value * 1000).rounded() / 1000) s"
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
