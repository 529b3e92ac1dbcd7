import Foundation

/// Before `volumed demo` starts anything, `scripts/install-deps` of this checkout installs what
/// the machine lacks (PostgreSQL server, nbdkit, …) — as root; otherwise it prints the one
/// `sudo apt-get install …` line and the demo stops — so the README's `swift run volumed-dev demo`
/// works on a fresh machine. The list of packages lives only in that script.
enum DemoPrerequisites {
    /// The script beside this source file's checkout (`swift run` builds from it), else in the
    /// current directory; nil for a binary moved away from its sources.
    static var script: URL? {
        let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let candidates = [checkout, URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
            .map { $0.appendingPathComponent("scripts/install-deps") }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    struct Missing: Error, CustomStringConvertible {
        let status: Int32
        var description: String { "the demo's system packages are missing (install-deps exited \(status)); see the line above" }
    }

    /// Runs the script with this terminal (apt's progress and the sudo line are the user's to
    /// see) and waits for it without holding a thread.
    static func ensure() async throws {
        guard let script else {
            print("(scripts/install-deps not found next to this binary: not checking system packages)")
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["bash", script.path]
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        guard status == 0 else { throw Missing(status: status) }
    }
}
