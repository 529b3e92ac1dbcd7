import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore

/// CloudStack 4.20+ webhooks (apache/cloudstack PR 8674, `plugins/event-bus/webhook/`): each
/// action event completing (`VOLUME.ATTACH`, `VM.STOP`, …) is POSTed to the webhook's payload URL.
///
/// As WebhookDeliveryThread.java does: the body is the event's description — the map
/// ActionEventUtils.publishOnEventBus builds (`user`, `account`, `event`, `status`, `entity`,
/// `entityuuid`, `description`, `eventDateTime` "yyyy-MM-dd HH:mm:ss Z") as JSON, sent as
/// `application/json`; headers `X-CS-Event-ID` (the event's UUID), `X-CS-Event` (its type),
/// `User-Agent: CS-Hookshot/<account uuid>` and, when the webhook has a secret key,
/// `X-CS-Signature` = Base64(HMAC-SHA256(body, secret key)) (`generateHMACSignature`). A
/// delivery succeeds only on HTTP 200 and is tried up to 3 times (`deliveryTries`, the global
/// setting `webhook.delivery.tries`), each with a 10 s timeout (`webhook.delivery.timeout`).
/// Faults: `webhookLossRate` drops an event, `webhookDuplicateRate` delivers it twice.
extension SimulatedCloud {
    /// The action event each command completes with, and its entity type (EventTypes.java).
    static let webhookEvents: [String: (event: String, entity: String)] = [
        "createVolume": ("VOLUME.CREATE", "Volume"),
        "attachVolume": ("VOLUME.ATTACH", "Volume"),
        "detachVolume": ("VOLUME.DETACH", "Volume"),
        "deleteVolume": ("VOLUME.DELETE", "Volume"),
        "resizeVolume": ("VOLUME.RESIZE", "Volume"),
        "stopVirtualMachine": ("VM.STOP", "VirtualMachine"),
        "startVirtualMachine": ("VM.START", "VirtualMachine"),
        "destroyVirtualMachine": ("VM.DESTROY", "VirtualMachine"),
    ]
    static let webhookDeliveryTries = 3
    static let webhookAccountUUID = "5e0c1b2a-3d4f-4a6b-8c7d-9e0f1a2b3c4d"
    static let webhookUserUUID = "6f1d2c3b-4e5a-4b7c-9d8e-0f1a2b3c4d5e"

    /// Publishes the completed event of `command` on `entityUUID` to the webhook, if any.
    func publishWebhookEvent(command: String, entityUUID: String, succeeded: Bool) {
        guard let url = faults.webhookPayloadURL, let (event, entity) = Self.webhookEvents[command] else { return }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss Z"
        let description: [String: String] = [
            "user": Self.webhookUserUUID, "account": Self.webhookAccountUUID, "event": event, "status": "Completed",
            "entity": entity, "entityuuid": entityUUID,
            "description": succeeded ? "\(command) for \(entity.lowercased()) \(entityUUID)" : "Error while \(command) for \(entityUUID)",
            "eventDateTime": formatter.string(from: Date()),
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let payload = String(decoding: (try? encoder.encode(description)) ?? Data(), as: UTF8.self)
        let signature = faults.webhookSecretKey.map { key in
            Data(HMAC<SHA256>.authenticationCode(for: Data(payload.utf8), using: SymmetricKey(data: Data(key.utf8)))).base64EncodedString()
        }
        let lost = faults.webhookLossRate > 0 && Double.random(in: 0..<1) < faults.webhookLossRate
        let copies = lost ? 0 : (faults.webhookDuplicateRate > 0 && Double.random(in: 0..<1) < faults.webhookDuplicateRate ? 2 : 1)
        let delivery = SimulatorWebhookDelivery(
            eventID: UUID().uuidString.lowercased(), event: event, entityUUID: entityUUID, payload: payload,
            signature: signature, lost: lost, copies: copies)
        webhookDeliveries.append(delivery)
        let index = webhookDeliveries.count - 1
        guard copies > 0 else { return }
        Task { [weak self] in
            for _ in 0..<copies {
                let status = await Self.deliver(delivery, to: url)
                await self?.noteWebhookAnswer(index, status: status)
            }
        }
    }

    private func noteWebhookAnswer(_ index: Int, status: Int?) {
        guard webhookDeliveries.indices.contains(index) else { return }
        webhookDeliveries[index].answers.append(status ?? 0)
    }

    /// Up to `webhookDeliveryTries` POSTs until one is answered 200; the last status (nil: no answer).
    private static func deliver(_ delivery: SimulatorWebhookDelivery, to url: String) async -> Int? {
        var status: Int?
        for _ in 0..<webhookDeliveryTries {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json; charset=UTF-8")
            request.headers.add(name: "User-Agent", value: "CS-Hookshot/\(webhookAccountUUID)")
            request.headers.add(name: "X-CS-Event-ID", value: delivery.eventID)
            request.headers.add(name: "X-CS-Event", value: delivery.event)
            if let signature = delivery.signature { request.headers.add(name: "X-CS-Signature", value: signature) }
            request.body = .bytes(ByteBuffer(string: delivery.payload))
            do {
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                _ = try? await response.body.collect(upTo: 1 << 16)
                status = Int(response.status.code)
                if status == 200 { return status }
            } catch {
                status = nil
            }
        }
        return status
    }
}

/// One event the simulator published to its webhook, and what the receiver answered.
public struct SimulatorWebhookDelivery: Sendable, Equatable {
    public var eventID: String
    public var event: String
    public var entityUUID: String
    /// The body, byte for byte.
    public var payload: String
    /// `X-CS-Signature`; nil when the webhook has no secret key.
    public var signature: String?
    /// Dropped by `webhookLossRate`: never sent.
    public var lost: Bool
    /// How many times it is delivered (0 lost, 2 duplicated).
    public var copies: Int
    /// The last HTTP status of each copy's tries (0: no answer).
    public var answers: [Int] = []
}
