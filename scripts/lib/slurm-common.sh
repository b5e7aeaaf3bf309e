# shellcheck shell=bash
# Shared by scripts/slurm-up.sh (one node) and scripts/cluster-up.sh (emulated nodes); sourced,
# not run.
#
# slurm_common_settings PROLOG: prints the slurm.conf lines that both clusters share: root runs
# the daemons, munge authenticates, PMIx starts MPI ranks, no cgroups or accounting, cores are
# the consumable resource, and every task runs PROLOG first (it exports the MPI environment).
slurm_common_settings() {
  cat <<EOF_SETTINGS
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
TaskProlog=$1
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
EnforcePartLimits=ALL
MailProg=/bin/true
EOF_SETTINGS
}
