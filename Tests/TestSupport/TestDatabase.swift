import DevServices
import Foundation
import Logging
import PostgresNIO
import Schema

/// A PostgreSQL for tests: `DATABASE_URL` when set, else one throwaway cluster per test
/// process. Each test gets a fresh database copied from a migrated template.
public actor TestCluster {
    public static let shared = TestCluster()

    struct Admin: Sendable {
        let url: String
        let make: @Sendable (String) -> String
        let server: EphemeralPostgres?
    }

    /// Started once; concurrent tests await the same task (actor methods re-enter at awaits).
    private var preparation: Task<Admin, any Error>?

    private func prepare() async throws -> Admin {
        if let preparation { return try await preparation.value }
        let task = Task { try await Self.makeAdmin() }
        preparation = task
        return try await task.value
    }

    public var ephemeral: EphemeralPostgres? {
        get async throws { try await prepare().server }
    }

    private static func makeAdmin() async throws -> Admin {
        let admin: Admin
        if let url = ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty {
            admin = Admin(url: url, make: { name in replaceDatabase(in: url, with: name) }, server: nil)
        } else {
            let server = try await EphemeralPostgres.start()
            admin = Admin(url: server.url(), make: { server.url(database: $0) }, server: server)
        }
        let adminURL = try DatabaseURL(admin.url)
        try await PostgresClient.withRunning(adminURL, logger: testLogger) { client in
            try await client.query("DROP DATABASE IF EXISTS volumed_test_template", logger: testLogger)
            try await client.query("CREATE DATABASE volumed_test_template", logger: testLogger)
        }
        let templateURL = try DatabaseURL(admin.make("volumed_test_template"))
        try await PostgresClient.withRunning(templateURL, logger: testLogger) { client in
            try await Migrator(logger: testLogger).migrate(client)
        }
        return admin
    }

    /// A URL for `database` on the test cluster.
    public func url(database: String) async throws -> String {
        try await prepare().make(database)
    }

    /// Creates a fresh migrated database and returns its URL.
    public func freshDatabase() async throws -> String {
        try await createDatabase(prefix: "test", template: "volumed_test_template")
    }

    /// A fresh empty (unmigrated) database.
    public func emptyDatabase() async throws -> String {
        try await createDatabase(prefix: "empty", template: nil)
    }

    private func createDatabase(prefix: String, template: String?) async throws -> String {
        let admin = try await prepare()
        let name = "\(prefix)_\(UUID().uuidString.prefix(13).lowercased().replacingOccurrences(of: "-", with: ""))"
        let adminURL = try DatabaseURL(admin.url)
        let sql = "CREATE DATABASE \(name)" + (template.map { " TEMPLATE \($0)" } ?? "")
        try await PostgresClient.withRunning(adminURL, logger: testLogger) { client in
            try await client.query(PostgresQuery(unsafeSQL: sql), logger: testLogger)
        }
        return admin.make(name)
    }

    private static func replaceDatabase(in url: String, with name: String) -> String {
        guard var components = URLComponents(string: url) else { return url }
        components.path = "/\(name)"
        return components.string ?? url
    }
}

public let testLogger: Logger = {
    var logger = Logger(label: "volumed-tests")
    logger.logLevel = ProcessInfo.processInfo.environment["VOLUMED_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    return logger
}()

/// A migrated database of its own and a running pool on it, for one test.
public func withDatabase<Result: Sendable>(_ body: @Sendable (TestDatabase) async throws -> Result) async throws -> Result {
    let text = try await TestCluster.shared.freshDatabase()
    let url = try DatabaseURL(text)
    return try await PostgresClient.withRunning(url, maximumConnections: 10, logger: testLogger) { client in
        try await body(TestDatabase(urlText: text, url: url, client: client))
    }
}

public struct TestDatabase: Sendable {
    public let urlText: String
    public let url: DatabaseURL
    public let client: PostgresClient

    public init(urlText: String, url: DatabaseURL, client: PostgresClient) {
        self.urlText = urlText
        self.url = url
        self.client = client
    }

    /// Runs SQL and returns the first column of each row as text.
    @discardableResult
    public func query(_ sql: String) async throws -> [String?] {
        let rows = try await client.query(PostgresQuery(unsafeSQL: sql), logger: testLogger)
        var values: [String?] = []
        for try await row in rows {
            let cells = row.makeRandomAccess()
            values.append(cells.count > 0 ? try cells[0].decode(String?.self) : nil)
        }
        return values
    }

    public func scalar(_ sql: String) async throws -> String? {
        try await query(sql).first ?? nil
    }

    public func count(_ sql: String) async throws -> Int {
        Int(try await scalar(sql) ?? "0") ?? -1
    }
}
