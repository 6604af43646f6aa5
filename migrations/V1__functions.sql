-- Shared trigger functions used by the tables of the later migrations.
--
-- Deviation from the seed: the seed lists `updated_at` columns but leaves it to
-- every writer to remember them. Here one trigger function keeps `updated_at`
-- true on every table that has the column, whoever writes the row.

CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION set_updated_at() IS
    'BEFORE UPDATE row trigger: sets updated_at to the transaction time';
