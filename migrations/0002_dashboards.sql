-- volumed 0002: dashboard views (CONTRACT §5). Plain SQL for Grafana, psql or Metabase.

-- Counts and p50/p95 durations (seconds, started_at → completed_at) by type and status,
-- over the last hour and over all time.
CREATE VIEW volume_operation_stats AS
WITH windows(window_name, since) AS (
    VALUES ('last_hour', now() - interval '1 hour'), ('all_time', '-infinity'::timestamptz)
)
SELECT w.window_name,
       o.type,
       o.status,
       count(*) AS operations,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM o.completed_at - o.started_at)) AS p50_seconds,
       percentile_cont(0.95) WITHIN GROUP (
           ORDER BY extract(epoch FROM o.completed_at - o.started_at)) AS p95_seconds,
       sum(greatest(o.attempts - 1, 0)) AS retries
FROM windows w
JOIN volume_operations o ON o.created_at >= w.since
GROUP BY w.window_name, o.type, o.status
ORDER BY w.window_name DESC, o.type, o.status;

-- Operations an operator should look at: executing past their lease (their worker died
-- and the rescuer has not run yet) or pending long past their run_after.
CREATE VIEW volume_operations_stuck AS
SELECT o.id, o.type, o.status, o.volume_id, o.vm_id, o.claimed_by, o.attempts, o.max_attempts,
       o.error_code, o.error, o.created_at, o.run_after, o.lease_expires_at,
       CASE WHEN o.status = 'executing' THEN 'lease expired'
            ELSE 'pending for more than 5 minutes' END AS reason,
       now() - CASE WHEN o.status = 'executing' THEN o.lease_expires_at ELSE o.run_after END AS overdue
FROM volume_operations o
WHERE (o.status = 'executing' AND o.lease_expires_at < now())
   OR (o.status = 'pending' AND o.run_after < now() - interval '5 minutes');

-- Every volume volumed knows, where it is attached, and its active export if any.
CREATE VIEW volume_inventory AS
SELECT coalesce(v.volume_id, m.volume_id) AS volume_id,
       v.name,
       v.size_bytes,
       v.state AS volume_state,
       m.vm_id,
       m.operation_mode,
       m.cloudstack_device_id,
       m.by_id_path,
       m.device_path,
       m.verified_at,
       e.export_name,
       e.nbd_port,
       e.vm_name AS export_vm_name,
       e.disk_unit_number
FROM volumes v
FULL JOIN device_mappings m ON m.volume_id = v.volume_id
LEFT JOIN vm_export_mappings e ON e.volume_id = coalesce(v.volume_id, m.volume_id) AND e.status = 'active';
