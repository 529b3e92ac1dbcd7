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
        case let unreachable as DatabaseUnreachable:
            return .databaseUnavailable(unreachable.reason)
        case _ where String(reflecting: type(of: error)).hasSuffix("ConnectionPoolError"):
            // The pool gave up creating connections (its circuit breaker): the database is
            // down or refuses us. The type is PostgresNIO's internal one; never show its name.
            logger.warning("database pool cannot connect", metadata: ["error": "\(error)"])
            return .databaseUnavailable("no connection to PostgreSQL could be opened; check DATABASE_URL and that PostgreSQL is up")
        case is DatabaseConnectionClosed:
            logger.warning("database connection closed while answering a request")
            return .databaseUnavailable("the connection closed while answering (PostgreSQL restarting?)")
        case let error as PSQLError where error.serverInfo == nil:
            // No server answer at all: the connection is down, not the statement wrong.
            logger.warning("database unreachable while answering a request", metadata: ["error": "\(error.code)"])
            return .databaseUnavailable("it could not be reached (\(error.code)); check DATABASE_URL and that PostgreSQL is up")
        case let error as PSQLError:
            logger.error("database statement failed", metadata: ["error": "\(databaseErrorText(error))"])
            return .internalError("a database statement failed: \(databaseErrorText(error))")
        default:
            logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(String(reflecting: error))"])
            return .internalError("unexpected error while answering \(request.method) \(request.uri.path): \(error)")
        }
    }
}
