INSERT INTO tenancy.signing_keys (kid, secret) VALUES ($1, $2)
