#!/usr/bin/env bash
# Fuzzes every parser Comb has for SECONDS each (default 600), one target after another:
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Builds the libFuzzer targets with clang in build-fuzz/ (never the shared build/), starts each
# from its seed corpus in tests/fuzz/corpus/<target>/ (copied to build-fuzz/corpus/<target>/,
# where new inputs collect, so the repository's corpus stays small), and writes crashes,
# timeouts and leaks to build-fuzz/crashes/. Exits 1 when any target found one: add the input
# to tests/fuzz/corpus/<target>/ and a regression test in the normal suite once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(fuzz_log_record fuzz_piece fuzz_tensor_spec fuzz_safetensors fuzz_image_codecs
           fuzz_cluster_config fuzz_bmp fuzz_tflite fuzz_anomaly_http fuzz_anomaly_bbpe
           fuzz_nectar_capture fuzz_msgpack)
fi
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCOMB_BUILD_FUZZ=ON -DCOMB_ENABLE_CUDA=OFF -DCOMB_BUILD_PERF=OFF
fi
# The shared machine's build lock, when there is one (see the engineers' rules).
lock=()
[ -e /tmp/comb-build.lock ] && lock=(flock /tmp/comb-build.lock)
"${lock[@]}" nice -n 10 cmake --build build-fuzz -j2 --target "${targets[@]}"
mkdir -p build-fuzz/crashes
failed=()
for t in "${targets[@]}"; do
  work=build-fuzz/corpus/$t
  mkdir -p "$work"
  # The image targets' smallest seed, a 2x2 24-bit BMP, is written here rather than kept in
  # the repository as a binary file.
  if [ "$t" = fuzz_bmp ] || [ "$t" = fuzz_image_codecs ]; then
    bmp_header='\x42\x4d\x46\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x01'
    bmp_header+='\x00\x18\x00\x00\x00\x00\x00\x10\x00\x00\x00\x13\x0b\x00\x00\x13\x0b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
    bmp_pixels='\xff\x00\x00\x00\xff\x00\x00\x00\xff\x00\x00\x00\xff\x00\x00\x00'
    printf "$bmp_header$bmp_pixels" > "$work/2x2.bmp"
  fi
  seeds=()
  [ -d "tests/fuzz/corpus/$t" ] && seeds=("tests/fuzz/corpus/$t")
  echo "== $t: ${seconds} s"
  # -timeout: one input running 10 s is a hang; -rss_limit_mb: a parser that allocates what
  # a header merely claims is a finding too.
  if ! nice -n 10 "build-fuzz/tests/fuzz/$t" "$work" "${seeds[@]}" \
       -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="build-fuzz/crashes/$t-" > "build-fuzz/$t.log" 2>&1; then
    failed+=("$t")
    grep -E "ERROR|SUMMARY|Test unit written" "build-fuzz/$t.log" | head -5 || true
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|DONE" "build-fuzz/$t.log" | tr '\n' ' '
  echo
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "findings in: ${failed[*]} (inputs in build-fuzz/crashes/, logs in build-fuzz/<target>.log)"
  exit 1
fi
echo "no findings in ${#targets[@]} target(s), ${seconds} s each"
