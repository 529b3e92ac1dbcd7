/// Where the API listens and who may call it (CONTRACT §7: `VOLUMED_HTTP_ADDR`; and
/// `VOLUMED_HTTP_TOKEN`). Bad values are refused naming the setting and the fix.
public struct HTTPSettings: Sendable, Equatable {
    public static let defaultAddress = "127.0.0.1:8090"

    public var host: String
    /// 0 picks a free port (tests); the bound port is reported by `onServerRunning`.
    public var port: Int
    /// When set, every route but `GET /health` requires `Authorization: Bearer <token>`.
    public var token: String?
    /// Largest request body accepted (64 KiB by default: the database refuses larger
    /// `request` objects anyway).
    public var bodyLimit: Int
    /// How long `POST /exports` and `DELETE /exports/{volume_id}` wait for their operation
    /// before answering 504 (`VOLUMED_HTTP_EXPORT_WAIT`, see `ExportWaitSetting`).
    public var exportWait: Duration
    /// A keep-alive connection with no request for this long is closed.
    public var idleTimeout: Duration
    /// A request head (request line and every header) must be complete this soon after the
    /// connection opens or the previous answer went out; otherwise the connection is closed.
    public var headerReadTimeout: Duration
    /// `VOLUMED_WEBHOOK_SECRET`: the secret key of the CloudStack webhook that posts to
    /// `/cloudstack/webhook`; nil turns that route off (503). Never logged.
    public var webhookSecret: String?

    public static let defaultIdleTimeout: Duration = .seconds(60)
    public static let defaultHeaderReadTimeout: Duration = .seconds(10)

    public init(host: String = "127.0.0.1", port: Int = 8090, token: String? = nil, bodyLimit: Int = 64 * 1024,
                exportWait: Duration = .seconds(ExportWaitSetting.defaultSeconds),
                idleTimeout: Duration = defaultIdleTimeout, headerReadTimeout: Duration = defaultHeaderReadTimeout) {
        self.host = host
        self.port = port
        self.token = token
        self.bodyLimit = bodyLimit
        self.exportWait = exportWait
        self.idleTimeout = idleTimeout
        self.headerReadTimeout = headerReadTimeout
    }

    /// From `VOLUMED_HTTP_ADDR`-style text (`host:port`, `[v6]:port`) and an optional token;
    /// an empty token means none.
    public init(address: String, token: String?, bodyLimit: Int = 64 * 1024) throws {
        let (host, port) = try Self.parseAddress(address)
        self.init(host: host, port: port, token: token.flatMap { $0.isEmpty ? nil : $0 }, bodyLimit: bodyLimit)
    }

    public static func parseAddress(_ text: String) throws -> (host: String, port: Int) {
        func refuse(_ why: String) -> HTTPSettingsError {
            HTTPSettingsError(message: "VOLUMED_HTTP_ADDR must be host:port, e.g. 127.0.0.1:8090 (loopback only) or 0.0.0.0:8090 or [::1]:8090; \(why) (got \"\(text)\")")
        }
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw refuse("an IPv6 host goes in brackets followed by :port")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw refuse("the :port is missing") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            guard !host.contains(":") else { throw refuse("an IPv6 host must be written in brackets") }
        }
        guard !host.isEmpty, !host.contains(where: \.isWhitespace) else { throw refuse("the host is missing") }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw refuse("the port must be a number from 1 to 65535")
        }
        return (String(host), port)
    }
}

public struct HTTPSettingsError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}
