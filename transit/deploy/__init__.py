"""The HA deployment (Redis + Sentinel, three nodes, HAProxy) as one description.

`topology` says what runs and how it is addressed (`compose_layout()` for `docker/`,
`local_layout()` for `transit cluster up --sentinels 3 --haproxy`), `render` turns a layout into
each program's configuration text, `compose` writes `docker/` from it and `local` runs the
Sentinel and HAProxy processes of the local cluster. Both deployments come from the same
renderers, so they cannot drift (tests/deploy checks it).
"""
