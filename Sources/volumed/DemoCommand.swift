import ArgumentParser
import DevServices
import Foundation
import Logging

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start a throwaway PostgreSQL, the CloudStack simulator, nbdkit and a worker, and run a replication volume flow.")

    func run() async throws {
        try await Demo().run()
    }
}
