import Hummingbird

/// `GET /api/v1/health`: every dependency really checked (200 healthy or degraded, 503
/// unhealthy, always the health shape). `GET /health`: liveness only, no dependency touched,
/// never behind the token, for systemd and load balancers (GET or HEAD).
struct HealthRoutes {
    let probe: HealthProbe

    func add(to api: RouterGroup<BasicRequestContext>, root: Router<BasicRequestContext>) {
        api.get("health") { _, _ in
            let (status, body) = await probe.report()
            return JSONResponse.make(body, status: status == "unhealthy" ? .serviceUnavailable : .ok)
        }
        root.get("health") { _, _ in
            JSONResponse.make(.object(["status": "alive"]))
        }
        // Load balancers and `curl -I` probe with HEAD: the same answer without a body.
        root.head("health") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "application/json; charset=utf-8"
            return Response(status: .ok, headers: headers)
        }
    }
}
