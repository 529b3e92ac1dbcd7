import Foundation

/// The paging every list command shares (apache/cloudstack
/// `api/src/main/java/org/apache/cloudstack/api/BaseListCmd.java`): `page` and `pagesize`
/// come together (`validateSpecificParameters`), `pagesize` may not exceed
/// `default.page.size` (500 unless configured; `getPageSize`), and with neither the reply
/// holds the first `default.page.size` rows, never more. `pagesize=-1` alone lists
/// everything. Pages start at 1 (`getStartIndex`: row `pagesize × (page − 1)`; 0 or less
/// means the first page), and `count` is the total of the filtered rows, not of the page
/// (QueryManagerImpl `searchAndCount`).
struct ListPaging: Sendable {
    /// Index of the first row of the page and the page's size; nil size means no limit.
    let startIndex: Int
    let pageSize: Int?

    static let unlimited = -1

    init(_ parameters: RequestParameters, command: String, defaultPageSize: Int) throws {
        let page = try Self.integer(parameters["page"], name: "page", command: command)
        let size = try Self.integer(parameters["pagesize"], name: "pagesize", command: command)
        if page == nil, let size, size != Self.unlimited {
            throw APIFailure(
                errorCode: APIErrorCode.paramError, csErrorCode: CSErrorCode.serverAPIException,
                errorText: "\"page\" parameter is required when \"pagesize\" is specified")
        }
        if size == nil, page != nil {
            throw APIFailure(
                errorCode: APIErrorCode.paramError, csErrorCode: CSErrorCode.serverAPIException,
                errorText: "\"pagesize\" parameter is required when \"page\" is specified")
        }
        if let size, defaultPageSize != Self.unlimited, size > defaultPageSize {
            throw APIFailure.invalidParameter("Page size can't exceed max allowed page size value: \(defaultPageSize)")
        }
        if size == Self.unlimited, page != nil {
            throw APIFailure.invalidParameter("Can't specify page parameter when pagesize is -1 (Unlimited)")
        }
        let effective = size ?? defaultPageSize
        pageSize = effective == Self.unlimited ? nil : effective
        startIndex = pageSize.map { size in max(page ?? 1, 1) * size - size } ?? 0
    }

    /// The rows of this page out of all `rows` (already filtered and ordered).
    func slice<Row>(_ rows: [Row]) -> ArraySlice<Row> {
        let start = min(startIndex, rows.count)
        let end = pageSize.map { min(start + $0, rows.count) } ?? rows.count
        return rows[start..<end]
    }

    /// ParamProcessWorker parses INTEGER parameters with `Integer.valueOf`; a blank one is ignored.
    private static func integer(_ text: String?, name: String, command: String) throws -> Int? {
        guard let text, !text.isEmpty else { return nil }
        guard let value = Int32(text) else {
            throw APIFailure(
                errorCode: APIErrorCode.paramError, csErrorCode: CSErrorCode.serverAPIException,
                errorText: "Unable to execute API command \(command.lowercased()) due to invalid value \(text) for parameter \(name)")
        }
        return Int(value)
    }
}
