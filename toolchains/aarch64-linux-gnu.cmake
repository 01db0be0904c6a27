# Cross build for 64-bit ARM Linux (armv8-a) with Debian's
# g++-aarch64-linux-gnu; tests run under qemu-aarch64. Provision first:
#   bash toolchains/provision-sysroot.sh arm64
#   cmake --workflow --preset aarch64
# Highway compiles NEON, SVE, SVE2, SVE_256 and SVE2_128 and picks one at run
# time, so the baseline stays armv8-a.
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(RELATTN_CROSS_TRIPLE aarch64-linux-gnu)
set(RELATTN_CROSS_DEBARCH arm64)
set(RELATTN_CROSS_QEMU qemu-aarch64)

# qemu CPU models the suites run under, as label|QEMU_CPU|targets: each ctest
# entry <suite>@<label> runs with that QEMU_CPU and tests exactly the listed
# Highway targets (RELATTN_TEST_TARGETS; a suite fails if one of them is not
# both compiled and supported by the emulated CPU).
#   neon:  Cortex-A72, armv8.0 without SVE: the NEON target.
#   n1:    Neoverse N1, armv8.2 with dotprod and fp16 arithmetic, no SVE: NEON
#          again (Highway 1.0.3 has no target of its own for these features).
#   sve2, sve: qemu's 'max' (SVE2, 512-bit vectors): the SVE2 and the SVE
#          target, one entry each (so that -j2 runs the two side by side).
#   sve256: 256-bit vectors: SVE_256, the 256-bit specialised target.
#   sve128: 128-bit vectors: SVE2_128, the 128-bit specialised target.
set(RELATTN_QEMU_CPUS
  "neon|cortex-a72|NEON"
  "n1|neoverse-n1|NEON"
  "sve2|max|SVE2"
  "sve|max|SVE"
  "sve256|max,sve-default-vector-length=32|SVE_256"
  "sve128|max,sve-default-vector-length=16|SVE2_128")

include("${CMAKE_CURRENT_LIST_DIR}/cross-linux-common.cmake")
