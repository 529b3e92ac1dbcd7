import Foundation
import Hummingbird
import NIOCore

/// Reads a request body as a JSON object, never more than the limit (`HTTPSettings.bodyLimit`).
enum RequestBodyReader {
    /// The body's fields. An empty body is an empty object when `required` is false (routes
    /// whose body is optional, such as detach); otherwise it is refused with `example`.
    static func object(_ request: Request, limit: Int, required: Bool, example: String) async throws -> BodyFields {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw APIError.tooLarge(limit: limit)
        }
        if buffer.readableBytes == 0 || String(buffer: buffer).allSatisfy(\.isWhitespace) {
            if required {
                throw APIError.invalid("the request body is empty; send a JSON object such as \(example) with Content-Type: application/json")
            }
            return BodyFields([:])
        }
        let nesting = JSONNesting.deepest(in: buffer.readableBytesView)
        if nesting.depth > JSONNesting.maximumDepth {
            let field = nesting.field ?? "body"
            throw APIError.invalidField(
                field,
                "field '\(field)' is nested \(nesting.depth) levels deep; at most \(JSONNesting.maximumDepth) levels of objects "
                    + "and arrays are allowed inside a field: send a flatter object",
                provided: nil)
        }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(buffer: buffer))
        } catch {
            throw APIError.invalid("the request body is not valid JSON; send a JSON object such as \(example)")
        }
        guard case .object(let fields) = value else {
            throw APIError.invalid("the request body must be a JSON object such as \(example), not \(value.kindName)")
        }
        return BodyFields(fields)
    }
}

/// Refuses a declared Content-Length over the limit before anything reads the body, on
/// every route (also those that ignore their body).
struct BodyLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    let limit: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw APIError.tooLarge(limit: limit)
        }
        return try await next(request, context)
    }
}

extension JSONValue {
    /// "a string", "a number", … for messages.
    var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "true or false"
        case .int, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}
