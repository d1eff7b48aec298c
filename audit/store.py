"""The central PostgreSQL store's schema and roles: least privilege, enforced by the server.

- The **schema owner** (the role of the DSN given to `cardbound audit central init`) creates the tables, the
  row-level-security policies and two `SECURITY DEFINER` functions. It registers nodes ahead of their first
  shipment (`add_node`: node id, verifier key, login role) — a node key is never trusted on first use.
- Each **node role** (member of `cardbound_nodes`) may only INSERT (and read) its *own* entries and checkpoints
  (row-level security: `node_id = cardbound_my_node()`, the node registered for `session_user`), read its own
  cosignatures, and move its own shipping state forward through `cardbound_node_state` / `cardbound_advance`,
  which raise `insufficient_privilege` for any other node. It has no UPDATE/DELETE on any table, no access to
  `audit_nodes`, and no CREATE anywhere (PostgreSQL 15's `public` schema grants none to PUBLIC): no DDL.
- The **witness role** (member of `cardbound_witness`) reads everything and may only INSERT cosignatures.

Role names are cluster-wide (several databases of one cluster share `cardbound_nodes`); registrations are per
database.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import psycopg
from psycopg import sql

NODES_GROUP = "cardbound_nodes"
WITNESS_GROUP = "cardbound_witness"
_LOCK = 9162_0001
_ROLE_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")

_TABLES = [
    """CREATE TABLE IF NOT EXISTS audit_nodes(
        node_id TEXT PRIMARY KEY, vkey TEXT NOT NULL, size BIGINT NOT NULL DEFAULT 0,
        frontier BYTEA NOT NULL DEFAULT '', pruned_size BIGINT NOT NULL DEFAULT 0, checkpoint TEXT,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now())""",
    "ALTER TABLE audit_nodes ADD COLUMN IF NOT EXISTS role NAME UNIQUE",
    "ALTER TABLE audit_nodes ADD COLUMN IF NOT EXISTS registered_at TIMESTAMPTZ NOT NULL DEFAULT now()",
    """CREATE TABLE IF NOT EXISTS audit_entries(
        node_id TEXT NOT NULL REFERENCES audit_nodes(node_id), idx BIGINT NOT NULL, ts_ms BIGINT NOT NULL,
        type TEXT NOT NULL, body BYTEA NOT NULL, leaf BYTEA NOT NULL, PRIMARY KEY(node_id, idx))""",
    "CREATE INDEX IF NOT EXISTS audit_entries_ts ON audit_entries(node_id, ts_ms)",
    """CREATE TABLE IF NOT EXISTS audit_checkpoints(
        node_id TEXT NOT NULL REFERENCES audit_nodes(node_id), size BIGINT NOT NULL, note TEXT NOT NULL,
        PRIMARY KEY(node_id, size))""",
    """CREATE TABLE IF NOT EXISTS audit_cosignatures(
        node_id TEXT NOT NULL REFERENCES audit_nodes(node_id), witness TEXT NOT NULL, size BIGINT NOT NULL,
        root BYTEA NOT NULL, note TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY(node_id, witness, size))""",
]

_FUNCTIONS = [
    # The node registered for the login role of this session (NULL for anyone else).
    """CREATE OR REPLACE FUNCTION cardbound_my_node() RETURNS TEXT LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = public, pg_temp AS $$ SELECT node_id FROM audit_nodes WHERE role = session_user $$""",
    """CREATE OR REPLACE FUNCTION cardbound_node_state(p_node TEXT)
        RETURNS TABLE(size BIGINT, frontier BYTEA, pruned_size BIGINT, vkey TEXT)
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    BEGIN
        IF p_node IS DISTINCT FROM cardbound_my_node() THEN
            RAISE EXCEPTION 'role % is not registered for node %', session_user, p_node
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN QUERY SELECT n.size, n.frontier, n.pruned_size, n.vkey FROM audit_nodes n
            WHERE n.node_id = p_node FOR UPDATE;
    END $$""",
    """CREATE OR REPLACE FUNCTION cardbound_advance(
            p_node TEXT, p_from BIGINT, p_size BIGINT, p_frontier BYTEA, p_checkpoint TEXT, p_pruned BIGINT)
        RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    BEGIN
        IF p_node IS DISTINCT FROM cardbound_my_node() THEN
            RAISE EXCEPTION 'role % is not registered for node %', session_user, p_node
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF p_size < p_from THEN
            RAISE EXCEPTION 'the central tree of node % only grows', p_node USING ERRCODE = 'check_violation';
        END IF;
        UPDATE audit_nodes SET size = p_size, frontier = p_frontier, checkpoint = p_checkpoint,
            pruned_size = GREATEST(pruned_size, p_pruned), updated_at = now()
            WHERE node_id = p_node AND size = p_from;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'central state of node % moved during the shipment', p_node
                USING ERRCODE = 'serialization_failure';
        END IF;
    END $$""",
]

_POLICIES = [
    ("audit_entries", "own_entries_insert", "FOR INSERT WITH CHECK (node_id = cardbound_my_node())"),
    ("audit_entries", "own_entries_select", "FOR SELECT USING (node_id = cardbound_my_node())"),
    ("audit_checkpoints", "own_checkpoints_insert", "FOR INSERT WITH CHECK (node_id = cardbound_my_node())"),
    ("audit_checkpoints", "own_checkpoints_select", "FOR SELECT USING (node_id = cardbound_my_node())"),
    ("audit_cosignatures", "own_cosignatures_select", f"FOR SELECT TO {NODES_GROUP} "
     "USING (node_id = cardbound_my_node())"),
    ("audit_cosignatures", "witness_select", f"FOR SELECT TO {WITNESS_GROUP} USING (true)"),
    ("audit_cosignatures", "witness_insert", f"FOR INSERT TO {WITNESS_GROUP} WITH CHECK (true)"),
    ("audit_entries", "witness_entries", f"FOR SELECT TO {WITNESS_GROUP} USING (true)"),
    ("audit_checkpoints", "witness_checkpoints", f"FOR SELECT TO {WITNESS_GROUP} USING (true)"),
]

_GRANTS = [
    "REVOKE ALL ON audit_nodes, audit_entries, audit_checkpoints, audit_cosignatures FROM PUBLIC",
    "REVOKE ALL ON FUNCTION cardbound_my_node(), cardbound_node_state(TEXT), "
    "cardbound_advance(TEXT, BIGINT, BIGINT, BYTEA, TEXT, BIGINT) FROM PUBLIC",
    f"GRANT SELECT, INSERT ON audit_entries, audit_checkpoints TO {NODES_GROUP}",
    f"GRANT SELECT ON audit_cosignatures TO {NODES_GROUP}",
    f"GRANT EXECUTE ON FUNCTION cardbound_my_node(), cardbound_node_state(TEXT), "
    f"cardbound_advance(TEXT, BIGINT, BIGINT, BYTEA, TEXT, BIGINT) TO {NODES_GROUP}",
    f"GRANT EXECUTE ON FUNCTION cardbound_my_node() TO {WITNESS_GROUP}",
    f"GRANT SELECT ON audit_nodes, audit_entries, audit_checkpoints, audit_cosignatures TO {WITNESS_GROUP}",
    f"GRANT INSERT ON audit_cosignatures TO {WITNESS_GROUP}",
]


class StoreError(Exception):
    """The central store refused a registration or is not set up."""


class StoreUnreachable(StoreError):
    """The central store could not be reached (network, server down, authentication)."""


def connect(dsn: str, timeout: int = 5) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(dsn, connect_timeout=timeout, autocommit=True)
    except psycopg.OperationalError as exc:
        raise StoreUnreachable(f"central store unreachable: {' '.join(str(exc).split())[:200]}") from None


def _ensure_group(conn: psycopg.Connection[Any], name: str) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname=%s", (name,)).fetchone()
    if not exists:
        # In a savepoint: another database of the cluster may create it meanwhile.
        with contextlib.suppress(psycopg.errors.DuplicateObject), conn.transaction():
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))


def init_schema(owner_dsn: str) -> None:
    """Create (or upgrade) the schema as the connecting role, which becomes its owner. Idempotent."""
    with connect(owner_dsn) as conn:
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
                for group in (NODES_GROUP, WITNESS_GROUP):
                    _ensure_group(conn, group)
                for stmt in [*_TABLES, *_FUNCTIONS]:
                    conn.execute(stmt)
                for table, name, body in _POLICIES:
                    conn.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
                    conn.execute(f"DROP POLICY IF EXISTS {name} ON {table}")
                    conn.execute(f"CREATE POLICY {name} ON {table} {body}")
                for stmt in _GRANTS:
                    conn.execute(stmt)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise StoreError(f"this role cannot set up the central store: {exc.diag.message_primary}") from None


def default_role(node_id: str) -> str:
    return "cardbound_node_" + re.sub(r"[^a-z0-9_]", "_", node_id.lower())[:40]


def add_node(owner_dsn: str, node_id: str, vkey: str, *, role: str | None = None,
             password: str | None = None) -> str:
    """Register `node_id` with its verifier key and its own login role (created if needed); return the role.

    Refuses to re-register a node under another key (a key change is a new node id, or an explicit removal by the
    owner first)."""
    role = role or default_role(node_id)
    if not _ROLE_RE.fullmatch(role):
        raise StoreError(f"invalid role name {role!r}")
    with connect(owner_dsn) as conn:
        try:
            with conn.transaction():
                row = conn.execute("SELECT vkey, role FROM audit_nodes WHERE node_id=%s", (node_id,)).fetchone()
                if row is not None and (row[0] != vkey or (row[1] is not None and row[1] != role)):
                    raise StoreError(f"node {node_id} is already registered with another key or role")
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname=%s", (role,)).fetchone()
                ident = sql.Identifier(role)
                if not exists:
                    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
                if password is not None:
                    conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password)))
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(NODES_GROUP), ident))
                conn.execute(
                    "INSERT INTO audit_nodes(node_id, vkey, role) VALUES (%s, %s, %s) "
                    "ON CONFLICT (node_id) DO UPDATE SET role = excluded.role",
                    (node_id, vkey, role),
                )
        except psycopg.errors.UndefinedTable:
            raise StoreError("the central store is not set up: run `cardbound audit central init` first") from None
        except psycopg.errors.InsufficientPrivilege as exc:
            raise StoreError(f"this role cannot register nodes: {exc.diag.message_primary}") from None
    return role


def add_witness(owner_dsn: str, role: str) -> None:
    """Give an existing login role the witness's rights (read everything, insert cosignatures)."""
    with connect(owner_dsn) as conn:
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(WITNESS_GROUP), sql.Identifier(role)))
