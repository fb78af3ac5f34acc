//! Allow-listed egress proxy (network.mode = "proxy"). Interface fixed; implementation owned by the proxy work.
