#!/usr/bin/env bash
# Two ranks of `ferrograd train --distributed` as two hosts of a cluster: two network namespaces
# joined by a veth pair, Open MPI's TCP transport only (no shared memory between the ranks),
# mpirun in the first namespace starting the second host's daemon through a launch agent that
# enters that namespace (as ssh would enter another machine).
#
#   scripts/mpi-netns.sh [--bin target/release/ferrograd] [-- train arguments...]
#
# Needs root (ip netns), iproute2 and Open MPI; the binary built with
# `cargo build --release -p ferrograd-cli --features mpi`. Each rank first says which address
# its host has, then rank 0 prints the run. Everything it makes is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release/ferrograd
if [ "${1:-}" = "--bin" ]; then
  bin="$2"
  shift 2
fi
if [ "${1:-}" = "--" ]; then shift; fi
args=("$@")
if [ ${#args[@]} -eq 0 ]; then
  args=(train --train-subset 6400 --epochs 2 --batch-size 32)
fi
[ -x "$bin" ] || { echo "mpi-netns: $bin is not built (cargo build --release -p ferrograd-cli --features mpi)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "mpi-netns: mpirun not found (apt-get install openmpi-bin)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "mpi-netns: ip netns needs root" >&2; exit 1; }

# names unique to this run, so that two runs do not meet
tag="fg$$"
a="${tag}a" b="${tag}b"
net=10.$(( ($$ >> 8) % 200 + 20 )).$(( $$ % 250 ))
ip_a="$net.1" ip_b="$net.2"
work="$(mktemp -d)"
cleanup() {
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$a"
ip netns add "$b"
ip link add "${tag}va" type veth peer name "${tag}vb"
ip link set "${tag}va" netns "$a"
ip link set "${tag}vb" netns "$b"
ip -n "$a" addr add "$ip_a/24" dev "${tag}va"
ip -n "$b" addr add "$ip_b/24" dev "${tag}vb"
for ns in "$a" "$b"; do
  ip -n "$ns" link set lo up
done
ip -n "$a" link set "${tag}va" up
ip -n "$b" link set "${tag}vb" up
# the link is up when b answers a (bash alone: no ping needed)
ip netns exec "$a" timeout 5 bash -c "until ip neigh show >/dev/null; do sleep 0.1; done"

# the launch agent: `agent HOST COMMAND...` runs COMMAND in the namespace of HOST's address
cat > "$work/agent" <<EOF
#!/usr/bin/env bash
host="\$1"; shift
case "\$host" in
  $ip_a) ns=$a ;;
  $ip_b) ns=$b ;;
  *) echo "agent: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" /bin/sh -c "\$*"
EOF
chmod +x "$work/agent"
printf '%s slots=1\n%s slots=1\n' "$ip_a" "$ip_b" > "$work/hostfile"
echo "hosts: $ip_a (namespace $a), $ip_b (namespace $b); TCP only"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ip netns exec "$a" mpirun -n 2 --hostfile "$work/hostfile" --map-by node \
  --mca plm_rsh_agent "$work/agent" \
  --mca btl tcp,self --mca btl_tcp_if_include "$net.0/24" --mca oob_tcp_if_include "$net.0/24" \
  -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM \
  --bind-to none \
  sh -c 'echo "rank $OMPI_COMM_WORLD_RANK on $(ip -4 -o addr show scope global | awk "{print \$4}")" >&2; exec "$0" "$@"' \
  "$(realpath "$bin")" "${args[@]}" --distributed
