-- V002: tenant isolation. Every table only shows the rows of the tenant named by the setting
-- fleet.tenant_id; with no setting no row is visible (current_setting(..., true) is NULL). The owner of
-- the tables (the role that runs migrations and the sink) bypasses the policies because they are not
-- FORCEd; readers use the role fleet_reader (see sinks/postgres/README.md).

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'robots', 'sites', 'site_maps', 'tasks', 'task_events', 'decisions',
                             'conflicts', 'alerts', 'audit']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = current_setting(''fleet.tenant_id'', true))', t);
    END LOOP;
END
$$;

-- The read role of the gateway: created when this migrator may create roles (else by the operator, see
-- README), granted read access to this schema's tables.
DO $$
DECLARE
    t text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleet_reader') THEN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user AND (rolsuper OR rolcreaterole)) THEN
            CREATE ROLE fleet_reader NOLOGIN NOBYPASSRLS;
        ELSE
            RAISE NOTICE 'role fleet_reader does not exist and % may not create it; grants skipped', current_user;
            RETURN;
        END IF;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO fleet_reader', current_schema());
    FOREACH t IN ARRAY ARRAY['tenants', 'robots', 'sites', 'site_maps', 'tasks', 'task_events', 'decisions',
                             'conflicts', 'alerts', 'audit']
    LOOP
        EXECUTE format('GRANT SELECT ON %I TO fleet_reader', t);
    END LOOP;
END
$$;
