import Devices
import Crypto
import Foundation
import Hummingbird
import Operations
import Logging
import Schema
import ServiceLifecycle
import VolumeClient

/// The operators' web console: `GET /` (the page, no data) and, behind the bearer token when
/// one is set, `/console/fragments/…` (the sections as HTML), `/console/events` (Server-Sent
/// Events: "something changed") and `POST /console/operations/{id}/cancel` (the same
/// `volume_operation_cancel` as SQL).
struct ConsoleRoutes {
    let reads: ConsoleReads
    let volumes: VolumeClient
    let resolver: ByIdResolver?
    let applianceVMId: String?
    let feed: ConsoleChangeFeed

    /// The page is the one route besides `GET /health` served without the token: it holds no
    /// data, only the form that asks for the token.
    static func isPublic(_ request: Request) -> Bool {
        request.method == .get && request.uri.path == "/"
    }

    func add(to router: Router<BasicRequestContext>) {
        router.get("/") { _, _ in
            var page = Self.html(ConsoleShell.page)
            page.headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
            page.headers[.xContentTypeOptions] = "nosniff"
            return page
        }
        router.get("console/fragments/overview") { _, _ in
            Self.html(ConsolePage.overview(try await overview()))
        }
        router.get("console/fragments/operations/{id}") { _, context in
            let id = try context.operationID("id")
            guard let record = try await volumes.operation(UUID(uuidString: id)!) else {
                return Self.html(#"<section id="operation"><p><a href='#'>← back</a></p><p class="empty">no operation with id \#(HTMLText.escape(id)) (pruned, or never enqueued)</p></section>"#,
                                 status: .notFound)
            }
            let events = try await reads.events(operation: record.id)
            return Self.html(ConsolePage.operation(record, events: events, now: Date()))
        }
        router.post("console/operations/{id}/cancel") { _, context in
            let id = try context.operationID("id")
            do {
                let status = try await volumes.cancel(UUID(uuidString: id)!)
                return JSONResponse.make(.object(["id": .string(id), "status": .string(status.rawValue)]))
            } catch let error as VolumeClientError where error.kind == .notFound {
                throw APIError.notFound("no operation with id \(id)", details: ["operation_id": .string(id)])
            }
        }
        router.get("console/events") { _, _ in
            var headers = Self.noStore
            headers[.contentType] = "text/event-stream"
            // Proxies such as nginx would otherwise hold the events back in a buffer.
            headers[.init("X-Accel-Buffering")!] = "no"
            let feed = self.feed
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                let (signals, token) = feed.subscribe()
                defer { feed.unsubscribe(token) }
                try await writer.write(ByteBuffer(string: "retry: 2000\n: connected\n\n"))
                // SIGTERM ends the stream, so an open page never holds up a graceful shutdown.
                for await signal in signals.cancelOnGracefulShutdown() {
                    switch signal {
                    case .changed: try await writer.write(ByteBuffer(string: "event: change\ndata: {}\n\n"))
                    case .keepalive: try await writer.write(ByteBuffer(string: ": keepalive\n\n"))
                    }
                }
                try await writer.finish(nil)
            })
        }
    }

    /// Everything the overview shows, read concurrently.
    private func overview() async throws -> ConsolePage.Overview {
        async let counts = reads.counts()
        async let oldest = reads.oldestPending()
        async let finished = reads.finishedLastHour()
        async let unfinished = reads.unfinished()
        async let recent = reads.recentlyFinished()
        async let failures = reads.recentFailures()
        async let stuck = reads.stuck()
        async let appliances = reads.appliances()
        async let placements = reads.placements()
        let (finishedRows, allPlacements) = try await (finished, placements)
        var throughput: [String: [SVGChart.Bucket]] = [:]
        for row in finishedRows.rows {
            var buckets = throughput[row.type] ?? (0..<12).map { index in
                SVGChart.Bucket(start: finishedRows.now.addingTimeInterval(-Double(12 - index) * 300), completed: 0, failed: 0)
            }
            buckets[11 - row.bucket].completed += row.completed
            buckets[11 - row.bucket].failed += row.failed
            throughput[row.type] = buckets
        }
        var linkStates: [String: ConsolePage.LinkState] = [:]
        if let resolver, let applianceVMId {
            for placement in allPlacements where placement.mode == "appliance" && placement.vmId.lowercased() == applianceVMId.lowercased() {
                do {
                    linkStates[placement.volumeId] = try resolver.currentDevice(volumeId: placement.volumeId)
                        .map { .resolves(to: $0.devicePath) } ?? .missing
                } catch {
                    linkStates[placement.volumeId] = .unknown("unreadable: \(error)")
                }
            }
        }
        return ConsolePage.Overview(
            now: finishedRows.now, counts: try await counts, oldestPending: try await oldest, throughput: throughput,
            unfinished: try await unfinished, recent: try await recent, failures: try await failures, stuck: try await stuck,
            appliances: try await appliances, placements: allPlacements, linkStates: linkStates, localAppliance: applianceVMId)
    }

    private static let noStore: HTTPFields = [.cacheControl: "no-store"]

    private static func html(_ html: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = noStore
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
    }

    /// Only this page's own script and style run (by their hashes), and it talks only to this server.
    static let contentSecurityPolicy: String = {
        func hash(_ text: String) -> String {
            "'sha256-" + Data(SHA256.hash(data: Array(text.utf8))).base64EncodedString() + "'"
        }
        return "default-src 'none'; connect-src 'self'; img-src 'self' data:; style-src \(hash(ConsoleShell.css)); "
            + "script-src \(hash(ConsoleShell.script)); base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    }()
}

extension ConsoleRoutes {
    init(_ dependencies: APIDependencies) {
        let reads = ConsoleReads(client: dependencies.database, logger: dependencies.logger)
        self.init(reads: reads, volumes: dependencies.volumes, resolver: dependencies.resolver,
                  applianceVMId: dependencies.worker?.applianceVMId,
                  feed: ConsoleChangeFeed(database: dependencies.listenDatabase, reads: reads, logger: dependencies.logger))
    }
}
