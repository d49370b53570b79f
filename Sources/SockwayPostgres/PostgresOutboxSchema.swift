import PostgresNIO

/// The tables and the publishing function of the outbox, created (idempotently) on every connection,
/// under an advisory lock so that nodes starting together do not race each other's `CREATE`.
///
/// - `sockway_streams`: one row per stream: its epoch (a new random value whenever the row is made
///   anew, i.e. when the history was lost) and its top offset. Publishing updates the row, so
///   publishers of one stream commit one after another and offsets are dense and in commit order.
/// - `sockway_publications`: the outbox rows, kept for a bounded time and count.
/// - `sockway_nodes`: the registry: each node's address, wire version and session count, refreshed by
///   its heartbeat; a node whose heartbeat is older than three intervals is gone.
/// - `sockway_sessions`: the state of sessions that a client may resume on any node (Socket.IO's
///   connection state recovery): written while the session is open, parked with a deadline when it
///   ends with a lost connection, taken (deleted) by the node that resumes it.
/// - `sockway_members`: each node's member count per room of each stream, rewritten by its heartbeat
///   when it changed: summed over the live nodes, the cluster's room sizes.
/// - `sockway_publish(stream, origin, payloads, keep, channel)`: appends a batch, trims the stream to
///   `keep` rows, and `NOTIFY`s `channel` with `version epoch top origin stream` (no payload: the
///   notification only wakes the nodes).
enum PostgresOutboxSchema {
    static let lockKey: Int64 = 0x736F_636B_7761_7901  // "sockway" + 1

    static let statements: [PostgresQuery] = [
        """
        CREATE TABLE IF NOT EXISTS sockway_streams (
            stream text PRIMARY KEY,
            epoch text NOT NULL,
            top bigint NOT NULL DEFAULT 0
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS sockway_publications (
            stream text NOT NULL,
            epoch text NOT NULL,
            "offset" bigint NOT NULL,
            origin text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            payload bytea NOT NULL,
            PRIMARY KEY (stream, epoch, "offset")
        )
        """,
        "CREATE INDEX IF NOT EXISTS sockway_publications_created_at ON sockway_publications (created_at)",
        """
        CREATE TABLE IF NOT EXISTS sockway_nodes (
            node_id text PRIMARY KEY,
            address text,
            wire_version int NOT NULL,
            started_at timestamptz NOT NULL,
            heartbeat_at timestamptz NOT NULL,
            sessions bigint NOT NULL DEFAULT 0
        )
        """,
        "ALTER TABLE sockway_nodes ADD COLUMN IF NOT EXISTS backend_pid int",
        """
        CREATE TABLE IF NOT EXISTS sockway_sessions (
            key text PRIMARY KEY,
            node_id text NOT NULL,
            record bytea NOT NULL,
            window_seconds float8 NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            parked_until timestamptz
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS sockway_members (
            node_id text NOT NULL,
            stream text NOT NULL,
            room text NOT NULL,
            members bigint NOT NULL,
            PRIMARY KEY (node_id, stream, room)
        )
        """,
        // Large payloads out of line but not compressed: pglz on every publication of a few KiB cost
        // PostgreSQL most of its CPU in the bench, for rows that live two minutes.
        "ALTER TABLE sockway_publications ALTER COLUMN payload SET STORAGE EXTERNAL",
        """
        CREATE OR REPLACE FUNCTION sockway_publish(
            p_stream text, p_origin text, p_payloads bytea[], p_keep bigint, p_channel text
        ) RETURNS TABLE (out_epoch text, out_first bigint) LANGUAGE plpgsql AS $$
        DECLARE
            v_epoch text;
            v_top bigint;
            v_count bigint := cardinality(p_payloads);
        BEGIN
            UPDATE sockway_streams AS s SET top = s.top + v_count WHERE s.stream = p_stream
                RETURNING s.epoch, s.top INTO v_epoch, v_top;
            IF NOT FOUND THEN
                INSERT INTO sockway_streams AS s (stream, epoch)
                    VALUES (p_stream, substr(md5(random()::text || clock_timestamp()::text), 1, 16))
                    ON CONFLICT (stream) DO NOTHING;
                UPDATE sockway_streams AS s SET top = s.top + v_count WHERE s.stream = p_stream
                    RETURNING s.epoch, s.top INTO v_epoch, v_top;
            END IF;
            INSERT INTO sockway_publications AS p (stream, epoch, "offset", origin, payload)
                SELECT p_stream, v_epoch, v_top - v_count + i, p_origin, p_payloads[i]
                FROM generate_subscripts(p_payloads, 1) AS i;
            DELETE FROM sockway_publications AS p
                WHERE p.stream = p_stream AND p.epoch = v_epoch AND p."offset" <= v_top - p_keep;
            PERFORM pg_notify(p_channel, '1 ' || v_epoch || ' ' || v_top || ' ' || p_origin || ' ' || p_stream);
            RETURN QUERY SELECT v_epoch, v_top - v_count + 1;
        END
        $$
        """,
    ]

    static func create(on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("BEGIN", logger: logger)
        do {
            try await connection.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger)
            for statement in statements { try await connection.query(statement, logger: logger) }
            try await connection.query("COMMIT", logger: logger)
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
    }
}
