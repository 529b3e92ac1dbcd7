import Foundation

/// Where and how volumed talks to the CloudStack management server (CONTRACT.md §7:
/// `CLOUDSTACK_API_URL`, `CLOUDSTACK_API_KEY`, `CLOUDSTACK_SECRET_KEY`).
///
/// The secret key never leaves this value except into the HMAC: `description` and
/// `debugDescription` redact it, so the configuration can be logged safely.
public struct CloudStackConfiguration: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The full API endpoint, e.g. `http://cloudstack:8080/client/api`.
    public var apiURL: String
    public var apiKey: String
    public var secretKey: String
    /// Upper bound for one HTTP exchange (connect + request + response body).
    public var requestTimeout: Duration
    /// Sign with `signatureVersion=3` and an `expires` stamp so a captured URL cannot be
    /// replayed later (ApiServer.java `verifyRequest` rejects expired requests with 401).
    public var useSignatureVersion3: Bool
    /// How far in the future `expires` is set when `useSignatureVersion3` is on.
    public var signatureLifetime: Duration

    public init(
        apiURL: String,
        apiKey: String,
        secretKey: String,
        requestTimeout: Duration = .seconds(30),
        useSignatureVersion3: Bool = true,
        signatureLifetime: Duration = .seconds(300)
    ) {
        self.apiURL = apiURL
        self.apiKey = apiKey
        self.secretKey = secretKey
        self.requestTimeout = requestTimeout
        self.useSignatureVersion3 = useSignatureVersion3
        self.signatureLifetime = signatureLifetime
    }

    public var description: String {
        "CloudStackConfiguration(apiURL: \(redactedAPIURL), apiKey: \(apiKey), secretKey: <redacted>, "
            + "requestTimeout: \(requestTimeout), signatureVersion3: \(useSignatureVersion3))"
    }

    public var debugDescription: String { description }

    /// `apiURL` fit for messages and logs: credentials written into it
    /// (`http://user:password@host/…`, for a proxy or basic auth in front of CloudStack) are
    /// replaced by `<redacted>`.
    public var redactedAPIURL: String {
        guard let userInfo = Self.userInfo(in: apiURL) else { return apiURL }
        return apiURL.replacingOccurrences(of: userInfo + "@", with: "<redacted>@")
    }

    /// Every secret text a message must never carry: the secret key and the URL's credentials
    /// (whole, and the password alone, as a transport error may echo either).
    var secretsInMessages: [String] {
        var secrets = [secretKey]
        if let userInfo = Self.userInfo(in: apiURL) {
            secrets.append(userInfo)
            if let colon = userInfo.firstIndex(of: ":") { secrets.append(String(userInfo[userInfo.index(after: colon)...])) }
            if let decoded = userInfo.removingPercentEncoding, decoded != userInfo { secrets.append(decoded) }
        }
        return secrets.filter { !$0.isEmpty }
    }

    /// The `user:password` between `scheme://` and the first `@` of the authority, if any.
    private static func userInfo(in url: String) -> String? {
        guard let scheme = url.range(of: "://") else { return nil }
        let rest = url[scheme.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard let at = authority.lastIndex(of: "@") else { return nil }
        return String(authority[..<at])
    }
}
