import Hummingbird
import Logging

/// One `info` line per request, after it is answered: method, path, status and duration.
/// Outermost middleware, so it sees the status the client got (errors included, after
/// `ErrorMiddleware` shaped them) and requests the token refused. The query string and the
/// headers are left out: they are the client's, and `Authorization` carries the token.
struct AccessLogMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        do {
            let response = try await next(request, context)
            log(request, status: response.status.code, started: started)
            return response
        } catch let error as any HTTPResponseError {
            log(request, status: error.status.code, started: started)
            throw error
        } catch {
            log(request, status: 500, started: started)
            throw error
        }
    }

    private func log(_ request: Request, status: Int, started: ContinuousClock.Instant) {
        let (seconds, attoseconds) = (ContinuousClock.now - started).components
        let milliseconds = Double(seconds) * 1000 + Double(attoseconds) / 1e15
        logger.info("http request", metadata: [
            "method": "\(request.method)", "path": "\(request.uri.path)", "status": "\(status)",
            "duration_ms": "\((milliseconds * 10).rounded() / 10)",
        ])
    }
}
