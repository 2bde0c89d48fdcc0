# Sourced by postgres-url.sh and mysql-url.sh: server_url VAR DEFAULT_URL STARTER LABEL
# exports VAR: its own value, else DEFAULT_URL, when a server answers there; otherwise the URL
# of a throw-away server that scripts/STARTER starts.
server_url() {
  local var=$1 url=${!1:-$2} starter=$3 label=$4
  if ! .venv/bin/python - "$url" <<'PY' 2>/dev/null
import sys, sqlalchemy as sa
sa.create_engine(sys.argv[1]).connect().close()
PY
  then
    echo "no $label answers at $url; starting a throw-away server" >&2
    url=$(bash "scripts/$starter")
  fi
  export "$var=$url"
}
