#!/bin/bash
# wait until no foreign namespaces are present (max 10 min), then run each scenario
for s in new_netns veth_pair addr_errors_routes bridge sysctl_outputs router; do
  for i in $(seq 120); do
    [ -z "$(ip netns list | grep -v '^kref-')" ] && break
    sleep 5
  done
  echo "running $s (foreign ns: $(ip netns list | grep -v '^kref-' | tr '\n' ' '))"
  bash "$(dirname "$0")/kref_$s.sh"
done
