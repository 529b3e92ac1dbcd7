/// What an operation does (CONTRACT §3): a row of the `volume_operation_types` table, which
/// says whether it needs a volume / a VM and where it runs. Open on purpose: each handler
/// declares its own constant beside itself (`extension OperationType { static let … }`), and
/// a client may write any type as a string literal; the database refuses unknown ones
/// (`volume_operations_type_known`).
public struct OperationType: RawRepresentable, Sendable, Codable, Hashable, ExpressibleByStringLiteral,
                             CustomStringConvertible {
    public let rawValue: String

    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    public init(stringLiteral value: String) {
        self.init(rawValue: value)
    }

    public var description: String { rawValue }
}

/// Where an operation is in its life (CONTRACT §2).
public enum OperationStatus: String, Sendable, CaseIterable, Codable, Hashable {
    case pending, executing, completed, failed, cancelled

    /// Terminal rows never change status again (enforced by a trigger).
    public var isTerminal: Bool {
        switch self {
        case .completed, .failed, .cancelled: return true
        case .pending, .executing: return false
        }
    }
}
