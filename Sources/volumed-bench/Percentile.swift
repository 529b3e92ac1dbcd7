extension Array where Element == Double {
    /// The value at fraction `p` (0…1) of this sorted, non-empty array: the nearest rank at or
    /// above it, the last value for 1.
    func percentile(_ p: Double) -> Double {
        self[Swift.min(count - 1, Int(Double(count) * p))]
    }
}
