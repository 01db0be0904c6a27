# cmake -P script run by ctest (cmake/package_test/CMakeLists.txt): install, check the exported
# symbols, then build and run consumer/ through find_package and through pkg-config.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK_DIR}/prefix)
set(libdir ${prefix}/${LIBDIR})
file(REMOVE_RECURSE ${WORK_DIR})
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

# Only relattn_* is exported; the SONAME carries the version.
run(${NM} -D --defined-only --format=posix ${libdir}/librelattn.so)
string(REGEX MATCHALL "[^\n]+" symbols "${run_output}")
foreach(line IN LISTS symbols)
  if(NOT line MATCHES "^relattn_")
    message(FATAL_ERROR "librelattn.so exports more than relattn_*: ${line}")
  endif()
endforeach()
file(GLOB sonames ${libdir}/librelattn.so.*)
if(NOT sonames)
  message(FATAL_ERROR "no versioned librelattn.so.* in ${libdir}")
endif()

# find_package(relattn): relattn::relattn and relattn::relattn_static.
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/consumer -B ${WORK_DIR}/cmake
  -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_C_COMPILER=${C_COMPILER}
  -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/cmake)
run(${WORK_DIR}/cmake/consumer_shared)
message(STATUS "find_package, shared: ${run_output}")
run(${WORK_DIR}/cmake/consumer_static)
message(STATUS "find_package, static: ${run_output}")

# pkg-config: the shared library, and the static one with --static's private libraries.
set(ENV{PKG_CONFIG_PATH} ${libdir}/pkgconfig)
run(pkg-config --cflags --libs relattn)
separate_arguments(flags UNIX_COMMAND "${run_output}")
run(${C_COMPILER} ${SOURCE_DIR}/consumer/consumer.c ${flags} -Wl,-rpath,${libdir}
  -o ${WORK_DIR}/pc_shared)
run(${WORK_DIR}/pc_shared)
message(STATUS "pkg-config, shared: ${run_output}")
run(pkg-config --static --cflags --libs relattn)
string(REPLACE "-lrelattn" "${libdir}/librelattn.a" static_flags "${run_output}")
separate_arguments(flags UNIX_COMMAND "${static_flags}")
run(${C_COMPILER} ${SOURCE_DIR}/consumer/consumer.c ${flags} -o ${WORK_DIR}/pc_static)
run(${WORK_DIR}/pc_static)
message(STATUS "pkg-config, static: ${run_output}")
