import DevServices
import Foundation
import Testing

/// The tests run psql, pg_ctl, nbdcopy and volumed itself through `ProcessRunner`; a child
/// that hangs must fail the test that started it, not hang the whole suite.
@Suite struct ProcessRunnerTests {
    @Test func aChildStillRunningAtTheTimeoutIsKilledAndNamed() async throws {
        let started = ContinuousClock.now
        await #expect { try await ProcessRunner.run(["sleep", "60"], timeout: .milliseconds(300)) } throws: { error in
            "\(error)".contains("sleep 60 did not finish within")
        }
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    @Test func aChildThatFinishesInTimeGivesItsStatusAndOutput() async throws {
        let output = try await ProcessRunner.run(["sh", "-c", "echo hello; exit 3"], check: false, timeout: .seconds(60))
        #expect(output.status == 3)
        #expect(output.output == "hello\n")
    }
}
