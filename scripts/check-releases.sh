#!/usr/bin/env bash
# Released install and upgrade scripts (sql/pg_tenancy--*.sql listed in sql/SHA256SUMS) are
# frozen: they must match their checksums, and no commit after the one that added them may have
# modified them. The scripts of the version under development are not listed until it is
# released (CONTRIBUTING.md, "Versions and upgrades").
set -euo pipefail
cd "$(dirname "$0")/../sql"
sha256sum --quiet --check SHA256SUMS
if git rev-parse --git-dir >/dev/null 2>&1 && [ "$(git rev-parse --is-shallow-repository)" = false ]; then
    while read -r _ file; do
        changes=$(git log --format=%h --diff-filter=M -- "$file" | wc -l)
        if [ "$changes" -ne 0 ]; then
            echo "check-releases: sql/$file was modified after its release" >&2
            exit 1
        fi
    done < SHA256SUMS
fi
# Every upgrade step of a released version starts with the guard against running it by hand.
for f in pg_tenancy--*--*.sql; do
    head -n 3 "$f" | grep -q '^\\echo Use "ALTER EXTENSION pg_tenancy UPDATE"' || {
        echo "check-releases: sql/$f lacks the \\echo … \\quit guard" >&2
        exit 1
    }
done
echo "check-releases: $(wc -l < SHA256SUMS) released script(s) unchanged"
