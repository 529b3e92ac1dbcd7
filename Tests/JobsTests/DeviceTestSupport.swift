import Foundation
import Glibc

/// A fresh directory under the system temporary directory, removed by `remove()`.
/// Its path is fully resolved, so tests can compare it with `realpath` output.
struct ScratchDirectory: Sendable {
    let path: String

    init(_ label: String = "volumed-test") throws {
        let template = NSTemporaryDirectory() + "/\(label)-XXXXXX"
        var bytes = Array(template.utf8CString)
        guard let created = mkdtemp(&bytes) else {
            throw ScratchError("mkdtemp \(template): \(String(cString: strerror(errno)))")
        }
        let made = String(cString: created)
        guard let real = realpath(made, nil) else { throw ScratchError("realpath \(made)") }
        defer { free(real) }
        path = String(cString: real)
    }

    func child(_ name: String) -> String { path + "/" + name }

    /// Creates a subdirectory and returns its path.
    func makeDirectory(_ name: String) throws -> String {
        let directory = child(name)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    /// Writes `count` random bytes to `name` and returns the path and the bytes.
    func randomFile(_ name: String, count: Int) throws -> (path: String, bytes: Data) {
        var bytes = Data(count: count)
        bytes.withUnsafeMutableBytes { raw in
            var generator = SystemRandomNumberGenerator()
            var offset = 0
            while offset < raw.count {
                withUnsafeBytes(of: generator.next() as UInt64) { word in
                    for byte in word where offset < raw.count {
                        raw[offset] = byte
                        offset += 1
                    }
                }
            }
        }
        let file = child(name)
        try bytes.write(to: URL(fileURLWithPath: file))
        return (file, bytes)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

struct ScratchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `ln -s target link`.
func makeSymlink(_ link: String, to target: String) throws {
    guard symlink(target, link) == 0 else {
        throw ScratchError("symlink \(link) → \(target): \(String(cString: strerror(errno)))")
    }
}

/// Replaces (or creates) `link` atomically, the way udev does: new link under a
/// temporary name, then rename(2) over the old one.
func repointSymlink(_ link: String, to target: String) throws {
    let temporary = link + ".tmp-\(UInt32.random(in: 0 ... .max))"
    try makeSymlink(temporary, to: target)
    guard rename(temporary, link) == 0 else {
        throw ScratchError("rename \(temporary) → \(link): \(String(cString: strerror(errno)))")
    }
}

func removeEntry(_ path: String) throws {
    guard unlink(path) == 0 else { throw ScratchError("unlink \(path): \(String(cString: strerror(errno)))") }
}

/// What a finished tool run produced.
struct ToolResult: Sendable {
    let tool: String
    let status: Int32
    let standardOutput: Data
    let standardError: String

    func requireSuccess() throws {
        guard status == 0 else { throw ScratchError("\(tool) exited \(status): \(standardError)") }
    }
}

/// Runs a tool to completion without blocking a cooperative thread: output goes to
/// temporary files (no pipe to fill up and stall the child), and the exit is awaited
/// through the termination handler.
func runTool(_ tool: String, _ arguments: [String]) async throws -> ToolResult {
    let scratch = try ScratchDirectory("volumed-tool")
    defer { scratch.remove() }
    let outPath = scratch.child("stdout")
    let errPath = scratch.child("stderr")
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
    let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    defer {
        try? out.close()
        try? err.close()
    }

    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool)
    process.arguments = arguments
    process.standardOutput = out
    process.standardError = err
    let status: Int32 = try await withCheckedThrowingContinuation { continuation in
        process.terminationHandler = { finished in continuation.resume(returning: finished.terminationStatus) }
        do {
            try process.run()
        } catch {
            process.terminationHandler = nil
            continuation.resume(throwing: error)
        }
    }
    return ToolResult(
        tool: ([tool] + arguments).joined(separator: " "),
        status: status,
        standardOutput: try Data(contentsOf: URL(fileURLWithPath: outPath)),
        standardError: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    )
}
