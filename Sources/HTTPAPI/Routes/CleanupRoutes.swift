import Hummingbird

/// `POST /cleanup/test-failover {test_vm_id, volume_id, delete_vm, force_clean}`: enqueues a
/// `cleanup` that hands the volume back from the test-failover VM to the appliance. The
/// original's `force_clean` is the request's `force` (CONTRACT §3). `vm_id` names the
/// appliance the volume goes back to — the original's `oma_vm_id` when given, else this
/// process's appliance — because only that appliance's worker may claim the cleanup (the
/// disk must appear there as a local block device); the test VM is in the request.
struct CleanupRoutes {
    let enqueuer: OperationEnqueuer
    let bodyLimit: Int
    /// The appliance of the worker behind this API, if it has one.
    let applianceVMId: String?

    func add(to api: RouterGroup<BasicRequestContext>) {
        api.post("cleanup/test-failover") { request, _ in
            let example = #"{"test_vm_id": "…", "volume_id": "…", "delete_vm": true, "force_clean": false}"#
            let body = try await RequestBodyReader.object(request, limit: bodyLimit, required: true, example: example)
            let testVM = try body.uuid("test_vm_id", of: "test-failover VM")
            let volumeId = try body.uuid("volume_id", of: "volume")
            let deleteVM = try body.bool("delete_vm", default: false)
            let force = try body.bool("force_clean", default: false)
            let appliance = try body.optionalUUID("oma_vm_id", of: "appliance VM") ?? applianceVMId
            return try await enqueuer.enqueue(
                .cleanup, volumeId: volumeId, vmId: appliance,
                request: ["test_vm_id": .string(testVM), "delete_vm": .bool(deleteVM), "force": .bool(force)], from: request)
        }
    }
}
