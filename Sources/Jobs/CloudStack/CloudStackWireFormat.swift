import Foundation

/// Decoding of CloudStack's JSON envelopes: every reply is an object with exactly one
/// key, `<command lower-cased>response` (or `errorresponse`), whose value is the body.

/// A body that may be an error (the fields CloudStack's `ExceptionResponse` serializes): used
/// to probe any reply before decoding it properly.
struct EnvelopeProbe: Decodable {
    var errorcode: Int?
    var cserrorcode: Int?
    var errortext: String?
}

/// `{"count":N,"<item>":[…]}`, or `{}` when nothing matched.
struct ListBody<Item: Decodable>: Decodable {
    var items: [Item]
    /// How many rows match in all, across pages; absent (0) when none do.
    var count: Int

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyCodingKey.self)
        count = try container.decodeIfPresent(Int.self, forKey: AnyCodingKey(stringValue: "count")) ?? 0
        // The list key is the only key besides `count` (e.g. `volume`, `virtualmachine`).
        guard let key = container.allKeys.first(where: { $0.stringValue != "count" }) else {
            items = []
            return
        }
        items = try container.decode([Item].self, forKey: key)
    }
}

/// The first page of a list and how many rows match in all.
public struct ListPage<Item: Sendable & Decodable>: Sendable {
    public let items: [Item]
    /// Rows matching across all pages.
    public let count: Int

    /// Calls it takes to read the rest (the first page's length being the server's page size).
    public var pagesLeft: Int {
        guard !items.isEmpty, count > items.count else { return 0 }
        let rest = count - items.count
        return (rest + items.count - 1) / items.count
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

/// Reads a reply's single top-level key and the body under it. The body is decoded in
/// place, never re-encoded first: a list reply of a thousand volumes runs to megabytes, and
/// re-encoding it cost more than the rest of reading it.
enum CloudStackEnvelope {
    /// The one top-level key and, when the body is an object, its error fields.
    static func head(_ data: Data, decoder: JSONDecoder) throws -> (key: String, probe: EnvelopeProbe?) {
        let head = try decoder.decode(Head.self, from: data)
        return (head.key, head.probe)
    }

    /// The body under the one top-level key, as `Body`.
    static func body<Body: Decodable>(_ data: Data, as: Body.Type, decoder: JSONDecoder) throws -> Body {
        try decoder.decode(Enveloped<Body>.self, from: data).body
    }

    private struct Head: Decodable {
        let key: String
        let probe: EnvelopeProbe?

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyCodingKey.self)
            let key = try CloudStackEnvelope.onlyKey(of: container)
            self.key = key.stringValue
            probe = try? container.decode(EnvelopeProbe.self, forKey: key)
        }
    }

    private struct Enveloped<Body: Decodable>: Decodable {
        let body: Body

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyCodingKey.self)
            body = try container.decode(Body.self, forKey: CloudStackEnvelope.onlyKey(of: container))
        }
    }

    private static func onlyKey(of container: KeyedDecodingContainer<AnyCodingKey>) throws -> AnyCodingKey {
        guard container.allKeys.count == 1, let key = container.allKeys.first else { throw EnvelopeError.notASingleKeyObject }
        return key
    }

    enum EnvelopeError: Error { case notASingleKeyObject }
}
