#!/usr/bin/env bash
# One task on each emulated node. With shared memory only (btl self,vader) OpenMPI must find no
# way between them (the nodes share no memory transport); with the task environment's TCP
# (tcp,self,vader on the bridge) the same program runs. $1: an MPI program that passes at 2 ranks.
set -euo pipefail
program=$1
set +e
# shellcheck disable=SC2016  # expanded by the task's sh
out=$(timeout 120 srun -N 2 -n 2 --mpi=pmix --kill-on-bad-exit=1 sh -c 'OMPI_MCA_btl=self,vader exec "$0"' "$program" 2>&1)
code=$?
set -e
if ((code == 0)) || ! grep -q 'unable to reach each other' <<<"$out"; then
  echo "$out" | tail -20
  echo "check_no_shared_memory: shared memory alone connected tasks on two nodes (exit $code)" >&2
  exit 1
fi
echo "check_no_shared_memory: self,vader cannot connect node1 and node2 (as expected)"
# shellcheck disable=SC2016  # expanded by the task's sh
hosts=$(timeout 120 srun -N 2 -n 2 sh -c 'echo "$(hostname) $OMPI_MCA_btl $OMPI_MCA_btl_tcp_if_include"' | sort)
echo "$hosts"
[[ $hosts == $'node1 tcp,self,vader stretto0\nnode2 tcp,self,vader stretto0' ]] ||
  { echo "check_no_shared_memory: unexpected task environment" >&2; exit 1; }
timeout 240 srun -N 2 -n 2 --mpi=pmix --kill-on-bad-exit=1 "$program"
echo "check_no_shared_memory: ok (TCP between the nodes)"
