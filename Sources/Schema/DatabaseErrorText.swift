import PostgresNIO

/// PostgresNIO hides server messages from `description` (they may hold data); for errors we
/// show to the operator who sent the statement, the server's message, detail, hint and
/// constraint are exactly what names the bad field and the fix.
public func databaseErrorText(_ error: any Error) -> String {
    guard let error = error as? PSQLError else { return String(describing: error) }
    guard let info = error.serverInfo else { return "database error: \(error.code)" }
    var parts: [String] = []
    if let message = info[.message] { parts.append(message) }
    if let detail = info[.detail] { parts.append(detail) }
    if let hint = info[.hint] { parts.append("hint: \(hint)") }
    return parts.isEmpty ? "database error: \(error.code)" : parts.joined(separator: "; ")
}

/// The SQLSTATE of a server error, if any (e.g. 23505 unique_violation, 23514 check_violation).
public func databaseSQLState(_ error: any Error) -> String? {
    (error as? PSQLError)?.serverInfo?[.sqlState]
}

/// The constraint a server error names, if any.
public func databaseConstraint(_ error: any Error) -> String? {
    (error as? PSQLError)?.serverInfo?[.constraintName]
}
