/// What an operator does about a failure, by `error_code`, next to the error text (which
/// already names the cause and the fix for this one operation). From docs/operations.md,
/// "Troubleshooting"; a code not listed gets the general advice.
enum ConsoleAdvice {
    static func advice(for code: String?) -> String {
        guard let code else { return general }
        if let advice = byCode[code] { return advice }
        if code.hasPrefix("cloudstack_") {
            return "A CloudStack error: see the error text; retried ones (unreachable, HTTP errors) already used their attempts. Enqueue again once CloudStack is healthy."
        }
        return general
    }

    static let general = "The error text names the cause and the fix; the operation's events show its whole life."

    private static let byCode: [String: String] = [
        "cloudstack_auth_failed": "Check CLOUDSTACK_API_KEY and CLOUDSTACK_SECRET_KEY, and the appliance's clock (signatures expire); then enqueue again.",
        "cloudstack_unreachable": "CloudStack did not answer within max_attempts: check CLOUDSTACK_API_URL and the network; a retry adopts any job the lost request started.",
        "cloudstack_http_error": "CloudStack or a proxy answered with an HTTP error within max_attempts: check CloudStack's management server log; a retry adopts any job the request started.",
        "cloudstack_job_timeout": "The CloudStack job is still running; a retry waits on the same job instead of starting another. Look at the job in CloudStack.",
        "cloudstack_other_job_pending": "Another command's job runs on the volume or VM (someone in the CloudStack UI?); enqueue again once it has ended.",
        "volume_attached_elsewhere": "Detach the volume from that VM first (detach), or hand it back from a test VM with cleanup.",
        "volume_exported": "The volume has an active NBD export: unexport it first, or detach with \"force\": true.",
        "device_link_timeout": "The disk did not appear under /dev/disk/by-id on the appliance: check ls -l /dev/disk/by-id/ and dmesg there.",
        "device_size_mismatch": "The disk under the by-id link is not the size CloudStack reports (another disk with the same serial prefix?): check ls -l /dev/disk/by-id/ and the volume in CloudStack.",
        "volume_vanished": "The by-id link disappeared while volumed used it (a detach behind its back?): check the volume in CloudStack, then run volumed reconcile.",
        "lease_expired": "Its workers kept dying while running it: read that worker's log, then enqueue the operation again.",
        "invalid_request": "Fix the field the error names and enqueue a new operation.",
        "vm_not_stopped": "A root disk attaches only to a Stopped VM: stop the VM in CloudStack, then enqueue again.",
        "test_vm_stop_timeout": "The test VM did not stop: enqueue the cleanup again with \"force\": true.",
        "volume_not_found": "CloudStack does not know the volume: check the id (and whether it was deleted outside volumed).",
        "cloudstack_not_found": "CloudStack does not know an id the operation names (volume, VM, zone or offering): check them; it may have been deleted outside volumed.",
        "vm_not_found": "CloudStack does not know the VM: check the vm_id.",
        "appliance_required": "Only a worker with VOLUMED_APPLIANCE_VM_ID set for that appliance can run this: start one there.",
        "export_conflict": "Another export holds that name or disk unit: look at GET /api/v1/exports and unexport the stale one.",
        "invalid_checkpoint": "This volumed cannot read the checkpoint an older version wrote: cancel the operation and enqueue it again.",
    ]
}
