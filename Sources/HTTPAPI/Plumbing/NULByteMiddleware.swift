import Foundation
import Hummingbird

/// Refuses a NUL byte (`%00`) anywhere in the path or the query string with 400, before a
/// route runs. PostgreSQL text cannot hold NUL: such a value reached the database and came
/// back as a 500, and no path or filter of this API can legitimately contain one.
struct NULByteMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if Self.hasNUL(request.uri.path) {
            throw APIError.invalidField("path", "the request path contains a NUL byte (%00); remove it: no id or device path contains one")
        }
        for (name, value) in request.uri.queryParameters where Self.hasNUL(String(name)) || Self.hasNUL(String(value)) {
            throw APIError.invalidField(
                String(name).replacingOccurrences(of: "\0", with: ""),
                "query parameter '\(String(name).replacingOccurrences(of: "\0", with: "\\0"))' contains a NUL byte (%00); remove it")
        }
        return try await next(request, context)
    }

    /// A literal NUL, or one still percent-encoded (`%00`, as a raw path keeps it).
    private static func hasNUL(_ text: String) -> Bool {
        text.utf8.contains(0) || text.range(of: "%00") != nil || (text.removingPercentEncoding?.utf8.contains(0) ?? false)
    }
}
