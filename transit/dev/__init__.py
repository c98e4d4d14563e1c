"""Development tooling, outside the server's own layers (DESIGN §2): a local HA cluster on one
machine (`localcluster`, `transit cluster up/down`; built on `clusterparts`, what the cluster is
made of, and `clusterprobe`, its health checks and waits), its state-file control
(`clusterstate`), the process handles (`handles`) and the process helpers they use
(`processes`). Nothing in the server imports this package."""
