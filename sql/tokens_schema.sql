-- Signing keys, invitations and API tokens: tables only (functions are in tokens.sql and Rust).
-- Only SHA-256 hashes of tokens are stored; the plaintext is returned once and never kept.

-- HMAC keys for invitation tokens and HS256 JWTs. Several may be active (rotation, by kid);
-- a retired key verifies nothing. Readable by superusers only.
CREATE TABLE @extschema@.signing_keys (
    kid        text        NOT NULL,
    secret     bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    retired_at timestamptz,
    CONSTRAINT signing_keys_pkey PRIMARY KEY (kid),
    CONSTRAINT signing_keys_kid_check CHECK (kid ~ '^[A-Za-z0-9_-]{1,64}$'),
    CONSTRAINT signing_keys_secret_check CHECK (pg_catalog.length(secret) >= 32)
);

CREATE TABLE @extschema@.invitations (
    id          uuid        NOT NULL,
    tenant_id   uuid        NOT NULL,
    email       text        NOT NULL,
    role        text        NOT NULL,
    invited_by  uuid,
    token_hash  bytea       NOT NULL,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    accepted_by uuid,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT invitations_pkey PRIMARY KEY (id),
    CONSTRAINT invitations_tenant_fkey FOREIGN KEY (tenant_id)
        REFERENCES @extschema@.tenants (id) ON DELETE CASCADE,
    CONSTRAINT invitations_role_fkey FOREIGN KEY (role)
        REFERENCES @extschema@.roles (name) ON UPDATE CASCADE,
    CONSTRAINT invitations_invited_by_fkey FOREIGN KEY (invited_by)
        REFERENCES @extschema@.users (id) ON DELETE SET NULL,
    CONSTRAINT invitations_accepted_by_fkey FOREIGN KEY (accepted_by)
        REFERENCES @extschema@.users (id) ON DELETE SET NULL,
    CONSTRAINT invitations_token_hash_check CHECK (pg_catalog.length(token_hash) = 32),
    CONSTRAINT invitations_expiry_check CHECK (expires_at > issued_at)
);
CREATE INDEX invitations_tenant_idx ON @extschema@.invitations (tenant_id);

CREATE TABLE @extschema@.api_tokens (
    id           uuid        NOT NULL,
    tenant_id    uuid        NOT NULL,
    name         text        NOT NULL,
    scopes       text[]      NOT NULL,
    created_by   uuid        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    token_hash   bytea       NOT NULL,
    parent_id    uuid,
    CONSTRAINT api_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT api_tokens_tenant_fkey FOREIGN KEY (tenant_id)
        REFERENCES @extschema@.tenants (id) ON DELETE CASCADE,
    CONSTRAINT api_tokens_created_by_fkey FOREIGN KEY (created_by)
        REFERENCES @extschema@.users (id) ON DELETE CASCADE,
    -- A token made in another token's context expires with it and dies with it.
    CONSTRAINT api_tokens_parent_fkey FOREIGN KEY (parent_id)
        REFERENCES @extschema@.api_tokens (id) ON DELETE CASCADE,
    CONSTRAINT api_tokens_name_check CHECK (pg_catalog.length(name) BETWEEN 1 AND 200),
    CONSTRAINT api_tokens_token_hash_check CHECK (pg_catalog.length(token_hash) = 32)
);
CREATE INDEX api_tokens_tenant_idx ON @extschema@.api_tokens (tenant_id);
CREATE INDEX api_tokens_parent_idx ON @extschema@.api_tokens (parent_id);

SELECT pg_catalog.pg_extension_config_dump('@extschema@.signing_keys', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.invitations', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.api_tokens', '');
