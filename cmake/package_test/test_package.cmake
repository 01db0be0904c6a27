# cmake -P script run by ctest (cmake/package_test/CMakeLists.txt): install, check the exported
# symbols, then build and run consumer/ (C only) through find_package and through pkg-config,
# checking which library each program links.
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

# Fails unless `binary` runs and its dynamic section `needs` (TRUE) or does not need librelattn.so.
function(check_program binary needs)
  run(${binary})
  message(STATUS "${binary}: ${run_output}")
  run(${READELF} -d ${binary})
  string(FIND "${run_output}" "librelattn.so" at)
  if(needs AND at EQUAL -1)
    message(FATAL_ERROR "${binary} should link librelattn.so:\n${run_output}")
  elseif(NOT needs AND NOT at EQUAL -1)
    message(FATAL_ERROR "${binary} should link librelattn.a, not librelattn.so:\n${run_output}")
  endif()
endfunction()

# find_package(relattn) in a C-only project: relattn::relattn and relattn::relattn_static.
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/consumer -B ${WORK_DIR}/cmake
  -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_C_COMPILER=${C_COMPILER} -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/cmake)
check_program(${WORK_DIR}/cmake/consumer_shared TRUE)
check_program(${WORK_DIR}/cmake/consumer_static FALSE)

# pkg-config, with the C compiler: relattn (the shared library) and relattn-static (the static
# one, with and without --static), run with nothing on the loader path.
set(ENV{PKG_CONFIG_PATH} ${libdir}/pkgconfig)
unset(ENV{LD_LIBRARY_PATH})
run(pkg-config --cflags --libs relattn)
separate_arguments(flags UNIX_COMMAND "${run_output}")
run(${C_COMPILER} ${SOURCE_DIR}/consumer/consumer.c ${flags} -Wl,-rpath,${libdir}
  -o ${WORK_DIR}/pc_shared)
check_program(${WORK_DIR}/pc_shared TRUE)
foreach(mode "" "--static")
  run(pkg-config ${mode} --cflags --libs relattn-static)
  separate_arguments(flags UNIX_COMMAND "${run_output}")
  run(${C_COMPILER} ${SOURCE_DIR}/consumer/consumer.c ${flags} -o ${WORK_DIR}/pc_static)
  check_program(${WORK_DIR}/pc_static FALSE)
endforeach()
