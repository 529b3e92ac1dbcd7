import Hummingbird
import Schema

/// A request still waiting after `grace` has the database checked directly (one connection
/// attempt, shared by every waiting request for `probeMaxAge`); when PostgreSQL cannot be
/// reached the request is abandoned and answered `503` with `Retry-After` and the cause in
/// words. Without this, a read waits for the pool's own give-up, about a minute, and then
/// answers 500 with the pool's internal error type.
///
/// A request that is merely slow (a long export wait, a busy database) costs nothing but the
/// shared check: it runs on as long as the database answers.
struct DatabaseAvailabilityMiddleware<Context: RequestContext>: RouterMiddleware {
    let reachability: DatabaseReachability
    var grace: Duration = .seconds(2)
    var probeMaxAge: Duration = .seconds(2)
    let probe = CachedCheck<DatabaseUnreachable?>()

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        try await withoutActuallyEscaping(next) { next in
            // Runs only inside the task group below, which ends before this closure returns.
            let route = RouteCall(call: next)
            return try await withThrowingTaskGroup(of: Response?.self) { group in
                group.addTask { try await route.call(request, context) }
                group.addTask { try await watch() }
                defer { group.cancelAll() }
                while let answer = try await group.next() {
                    if let answer { return answer }
                }
                throw APIError.internalError("the request ended without an answer")
            }
        }
    }

    /// Returns nothing while the database answers; throws the 503 when it does not.
    private func watch() async throws -> Response? {
        let reachability = self.reachability
        while true {
            try await Task.sleep(for: grace)
            if let problem = await probe.value(maxAge: probeMaxAge, { await reachability.check() }) {
                throw APIError.databaseUnavailable(problem.reason)
            }
        }
    }
}

/// The rest of the chain, carried into the task group. Not escaping in fact: the group
/// finishes every child before `handle` returns (see `withoutActuallyEscaping`).
private struct RouteCall<Context: RequestContext>: @unchecked Sendable {
    let call: (Request, Context) async throws -> Response
}
