#!/bin/bash
# Pod network of a nodecycle kind node, with the CNI plugins of the node's
# Debian (bridge, host-local, portmap, loopback) instead of an image of a CNI
# daemon: the node's pods get 10.244.<n>.0/24, where n is the last octet of
# the node's IPv4 address, and each other node's range is routed to it.
# Run by nodecycle-node-network.service at every boot, before containerd.
set -o errexit -o nounset -o pipefail

ip=$(ip -4 -o addr show dev eth0 | awk 'NR == 1 {split($4, a, "/"); print a[1]}')
[ -n "$ip" ] || { echo "node-network: eth0 has no IPv4 address" >&2; exit 1; }
prefix=${ip%.*}
n=${ip##*.}
subnet=10.244.$n.0/24

mkdir -p /etc/cni/net.d
cat >/etc/cni/net.d/10-nodecycle.conflist <<CONF
{
  "cniVersion": "0.4.0",
  "name": "nodecycle-kind",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "$subnet"}]], "routes": [{"dst": "0.0.0.0/0"}]}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CONF

gateway=$(ip -4 route show default | awk '{print $3; exit}')
for i in $(seq 1 254); do
  [ "$i" = "$n" ] || [ "$prefix.$i" = "$gateway" ] && continue
  ip route replace "10.244.$i.0/24" via "$prefix.$i" dev eth0 onlink
done
echo "node-network: pods in $subnet on $ip"
