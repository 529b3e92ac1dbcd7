/// What an operation does (CONTRACT §3). The database CHECK holds the same list.
public enum OperationType: String, Sendable, CaseIterable, Codable, Hashable {
    case create, attach, detach, delete, export, unexport, cleanup
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
