import Foundation
import NIOSSL
import PostgresNIO

/// A libpq connection URL (`DATABASE_URL`), parsed into what PostgresNIO needs.
///
/// Accepted forms, as libpq accepts them:
/// - `postgres://user:password@host:5432/db?sslmode=disable`
/// - `postgresql:///db?host=/var/run/postgresql` (a unix-socket directory, `.s.PGSQL.<port>` inside)
/// - `postgresql://%2Fvar%2Frun%2Fpostgresql/db` (the same, percent-encoded in the host)
/// - `?options=-c%20search_path%3Dvolumed` (run-time settings sent at connection start-up)
public struct DatabaseURL: Sendable, CustomStringConvertible {
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unixSocket(path: String)
    }

    public enum SSLMode: String, Sendable {
        case disable, allow, prefer, require, verifyCA = "verify-ca", verifyFull = "verify-full"
    }

    public var endpoint: Endpoint
    public var username: String
    public var password: String?
    public var database: String?
    public var sslMode: SSLMode
    /// Settings sent in the start-up packet (`options=-c name=value`, or `search_path` directly).
    public var startupParameters: [(String, String)]

    public init(_ text: String) throws(DatabaseURLError) {
        guard let components = URLComponents(string: text),
              let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme)
        else {
            throw DatabaseURLError("DATABASE_URL must look like postgres://user:password@host:5432/database or postgresql:///database?host=/run/postgresql")
        }
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] { query[item.name] = item.value ?? "" }

        let port: Int
        if let text = query["port"] {
            guard let value = Int(text), (1...65535).contains(value) else {
                throw DatabaseURLError("DATABASE_URL port \(text) is not a port number (1-65535)")
            }
            port = value
        } else {
            port = components.port ?? 5432
        }

        let host = query["host"] ?? components.percentEncodedHost.flatMap { $0.removingPercentEncoding } ?? ""
        if host.hasPrefix("/") {
            endpoint = .unixSocket(path: host.hasSuffix(".s.PGSQL.\(port)") ? host : "\(host)/.s.PGSQL.\(port)")
        } else {
            endpoint = .tcp(host: host.isEmpty ? "localhost" : host, port: port)
        }

        username = query["user"] ?? components.user.flatMap { $0.removingPercentEncoding }
            ?? ProcessInfo.processInfo.environment["PGUSER"] ?? "postgres"
        password = query["password"] ?? components.password.flatMap { $0.removingPercentEncoding }
        let path = String(components.path.drop(while: { $0 == "/" }))
        database = query["dbname"] ?? (path.isEmpty ? nil : path)

        let isUnixSocket = if case .unixSocket = endpoint { true } else { false }
        let sslText = query["sslmode"] ?? (isUnixSocket ? "disable" : "prefer")
        guard let mode = SSLMode(rawValue: sslText) else {
            throw DatabaseURLError("DATABASE_URL sslmode=\(sslText) is not one of disable, allow, prefer, require, verify-ca, verify-full")
        }
        sslMode = mode

        startupParameters = []
        if let options = query["options"] {
            startupParameters = try Self.parseOptions(options)
        }
        if let searchPath = query["search_path"] {
            startupParameters.append(("search_path", searchPath))
        }
    }

    /// libpq `options`: `-c name=value` pairs (also `-cname=value`), separated by spaces.
    private static func parseOptions(_ text: String) throws(DatabaseURLError) -> [(String, String)] {
        var result: [(String, String)] = []
        var words = text.split(separator: " ").map(String.init)[...]
        while let word = words.popFirst() {
            let setting: String
            if word == "-c" {
                guard let next = words.popFirst() else { throw DatabaseURLError("DATABASE_URL options ends with -c and no setting") }
                setting = next
            } else if word.hasPrefix("-c") {
                setting = String(word.dropFirst(2))
            } else {
                throw DatabaseURLError("DATABASE_URL options supports only -c name=value settings (got \(word))")
            }
            guard let equals = setting.firstIndex(of: "=") else {
                throw DatabaseURLError("DATABASE_URL options setting \(setting) has no =value")
            }
            result.append((String(setting[..<equals]), String(setting[setting.index(after: equals)...])))
        }
        return result
    }

    /// The URL with the password hidden, for logs and errors.
    public var description: String {
        let auth = password == nil ? username : "\(username):***"
        switch endpoint {
        case .tcp(let host, let port): return "postgres://\(auth)@\(host):\(port)/\(database ?? "")"
        case .unixSocket(let path): return "postgres://\(auth)@/\(database ?? "")?host=\(path)"
        }
    }

    /// Configuration for a pooled `PostgresClient`.
    public func clientConfiguration() throws -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        switch endpoint {
        case .tcp(let host, let port):
            configuration = .init(host: host, port: port, username: username, password: password,
                                  database: database, tls: try clientTLS())
        case .unixSocket(let path):
            configuration = .init(unixSocketPath: path, username: username, password: password, database: database)
        }
        configuration.options.additionalStartupParameters = startupParameters
        return configuration
    }

    /// Configuration for one dedicated connection (the LISTEN connections).
    public func connectionConfiguration() throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        switch endpoint {
        case .tcp(let host, let port):
            configuration = .init(host: host, port: port, username: username, password: password,
                                  database: database, tls: try connectionTLS())
        case .unixSocket(let path):
            configuration = .init(unixSocketPath: path, username: username, password: password, database: database)
        }
        configuration.options.additionalStartupParameters = startupParameters
        return configuration
    }

    private func tlsConfiguration() -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch sslMode {
        case .verifyFull: break
        case .verifyCA: tls.certificateVerification = .noHostnameVerification
        default: tls.certificateVerification = .none // libpq does not verify below verify-ca
        }
        return tls
    }

    private func clientTLS() throws -> PostgresClient.Configuration.TLS {
        switch sslMode {
        case .disable: return .disable
        case .allow, .prefer: return .prefer(tlsConfiguration())
        case .require, .verifyCA, .verifyFull: return .require(tlsConfiguration())
        }
    }

    private func connectionTLS() throws -> PostgresConnection.Configuration.TLS {
        switch sslMode {
        case .disable: return .disable
        case .allow, .prefer: return .prefer(try NIOSSLContext(configuration: tlsConfiguration()))
        case .require, .verifyCA, .verifyFull: return .require(try NIOSSLContext(configuration: tlsConfiguration()))
        }
    }

    /// `DATABASE_URL` from the environment, with a clear error when it is missing.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> DatabaseURL {
        guard let text = environment["DATABASE_URL"], !text.isEmpty else {
            throw DatabaseURLError("DATABASE_URL is not set: pass --database-url or set DATABASE_URL=postgres://user:password@host:5432/database")
        }
        return try DatabaseURL(text)
    }
}

public struct DatabaseURLError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
