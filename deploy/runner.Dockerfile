# The Distro runner in a container, installed from the coordinator it joins (its own version, no
# npm registry). The device's credential and module cache live in the node user's home, a volume,
# so a new container of the same volume is the same device. docs/runner.md explains it.
#
#   docker build -t distro-runner --build-arg DISTRO_COORDINATOR=https://distro.example.workers.dev - < deploy/runner.Dockerfile
#   DISTRO_ENROLL=<token from distro runners add> docker run -d --name distro-runner --restart on-failure:5 \
#     -e DISTRO_ENROLL -v distro-runner:/home/node distro-runner
#
# The enrollment token is given when the container first runs (`-e DISTRO_ENROLL` passes it from
# the environment, never on a command line) and is not part of the image. test/e2e/docs-deploy.test.ts
# runs this file's RUN line and its ENTRYPOINT and CMD, as written, against a local coordinator.
FROM node:20-slim
ARG DISTRO_COORDINATOR
RUN test -n "$DISTRO_COORDINATOR" || { echo "give the coordinator: --build-arg DISTRO_COORDINATOR=https://..." >&2; exit 1; }; \
    npm install --global --no-audit --no-fund --no-update-notifier "$DISTRO_COORDINATOR/runner.tgz"
ENV DISTRO_COORDINATOR=$DISTRO_COORDINATOR
USER node
VOLUME ["/home/node"]
ENTRYPOINT ["distro-runner"]
CMD ["--json"]
