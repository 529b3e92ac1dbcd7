import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `volumed demo` (CONTRACT §6) runs the development tool's demo: the demo starts a throwaway
/// PostgreSQL, the CloudStack simulator and nbdkit, which the shipped binary does not link.
/// It replaces this process with `volumed-dev demo` from the same folder (as `swift build`
/// and `swift run volumed-dev` leave it), so signals reach the demo directly.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the demo of a replication volume flow (volumed-dev demo: throwaway PostgreSQL, simulator, nbdkit, a worker).")

    func run() throws {
        let executable = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
        let folder = executable.resolvingSymlinksInPath().deletingLastPathComponent()
        let tool = folder.appendingPathComponent("volumed-dev").path
        guard FileManager.default.isExecutableFile(atPath: tool) else {
            throw ValidationError("the demo lives in the development tool volumed-dev, which is not beside this binary (\(tool)); "
                + "from a source checkout run `swift run volumed-dev demo`")
        }
        let arguments = [tool, "demo"]
        var argv = arguments.map { strdup($0) } + [nil]
        execv(tool, &argv)
        throw ValidationError("could not start \(tool): \(String(cString: strerror(errno)))")
    }
}
