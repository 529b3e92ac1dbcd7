import Foundation
import Schema
import VolumeClient

/// `volumed ops --watch`: the operations table again every interval until interrupted. On a
/// terminal the screen is redrawn in place; elsewhere each refresh is appended, headed by its time.
struct OpsWatch: Sendable {
    let interval: Duration

    func run(_ volumes: VolumeClient, filter: VolumeClient.Filter) async throws {
        let terminal = isatty(STDOUT_FILENO) == 1
        let width = terminal ? (Self.terminalWidth() ?? 120) : 160
        while !Task.isCancelled {
            let screen: String
            do {
                let records = try await volumes.operations(filter)
                screen = Self.header(records, interval: interval) + "\n" + OperationPrinter.compactTable(records, width: width)
            } catch {
                screen = "\(Self.time(Date())) cannot read the operations: \(error); retrying"
            }
            // Written at once, unbuffered: a pipe would otherwise get the screens in blocks.
            FileHandle.standardOutput.write(Data(((terminal ? "\u{1B}[H\u{1B}[2J" : "") + screen + "\n" + (terminal ? "" : "\n")).utf8))
            try await Task.sleep(for: interval)
        }
    }

    static func header(_ records: [OperationRecord], interval: Duration) -> String {
        var counts: [String: Int] = [:]
        for record in records { counts[record.status.rawValue, default: 0] += 1 }
        let shown = OperationStatus.allCases.compactMap { status in counts[status.rawValue].map { "\($0) \(status.rawValue)" } }
        return "volumed ops · \(time(Date())) · every \(interval.seconds)s · \(shown.isEmpty ? "none" : shown.joined(separator: ", ")) (Ctrl-C stops)"
    }

    static func time(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle().time(includingFractionalSeconds: false))
    }

    static func terminalWidth() -> Int? {
        var size = winsize()
        let status = withUnsafeMutablePointer(to: &size) { ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), $0) }
        guard status == 0, size.ws_col > 0 else { return nil }
        return Int(size.ws_col)
    }
}
