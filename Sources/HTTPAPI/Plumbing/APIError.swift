import Foundation
import Hummingbird

/// An error answer in the original daemon's shape: `{error, code, details}`.
///
/// `error` is a sentence naming the cause and the fix; `code` is stable for programs
/// (CONTRACT §8: INVALID_REQUEST 400, NOT_FOUND 404, CONFLICT 409, CLOUDSTACK_ERROR 422,
/// INTERNAL_ERROR 500, SERVICE_UNAVAILABLE 503; plus UNAUTHORIZED 401 for the bearer token,
/// which the original did not have). A body over the limit is INVALID_REQUEST with 413.
public struct APIError: Error, HTTPResponseError, CustomStringConvertible {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String
    public let details: [String: JSONValue]
    /// Seconds for a `Retry-After` header (a 503 whose cause should pass soon).
    public var retryAfter: Int?

    public init(status: HTTPResponse.Status, code: String, message: String, details: [String: JSONValue] = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    /// A bad field: names it, says what it must be, echoes what was sent.
    static func invalidField(_ field: String, _ message: String, provided: JSONValue? = nil) -> APIError {
        var details: [String: JSONValue] = ["field": .string(field)]
        if let provided { details["provided_value"] = provided }
        return APIError(status: .badRequest, code: "INVALID_REQUEST", message: message, details: details)
    }

    static func invalid(_ message: String, details: [String: JSONValue] = [:]) -> APIError {
        APIError(status: .badRequest, code: "INVALID_REQUEST", message: message, details: details)
    }

    static func notFound(_ message: String, details: [String: JSONValue] = [:]) -> APIError {
        APIError(status: .notFound, code: "NOT_FOUND", message: message, details: details)
    }

    static func conflict(_ message: String) -> APIError {
        APIError(status: .conflict, code: "CONFLICT", message: message)
    }

    static func unavailable(_ message: String, details: [String: JSONValue] = [:]) -> APIError {
        APIError(status: .serviceUnavailable, code: "SERVICE_UNAVAILABLE", message: message, details: details)
    }

    /// The database cannot be reached: 503 with `Retry-After`, naming the cause.
    static func databaseUnavailable(_ reason: String) -> APIError {
        var error = APIError.unavailable("the database is unavailable: \(reason); retry shortly")
        error.retryAfter = 5
        return error
    }

    static func internalError(_ message: String) -> APIError {
        APIError(status: .internalServerError, code: "INTERNAL_ERROR", message: message)
    }

    static func tooLarge(limit: Int) -> APIError {
        APIError(status: .contentTooLarge, code: "INVALID_REQUEST",
                 message: "the request body is larger than \(limit) bytes; volume requests are small JSON objects, send only the documented fields",
                 details: ["limit_bytes": .int(Int64(limit))])
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var body = details
        body["timestamp"] = .time(Date())
        let object = JSONValue.object(["error": .string(message), "code": .string(code), "details": .object(body)])
        var response = JSONResponse.make(object, status: status)
        if status == .unauthorized { response.headers[.wwwAuthenticate] = "Bearer" }
        if let retryAfter { response.headers[.retryAfter] = String(retryAfter) }
        return response
    }
}
