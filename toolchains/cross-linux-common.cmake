# Shared part of the Debian-packaged Linux cross toolchain files
# (aarch64-linux-gnu.cmake, arm-linux-gnueabihf.cmake). Before including it a
# toolchain file sets RELATTN_CROSS_TRIPLE (the GNU triple), RELATTN_CROSS_DEBARCH
# (the Debian architecture) and RELATTN_CROSS_QEMU (the qemu-user binary).
#
# - Compiler: the Debian cross compiler g++-<triple>, with its own libc
#   (/usr/<triple>); no --sysroot.
# - Libraries and headers of the target (libhwy, pthreadpool, doctest, XNNPACK):
#   the sysroot that toolchains/provision-sysroot.sh unpacks from Debian's .debs,
#   build/sysroots/<debarch> by default, or RELATTN_SYSROOT (a -D cache entry
#   or an environment variable). find_* look only there.
# - Tests: ctest runs them under qemu-user with the sysroot as its -L prefix
#   (its dynamic loader, libc and libhwy.so); tests/CMakeLists.txt adds one
#   entry per qemu CPU model listed in RELATTN_QEMU_CPUS.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_C_COMPILER ${RELATTN_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${RELATTN_CROSS_TRIPLE}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${RELATTN_CROSS_TRIPLE})

if(NOT RELATTN_SYSROOT)
  if(DEFINED ENV{RELATTN_SYSROOT})
    set(_relattn_sysroot "$ENV{RELATTN_SYSROOT}")
  else()
    get_filename_component(_relattn_sysroot
      "${CMAKE_CURRENT_LIST_DIR}/../build/sysroots/${RELATTN_CROSS_DEBARCH}" ABSOLUTE)
  endif()
  set(RELATTN_SYSROOT "${_relattn_sysroot}" CACHE PATH
    "${RELATTN_CROSS_DEBARCH} sysroot from toolchains/provision-sysroot.sh")
endif()
if(NOT EXISTS "${RELATTN_SYSROOT}/.provisioned")
  message(FATAL_ERROR "No ${RELATTN_CROSS_DEBARCH} sysroot at ${RELATTN_SYSROOT}: run "
    "bash toolchains/provision-sysroot.sh ${RELATTN_CROSS_DEBARCH}")
endif()
# try_compile projects re-read this file: pass the sysroot on to them.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES RELATTN_SYSROOT)

set(CMAKE_FIND_ROOT_PATH "${RELATTN_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# The sysroot's shared libraries pull in others (libhwy -> libstdc++): let the
# linker resolve those inside the sysroot.
set(_relattn_rpath_link
  "-Wl,-rpath-link,${RELATTN_SYSROOT}/usr/lib/${RELATTN_CROSS_TRIPLE}"
  "-Wl,-rpath-link,${RELATTN_SYSROOT}/lib/${RELATTN_CROSS_TRIPLE}")
string(JOIN " " _relattn_rpath_link ${_relattn_rpath_link})
set(CMAKE_EXE_LINKER_FLAGS_INIT "${_relattn_rpath_link}")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${_relattn_rpath_link}")

set(CMAKE_CROSSCOMPILING_EMULATOR ${RELATTN_CROSS_QEMU} -L "${RELATTN_SYSROOT}")
