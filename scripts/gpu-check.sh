#!/usr/bin/env bash
# The GPU check: one command for a machine with a GPU, run on a build made elsewhere by
# scripts/test-cuda-build.sh (nothing is downloaded or built here). Under 5 minutes.
#
#   scripts/gpu-check.sh [--build-dir build-cuda] [--report FILE] [--ranks P] [--steps N]
#                        [--data DIR] [--cpu-build build] [--no-device]
#
# With a device it
#   1. prints the device (nvidia-smi);
#   2. checks the build: every binary below is there, links (ldd finds its libraries) and holds
#      device code for the build's arch (the .nv_fatbin section read by this script);
#   3. runs the device tests (ctest label gpu: the gradient-equivalence and message-staging tests
#      of the build, whose views live in the device's memory space);
#   4. runs the Fashion-MNIST demo for N steps (default 200) on P ranks (default 2) sharing the
#      device, through mpirun, with --exact-loss; when a CPU build of the demo is there too
#      (--cpu-build, default build/, carried with build-cuda/), runs it with the same options and
#      checks that the device's loss sum equals the CPU's to 1e-12 (relative, double);
#   5. runs the emulated-time benchmark (bench/mpi/emulated_pipeline) on P ranks;
# and writes a JSON report (default <build>/gpu-check.json): the device, each check's outcome and
# time, the demo's samples/s and accuracy, and the benchmark's measured vs simulated spans.
# Without a device (none visible, or --no-device) it does 1 and 2 only, says so in the report
# and exits 0 when the build passes them: so the script itself is tested on machines without a
# GPU (the CI's "cuda" stage). Exit status: 0 when every check that ran passed, 1 otherwise.
# The demo needs the Fashion-MNIST files (--data, default Debian's /usr/share/datasets/fashion-mnist;
# carry them to a machine without the package); MPI runs need Open MPI's libraries there.
set -uo pipefail
cd "$(dirname "$0")/.."
build=build-cuda
report=
ranks=2
steps=200
data=/usr/share/datasets/fashion-mnist
cpu_build=build
force_no_device=0
while (($#)); do
  case $1 in
    --build-dir) build=$2; shift 2 ;;
    --report) report=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --cpu-build) cpu_build=$2; shift 2 ;;
    --no-device) force_no_device=1; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
report=${report:-$build/gpu-check.json}
t_start=$(date +%s)
failures=0
checks=()  # JSON objects, one per check

json_escape() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/ }; s=${s//$'\t'/ }; printf '%s' "$s"; }
# record NAME ok|failed|skipped DETAIL [SECONDS]
record() {
  local name=$1 outcome=$2 detail=$3 seconds=${4:-0}
  echo "gpu-check: $name: $outcome${detail:+ ($detail)}"
  [[ $outcome == failed ]] && failures=$((failures + 1))
  checks+=("{\"check\": \"$name\", \"outcome\": \"$outcome\", \"seconds\": $seconds, \"detail\": \"$(json_escape "$detail")\"}")
}

# ---- 1. the device ------------------------------------------------------------------------------
device=none
if ((force_no_device)); then
  echo "gpu-check: --no-device: device runs skipped"
elif command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  device=$(nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader | head -n 1)
  nvidia-smi
else
  echo "gpu-check: no GPU device visible (no nvidia-smi, or it lists none): device runs skipped"
fi
echo "gpu-check: device: $device"

# ---- 2. the build ------------------------------------------------------------------------------
arch=$(sed -n 's/^STRETTO_GPU_ARCH:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null)
arch=${arch:-sm_90}
want=${arch#sm_}

# The architectures of the device code in a binary's .nv_fatbin section: the fat binary
# containers' entries (16-byte container header; per entry: kind at byte 0, header size at 4,
# payload size at 8, compute capability at 28), printed as "elf:90" / "ptx:90", one per entry.
fatbin_archs() {
  local tmp
  tmp=$(mktemp)
  objcopy -O binary --only-section=.nv_fatbin "$1" "$tmp" 2>/dev/null || { rm -f "$tmp"; return 1; }
  od -An -v -tu4 -w4 "$tmp" | awk '
    { w[n++] = $1 + 0 }
    END {
      i = 0
      while (i + 4 <= n) {
        if (w[i] != 3126193488) { i++; continue }          # 0xBA55ED50: a container starts
        hdr = int(w[i + 1] / 65536); size = w[i + 2] + w[i + 3] * 4294967296
        e = i + hdr / 4; end = i + (hdr + size) / 4
        while (e + 8 <= end) {
          kind = w[e] % 65536; ehdr = w[e + 1]; payload = w[e + 2] + w[e + 3] * 4294967296
          printf "%s:%d\n", (kind == 2 ? "elf" : (kind == 1 ? "ptx" : "kind" kind)), w[e + 7]
          if (ehdr == 0) break
          e += (ehdr + payload) / 4
        }
        i = (end > i ? end : i + 1)
      }
    }' | sort -u
  rm -f "$tmp"
}

binaries=(stretto.test.mpi.pipeline stretto.test.mpi.staging stretto.test.kokkos stretto.example.fashion_mnist stretto.bench.emulated_pipeline)
declare -A path_of=()
if [[ ! -f $build/CMakeCache.txt ]]; then
  record build failed "no build in $build (run scripts/test-cuda-build.sh first)"
else
  compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
  [[ $compiler == *nvcc_wrapper* ]] || record build failed "$build is not an nvcc build (CMAKE_CXX_COMPILER=$compiler)"
  for b in "${binaries[@]}"; do
    p=$(find "$build" -type f -name "$b" -perm -u+x -print -quit)
    if [[ -z $p ]]; then record "binary $b" failed "not built in $build"; continue; fi
    path_of[$b]=$p
    missing=$(ldd "$p" 2>/dev/null | awk '/not found/ { print $1 }' | tr '\n' ' ')
    driver=
    if [[ $device == none && " $missing" == *" libcuda.so.1 "* ]]; then
      missing=${missing/libcuda.so.1 /}  # the driver's library: only where a driver is installed
      driver="; libcuda.so.1 comes with the driver (none here)"
    fi
    archs=$(fatbin_archs "$p" | tr '\n' ' ')
    if [[ -n $missing ]]; then
      record "binary $b" failed "libraries not found: $missing"
    elif [[ " $archs" != *" elf:$want "* ]]; then
      record "binary $b" failed "no $arch device code (found: ${archs:-none})"
    else
      record "binary $b" ok "device code: ${archs% }$driver"
    fi
  done
fi

# ---- 3-5. on the device --------------------------------------------------------------------------
demo_json=null
bench_json=null
run_timed() {  # run_timed NAME LOGFILE COMMAND...: runs it, records ok/failed with its time
  local name=$1 log=$2; shift 2
  local t0; t0=$(date +%s)
  if timeout 240 "$@" >"$log" 2>&1; then record "$name" ok "log: $log" $(( $(date +%s) - t0 ))
  else record "$name" failed "exit $?; log: $log; $(tail -n 3 "$log" | tr '\n' ' ')" $(( $(date +%s) - t0 )); fi
}
if [[ $device != none ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  run_timed "device tests (ctest -L gpu)" "$build/gpu-check.ctest.log" \
    ctest --test-dir "$build" -L gpu --output-on-failure --timeout 200
  if [[ -n ${path_of[stretto.example.fashion_mnist]:-} && -d $data ]]; then
    batch=128
    demo_args=(--data "$data" --batch-size $batch --train-samples $((steps * batch)) --epochs 1 --exact-loss)
    run_timed "demo, $steps steps on $ranks ranks" "$build/gpu-check.demo.log" \
      mpirun -n "$ranks" --oversubscribe "${path_of[stretto.example.fashion_mnist]}" "${demo_args[@]}"
    # The same run on the CPU (Serial Kokkos): the loss sums must agree to 1e-12 (relative).
    cpu_demo=$(find "$cpu_build" -type f -name stretto.example.fashion_mnist -perm -u+x -print -quit 2>/dev/null)
    if [[ -n $cpu_demo ]]; then
      run_timed "demo on the CPU, same options" "$build/gpu-check.demo-cpu.log" \
        mpirun -n "$ranks" --oversubscribe "$cpu_demo" "${demo_args[@]}"
      dev_sum=$(sed -n 's/^epoch 1\/1  loss sum //p' "$build/gpu-check.demo.log" | head -n 1)
      cpu_sum=$(sed -n 's/^epoch 1\/1  loss sum //p' "$build/gpu-check.demo-cpu.log" | head -n 1)
      if [[ -n $dev_sum && -n $cpu_sum ]]; then
        dev_dec=$(printf '%.17g' "$dev_sum"); cpu_dec=$(printf '%.17g' "$cpu_sum")  # hexadecimal floats
        if awk -v d="$dev_dec" -v c="$cpu_dec" 'BEGIN { r = d - c; if (r < 0) r = -r; a = c < 0 ? -c : c; exit !(r <= 1e-12 * a) }'; then
          record "demo loss, device vs CPU" ok "device $dev_dec, CPU $cpu_dec"
        else
          record "demo loss, device vs CPU" failed "device $dev_dec, CPU $cpu_dec: differ by more than 1e-12 (relative)"
        fi
      else
        record "demo loss, device vs CPU" failed "no 'loss sum' line in the device's or the CPU's log"
      fi
    else
      record "demo loss, device vs CPU" skipped "no CPU build of the demo in $cpu_build (--cpu-build DIR)"
    fi
    line=$(grep -m 1 '^epoch 1/' "$build/gpu-check.demo.log")
    if [[ -n $line ]]; then
      demo_json=$(awk '{ for (i = 1; i <= NF; i++) { if ($i == "loss") l = $(i + 1); if ($i == "accuracy") a = $(i + 1);
                   if ($i == "samples/s") s = $(i - 1) } }
                   END { printf "{\"steps\": %d, \"ranks\": %d, \"loss\": %s, \"test_accuracy\": %s, \"samples_per_s\": %s}",
                         '"$steps"', '"$ranks"', l, a, s }' <<<"$line")
    fi
  else
    record "demo" skipped "no demo binary or no Fashion-MNIST in $data (--data DIR)"
  fi
  if [[ -n ${path_of[stretto.bench.emulated_pipeline]:-} ]]; then
    run_timed "emulated pipeline benchmark on $ranks ranks" "$build/gpu-check.bench.json" \
      mpirun -n "$ranks" --oversubscribe "${path_of[stretto.bench.emulated_pipeline]}" --t-f 1 --t-b 1 --t-w 1 \
        --bytes 65536 --steps 5 --format json
    grep -q '"benchmark": "emulated_pipeline"' "$build/gpu-check.bench.json" &&
      bench_json=$(sed -n '/^{/,$p' "$build/gpu-check.bench.json")
  fi
fi

# ---- the report ----------------------------------------------------------------------------------
mode=$([[ $device == none ]] && echo no-device || echo device)
{
  printf '{\n  "tool": "stretto gpu-check",\n  "mode": "%s",\n  "device": "%s",\n  "arch": "%s",\n' \
    "$mode" "$(json_escape "$device")" "$arch"
  printf '  "build_dir": "%s",\n  "date_utc": "%s",\n  "seconds": %d,\n  "failures": %d,\n  "checks": [\n' \
    "$(json_escape "$build")" "$(date -u +%FT%TZ)" $(( $(date +%s) - t_start )) "$failures"
  for i in "${!checks[@]}"; do printf '    %s%s\n' "${checks[$i]}" "$([[ $i -lt $((${#checks[@]} - 1)) ]] && echo ,)"; done
  printf '  ],\n  "demo": %s,\n  "emulated_pipeline": %s\n}\n' "$demo_json" "$bench_json"
} >"$report"
echo "gpu-check: $mode mode, $failures failed check(s), report: $report ($(( $(date +%s) - t_start )) s)"
((failures == 0))
