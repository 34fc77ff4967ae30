#!/usr/bin/env bash
# Syntax check of the deployment files (CTest: deploy.syntax, label unit).
#   tools/check-deploy.sh [DIR]        (DIR defaults to the repository's deploy/)
# - every *.yaml / *.yml: parsed with PyYAML, all documents of a file;
# - every *.json: parsed with python3's json;
# - every *.toml, and every "*.toml" entry inside a Kubernetes ConfigMap
#   (data) or Secret (stringData): parsed with python3's tomllib (3.11+);
# - every *.sh: `sh -n`;
# - systemd units (*.service, *.target, *.socket, *.timer): `systemd-analyze
#   verify` when it is installed (skipped with a message otherwise); the
#   binaries of ExecStart are replaced by stubs, templates are checked through
#   an instance, and any warning counts as an error.
# Exits non-zero, naming each bad file, if anything fails.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${1:-$ROOT/deploy}
if [ ! -d "$DIR" ]; then
  echo "check-deploy: no directory $DIR" >&2
  exit 2
fi
PY=${PYTHON:-python3}
status=0

# ---- YAML, JSON, TOML (one python process) ----
if ! "$PY" - "$DIR" <<'PYEOF'
import json, os, sys
try:
    import tomllib
except ImportError:
    sys.exit("check-deploy: python3 >= 3.11 (tomllib) is required")
try:
    import yaml
except ImportError:
    sys.exit("check-deploy: PyYAML is required (Debian: python3-yaml, see tools/install-deps.sh)")

root = sys.argv[1]
errors = 0
counts = {"yaml": 0, "json": 0, "toml": 0, "embedded toml": 0}

def fail(path, msg):
    global errors
    errors += 1
    print(f"check-deploy: {path}: {msg}", file=sys.stderr)

for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    for name in sorted(filenames):
        path = os.path.join(dirpath, name)
        try:
            if name.endswith((".yaml", ".yml")):
                counts["yaml"] += 1
                with open(path, encoding="utf-8") as f:
                    docs = list(yaml.safe_load_all(f))
                for i, doc in enumerate(docs):
                    if not isinstance(doc, dict) or doc.get("kind") not in ("ConfigMap", "Secret"):
                        continue
                    for field in ("data", "stringData"):
                        for key, value in (doc.get(field) or {}).items():
                            if key.endswith(".toml"):
                                counts["embedded toml"] += 1
                                try:
                                    tomllib.loads(value)
                                except tomllib.TOMLDecodeError as e:
                                    fail(path, f"document {i + 1}, {doc['kind']} {field}.{key}: TOML: {e}")
            elif name.endswith(".json"):
                counts["json"] += 1
                with open(path, encoding="utf-8") as f:
                    json.load(f)
            elif name.endswith(".toml"):
                counts["toml"] += 1
                with open(path, "rb") as f:
                    tomllib.load(f)
        except (yaml.YAMLError, json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            fail(path, f"{type(e).__name__}: {e}")
print("check-deploy: parsed " + ", ".join(f"{n} {k}" for k, n in counts.items()))
sys.exit(1 if errors else 0)
PYEOF
then
  status=1
fi

# ---- shell scripts ----
while IFS= read -r -d '' f; do
  if ! sh -n "$f"; then
    echo "check-deploy: $f: shell syntax error" >&2
    status=1
  fi
done < <(find "$DIR" -name '*.sh' -type f -print0)

# ---- systemd units ----
mapfile -d '' units < <(find "$DIR" -type f \( -name '*.service' -o -name '*.target' \
  -o -name '*.socket' -o -name '*.timer' \) -print0 | sort -z)
if [ ${#units[@]} -eq 0 ]; then
  :
elif ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "check-deploy: systemd-analyze not found: skipping ${#units[@]} systemd unit(s)"
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/bin" "$tmp/units"
  checked=0
  for u in "${units[@]}"; do
    base=$(basename "$u")
    cp "$u" "$tmp/units/$base"
    # Replace each program the unit runs that is not installed here (the
    # pushgw binaries are not installed in CI) by a stub; keep real ones.
    for prog in $(grep -oE '^Exec[A-Za-z]*=[-@:+!]*/[^ ]+' "$u" | sed -E 's/^[^=]*=[-@:+!]*//' | sort -u); do
      if [ ! -x "$prog" ]; then
        stub="$tmp/bin/$(basename "$prog")"
        printf '#!/bin/sh\n' > "$stub"
        chmod +x "$stub"
        sed -i -E "s#^(Exec[A-Za-z]*=[-@:+!]*)$prog( |\$)#\1$stub\2#" "$tmp/units/$base"
      fi
    done
  done
  for u in "${units[@]}"; do
    base=$(basename "$u")
    target="$tmp/units/$base"
    case "$base" in
      *@.*) target="$tmp/units/${base/@./@check.}" ;;  # a template: check one instance
    esac
    out=$(cd "$tmp/units" && systemd-analyze verify --man=no "$target" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] || [ -n "$out" ]; then
      echo "check-deploy: $u: systemd-analyze verify failed (rc $rc):" >&2
      printf '%s\n' "$out" | sed "s#$tmp/units/#$(dirname "$u")/#g; s#$tmp/bin/#<stub>/#g" >&2
      status=1
    fi
    checked=$((checked + 1))
  done
  echo "check-deploy: verified $checked systemd unit(s)"
fi

if [ $status -ne 0 ]; then
  echo "check-deploy: FAILED" >&2
else
  echo "check-deploy: OK"
fi
exit $status
