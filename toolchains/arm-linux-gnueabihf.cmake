# Cross build for 32-bit ARM Linux, armv7-a hard-float with NEON, with
# Debian's g++-arm-linux-gnueabihf; tests run under qemu-arm. Provision first:
#   bash toolchains/provision-sysroot.sh armhf
#   cmake --workflow --preset armv7
#
# NEON is the compile-time baseline, not a run-time choice: Highway 1.0.3 tests
# HWCAP_NEON, which armhf glibc names HWCAP_ARM_NEON, so its run-time detection
# never reports NEON on armv7. With NEON in the baseline Highway compiles that
# one target and calls it directly (static dispatch); the binaries need a CPU
# with NEON and VFPv4 (Cortex-A7/A15 and later).
set(CMAKE_SYSTEM_PROCESSOR arm)
set(RELATTN_CROSS_TRIPLE arm-linux-gnueabihf)
set(RELATTN_CROSS_DEBARCH armhf)
set(RELATTN_CROSS_QEMU qemu-arm)

set(_relattn_armv7_flags "-march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard -mfp16-format=ieee")
set(CMAKE_C_FLAGS_INIT "${_relattn_armv7_flags}")
# -Wno-psabi: gcc notes that passing some 64-bit types changed in GCC 7.1, once
# per std::vector<int64_t> instantiation; everything here is built by one gcc.
set(CMAKE_CXX_FLAGS_INIT "${_relattn_armv7_flags} -Wno-psabi")

# One CPU model: Cortex-A15 (armv7-a, NEON, VFPv4).
set(RELATTN_QEMU_CPUS "neon|cortex-a15|NEON")

include("${CMAKE_CURRENT_LIST_DIR}/cross-linux-common.cmake")
