"""Development tooling, outside the server's own layers (DESIGN §2): a local HA cluster on one
machine (`localcluster`, `transit cluster up/down`), its state-file control (`clusterstate`) and
the process helpers both use (`processes`). Nothing in the server imports this package."""
