import Foundation
import Hummingbird

/// `/client/api`, GET (query) and POST (form), as CloudStack's ApiServlet serves it.
enum APIRoutes {
    /// The version string CloudStack puts on XML replies.
    static let cloudStackVersion = "4.19.1.0"

    static func add(to router: Router<BasicRequestContext>, cloud: SimulatedCloud) {
        router.get("client/api") { request, _ in
            try await respond(to: request, formBody: nil, cloud: cloud)
        }
        router.post("client/api") { request, _ in
            var request = request
            let isForm = request.headers[.contentType]?.lowercased().hasPrefix("application/x-www-form-urlencoded") ?? false
            let body = try await request.collectBody(upTo: 4 * 1024 * 1024)
            return try await respond(to: request, formBody: isForm ? String(buffer: body) : nil, cloud: cloud)
        }
    }

    private static func respond(to request: Request, formBody: String?, cloud: SimulatedCloud) async throws -> Response {
        let latency = await cloud.currentFaults().latencyMs
        if latency > 0 {
            try await Task.sleep(for: .milliseconds(latency))
        }
        let parameters = RequestParameters(query: request.uri.query, formBody: formBody)
        let reply = await cloud.handle(parameters)
        let wantsJSON = parameters["response"]?.caseInsensitiveCompare("json") == .orderedSame
        return render(reply, asJSON: wantsJSON)
    }

    /// JSON: `{"<key>":<body>}` with CloudStack's content type. Without `response=json`
    /// CloudStack answers XML; the simulator renders the same tree as XML elements.
    static func render(_ reply: APIReply, asJSON: Bool) -> Response {
        var headers = HTTPFields()
        if reply.replyLost {
            headers[.contentType] = "text/html"
            return Response(status: .badGateway, headers: headers,
                            body: ResponseBody(byteBuffer: ByteBuffer(string: "<html><body><h1>502 Bad Gateway</h1></body></html>\n")))
        }
        let text: String
        if asJSON {
            headers[.contentType] = "application/json; charset=UTF-8"
            text = JSONValue.object([(reply.responseKey, reply.body)]).jsonText
        } else {
            headers[.contentType] = "text/xml; charset=UTF-8"
            let inner = reply.body.xmlText(elementName: reply.responseKey)
            let opening = "<\(reply.responseKey)>"
            let versioned = "<\(reply.responseKey) cloud-stack-version=\"\(cloudStackVersion)\">"
            text = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>" + versioned + inner.dropFirst(opening.count)
        }
        return Response(
            status: HTTPResponse.Status(code: reply.status),
            headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(string: text))
        )
    }
}

/// `/sim/*`: the test and operator surface. Never subject to fault injection.
enum ControlRoutes {
    static func add(to router: Router<BasicRequestContext>, cloud: SimulatedCloud) {
        router.get("sim/state") { _, _ in
            json(await cloud.snapshot())
        }
        router.get("sim/faults") { _, _ in
            json(await cloud.currentFaults())
        }
        router.post("sim/faults") { request, _ in
            try await withBody(request, failure: "invalid faults JSON") { body in
                let updated = try await cloud.currentFaults().updated(with: body)
                await cloud.setFaults(updated)
                return json(updated)
            }
        }
        // Adds a VM: {"name", "state": "Running"|"Stopped", "id"?, "root_volume"?, "sticks_in_stopping"?}.
        router.post("sim/vms") { request, _ in
            try await withBody(request, failure: "cannot add the VM") { body in
                let spec = try JSONDecoder().decode(SimulatorVirtualMachineSpec.self, from: body)
                return json(try await cloud.addVirtualMachine(spec), status: .created)
            }
        }
        // Leaves a volume in a transitional state: {"state": "Attaching"|"Detaching"|"Ready"|"Allocated"}.
        router.post("sim/volumes/:id") { request, context in
            try await withBody(request, failure: "cannot change the volume") { body in
                let change = try JSONDecoder().decode(SimulatorVolumeState.self, from: body)
                return json(try await cloud.setVolumeState(id: try context.parameters.require("id"), change))
            }
        }
        // Sets one VM's faults: {"sticks_in_stopping": true}.
        router.post("sim/vms/:id") { request, context in
            try await withBody(request, failure: "cannot change the VM") { body in
                let faults = try JSONDecoder().decode(SimulatorVirtualMachineFaults.self, from: body)
                return json(try await cloud.setVirtualMachineFaults(id: try context.parameters.require("id"), faults))
            }
        }
    }

    /// Runs `handle` on the request's JSON body; whatever it throws is a 400 naming `failure`.
    private static func withBody(
        _ request: Request, failure: String, _ handle: (Data) async throws -> Response
    ) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: 64 * 1024)
        do {
            return try await handle(Data(buffer: body))
        } catch {
            return badRequest("\(failure): \(error)")
        }
    }

    private static func badRequest(_ message: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=UTF-8"
        let body = JSONValue.object([("error", .string(message))]).jsonText
        return Response(status: .badRequest, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    private static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=UTF-8"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
