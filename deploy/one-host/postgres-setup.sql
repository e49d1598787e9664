-- PostgreSQL roles and databases of rtcdp-dagster (one host or any Postgres server):
--   rtcdp_dagster  Dagster's storage: runs, event logs, check results, schedule/sensor state
--                  (DAGSTER_PG_USERNAME / DAGSTER_PG_DB of deploy/one-host/dagster.yaml)
--   rtcdp_ledger   the file ledger (RTCDP_LEDGER_URL)
-- Least privilege: each role logs in to its own database only, owns nothing outside the tables
-- it creates there, and is not a superuser and cannot create databases or roles. The databases
-- belong to the administrator who runs this script; PUBLIC may not connect to them or create
-- in their public schema.
--
-- Run it as a Postgres administrator with the two passwords as psql variables (they never sit
-- in this file or in the shell history when read from a file, e.g. `-v ... ="$(cat ...)"`):
--
--   psql -h <host> -U postgres -d postgres -v ON_ERROR_STOP=1 \
--     -v dagster_password='<DAGSTER_PG_PASSWORD>' -v ledger_password='<ledger password>' \
--     -f deploy/one-host/postgres-setup.sql
--
-- Running it again changes nothing except the two passwords (set to the values given).
-- tests/deployment/test_postgres_setup.py runs it against a real PostgreSQL server.

\set ON_ERROR_STOP on
-- Both passwords are required: stop (exit status 3) before changing anything without them.
\if :{?dagster_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'set the password of rtcdp_dagster: -v dagster_password=...'; END $$;
\endif
\if :{?ledger_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'set the password of rtcdp_ledger: -v ledger_password=...'; END $$;
\endif

-- Roles: login only (NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS).
SELECT format('CREATE ROLE %I LOGIN', name)
FROM (VALUES ('rtcdp_dagster'), ('rtcdp_ledger')) AS wanted(name)
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = wanted.name) \gexec
ALTER ROLE rtcdp_dagster
  LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT
  PASSWORD :'dagster_password';
ALTER ROLE rtcdp_ledger
  LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT
  PASSWORD :'ledger_password';

-- Databases, UTF-8 (CREATE DATABASE cannot run in a transaction: one statement each).
SELECT format('CREATE DATABASE %I ENCODING %L TEMPLATE template0', name, 'UTF8')
FROM (VALUES ('rtcdp_dagster'), ('rtcdp_ledger')) AS wanted(name)
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = wanted.name) \gexec

-- Who may connect: each role to its own database, nobody else (PUBLIC may by default).
REVOKE ALL ON DATABASE rtcdp_dagster FROM PUBLIC;
REVOKE ALL ON DATABASE rtcdp_ledger FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE rtcdp_dagster TO rtcdp_dagster;
GRANT CONNECT, TEMPORARY ON DATABASE rtcdp_ledger TO rtcdp_ledger;

-- Inside each database: the role creates its tables in the public schema (Dagster's schema
-- migrations and the ledger's CREATE TABLE run as that role), PUBLIC creates nothing.
\connect rtcdp_dagster
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO rtcdp_dagster;

\connect rtcdp_ledger
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO rtcdp_ledger;
