# Sourced: export DOCKER_HOST, naming a container engine that answers and holds the docker
# sandbox's default image. Uses $DOCKER_HOST, else the default socket, when an engine answers
# there (the image is imported into it if missing); otherwise starts one with
# scripts/start-container-engine.sh (podman, installed if missing; the image built offline).
if .venv/bin/python -c 'import docker; docker.from_env(timeout=5).ping()' 2>/dev/null; then
  engine_line=$(bash scripts/start-container-engine.sh image)
else
  echo "no container engine answers at ${DOCKER_HOST:-the default socket}; starting one" >&2
  engine_line=$(bash scripts/start-container-engine.sh)
fi
export "${engine_line?}"
unset engine_line
