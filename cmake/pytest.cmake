# The Python that runs the pytest suites of bindings/python and tools/cli, and relattn_pytest(),
# which registers one such suite with ctest. Included once by the top-level CMakeLists.txt
# (RELATTN_BUILD_PORTS), before bindings/ and tools/, so both see RELATTN_PYTHON_OK.

# Debian's python3 (python3-numpy, python3-pytest), not a pyenv or virtualenv one on PATH.
if(EXISTS /usr/bin/python3)
  set(_relattn_python /usr/bin/python3)
else()
  find_program(_relattn_python python3)
endif()
set(RELATTN_PYTHON "${_relattn_python}" CACHE FILEPATH
  "Python with numpy and pytest, for the bindings' and tools' tests")
set(RELATTN_PYTHON_OK OFF)
if(RELATTN_PYTHON AND NOT CMAKE_CROSSCOMPILING)
  execute_process(COMMAND ${RELATTN_PYTHON} -c "import numpy, pytest"
    RESULT_VARIABLE _relattn_rc OUTPUT_QUIET ERROR_QUIET)
  if(_relattn_rc EQUAL 0)
    set(RELATTN_PYTHON_OK ON)
  else()
    message(STATUS "relattn: ${RELATTN_PYTHON} lacks numpy or pytest "
      "(apt-get install python3-numpy python3-pytest): Python and CLI tests skipped")
  endif()
endif()

# Runs pytest on a folder of tests with the shared library, the tool and the binding at hand;
# ARGN: more VAR=value environment entries.
function(relattn_pytest name folder)
  if(NOT RELATTN_PYTHON_OK OR NOT RELATTN_BUILD_TESTS)
    return()
  endif()
  add_test(NAME ${name}
    COMMAND ${RELATTN_PYTHON} -m pytest -q -p no:cacheprovider ${folder})
  set(python ${PROJECT_SOURCE_DIR}/bindings/python)
  set(env RELATTN_LIBRARY=$<TARGET_FILE:relattn_shared> RELATTN_CLI=$<TARGET_FILE:relattn_cli>
    PYTHONPATH=${python}:${python}/tests PYTHONDONTWRITEBYTECODE=1 ${ARGN})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${env}")
endfunction()
