import Crypto
import Hummingbird

/// `VOLUMED_HTTP_TOKEN`: when set, every request but the root liveness check (`GET /health`)
/// and the console page without data (`GET /`, see `ConsoleRoutes.isPublic`), and CloudStack's
/// webhook deliveries (signed instead, `WebhookRoutes`),
/// must carry `Authorization: Bearer <token>`; anything else is answered 401 before a route runs.
struct BearerAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    /// SHA-256 of the token: comparing digests takes the same time whatever the length or
    /// content of what was sent, so timing tells an attacker nothing about the token.
    private let expected: SHA256.Digest

    init(token: String) {
        expected = SHA256.hash(data: Array(token.utf8))
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path == "/health" || ConsoleRoutes.isPublic(request) || request.uri.path == WebhookRoutes.path {
            return try await next(request, context)
        }
        guard let header = request.headers[.authorization] else {
            throw APIError(status: .unauthorized, code: "UNAUTHORIZED",
                           message: "this volumed requires a bearer token: send Authorization: Bearer <VOLUMED_HTTP_TOKEN>")
        }
        let sent = Self.bearerToken(in: header) ?? ""
        guard Self.constantTimeEqual(SHA256.hash(data: Array(sent.utf8)), expected) else {
            throw APIError(status: .unauthorized, code: "UNAUTHORIZED",
                           message: "the bearer token is wrong; send Authorization: Bearer <VOLUMED_HTTP_TOKEN> with the token volumed was started with")
        }
        return try await next(request, context)
    }

    /// The token of `Bearer <token>`. The scheme name is case-insensitive (RFC 7235 §2.1:
    /// `bearer`, `BEARER` are the same scheme) and may be followed by more than one space.
    static func bearerToken(in header: String) -> String? {
        guard let space = header.firstIndex(of: " ") else { return nil }
        guard header[..<space].lowercased() == "bearer" else { return nil }
        return String(header[space...].drop { $0 == " " })
    }

    private static func constantTimeEqual(_ left: SHA256.Digest, _ right: SHA256.Digest) -> Bool {
        var difference: UInt8 = 0
        for (a, b) in zip(left, right) { difference |= a ^ b }
        return difference == 0
    }
}
