import Hummingbird
import Logging
import NIOCore
import PostgresNIO
import Schema

/// Turns every error a route throws into the `{error, code, details}` shape, so no client
/// ever sees Hummingbird's plain-text errors: unknown routes (404), a body over the limit
/// (413), and unexpected failures (500, or 503 when the database cannot be reached).
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger
    let bodyLimit: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return try error.response(from: request, context: context)
        } catch {
            return try Self.translate(error, request: request, bodyLimit: bodyLimit, logger: logger).response(from: request, context: context)
        }
    }

    static func translate(_ error: any Error, request: Request, bodyLimit: Int, logger: Logger) -> APIError {
        switch error {
        case let error as HTTPError where error.status == .notFound:
            return .notFound("no route \(request.method) \(request.uri.path); see the routes under /api/v1 in the README")
        case let error as HTTPError:
            return APIError(status: error.status, code: error.status.code < 500 ? "INVALID_REQUEST" : "INTERNAL_ERROR",
                            message: error.body ?? error.status.reasonPhrase)
        case is NIOTooManyBytesError:
            return .tooLarge(limit: bodyLimit)
        case is DatabaseConnectionClosed:
            logger.warning("database connection closed while answering a request")
            return .unavailable("the database connection closed while answering (PostgreSQL restarting?); retry")
        case let error as PSQLError where error.serverInfo == nil:
            // No server answer at all: the connection is down, not the statement wrong.
            logger.warning("database unreachable while answering a request", metadata: ["error": "\(error.code)"])
            return .unavailable("the database could not be reached (\(error.code)); check DATABASE_URL and that PostgreSQL is up, then retry")
        case let error as PSQLError:
            logger.error("database statement failed", metadata: ["error": "\(databaseErrorText(error))"])
            return .internalError("a database statement failed: \(databaseErrorText(error))")
        default:
            logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(String(reflecting: error))"])
            return .internalError("unexpected error while answering \(request.method) \(request.uri.path): \(error)")
        }
    }
}
