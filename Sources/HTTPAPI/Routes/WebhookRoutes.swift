import CloudStack
import Crypto
import Foundation
import Hummingbird
import Logging
import PostgresNIO
import Schema
import NIOCore

/// `POST /cloudstack/webhook`: CloudStack 4.20+ webhook deliveries (`createWebhook` with this
/// URL as `payloadurl` and `VOLUMED_WEBHOOK_SECRET` as `secretkey`), taken as "look now" only.
///
/// CloudStack's WebhookDeliveryThread (apache/cloudstack
/// `plugins/event-bus/webhook/src/main/java/org/apache/cloudstack/mom/webhook/WebhookDeliveryThread.java`)
/// POSTs the event's description (ActionEventUtils.publishOnEventBus: `event`, `status`,
/// `entity`, `entityuuid`, …) with `X-CS-Event-ID`, `X-CS-Event` and `X-CS-Signature` =
/// Base64(HMAC-SHA256(payload, secret key)), tries up to 3 times until it gets HTTP 200, and may
/// so deliver one event twice. A delivery with a good signature wakes this process's waits on
/// jobs of `entityuuid` (`JobWakeups`), each of which then asks CloudStack with one
/// queryAsyncJobResult; nothing in the payload is believed. The other volumed processes on the
/// database (`volumed worker`s) are told through PostgreSQL (`JobWakeups.channel`) and wake
/// theirs. A duplicate wakes a wait that has already returned, or makes one extra poll. A bad or
/// missing signature: 401, nothing done.
/// Outside the bearer token (CloudStack cannot send one): the signature is its authentication.
struct WebhookRoutes {
    static let path = "/cloudstack/webhook"

    let secret: String?
    let wakeups: JobWakeups?
    let bodyLimit: Int
    /// Where to relay deliveries to the other processes; nil: this process only.
    var database: PostgresClient?
    let logger: Logger

    func add(to router: Router<BasicRequestContext>) {
        router.post("cloudstack/webhook") { request, _ in
            guard let secret, let wakeups else {
                throw APIError.unavailable("this volumed takes no CloudStack webhooks; set VOLUMED_WEBHOOK_SECRET to the webhook's secret key")
            }
            var request = request
            let buffer: ByteBuffer
            do {
                buffer = try await request.collectBody(upTo: bodyLimit)
            } catch is NIOTooManyBytesError {
                throw APIError.tooLarge(limit: bodyLimit)
            }
            let payload = Data(buffer: buffer)
            guard let signature = request.headers.first(where: { $0.name.canonicalName == "x-cs-signature" })?.value,
                  Self.isValid(signature: signature, payload: payload, secret: secret) else {
                throw APIError(status: .unauthorized, code: "UNAUTHORIZED",
                               message: "the X-CS-Signature header is missing or wrong; the webhook's secret key must equal VOLUMED_WEBHOOK_SECRET")
            }
            let entity = (try? JSONDecoder().decode(Payload.self, from: payload))?.entityuuid
                .flatMap { UUID(uuidString: $0) != nil ? $0 : nil }
            let woken = entity.map { wakeups.wake(entity: $0) } ?? 0
            if let entity, let database {
                do {
                    _ = try await database.rows(
                        "SELECT pg_notify(\(JobWakeups.channel), \(wakeups.relayPayload(entity: entity)))", logger: logger)
                } catch {
                    // The delivery still counts (a failure here would make CloudStack send it
                    // again); the other processes keep their planned polls.
                    logger.warning("could not relay a CloudStack webhook to the other volumed processes",
                                    metadata: ["error": "\(String(reflecting: error))"])
                }
            }
            return JSONResponse.make(.object(["woken": .int(Int64(woken))]))
        }
    }

    private struct Payload: Decodable {
        var entityuuid: String?
    }

    /// Base64(HMAC-SHA256(payload, secret)) as CloudStack's `generateHMACSignature` makes it,
    /// compared by HMAC's own constant-time check of the decoded bytes.
    static func isValid(signature: String, payload: Data, secret: String) -> Bool {
        guard let sent = Data(base64Encoded: signature.trimmingCharacters(in: .whitespaces)) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(sent, authenticating: payload, using: SymmetricKey(data: Data(secret.utf8)))
    }
}
