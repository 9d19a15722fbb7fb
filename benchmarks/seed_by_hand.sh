#!/bin/sh
# The seed lab's cycle written by hand, as the baseline labctl's CLI is measured against
# (benchmarks/cli.py runs both side by side): the same work as
#   labctl up topologies/seed.yaml --switch linux-bridge; labctl run; labctl down
# without labctl's checks, state, journal, diagnosis or reports:
#   2 containers from the node image with network none, a Linux bridge and the
#   DOCKER-USER accept rule, 2 veths moved in and addressed, busybox httpd, 3 tcpdumps
#   (inside the server, on the host end of its veth, on the client's bridge port), one
#   curl with 5 URLs, teardown.
#
#   benchmarks/seed_by_hand.sh NAME PCAP_DIR     (as root; NAME: at most 8 of a-z 0-9)
set -eu
name=${1:?usage: seed_by_hand.sh NAME PCAP_DIR}
pcaps=${2:?usage: seed_by_hand.sh NAME PCAP_DIR}
image=${LABCTL_NODE_IMAGE:-labctl-node}
bridge="h${name}br"
mkdir -p "$pcaps"

docker run -d --name "hand-$name-client" --network none "$image" sleep infinity >/dev/null
docker run -d --name "hand-$name-server" --network none "$image" sleep infinity >/dev/null
client=$(docker inspect -f '{{.State.Pid}}' "hand-$name-client")
server=$(docker inspect -f '{{.State.Pid}}' "hand-$name-server")

ip link add "$bridge" type bridge
ip link set "$bridge" up
iptables -w -I DOCKER-USER -i "$bridge" -o "$bridge" -j ACCEPT

# node pid, host end, address, MAC
wire() {
    ip link add "h$name$2" type veth peer name eth0 netns "$1"
    ip link set "h$name$2" master "$bridge" up
    nsenter -t "$1" -n ip link set eth0 address "$4"
    nsenter -t "$1" -n ip addr add "$3" dev eth0
    nsenter -t "$1" -n ip link set eth0 up
}
wire "$client" c 10.0.0.1/24 02:00:00:00:00:01
wire "$server" s 10.0.0.2/24 02:00:00:00:00:02

# Poll (10 ms) until a command succeeds, for at most 10 s.
wait_for() {
    tries=1000
    until "$@"; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || { echo "timed out: $*" >&2; exit 1; }
        sleep 0.01
    done
}

docker exec -d "hand-$name-server" busybox httpd -f -p 80 -h /srv/www
# busybox httpd listens on [::]: its socket is in tcp6
wait_for grep -q ':0050 0.*:0000 0A' "/proc/$server/net/tcp" "/proc/$server/net/tcp6"

filter="tcp port 80 or icmp or arp"
nsenter -t "$server" -n tcpdump -i eth0 -w "$pcaps/server-eth0.pcap" -U -n "$filter" 2>"$pcaps/1.err" &
dumps=$!
tcpdump -i "h${name}s" -w "$pcaps/server-host.pcap" -U -n "$filter" 2>"$pcaps/2.err" &
dumps="$dumps $!"
tcpdump -i "h${name}c" -w "$pcaps/client-port.pcap" -U -n "$filter" 2>"$pcaps/3.err" &
dumps="$dumps $!"
for err in 1 2 3; do
    wait_for grep -q "listening on" "$pcaps/$err.err"
done

url=http://10.0.0.2:80/
docker exec "hand-$name-client" curl --silent --max-time 3 --write-out '%{http_code}\n' \
    -o /dev/null $url -o /dev/null $url -o /dev/null $url -o /dev/null $url -o /dev/null $url

# shellcheck disable=SC2086
kill -INT $dumps
wait

docker rm -f "hand-$name-client" "hand-$name-server" >/dev/null
ip link del "$bridge"
iptables -w -D DOCKER-USER -i "$bridge" -o "$bridge" -j ACCEPT
