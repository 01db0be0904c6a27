# Cross build for Android arm64-v8a: wraps the Android NDK's own toolchain file.
# Not exercised by this project's CI: the NDK is not a Debian package, so it
# cannot be installed on our machines; kept for users who have one.
#
#   ANDROID_NDK=/path/to/ndk cmake -S . -B build/android-arm64 \
#     -DCMAKE_TOOLCHAIN_FILE=toolchains/android-arm64.cmake \
#     -DCMAKE_PREFIX_PATH=/path/to/android/deps \
#     -DRELATTN_BUILD_TESTS=OFF -DRELATTN_BUILD_BENCH=OFF
#
# relattn needs Highway (hwy-config.cmake) and pthreadpool built for Android
# arm64 (doctest too with the tests): point CMAKE_PREFIX_PATH or
# CMAKE_FIND_ROOT_PATH at them. Highway dispatches at run time among NEON and
# the SVE targets, as on aarch64 Linux. ANDROID_ABI and ANDROID_PLATFORM may be
# overridden (defaults: arm64-v8a, android-24).
if(NOT DEFINED ENV{ANDROID_NDK} AND NOT ANDROID_NDK)
  message(FATAL_ERROR "android-arm64.cmake: set ANDROID_NDK (environment or -D) to the NDK root")
endif()
if(NOT ANDROID_NDK)
  set(ANDROID_NDK "$ENV{ANDROID_NDK}")
endif()
set(_relattn_ndk_toolchain "${ANDROID_NDK}/build/cmake/android.toolchain.cmake")
if(NOT EXISTS "${_relattn_ndk_toolchain}")
  message(FATAL_ERROR "android-arm64.cmake: no ${_relattn_ndk_toolchain}")
endif()
if(NOT ANDROID_ABI)
  set(ANDROID_ABI arm64-v8a)
endif()
if(NOT ANDROID_PLATFORM)
  set(ANDROID_PLATFORM android-24)
endif()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES ANDROID_NDK)
include("${_relattn_ndk_toolchain}")
