/// A timeout as error messages print it: `30 s`, `0.4 s`.
func secondsText(_ duration: Duration) -> String {
    let (whole, attoseconds) = duration.components
    if attoseconds == 0 { return "\(whole) s" }
    let value = Double(whole) + Double(attoseconds) / 1e18
    return "\((value * 1000).rounded() / 1000) s"
}
