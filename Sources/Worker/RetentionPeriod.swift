import Foundation

/// How long finished operations are kept (`volumed prune --older-than 30d`): a whole number
/// followed by a unit, `s`, `m`, `h`, `d` or `w`.
public struct RetentionPeriod: Sendable, Equatable, CustomStringConvertible {
    public let seconds: Int64
    /// As the operator wrote it.
    public let text: String

    /// At most about a hundred years: anything longer is a typo, and keeps the interval arithmetic exact.
    static let maximumSeconds: Int64 = 36_500 * 86_400

    private static let unitSeconds: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]

    public init(parsing text: String) throws(RetentionPeriodError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let unit = trimmed.last, let multiplier = Self.unitSeconds[Character(unit.lowercased())] else {
            throw RetentionPeriodError(text: text, reason: "it does not end in a unit")
        }
        let digits = trimmed.dropLast()
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let count = Int64(digits) else {
            throw RetentionPeriodError(text: text, reason: "the part before the unit is not a whole number")
        }
        guard count > 0 else {
            throw RetentionPeriodError(text: text, reason: "it is zero, which would prune everything finished up to now")
        }
        let (seconds, overflow) = count.multipliedReportingOverflow(by: multiplier)
        guard !overflow, seconds <= Self.maximumSeconds else {
            throw RetentionPeriodError(text: text, reason: "it is longer than 36500 days")
        }
        self.seconds = seconds
        self.text = trimmed
    }

    public var description: String { text }
}

public struct RetentionPeriodError: Error, CustomStringConvertible, Sendable, Equatable {
    public let text: String
    public let reason: String

    public var description: String {
        "--older-than must be a whole number followed by s, m, h, d or w, such as 30d or 12h; "
            + "\(quoted(text)) is not one (\(reason))"
    }

    private func quoted(_ value: String) -> String {
        value.isEmpty ? "an empty value" : "\"\(value)\""
    }
}
