-- Landing zones are ownable and shareable (issue 15): their creator owns
-- them, and shares give read or write on one zone, as on pipelines, tables
-- and namespaces. Not in the seed, whose `ownership` and `shares` name
-- pipelines, tables and namespaces only; docs/schema.md lists the change.
ALTER TABLE ownership DROP CONSTRAINT ck_ownership_object_type;
ALTER TABLE ownership ADD CONSTRAINT ck_ownership_object_type
    CHECK (object_type IN ('pipeline', 'table', 'namespace', 'landing_zone'));

ALTER TABLE shares DROP CONSTRAINT ck_shares_object_type;
ALTER TABLE shares ADD CONSTRAINT ck_shares_object_type
    CHECK (object_type IN ('pipeline', 'table', 'namespace', 'landing_zone'));

-- A deleted zone's grants go with it, as for the other ownable objects.
CREATE TRIGGER trg_landing_zones_forget_grants AFTER DELETE ON landing_zones
    FOR EACH ROW EXECUTE FUNCTION forget_object_grants('landing_zone');
