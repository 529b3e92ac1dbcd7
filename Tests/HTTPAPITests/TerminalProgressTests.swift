import DevServices
import Foundation
import TestSupport
import Testing

/// `volumed wait`, `enqueue --wait` and `ops --watch` as a person sees them: under a pseudo-
/// terminal (`script`), one line rewritten in place, or a table redrawn; piped, plain lines.
/// A real worker runs the operations (CloudStack jobs take 1.5 s, so there is a step to show).
@Suite(.serialized) struct TerminalProgressTests {
    static let escape = "\u{1B}"

    /// Runs `command` (a shell command line) under `script`'s pseudo-terminal when `terminal`,
    /// else with its output going to a file; returns everything it printed.
    static func run(_ arguments: [String], terminal: Bool, database: String) async throws -> (status: Int32, output: String) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("terminal-\(UUID().uuidString.prefix(8)).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let process: ChildProcess
        if terminal {
            let line = arguments.map { "'\($0)'" }.joined(separator: " ")
            process = try ChildProcess(executable: URL(fileURLWithPath: "/usr/bin/script"), arguments: ["-qec", line, "/dev/null"],
                                       outputPath: log, environment: ["DATABASE_URL": database, "TERM": "xterm"])
        } else {
            process = try ChildProcess(executable: URL(fileURLWithPath: arguments[0]), arguments: Array(arguments.dropFirst()),
                                       outputPath: log, environment: ["DATABASE_URL": database])
        }
        let status = await process.waitForExit()
        return (status, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    static func enqueueCreate(_ world: APIWorld, name: String) async throws -> String {
        try #require(try await world.db.scalar(
            "SELECT volume_operation_enqueue('create', NULL, NULL, '\(createBody(name: name))'::jsonb)::text"))
    }

    @Test func waitOnATerminalRewritesOneLineWithTheStepAndTheTimeWaited() async throws {
        try await APIWorld.with(.serve, asyncDelay: .milliseconds(1500)) { world in
            let id = try await Self.enqueueCreate(world, name: "tty-wait")
            let (status, output) = try await Self.run([ServeProcessTests.volumed, "wait", id], terminal: true, database: world.db.urlText)
            #expect(status == 0, "\(output)")
            let json = try #require(output.range(of: "{"), "no result JSON: \(output)")
            let progress = String(output[..<json.lowerBound])
            let redraws = progress.components(separatedBy: "\r\(Self.escape)[2K").count - 1
            #expect(redraws >= 3, "the line was rewritten in place: \(progress.debugDescription)")
            #expect(progress.contains("create") && progress.contains("executing: waiting on CloudStack job"), "\(progress.debugDescription)")
            #expect(progress.contains(" 1s ") || progress.contains(" 2s "), "the time waited: \(progress.debugDescription)")
            // One line: the only line break is the one after the final state.
            #expect(progress.filter { $0 == "\n" || $0 == "\r\n" }.count == 1, "\(progress.debugDescription)")
            #expect(progress.hasSuffix(" completed\r\n"), "the final state stays: \(progress.debugDescription)")
            #expect(output[json.lowerBound...].contains(#""status" : "completed""#))
        }
    }

    @Test func withoutATerminalOrWithJSONWaitPrintsPlainLines() async throws {
        try await APIWorld.with(.serve, asyncDelay: .milliseconds(1500)) { world in
            let piped = try await Self.run([ServeProcessTests.volumed, "enqueue", "create", "--request", createBody(name: "piped"), "--wait"],
                                           terminal: false, database: world.db.urlText)
            #expect(piped.status == 0, "\(piped.output)")
            #expect(!piped.output.contains(Self.escape), "no terminal control: \(piped.output.debugDescription)")
            let lines = piped.output.split(separator: "\n").map(String.init)
            let executing = try #require(lines.first { $0.contains("executing: waiting on CloudStack job") }, "\(lines)")
            #expect(executing.hasPrefix("[0s] ") || executing.hasPrefix("[1s] "), "\(executing)")
            #expect(lines.contains { $0.hasPrefix("[") && $0.hasSuffix(" completed") }, "\(lines)")
            #expect(Set(lines.filter { $0.hasPrefix("[") }.map { $0.drop { $0 != "]" } }).count == lines.filter { $0.hasPrefix("[") }.count,
                    "a line only when something changed: \(lines)")

            let id = try await Self.enqueueCreate(world, name: "json")
            let json = try await Self.run([ServeProcessTests.volumed, "wait", id, "--json"], terminal: true, database: world.db.urlText)
            #expect(json.status == 0, "\(json.output)")
            #expect(!json.output.contains(Self.escape), "--json: no terminal control: \(json.output.debugDescription)")
            let result = try #require(json.output.split(whereSeparator: \.isNewline).last.map(String.init))
            let object = try #require(try JSONSerialization.jsonObject(with: Data(result.utf8)) as? [String: Any], "\(result)")
            #expect(object["status"] as? String == "completed" && object["id"] as? String == id)
        }
    }

    @Test func opsWatchRedrawsACompactTableOnATerminalAndAppendsOtherwise() async throws {
        try await APIWorld.with(.serve, asyncDelay: .seconds(30)) { world in
            let id = try await Self.enqueueCreate(world, name: "watched")
            try await eventually("the create to wait on CloudStack") {
                try await world.db.scalar("SELECT checkpoint->>'job_id' FROM volume_operations WHERE id = '\(id)'") != nil
            }
            let watch = [ServeProcessTests.volumed, "ops", "--watch", "--interval", "0.5"]
            let tty = try await Self.run(["/usr/bin/timeout", "3"] + watch, terminal: true, database: world.db.urlText)
            let screens = tty.output.components(separatedBy: "\(Self.escape)[H\(Self.escape)[2J").dropFirst()
            #expect(screens.count >= 3, "redrawn every 0.5 s: \(tty.output.debugDescription)")
            let last = try #require(screens.last)
            #expect(last.contains("volumed ops · ") && last.contains("1 executing"), "\(last)")
            let row = try #require(last.split(whereSeparator: \.isNewline).first { $0.hasPrefix(id.prefix(8)) }, "\(last)")
            #expect(row.contains("create") && row.contains("executing") && row.contains("waiting on CloudStack job"), "\(row)")

            let piped = try await Self.run(["/usr/bin/timeout", "2"] + watch, terminal: false, database: world.db.urlText)
            #expect(!piped.output.contains(Self.escape), "\(piped.output.debugDescription)")
            #expect(piped.output.components(separatedBy: "volumed ops · ").count - 1 >= 2, "each refresh appended: \(piped.output)")
        }
    }
}
