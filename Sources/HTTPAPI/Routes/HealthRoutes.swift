import Hummingbird

/// `GET /api/v1/health`: every dependency really checked (200 healthy or degraded, 503
/// unhealthy, always the health shape). `GET /health`: liveness only, no dependency touched,
/// never behind the token, for systemd and load balancers.
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
    }
}
