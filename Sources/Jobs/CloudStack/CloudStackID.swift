/// A CloudStack UUID (volume, VM, zone, disk offering) in lower case, however CloudStack or a
/// caller spelled it: CloudStack finds a UUID whatever its case (its `uuid` columns compare
/// without case), an id an admin set may list in upper case, and volumed keeps ids in lower
/// case (the database lower-cases `volume_id` and `vm_id`). Normalised once, when decoded or
/// made, so ids compare with `==`.
public struct CloudStackID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let value: String

    public init(_ text: String) {
        value = text.lowercased()
    }

    public init(from decoder: any Decoder) throws {
        self.init(try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }

    public var description: String { value }

    public static func < (lhs: CloudStackID, rhs: CloudStackID) -> Bool { lhs.value < rhs.value }
}
