#!/bin/sh
# Runs the public tuf-conformance suite against uptide-tuf (see docs/tuf-conformance.md).
#
#   TUF_CONFORMANCE_DIR=/path/to/tuf-conformance \
#   TUF_PYTHONPATH=/path/to/python-tuf:/path/to/securesystemslib \
#   packages/client/src/tuf/conformance/run.sh [pytest arguments...]
#
# TUF_PYTHONPATH is only needed when tuf and securesystemslib are not installed
# for python3 (both are pure Python: their source trees work on PYTHONPATH).
set -eu
suite=${TUF_CONFORMANCE_DIR:?set TUF_CONFORMANCE_DIR to a checkout of theupdateframework/tuf-conformance}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../../.." && pwd)
command -v faketime >/dev/null || { echo "faketime is required (apt-get install faketime)" >&2; exit 1; }

# Build the client (and the core it depends on) into dist/.
(cd "$root" && npx tsc -b packages/client)

# The suite spawns a single executable; <entrypoint>.xfails lists expected failures.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '#!/bin/sh\nexec node "%s/packages/client/dist/bin/uptide-tuf.js" "$@"\n' "$root" >"$work/uptide-tuf"
chmod +x "$work/uptide-tuf"
cp "$here/uptide-tuf.xfails" "$work/uptide-tuf.xfails"

cd "$suite"
PYTHONPATH="$suite${TUF_PYTHONPATH:+:$TUF_PYTHONPATH}" python3 -m pytest tuf_conformance --entrypoint "$work/uptide-tuf" -p no:cacheprovider "$@"
