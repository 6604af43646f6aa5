-- Addition: the live pipelines at a batch of addresses, in one statement.
--
-- rat-api coalesces concurrent `GET /pipelines/{ns}/{layer}/{name}` reads
-- into one query per batch. A single SELECT joining the unnested address
-- arrays would be re-planned on every execution (the planner never prefers
-- a generic plan for an array of unknown length), which costs more than the
-- lookups themselves. Here each lookup is the single-row probe of
-- `uq_pipelines_namespace_layer_name`, planned once per connection and
-- cached by PL/pgSQL. The arrays are parallel: element i of each is one
-- address; addresses with no live pipeline return no row.
CREATE FUNCTION pipelines_at(namespaces text[], layers text[], names text[])
RETURNS SETOF pipelines
LANGUAGE plpgsql STABLE STRICT
AS $$
BEGIN
    IF array_length(namespaces, 1) IS DISTINCT FROM array_length(names, 1)
        OR array_length(layers, 1) IS DISTINCT FROM array_length(names, 1) THEN
        RAISE EXCEPTION 'pipelines_at: the address arrays differ in length'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR i IN 1 .. coalesce(array_length(names, 1), 0) LOOP
        RETURN QUERY
            SELECT * FROM pipelines p
            WHERE p.namespace = namespaces[i] AND p.layer = layers[i] AND p.name = names[i]
              AND p.deleted_at IS NULL;
    END LOOP;
END
$$;
