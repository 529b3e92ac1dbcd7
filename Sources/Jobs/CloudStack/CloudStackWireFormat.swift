import Foundation

/// Decoding of CloudStack's JSON envelopes: every reply is an object with exactly one
/// key, `<command lower-cased>response` (or `errorresponse`), whose value is the body.

/// The error fields CloudStack's `ExceptionResponse` serializes.
struct CloudStackErrorBody: Decodable {
    var errorcode: Int?
    var cserrorcode: Int?
    var errortext: String?
}

/// A body that may be an error: used to probe any reply before decoding it properly.
struct EnvelopeProbe: Decodable {
    var errorcode: Int?
    var cserrorcode: Int?
    var errortext: String?
}

/// `{"count":N,"<item>":[…]}`, or `{}` when nothing matched.
struct ListBody<Item: Decodable>: Decodable {
    var items: [Item]

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyCodingKey.self)
        // The list key is the only key besides `count` (e.g. `volume`, `virtualmachine`).
        guard let key = container.allKeys.first(where: { $0.stringValue != "count" }) else {
            items = []
            return
        }
        items = try container.decode([Item].self, forKey: key)
    }
}

/// `createVolume` answers with both the new volume's id and its job id.
struct AsyncCreateBody: Decodable {
    var id: String
    var jobid: String
}

/// `attachVolume` / `detachVolume` and the VM commands answer with the job id only.
struct AsyncJobStartBody: Decodable {
    var jobid: String
}

/// `recoverVirtualMachine` (sync): `{"virtualmachine":{…}}`.
struct RecoveredVirtualMachineBody: Decodable {
    var virtualmachine: CloudStackVirtualMachine
}

/// `deleteVolume`: `success` is `true`, or `"true"` on older servers.
struct SuccessBody: Decodable {
    var success: Bool
    var displaytext: String?

    enum CodingKeys: String, CodingKey { case success, displaytext }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        displaytext = try container.decodeIfPresent(String.self, forKey: .displaytext)
        if let flag = try? container.decode(Bool.self, forKey: .success) {
            success = flag
        } else {
            success = try container.decode(String.self, forKey: .success).lowercased() == "true"
        }
    }
}

/// `queryAsyncJobResult`'s body. `jobresult` is `{"volume":{…}}`, `{"virtualmachine":{…}}`, `{"success":…}` or
/// `{"errorcode":…,"errortext":…}`.
struct AsyncJobBody: Decodable {
    var jobid: String
    var jobstatus: Int
    var jobresultcode: Int?
    var jobresulttype: String?
    var jobresult: JobResult?
    var cmd: String?
    var jobinstanceid: String?

    struct JobResult: Decodable {
        var volume: CloudStackVolume?
        var virtualmachine: CloudStackVirtualMachine?
        var success: Bool?
        var errorcode: Int?
        var errortext: String?

        enum CodingKeys: String, CodingKey { case volume, virtualmachine, success, errorcode, errortext }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            volume = try container.decodeIfPresent(CloudStackVolume.self, forKey: .volume)
            virtualmachine = try container.decodeIfPresent(CloudStackVirtualMachine.self, forKey: .virtualmachine)
            errorcode = try container.decodeIfPresent(Int.self, forKey: .errorcode)
            errortext = try container.decodeIfPresent(String.self, forKey: .errortext)
            if let flag = try? container.decode(Bool.self, forKey: .success) {
                success = flag
            } else if let text = try? container.decode(String.self, forKey: .success) {
                success = text.lowercased() == "true"
            }
        }
    }
}

struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// Splits a reply into its single top-level key and the raw body under it.
enum CloudStackEnvelope {
    /// Returns the body under the one top-level key, re-encoded so it can be decoded as
    /// any type, plus the key's name.
    static func unwrap(_ data: Data) throws -> (key: String, body: Data) {
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any], object.count == 1,
            let (key, value) = object.first
        else {
            throw EnvelopeError.notASingleKeyObject
        }
        let body = try JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed])
        return (key, body)
    }

    enum EnvelopeError: Error { case notASingleKeyObject }
}
