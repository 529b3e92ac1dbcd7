import CloudStack
import CloudStackSimulator
import Foundation
import Testing

/// List paging as CloudStack does it (apache/cloudstack `api/.../BaseListCmd.java`,
/// QueryManagerImpl `searchForVolumeIdsAndCount`, ApiResponseSerializer), with
/// `default.page.size` set to 3 so a few volumes span pages; and the client reading every page.
@Suite("CloudStack list paging")
struct CloudStackListPagingTests {
    /// The simulator's fixed inventory has two ROOT volumes (appliance, customer VM); with
    /// five data volumes, seven list.
    private static func withSevenVolumes(_ body: @escaping @Sendable (CloudStackHarness, [String]) async throws -> Void) async throws {
        try await CloudStackHarness.with(asyncDelay: .zero, defaultPageSize: 3) { harness in
            var created: [String] = []
            for _ in 0..<5 { created.append(try await harness.createVolume().id.value) }
            try await body(harness, created)
        }
    }

    private static func listVolumes(_ harness: CloudStackHarness, _ extra: [(name: String, value: String)]) async throws
        -> (status: Int, count: Int?, ids: [String], errorText: String?) {
        let raw = try await harness.rawRequest([("command", "listVolumes"), ("listall", "true"), ("response", "json")] + extra)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(raw.body.utf8)) as? [String: Any])
        let body = try #require(object["listvolumesresponse"] as? [String: Any])
        let ids = (body["volume"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        return (raw.status, body["count"] as? Int, ids, body["errortext"] as? String)
    }

    @Test("without page: the first default.page.size volumes, newest first, and count is the total")
    func firstPageByDefault() async throws {
        try await Self.withSevenVolumes { harness, created in
            let listed = try await Self.listVolumes(harness, [])
            #expect(listed.status == 200)
            #expect(listed.count == 7)
            #expect(listed.ids == Array(created.reversed().prefix(3)))
        }
    }

    @Test("pages start at 1 (0 is the first page too); a page past the end is {\"count\":N}")
    func pagesAndTheEnd() async throws {
        try await Self.withSevenVolumes { harness, created in
            var seen: [String] = []
            for page in 1...3 {
                let listed = try await Self.listVolumes(harness, [("page", "\(page)"), ("pagesize", "3")])
                #expect(listed.count == 7)
                #expect(listed.ids.count == (page == 3 ? 1 : 3))
                seen += listed.ids
            }
            #expect(Set(seen).count == 7 && seen.starts(with: created.reversed()))
            #expect(try await Self.listVolumes(harness, [("page", "0"), ("pagesize", "2")]).ids == Array(created.reversed().prefix(2)))
            let past = try await harness.rawRequest([("command", "listVolumes"), ("page", "4"), ("pagesize", "3"), ("response", "json")])
            #expect(past.body == #"{"listvolumesresponse":{"count":7}}"#)
            let everything = try await Self.listVolumes(harness, [("pagesize", "-1")])
            #expect(everything.ids.count == 7 && everything.count == 7)
        }
    }

    @Test("page and pagesize come together, pagesize stays within default.page.size, -1 takes no page")
    func refusals() async throws {
        try await Self.withSevenVolumes { harness, _ in
            let refusals: [([(name: String, value: String)], String)] = [
                ([("page", "2")], #""pagesize" parameter is required when "page" is specified"#),
                ([("pagesize", "2")], #""page" parameter is required when "pagesize" is specified"#),
                ([("page", "1"), ("pagesize", "4")], "Page size can't exceed max allowed page size value: 3"),
                ([("page", "1"), ("pagesize", "-1")], "Can't specify page parameter when pagesize is -1 (Unlimited)"),
            ]
            for (parameters, text) in refusals {
                let listed = try await Self.listVolumes(harness, parameters)
                #expect(listed.status == 431, "\(parameters)")
                #expect(listed.errorText == text, "\(parameters)")
            }
        }
    }

    @Test("the client reads every page: all seven volumes in three calls")
    func clientReadsEveryPage() async throws {
        try await Self.withSevenVolumes { harness, _ in
            let before = await harness.simulator.state().requestCounts["listVolumes", default: 0]
            let listed = try await harness.client.listVolumes()
            let calls = await harness.simulator.state().requestCounts["listVolumes", default: 0] - before
            #expect(Set(listed.map(\.id.value)) == Set(await harness.simulator.state().volumes.map(\.id)))
            #expect(listed.count == 7)
            #expect(calls == 3)
        }
    }
}
