-- pg_tenancy 0.2.0 → 0.3.0. Frozen once 0.3.0 is released.
\echo Use "ALTER EXTENSION pg_tenancy UPDATE" to load this file. \quit
