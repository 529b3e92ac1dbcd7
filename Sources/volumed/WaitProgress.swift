import Primitives
import Foundation
import Operations
import Schema
import VolumeClient

/// What `volumed wait` and `enqueue --wait` show while they wait, on standard error (standard
/// output keeps the result JSON, for scripts): on a terminal, one line rewritten in place
/// with the operation's status, current step (`OperationStep`) and the time waited; otherwise
/// (or with `--json`) a plain line each time the status or step changes.
struct WaitProgress: Sendable {
    enum Style: Sendable { case updatingLine, plainLines }

    let style: Style
    let width: Int

    init(json: Bool) {
        let terminal = isatty(STDERR_FILENO) == 1
        style = terminal && !json ? .updatingLine : .plainLines
        width = Self.terminalWidth() ?? 100
    }

    /// Waits for `id` as `VolumeClient.waitForCompletion` does, showing progress from a
    /// read of the row every `every` meanwhile.
    func wait(_ volumes: VolumeClient, id: UUID, timeout: Duration, every: Duration = .milliseconds(250)) async throws -> OperationRecord {
        let started = ContinuousClock.now
        let showing = Task {
            var last: String?
            while !Task.isCancelled {
                if let record = try? await volumes.operation(id) {
                    if let text = render(record, waited: Self.seconds(since: started), previous: last) { write(text) }
                    last = Self.summary(record)
                }
                try? await Task.sleep(for: every)
            }
        }
        defer { showing.cancel() }
        do {
            let record = try await volumes.waitForCompletion(id, timeout: timeout)
            showing.cancel()
            _ = await showing.result
            finish(record, waited: Self.seconds(since: started))
            return record
        } catch {
            showing.cancel()
            _ = await showing.result
            if style == .updatingLine { write("\n") }
            throw error
        }
    }

    /// What to write for this read: the whole line on a terminal (every time: the clock moves),
    /// a new line elsewhere only when the status or step changed.
    func render(_ record: OperationRecord, waited: Double, previous: String?) -> String? {
        let summary = Self.summary(record)
        switch style {
        case .updatingLine:
            return "\r\u{1B}[2K" + fit("\(Self.spinner(waited)) \(ageText(waited)) \(summary)")
        case .plainLines:
            guard summary != previous else { return nil }
            return "[\(ageText(waited))] \(summary)\n"
        }
    }

    /// `attach 3f9c2a10… executing (attempt 2/5): waiting on CloudStack job …`; once over,
    /// `attach 3f9c2a10… completed` or `… failed (volume_not_found)`.
    static func summary(_ record: OperationRecord) -> String {
        let volume = record.volumeId.map { " " + ($0.split(separator: "-").first.map(String.init) ?? $0) + "…" } ?? ""
        if record.status.isTerminal { return "\(record.type)\(volume) \(OperationStep.describe(record))" }
        let attempt = record.attempts > 1 ? " (attempt \(record.attempts)/\(record.maxAttempts))" : ""
        return "\(record.type)\(volume) \(record.status.rawValue)\(attempt): \(OperationStep.describe(record))"
    }

    private func finish(_ record: OperationRecord, waited: Double) {
        switch style {
        case .updatingLine: write("\r\u{1B}[2K" + fit("\(ageText(waited)) \(Self.summary(record))") + "\n")
        case .plainLines: write("[\(ageText(waited))] \(Self.summary(record))\n")
        }
    }

    /// One terminal line: longer text would wrap, and `\r` would then rewrite only its last row.
    private func fit(_ text: String) -> String {
        text.count <= width - 1 ? text : String(text.prefix(max(10, width - 2))) + "…"
    }

    private static func seconds(since start: ContinuousClock.Instant) -> Double {
        (ContinuousClock.now - start).seconds
    }

    private static func spinner(_ seconds: Double) -> String {
        ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"][Int(seconds * 4) % 10]
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    static func terminalWidth() -> Int? {
        var size = winsize()
        let status = withUnsafeMutablePointer(to: &size) { ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), $0) }
        guard status == 0, size.ws_col > 0 else { return nil }
        return Int(size.ws_col)
    }
}
