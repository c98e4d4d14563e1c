# transit-2: Shamir seal, unsealed by hand (docs/deploy.md); reads from redis-2, the primary through Sentinel
storage "redis" {
  sentinel_addresses = "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379"
  sentinel_master    = "transit"
  read_address       = "redis-2:6379"
  node_id            = "transit-2"
  lock_ttl           = "10s"
}

listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = true
}

telemetry {
  unauthenticated_metrics_access = true
}

api_addr      = "http://transit-2:8200"
cluster_addr  = "https://transit-2:8201"
cluster_name  = "transit"
disable_mlock = true
ui            = true
disable_performance_standby = false
