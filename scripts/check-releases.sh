#!/usr/bin/env bash
# Released install and upgrade scripts are frozen: they must match sql/releases/SHA256SUMS, and
# no commit after the one that added them may have modified them.
set -euo pipefail
cd "$(dirname "$0")/../sql"
sha256sum --quiet --check releases/SHA256SUMS
if git rev-parse --git-dir >/dev/null 2>&1 && [ "$(git rev-parse --is-shallow-repository)" = false ]; then
    while read -r _ file; do
        changes=$(git log --format=%h --diff-filter=MR -- "$file" | wc -l)
        if [ "$changes" -ne 0 ]; then
            echo "check-releases: $file was modified after its release" >&2
            exit 1
        fi
    done < releases/SHA256SUMS
fi
echo "check-releases: $(wc -l < releases/SHA256SUMS) released script(s) unchanged"
