import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// PostgreSQL could not be reached or refused the login. `reason` says which, in words a
/// newcomer can act on: "cannot connect to PostgreSQL at 127.0.0.1:1: connection refused",
/// "PostgreSQL at db:5432 refused the login: password authentication failed for user "x"",
/// "… database "x" does not exist". Never a pool's internal type.
public struct DatabaseUnreachable: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public var description: String { reason }
}

/// One direct connection attempt (not through the pool), bounded by `timeout`: what a
/// command runs before it starts work, and what the API asks when a request waits on the
/// database. The pool would keep retrying for about a minute (its connect timeout, backoff
/// and circuit breaker) before failing with `connectionCreationCircuitBreakerTripped`.
public struct DatabaseReachability: Sendable {
    public let url: DatabaseURL
    public var timeout: Duration

    public init(url: DatabaseURL, timeout: Duration = .seconds(5)) {
        self.url = url
        self.timeout = timeout
    }

    /// Where the URL points, as messages name it: `host:port` or the socket path.
    public var address: String {
        switch url.endpoint {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unixSocket(let path): return path
        }
    }

    /// Nil when a connection opens and logs in; otherwise why not.
    public func check(logger: Logger = Logger(label: "volumed.database-probe")) async -> DatabaseUnreachable? {
        let address = self.address
        let timeout = self.timeout
        var configuration: PostgresConnection.Configuration
        do {
            configuration = try url.connectionConfiguration()
        } catch {
            return DatabaseUnreachable(reason: "cannot connect to PostgreSQL at \(address): \(error)")
        }
        configuration.options.connectTimeout = .init(timeout)
        let attempt = configuration
        var quiet = logger
        quiet.logLevel = .critical
        let silent = quiet
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    let connection = try await PostgresConnection.connect(configuration: attempt, id: 0, logger: silent)
                    try? await connection.close()
                }
                group.addTask {
                    try await Task.sleep(for: timeout + .seconds(1))
                    throw DatabaseUnreachable(reason: "cannot connect to PostgreSQL at \(address): no answer within \(timeout)")
                }
                _ = try await group.next()
                group.cancelAll()
            }
            return nil
        } catch let unreachable as DatabaseUnreachable {
            return unreachable
        } catch {
            return Self.explain(error, address: address, database: url.database, username: url.username)
        }
    }

    /// Throws `DatabaseUnreachable` when `check` finds a problem.
    public func require(logger: Logger = Logger(label: "volumed.database-probe")) async throws {
        if let problem = await check(logger: logger) { throw problem }
    }

    /// The words for a failed connection attempt.
    static func explain(_ error: any Error, address: String, database: String?, username: String) -> DatabaseUnreachable {
        if let psql = error as? PSQLError {
            if let info = psql.serverInfo {
                // The server answered: a login or start-up refusal, in its own words.
                let message = info[.message] ?? "refused the connection (SQLSTATE \(info[.sqlState] ?? "?"))"
                let hint: String
                switch info[.sqlState] {
                case "28P01", "28000": hint = "check the user and password in DATABASE_URL (and pg_hba.conf)"
                case "3D000": hint = "create it (createdb) or fix the database name in DATABASE_URL"
                default: hint = "check DATABASE_URL"
                }
                return DatabaseUnreachable(reason: "PostgreSQL at \(address) refused the login: \(message); \(hint)")
            }
            if let underlying = psql.underlying {
                return DatabaseUnreachable(reason: "cannot connect to PostgreSQL at \(address): \(transportText(underlying)); "
                    + "check that PostgreSQL is running and DATABASE_URL names the right host and port")
            }
            return DatabaseUnreachable(reason: "cannot connect to PostgreSQL at \(address): \(psql.code); check DATABASE_URL")
        }
        return DatabaseUnreachable(reason: "cannot connect to PostgreSQL at \(address): \(transportText(error)); "
            + "check that PostgreSQL is running and DATABASE_URL names the right host and port")
    }

    /// "connection refused", "no such file or directory", "connect timed out", …
    static func transportText(_ error: any Error) -> String {
        switch error {
        case let io as IOError:
            return String(cString: strerror(io.errnoCode)).lowercased()
        case let connection as NIOConnectionError:
            if let first = connection.connectionErrors.first { return transportText(first.error) }
            if let dns = connection.dnsAError ?? connection.dnsAAAAError { return "the host name did not resolve (\(dns))" }
            return "no address to connect to"
        case let channel as ChannelError:
            if case .connectTimeout = channel { return "connect timed out" }
            return "\(channel)"
        case let psql as PSQLError:
            return psql.underlying.map(transportText) ?? "\(psql.code)"
        default:
            return "\(error)"
        }
    }
}
